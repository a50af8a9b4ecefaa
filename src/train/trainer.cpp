// Trainer: the loop. Per epoch: plan (the shuffle and noise stream) -> per step: batch -> step
// (forward, backward) -> sync (gradient sum, guard, Adam, moving average) -> report; then
// evaluate -> checkpoint. Start-up lives in trainer_setup.cpp, checkpoints and the way back from
// a divergence in trainer_recovery.cpp, the state they share in trainer_state.hpp.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "core/simd.hpp"
#include "data/epoch_plan.hpp"
#include "data/row_stream.hpp"
#include "data/shard.hpp"
#include "io/checkpoint.hpp"
#include "io/run_report.hpp"
#include "nn/context.hpp"
#include "optim/adam.hpp"
#include "optim/early_stopping.hpp"
#include "optim/ema.hpp"
#include "optim/lr_schedule.hpp"
#include "parallel/batch_reducer.hpp"
#include "parallel/grad_sync.hpp"
#include "train/evaluation.hpp"
#include "train/resume.hpp"
#include "train/step_guard.hpp"
#include "train/stop_signals.hpp"
#include "train/trainer_state.hpp"
#include "vae/latent.hpp"
#include "vae/model.hpp"
#include "vae/sample_grids.hpp"

namespace vd {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// True when x is NaN or infinite; by the bits, so it holds under any floating-point flags.
inline bool non_finite(float x) {
  return any_non_finite(&x, 1);
}

// What of this rank's step is not finite ("" when all is): its loss terms, else the first
// parameter whose gradient holds a NaN or infinity. One pass over the gradient (about as
// long as a copy of it), and only the rare bad case looks for the entry.
std::string non_finite_part(const LossSums& sums, const std::vector<std::string>& terms,
                            const ParamStore& store) {
  if (!std::isfinite(sums.loss)) return "the loss is " + std::to_string(sums.loss);
  for (size_t i = 0; i < terms.size(); ++i)
    if (!std::isfinite(sums.term[i]))
      return "the " + terms[i] + " term is " + std::to_string(sums.term[i]);
  const std::span<const float> g = store.grads();
  if (!any_non_finite(g.data(), g.size())) return "";
  const auto& entries = store.entries();
  for (size_t e = 0; e < entries.size(); ++e)
    for (size_t i = 0; i < entries[e].size; ++i)
      if (non_finite(g[entries[e].offset + i]))
        return "the gradient of " + entries[e].name + " holds " +
               std::to_string(g[entries[e].offset + i]);
  return "the gradient holds a non-finite value";
}

}  // namespace

const ParamStore& Trainer::params() const {
  return s_->store;
}

std::span<const float> Trainer::moving_average() const {
  return s_->ema ? s_->ema->values() : std::span<const float>();
}

// One optimizer step on this rank's rows of step `st`: gather the batch, draw its noise,
// forward and backward, then the gradient sum over the ranks and the Adam update. `signal`
// goes in as this rank's stop request and comes out as the one all ranks agree on: it rides
// in the gradient exchange, so stopping costs no collective of its own.
LossSums Trainer::State::step_once(int64_t epoch, int64_t st, Rng& eps_rng, StepBuffers& buf,
                                   int& signal) {
  const auto rows = plan->local_rows(st);
  const int local = static_cast<int>(rows.size());
  const int64_t global = plan->global_count(st);
  if (stream)
    stream->gather(epoch, st, buf.x.data());
  else
    train.gather(rows, buf.x.data());
  eps_rng.fill_normal(buf.eps.data(), static_cast<size_t>(local) *
                                          static_cast<size_t>(model->train_noise_per_sample()));
  Batch batch{local, buf.x.data(), nullptr, buf.eps.data()};
  if (train.has_labels()) {
    for (int i = 0; i < local; ++i) buf.labels[static_cast<size_t>(i)] = train.labels()[rows[i]];
    batch.labels = buf.labels.data();
  }
  // The gradient sum starts on each layer's gradients as backward finishes them.
  ctx.grad_listener = grad_sync.get();
  const LossSums sums =
      model->train_step(ctx, batch, beta_at(step), 1.0f / static_cast<float>(global));
  ctx.grad_listener = nullptr;
  // The divergence verdict rides with the stop counts: every rank learns of any rank's
  // non-finite loss or gradient at this step, without a collective of its own.
  const std::string bad = non_finite_part(sums, model->term_names(), store);
  last_lr = lr_at(step);
  guard->expect(step + 1, global);
  const GradientSync::Agreed agreed =
      grad_sync->update_checked(last_lr, signal, !bad.empty(), sums.loss);
  if (agreed.non_finite > 0) diverged(bad);
  signal = agreed.signal;
  ++step;
  samples += global;
  if (!agreed.applied) {
    // The batch's loss is still reported: it shows what the model does on it.
    if (comm.is_root()) {
      std::printf("%s\n", guard->skip_line().c_str());
      std::fflush(stdout);
    }
    if (guard->verdict().diverged) spike_diverged();
  }
  return sums;
}

