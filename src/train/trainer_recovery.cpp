// The Trainer's checkpoints and the way back from a divergence: writing a checkpoint of the
// run's state, the same error on every rank at the same step, and --on-divergence rollback.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
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
#include "train/run_messages.hpp"
#include "train/step_guard.hpp"
#include "train/trainer_state.hpp"
#include "vae/latent.hpp"
#include "vae/model.hpp"
#include "vae/sample_grids.hpp"

namespace vd {

// A checkpoint_stepN.h5, or best.h5 when `best` (never pruned, never found by "latest").
void Trainer::State::save_checkpoint(int64_t epoch, int64_t step_in_epoch, const Rng& eps_rng,
                                     const ReportSums& epoch_sums, bool best) {
  // A checkpoint from inside a run of skipped updates may hold a model gone wrong: the newest
  // healthy one stays the newest (and is never pruned), and --resume latest finds it.
  if (const std::string withheld = guard->withheld_checkpoint(step); !withheld.empty()) {
    if (comm.is_root()) {
      std::printf("%s\n", withheld.c_str());
      std::fflush(stdout);
    }
    return;
  }
  const std::vector<std::string> states = comm.gather_strings(eps_rng.state(), 0);
  if (!comm.is_root()) return;
  CheckpointMeta meta;
  meta.config_ini = format_options(opt);
  meta.cursor = plan->cursor(epoch, step_in_epoch);
  meta.step = step;
  meta.samples = samples;
  meta.world_size = comm.size();
  meta.seed = opt.seed;
  meta.rng_states = states;
  meta.adam_steps = adam->steps();
  const Shape& data = model->config().data;
  meta.data_shape = data.dims();
  meta.classes = model->config().classes;
  meta.scaling = scaling;
  meta.plateau = schedule->plateau();
  meta.early = early.state();
  meta.epoch_loss_sum = epoch_sums.loss;
  meta.epoch_loss_count = epoch_sums.count;
  meta.guard = guard->state();
  meta.rollbacks = rollbacks;
  meta.rollback_lr_scale = rollback_lr_scale;
  meta.skipped_steps = skipped_steps;
  std::span<const float> average;
  if (ema) {
    meta.ema_decay = ema->decay();
    meta.ema_updates = ema->updates();
    meta.ema_warmup = ema->warmup();
    average = ema->values();
  }
  meta.eval_weights = opt.eval_weights;
  if (best) {
    const std::string path = (out / kBestCheckpointFile).string();
    write_checkpoint(path, meta, store, adam->exp_avg(), adam->exp_avg_sq(), average);
    return;
  }
  const std::string path = (out / checkpoint_file_name(step)).string();
  write_checkpoint(path, meta, store, adam->exp_avg(), adam->exp_avg_sq(), average);
  prune_checkpoints(out.string(), checkpoints.keep);
  last_checkpoint = path;
}

// The newest checkpoint of this run, or of the run directory ("" when there is none): rank 0.
std::string Trainer::State::newest_checkpoint() const {
  if (!last_checkpoint.empty()) return last_checkpoint;
  try {
    return find_latest_checkpoint(out.string());
  } catch (const Error&) {
    return "";
  }
}

// Every rank reached the same verdict at the same step: one message, the same error everywhere.
void Trainer::State::spike_diverged() {
  std::string message;
  if (comm.is_root())
    message = spike_divergence_message(step, guard->state().first_flagged, guard->verdict().reason,
                                       newest_checkpoint(), out.string(), last_lr, opt.max_skips);
  comm.broadcast(message, 0);
  collective_divergence = true;
  failed_step = guard->state().first_flagged;
  failed_last_step = step;
  failure = std::to_string(step - failed_step + 1) + " updates in a row skipped; at the last, " +
            guard->verdict().reason;
  throw DivergenceError(message);
}

// Every rank, at the same step: rank 0 gathers what each rank found, and every rank throws the
// same DivergenceError. Nothing is written after this, so the last good checkpoints stay.
void Trainer::State::diverged(const std::string& mine) {
  const std::vector<std::string> found = comm.gather_strings(mine, 0);
  std::string message;
  std::string what;
  for (size_t r = 0; r < found.size(); ++r)
    if (!found[r].empty())
      what += (what.empty() ? "rank " : "; rank ") + std::to_string(r) + ": " + found[r];
  if (comm.is_root())
    message = divergence_message(step + 1, found, newest_checkpoint(), out.string(), opt.lr);
  comm.broadcast(message, 0);
  comm.broadcast(what, 0);
  collective_divergence = true;
  failed_step = step + 1;
  failed_last_step = step + 1;
  failure = what;
  throw DivergenceError(message);
}

// --on-divergence rollback: every rank goes back to the newest checkpoint whose model was seen
// healthy (one written before the step before `failed_step`: the update of that step may be
// the one that broke the model), or to the initial parameters, with the learning rate times
// --rollback-lr-factor. The checkpoints after it are renamed <name>.rolled-back, so they are
// kept but never resumed or pruned. What happens is a function of the run's history alone, so
// a resumed run rolls back exactly as the first one did.
void Trainer::State::roll_back() {
  collective_divergence = false;
  std::string target;
  if (comm.is_root()) {
    for (int64_t st : checkpoint_steps(out.string()))
      if (st < failed_step - 1)
        target = (out / checkpoint_file_name(st)).string();
      else {
        const std::filesystem::path from = out / checkpoint_file_name(st);
        std::error_code ec;
        std::filesystem::rename(from, from.string() + ".rolled-back", ec);
      }
  }
  comm.broadcast(target, 0);
  const int64_t done = rollbacks + 1;
  const double scale = rollback_lr_scale * opt.rollback_lr_factor;
  const int64_t from_step = step;
  const bool writes_model = grad_sync->writes_model();
  const StepRanges kept = skipped_steps;
  if (target.empty())
    initialise(writes_model);
  else
    resume(target, writes_model);
  rollbacks = done;
  rollback_lr_scale = scale;
  // The batches up to the failure, after the step gone back to, are passed over from now on.
  skipped_steps = merge_step_ranges(kept, skipped_steps);
  std::string passed;
  if (opt.rollback_skip_steps > 0) {
    const int64_t first = std::max(step + 1, failed_last_step - opt.rollback_skip_steps + 1);
    if (first <= failed_last_step) {
      skipped_steps = add_step_range(skipped_steps, first, failed_last_step);
      passed = "; the batches of steps " + std::to_string(first) + ".." +
               std::to_string(failed_last_step) + " are passed over";
    }
  }
  last_checkpoint = target;
  schedule->set_plateau(resumed_plateau);
  last_lr = lr_at(std::max<int64_t>(0, step - 1));
  start_stream();
  grad_sync->share_initial_state();
  check_replicas("after a rollback");
  if (comm.is_root()) {
    std::printf(
        "rollback %lld of %d at step %lld: %s\n  back to %s (step %lld); the learning "
        "rate is now %s times the schedule's (%g at step %lld)%s\n",
        static_cast<long long>(done), opt.max_rollbacks, static_cast<long long>(from_step),
        failure.c_str(), target.empty() ? "the initial parameters" : target.c_str(),
        static_cast<long long>(step), number_text(scale).c_str(), lr_at(step),
        static_cast<long long>(step + 1), passed.c_str());
    std::fflush(stdout);
  }
}

}  // namespace vd