// A step whose batch --rollback-skip-steps passes over: the batch and its noise are still drawn
// (so the data stream and the noise of later steps are as without the skip), but nothing
// is computed and no update made. The step counts; its samples are not seen.
void Trainer::State::pass_over(int64_t epoch, int64_t st, Rng& eps_rng, StepBuffers& buf) {
  const auto rows = plan->local_rows(st);
  if (stream)
    stream->gather(epoch, st, buf.x.data());
  else
    train.gather(rows, buf.x.data());
  eps_rng.fill_normal(buf.eps.data(),
                      rows.size() * static_cast<size_t>(model->train_noise_per_sample()));
  last_lr = lr_at(step);
  ++step;
}

TrainSummary Trainer::run() {
  State& s = *s_;
  const Options& opt = s.opt;
  StepBuffers buf;
  buf.x.resize(static_cast<size_t>(opt.batch_size) * s.train.sample_size());
  buf.eps.resize(static_cast<size_t>(opt.batch_size) *
                 static_cast<size_t>(s.model->train_noise_per_sample()));
  buf.labels.resize(static_cast<size_t>(opt.batch_size));

  TrainSummary summary;
  summary.test_loss = summary.iw_nll = std::numeric_limits<double>::quiet_NaN();
  summary.val_loss = summary.best_val_loss = std::numeric_limits<double>::quiet_NaN();
  const auto t_run = Clock::now();
  double train_seconds = 0;
  int64_t train_samples = 0;
  bool stop = s.step >= s.last_step;
  if (s.resumed_after_early_stop()) {
    stop = true;
    summary.early_stopped = true;
  }

  // A divergence under --on-divergence rollback goes back to a healthy state and trains on
  // from there; otherwise (or with no rollback left) it ends the run.
  for (;;) {
    try {
      for (int64_t epoch = s.start_epoch; epoch <= opt.epochs && !stop; ++epoch) {
        // Plan: this epoch's shuffle and noise stream (or the resumed ones, mid-epoch).
        s.plan->shuffle(opt.seed, epoch);
        Rng eps_rng = s.plan->eps_rng(opt.seed, epoch);
        if (epoch == s.start_epoch && s.resumed_eps_rng) eps_rng = *s.resumed_eps_rng;
        // Batch, step, sync, report.
        const State::EpochRun done = s.train_epoch(epoch, eps_rng, buf, summary, stop);
        train_seconds += done.train_seconds;
        train_samples += done.train_samples;
        // A signal mid-epoch: checkpoint and stop now. A signal on the epoch's last step lets
        // the epoch's end (validation, schedules, best.h5, the checkpoint) run first, since the
        // resumed run starts with the next epoch and would never count this one.
        if (summary.signal != 0 && done.steps_done < s.plan->steps_per_epoch()) {
          s.save_checkpoint(epoch, done.steps_done, eps_rng, done.sums);
          break;
        }
        // Evaluate, checkpoint.
        s.end_epoch(epoch, done, eps_rng, summary, stop);
      }
      break;
    } catch (const DivergenceError& e) {
      if (!s.collective_divergence || s.opt.on_divergence != DivergenceAction::Rollback) throw;
      if (!s.may_roll_back())
        throw DivergenceError(std::string(e.what()) + " (after " + std::to_string(s.rollbacks) +
                              " rollback(s): --max-rollbacks " + std::to_string(opt.max_rollbacks) +
                              " reached)");
      s.roll_back();
      stop = s.step >= s.last_step;
    }
  }
  s.finish(summary);
  summary.seconds = seconds_since(t_run);
  summary.train_images_per_s = static_cast<double>(train_samples) / std::max(1e-9, train_seconds);
  return summary;
}

// A run resumed from a checkpoint whose run had already stopped early would otherwise train
// one more epoch before the next evaluation stops it again. The state is the same on every
// rank (read from the same file).
bool Trainer::State::resumed_after_early_stop() {
  if (!val || early.patience() <= 0 || early.state().bad_evaluations < early.patience())
    return false;
  if (comm.is_root()) {
    std::printf(
        "early stop: the resumed run had stopped early (the validation loss has not improved "
        "for %lld evaluation(s); best %.4f at step %lld); to train on, raise "
        "--early-stop-patience or set it to 0\n",
        static_cast<long long>(early.state().bad_evaluations), early.state().best,
        static_cast<long long>(early.state().best_step));
    std::fflush(stdout);
  }
  return true;
}

// The steps of one epoch, from the resumed step on: each a batch, a step and the gradient sum
// (or a batch passed over), and every --log-every steps a report.
Trainer::State::EpochRun Trainer::State::train_epoch(int64_t epoch, Rng& eps_rng, StepBuffers& buf,
                                                     TrainSummary& summary, bool& stop) {
  const int64_t steps_per_epoch = plan->steps_per_epoch();
  EpochRun done;
  // The epoch's reported training loss; a mid-epoch resume starts from the stored part.
  const bool resumed_here = epoch == start_epoch && resumed_eps_rng;
  if (resumed_here) done.sums = resumed_epoch_sums;
  LossSums interval;
  double interval_seconds = 0;
  int64_t interval_steps = 0;  // steps trained (not passed over) since the last report
  int64_t st = epoch == start_epoch ? start_step_in_epoch : 0;
  for (; st < steps_per_epoch && !stop; ++st) {
    const auto t0 = Clock::now();
    const int64_t samples_before = samples;
    int signal = 0;
    if (in_step_ranges(skipped_steps, step + 1)) {
      pass_over(epoch, st, eps_rng, buf);
    } else {
      // A stop signal on any rank stops every rank after the same step.
      signal = poll_stop_signal();
      interval += step_once(epoch, st, eps_rng, buf, signal);
      ++interval_steps;
    }
    interval_seconds += seconds_since(t0);
    done.train_samples += samples - samples_before;

    if (opt.checksum_every > 0 && step % opt.checksum_every == 0) check_replicas("during training");
    if (signal != 0) summary.signal = signal;
    stop = step >= last_step || signal != 0;

    if ((step % opt.log_every == 0 || st + 1 == steps_per_epoch || stop) && interval_steps > 0) {
      const ReportSums sum = reduce(comm, interval, static_cast<int>(model->term_names().size()));
      done.sums.loss += sum.loss;
      done.sums.count += sum.count;
      done.train_seconds += interval_seconds;
      if (report) report->train(epoch, step, samples, sum, last_lr, interval_seconds);
      interval = LossSums{};
      interval_seconds = 0;
      interval_steps = 0;
    }
  }
  done.steps_done = st;
  summary.epochs = static_cast<int>(epoch);
  summary.train_loss = done.sums.loss / std::max<double>(1.0, static_cast<double>(done.sums.count));
  if (report) report->end_of_epoch();
  return done;
}

// The epoch's end: validation, then the test rows and the grids (with --eval-weights' weights);
// the schedules and early stopping on a complete epoch; a late stop signal; the checkpoint.
void Trainer::State::end_epoch(int64_t epoch, const EpochRun& done, const Rng& eps_rng,
                               TrainSummary& summary, bool& stop) {
  if (val) {
    const ReportSums v = with_eval_weights([&] { return eval->validate(epoch); });
    const double n = static_cast<double>(v.count);
    summary.val_loss = v.loss / n;
    summary.val_terms.clear();
    for (double t : v.terms) summary.val_terms.push_back(t / n);
    if (report) report->validation(epoch, step, samples, v, last_lr);
  }
  const ReportSums test_sums = with_eval_weights([&] {
    const ReportSums t = eval->test(epoch);
    eval->write_grids(epoch);
    return t;
  });
  if (test_sums.count > 0) {
    const double n = static_cast<double>(test_sums.count);
    summary.test_loss = test_sums.loss / n;
    summary.test_terms.clear();
    for (double t : test_sums.terms) summary.test_terms.push_back(t / n);
    if (report) report->test(epoch, step, samples, test_sums, last_lr);
  }
  // The schedules see complete epochs only: an epoch cut short by --max-steps is finished by
  // the resumed run, which must not count it twice.
  const int64_t st = done.steps_done;
  if (st == plan->steps_per_epoch()) {
    // Rank 0's values decide, so every rank takes the same branches (an allreduce need not
    // round alike on every rank).
    double seen[2] = {val                   ? summary.val_loss
                      : test_sums.count > 0 ? summary.test_loss
                                            : summary.train_loss,
                      summary.val_loss};
    comm.broadcast(std::span<double>(seen, 2), 0);
    const double monitored = seen[0];
    summary.val_loss = seen[1];
    if (schedule->observe(monitored) && comm.is_root()) {
      std::printf("epoch %lld: no improvement for %lld evaluation(s); learning rate now %g\n",
                  static_cast<long long>(epoch),
                  static_cast<long long>(schedule->config().patience + 1), lr_at(step));
      std::fflush(stdout);
    }
    if (val) {
      const EarlyStopping::Verdict v = early.observe(summary.val_loss, step);
      if (v.improved) save_checkpoint(epoch, st, eps_rng, done.sums, true);
      if (v.stop) {
        stop = true;
        summary.early_stopped = true;
        if (comm.is_root()) {
          std::printf(
              "early stop after epoch %lld: the validation loss has not improved for %lld "
              "evaluation(s); best %.4f at step %lld\n",
              static_cast<long long>(epoch), static_cast<long long>(early.patience()),
              early.state().best, static_cast<long long>(early.state().best_step));
          std::fflush(stdout);
        }
      }
    }
  }
  // A stop request during the epoch's evaluations ends the run here, with this epoch's
  // checkpoint; no step polls again after the last epoch.
  if (summary.signal == 0)
    if (const int late = agreed_stop_signal(comm, poll_stop_signal()); late != 0) {
      summary.signal = late;
      stop = true;
    }
  if (checkpoints.due_after_epoch(epoch, stop || epoch == opt.epochs))
    save_checkpoint(epoch, st, eps_rng, done.sums);
}

// The run's end: the importance-weighted estimate (which a signal may stop), the guard's
// summary, the last replica check, and the figures every rank reports alike.
void Trainer::State::finish(TrainSummary& summary) {
  if (summary.signal == 0) {
    int late = 0;
    summary.iw_nll = with_eval_weights([&] { return eval->iw_nll(&late); });
    if (late != 0) {
      summary.signal = late;
      if (comm.is_root()) {
        std::printf(
            "importance-weighted estimate stopped by signal %d (the checkpoints are "
            "complete)\n",
            late);
        std::fflush(stdout);
      }
    }
    if (report && std::isfinite(summary.iw_nll))
      report->importance_weighted(summary.epochs, step, samples, opt.iw_samples, summary.iw_nll,
                                  last_lr);
  }
  if (const std::string line = guard->summary_line(); !line.empty() && comm.is_root()) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  check_replicas("at the end of training");
  summary.steps = step;
  summary.samples = samples;
  summary.last_checkpoint = last_checkpoint;
  comm.broadcast(summary.last_checkpoint, 0);
  {
    // Every rank's figures in its own slot: the sum is the list, its maximum the answer.
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::vector<double> v(2 * static_cast<size_t>(comm.size()), 0.0);
    v[2 * static_cast<size_t>(comm.rank())] = static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB
    v[2 * static_cast<size_t>(comm.rank()) + 1] = stream ? stream->wait_seconds() : 0.0;
    comm.allreduce_sum(v);
    for (size_t r = 0; r < v.size(); r += 2) {
      summary.peak_rss_mb = std::max(summary.peak_rss_mb, v[r]);
      summary.data_wait_seconds = std::max(summary.data_wait_seconds, v[r + 1]);
    }
  }
  if (val && early.state().best_step >= 0) {
    summary.best_val_loss = early.state().best;
    summary.best_val_step = early.state().best_step;
    // Written by this run, or by the run it resumed in the same directory.
    std::error_code ec;
    if (comm.is_root() && std::filesystem::exists(out / kBestCheckpointFile, ec))
      summary.best_checkpoint = (out / kBestCheckpointFile).string();
    comm.broadcast(summary.best_checkpoint, 0);
  }
}

}  // namespace vd
