// Trainer: epochs of sharded, shuffled batches; gradient sum and Adam; evaluation;
// checkpoints and resume.
#include "train/trainer.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "data/epoch_plan.hpp"
#include "data/shard.hpp"
#include "io/checkpoint.hpp"
#include "io/run_report.hpp"
#include "nn/context.hpp"
#include "nn/precision.hpp"
#include "optim/adam.hpp"
#include "parallel/grad_sync.hpp"
#include "parallel/placement.hpp"
#include "train/model_config.hpp"
#include "train/stop_signals.hpp"
#include "vae/latent.hpp"
#include "vae/model.hpp"
#include "vae/sample_grids.hpp"

namespace vd {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Calls fn(batch) for consecutive batches of at most `batch` rows of the shard (x, labels).
template <typename Fn>
void for_each_batch(const Shard& shard, int64_t batch, Fn&& fn) {
  const int64_t n = shard.rows();
  std::vector<float> x(static_cast<size_t>(std::min(n, batch)) * shard.sample_size());
  std::vector<int32_t> labels;
  std::vector<int64_t> rows;
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t b = std::min(batch, n - b0);
    rows.resize(static_cast<size_t>(b));
    std::iota(rows.begin(), rows.end(), b0);
    shard.gather(rows, x.data());
    Batch bt;
    bt.n = static_cast<int>(b);
    bt.x = x.data();
    if (shard.has_labels()) {
      labels.assign(shard.labels().begin() + b0, shard.labels().begin() + b0 + b);
      bt.labels = labels.data();
    }
    fn(bt);
  }
}

// The sums over every rank, in the report's terms.
ReportSums reduce(const Comm& comm, const LossSums& local) {
  double v[4] = {local.loss, local.recon, local.kl, static_cast<double>(local.count)};
  comm.allreduce_sum(std::span<double>(v, 4));
  return ReportSums{v[0], v[1], v[2], static_cast<int64_t>(v[3])};
}

// True when x is NaN or infinite; by the bits, so it holds under any floating-point flags.
inline bool non_finite(float x) {
  return (std::bit_cast<uint32_t>(x) & 0x7f800000u) == 0x7f800000u;
}

// What of this rank's step is not finite ("" when all is): its loss terms, else the first
// parameter whose gradient holds a NaN or infinity. One pass over the gradient (about as
// long as a copy of it), and only the rare bad case looks for the entry.
std::string non_finite_part(const LossSums& sums, const ParamStore& store) {
  for (const auto& [name, v] :
       {std::pair{"loss", sums.loss}, std::pair{"reconstruction term", sums.recon},
        std::pair{"KL term", sums.kl}})
    if (!std::isfinite(v)) return "the " + std::string(name) + " is " + std::to_string(v);
  const std::span<const float> g = store.grads();
  bool bad = false;
#pragma omp simd reduction(| : bad)
  for (size_t i = 0; i < g.size(); ++i) bad |= non_finite(g[i]);
  if (!bad) return "";
  const auto& entries = store.entries();
  for (size_t e = 0; e < entries.size(); ++e)
    for (size_t i = 0; i < entries[e].size; ++i)
      if (non_finite(g[entries[e].offset + i]))
        return "the gradient of " + entries[e].name + " holds " +
               std::to_string(g[entries[e].offset + i]);
  return "the gradient holds a non-finite value";
}

}  // namespace

// The host buffers of one training step: x [B, D], eps [B, L], labels [B].
struct StepBuffers {
  std::vector<float> x, eps;
  std::vector<int32_t> labels;
};

struct Trainer::State {
  const Options& opt;
  const Comm& comm;
  Context ctx;
  Shard train;
  std::optional<Shard> test;
  ParamStore store;
  std::unique_ptr<Vae> vae;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<GradientSync> grad_sync;
  std::unique_ptr<EpochPlan> plan;
  std::unique_ptr<RunReport> report;  // rank 0 only
  std::unique_ptr<SampleGrids> grids;
  CheckpointPolicy checkpoints;
  std::filesystem::path out;
  int64_t step = 0, samples = 0;
  // Where the loop starts: 1-based epoch and the steps of it already done.
  int64_t start_epoch = 1, start_step_in_epoch = 0;
  std::optional<Rng> resumed_eps_rng;  // this rank's noise stream, for a mid-epoch resume
  std::string last_checkpoint;

  State(const Options& o, const Comm& c) : opt(o), comm(c) {}

  float beta_at(int64_t global_step) const {
    if (opt.kl_warmup_epochs <= 0) return static_cast<float>(opt.beta);
    const double ramp = opt.kl_warmup_epochs * static_cast<double>(plan->steps_per_epoch());
    return static_cast<float>(opt.beta * std::min(1.0, static_cast<double>(global_step) / ramp));
  }
  void check_replicas(const char* when) const { vd::check_replicas(comm, store.params(), when); }
  void resume(const std::string& requested, bool writes_model);
  void save_checkpoint(int64_t epoch, int64_t step_in_epoch, const Rng& eps_rng);
  ReportSums evaluate(int64_t epoch);
  LossSums step_once(int64_t st, Rng& eps_rng, StepBuffers& buf, int& signal);
  [[noreturn]] void diverged(const std::string& mine);
  void write_grids(int64_t epoch);
  double iw_nll();
};

Trainer::Trainer(const Options& options, const Comm& comm)
    : s_(std::make_unique<State>(options, comm)) {
  State& s = *s_;
  const Options& opt = options;
  const int threads = resolve_threads(opt.threads, comm);
  omp_set_num_threads(threads);
  // Before the data are read: --precision bf16 on a CPU without bf16 fails at once.
  std::string precision_note;
  const Precision precision = resolve_precision(opt.precision, &precision_note);

  const Likelihood likelihood = parse_likelihood(opt.likelihood);
  const ValueCheck check =
      likelihood == Likelihood::Bernoulli ? ValueCheck::UnitInterval : ValueCheck::None;

  s.train = Shard::read(opt.data, opt.dataset, comm.rank(), comm.size(), check);
  if (!opt.test_data.empty()) {
    s.test = Shard::read(opt.test_data, opt.dataset, comm.rank(), comm.size(), check);
    if (s.test->sample_size() != s.train.sample_size())
      throw DataError("the test data '" + opt.test_data + "' has samples of " +
                      std::to_string(s.test->sample_size()) + " values but the training data '" +
                      opt.data + "' has " + std::to_string(s.train.sample_size()) +
                      "; give a test set of the same image shape");
  }
  s.plan =
      std::make_unique<EpochPlan>(s.train.global_rows(), comm.rank(), comm.size(), opt.batch_size);

  VaeConfig vc = vae_config(opt, s.train, s.test ? &*s.test : nullptr, comm);
  vc.precision = precision;
  s.vae = std::make_unique<Vae>(vc, s.store);
  s.store.finalize();
  AdamConfig ac;
  ac.lr = opt.lr;
  ac.beta1 = opt.adam_beta1;
  ac.beta2 = opt.adam_beta2;
  ac.eps = opt.adam_eps;
  ac.weight_decay = opt.weight_decay;
  s.adam = std::make_unique<Adam>(s.store.size(), ac);
  s.grad_sync = std::make_unique<GradientSync>(comm, s.store, *s.adam);
  s.grad_sync->set_grad_clip(opt.grad_clip);

  s.out = opt.out;
  // With one shared copy of the model per node only that node's first rank writes it.
  const bool writes_model = s.grad_sync->writes_model();
  if (opt.resume.empty()) {
    Rng init_rng = make_rng(opt.seed, RngStream::Init);
    if (writes_model) s.vae->init(init_rng);
  } else {
    s.resume(opt.resume, writes_model);
  }
  // Every rank initialised (or restored) the same values; rank 0's are the truth regardless.
  s.grad_sync->share_initial_state();
  s.check_replicas("after start-up");

  // Fixed prior draws [G*G, L], so the sample grids compare across epochs.
  Rng grid_rng = make_rng(opt.seed, RngStream::Grid);
  std::vector<float> grid_z(static_cast<size_t>(opt.grid_size) * opt.grid_size * opt.latent_dim);
  grid_rng.fill_normal(grid_z.data(), grid_z.size());
  s.grids = std::make_unique<SampleGrids>(std::move(grid_z), opt.grid_size);
  s.checkpoints = CheckpointPolicy{opt.checkpoint_every, opt.keep_checkpoints};

  warn_if_ranks_share_cpus(comm);  // collective; rank 0 warns when pinned ranks share cores
  if (comm.is_root()) {
    std::error_code ec;
    std::filesystem::create_directories(s.out, ec);
    if (ec)
      throw IoError("cannot create the run directory '" + opt.out + "': " + ec.message() +
                    "; choose another --out");
    std::ofstream cfg(s.out / "config.ini");
    cfg << format_options(opt);
    if (!cfg) throw IoError("cannot write " + (s.out / "config.ini").string());
    const int64_t planned = s.plan->steps_per_epoch() * opt.epochs;
    s.report =
        std::make_unique<RunReport>((s.out / "metrics.csv").string(), !opt.resume.empty(),
                                    opt.progress && isatty(STDOUT_FILENO), opt.epochs, s.step,
                                    opt.max_steps > 0 ? std::min(opt.max_steps, planned) : planned);
    std::printf(
        "vae_dist: %d rank(s) x %d thread(s); %lld training rows (%lld on rank 0), %lld "
        "steps/epoch of %d x %d; %zu parameters; gradients summed by %s\n",
        comm.size(), threads, static_cast<long long>(s.train.global_rows()),
        static_cast<long long>(s.train.rows()), static_cast<long long>(s.plan->steps_per_epoch()),
        comm.size(), opt.batch_size, s.store.num_parameters(), s.grad_sync->method().c_str());
    if (!precision_note.empty()) std::printf("%s\n", precision_note.c_str());
    std::printf("model%s (layer, what it is, output shape per sample%s):\n%s",
                vc.classes > 0
                    ? (" conditional on " + std::to_string(vc.classes) + " classes").c_str()
                    : "",
                precision == Precision::F32 ? "" : ", precision", s.vae->summary().c_str());
    std::fflush(stdout);
  }
}

Trainer::~Trainer() = default;

const ParamStore& Trainer::params() const {
  return s_->store;
}

void Trainer::State::resume(const std::string& requested, bool writes_model) {
  // Rank 0 resolves "latest" so every rank opens the same file.
  std::string path = requested;
  if (comm.is_root() && requested == "latest") path = find_latest_checkpoint(out.string());
  comm.broadcast(path, 0);
  const CheckpointMeta meta =
      writes_model ? read_checkpoint(path, store, adam->exp_avg(), adam->exp_avg_sq())
                   : read_checkpoint_meta(path);
  adam->set_steps(meta.adam_steps);
  step = meta.step;
  samples = meta.samples;
  // Whether the writer was at an epoch end is a question about the writer's epochs: another
  // world size has another number of steps per epoch. Files without the count are read as
  // written with this run's batch size.
  const int64_t writer_steps =
      meta.steps_per_epoch > 0
          ? meta.steps_per_epoch
          : EpochPlan(train.global_rows(), 0, meta.world_size, opt.batch_size).steps_per_epoch();
  const bool epoch_done = meta.step_in_epoch >= writer_steps;
  if (meta.world_size == comm.size() && !epoch_done) {
    // Same world: continue mid-epoch exactly where the run stopped.
    start_epoch = meta.epoch;
    start_step_in_epoch = meta.step_in_epoch;
    Rng rng;
    rng.set_state(meta.rng_states.at(static_cast<size_t>(comm.rank())));
    resumed_eps_rng = rng;
  } else {
    // Another world size shards the data differently: the rest of a partial epoch cannot
    // be replayed, so training goes on with the next epoch.
    start_epoch = meta.epoch + 1;
    start_step_in_epoch = 0;
    if (comm.is_root() && !epoch_done)
      std::printf(
          "note: %s was written mid-epoch by %d rank(s); with %d rank(s) training "
          "continues at the start of epoch %lld\n",
          path.c_str(), meta.world_size, comm.size(), static_cast<long long>(start_epoch));
  }
  if (comm.is_root()) {
    std::printf("resumed from %s: epoch %lld, step %lld, %lld samples seen\n", path.c_str(),
                static_cast<long long>(meta.epoch), static_cast<long long>(meta.step),
                static_cast<long long>(meta.samples));
    std::fflush(stdout);
  }
}

void Trainer::State::save_checkpoint(int64_t epoch, int64_t step_in_epoch, const Rng& eps_rng) {
  const std::vector<std::string> states = comm.gather_strings(eps_rng.state(), 0);
  if (!comm.is_root()) return;
  CheckpointMeta meta;
  meta.config_ini = format_options(opt);
  meta.epoch = epoch;
  meta.step_in_epoch = step_in_epoch;
  meta.steps_per_epoch = plan->steps_per_epoch();
  meta.step = step;
  meta.samples = samples;
  meta.world_size = comm.size();
  meta.seed = opt.seed;
  meta.rng_states = states;
  meta.adam_steps = adam->steps();
  const Shape& data = vae->config().data;
  meta.data_shape = {data.c, data.h, data.w};
  meta.classes = vae->config().classes;
  const std::string path = (out / checkpoint_file_name(step)).string();
  write_checkpoint(path, meta, store, adam->exp_avg(), adam->exp_avg_sq());
  prune_checkpoints(out.string(), checkpoints.keep);
  last_checkpoint = path;
}

// The test set's loss terms and posterior-collapse diagnostics. Active units need the
// variance of mu over the whole test set, so the ranks sum exact per-dimension moments.
ReportSums Trainer::State::evaluate(int64_t epoch) {
  LossSums sums;
  if (!test) return ReportSums{};
  const int L = opt.latent_dim;
  std::vector<float> eps(static_cast<size_t>(opt.eval_batch_size) * L);
  Rng rng = make_rng(opt.seed, RngStream::EvalEps, static_cast<uint64_t>(epoch),
                     static_cast<uint64_t>(comm.rank()));
  PosteriorStats stats(L);
  for_each_batch(*test, opt.eval_batch_size, [&](Batch b) {
    rng.fill_normal(eps.data(), static_cast<size_t>(b.n) * L);
    b.eps = eps.data();
    sums += vae->evaluate(ctx, b, static_cast<float>(opt.beta), &stats);
  });
  comm.allreduce_sum(stats.data());
  ReportSums result = reduce(comm, sums);
  result.active_units = stats.active_units();
  result.kl_per_dim = stats.kl_per_dim();
  return result;
}

void Trainer::State::write_grids(int64_t epoch) {
  if (!comm.is_root()) return;
  // Reconstructions of the first test images (training images without a test set).
  const Shard& src = test ? *test : train;
  const int n = static_cast<int>(std::min<int64_t>(grids->reconstruction_count(), src.rows()));
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> x(static_cast<size_t>(n) * src.sample_size());
  src.gather(rows, x.data());
  grids->write(ctx, *vae, out.string(), epoch, n, x.data(),
               src.has_labels() ? src.labels().data() : nullptr);
}

double Trainer::State::iw_nll() {
  if (!test || opt.iw_samples <= 0) return std::numeric_limits<double>::quiet_NaN();
  Rng rng = make_rng(opt.seed, RngStream::Iw, static_cast<uint64_t>(comm.rank()));
  double v[2] = {0, 0};
  // k decoder passes per batch: a moderate batch keeps the [B, k] weights small.
  for_each_batch(*test, std::min(opt.eval_batch_size, 500), [&](const Batch& b) {
    v[0] += vae->iw_log_likelihood_sum(ctx, b, opt.iw_samples, rng);
    v[1] += b.n;
  });
  comm.allreduce_sum(std::span<double>(v, 2));
  return -v[0] / v[1];
}

// One optimizer step on this rank's rows of step `st`: gather the batch, draw its noise,
// forward and backward, then the gradient sum over the ranks and the Adam update. `signal`
// goes in as this rank's stop request and comes out as the one all ranks agree on: it rides
// in the gradient exchange, so stopping costs no collective of its own.
LossSums Trainer::State::step_once(int64_t st, Rng& eps_rng, StepBuffers& buf, int& signal) {
  const auto rows = plan->local_rows(st);
  const int local = static_cast<int>(rows.size());
  const int64_t global = plan->global_count(st);
  train.gather(rows, buf.x.data());
  eps_rng.fill_normal(buf.eps.data(), static_cast<size_t>(local) * opt.latent_dim);
  Batch batch{local, buf.x.data(), nullptr, buf.eps.data()};
  if (train.has_labels()) {
    for (int i = 0; i < local; ++i) buf.labels[static_cast<size_t>(i)] = train.labels()[rows[i]];
    batch.labels = buf.labels.data();
  }
  // The gradient sum starts on each layer's gradients as backward finishes them.
  ctx.grad_listener = grad_sync.get();
  const LossSums sums =
      vae->train_step(ctx, batch, beta_at(step), 1.0f / static_cast<float>(global));
  ctx.grad_listener = nullptr;
  // The divergence verdict rides with the stop counts: every rank learns of any rank's
  // non-finite loss or gradient at this step, without a collective of its own.
  const std::string bad = non_finite_part(sums, store);
  const GradientSync::Agreed agreed = grad_sync->update_checked(opt.lr, signal, !bad.empty());
  if (agreed.non_finite > 0) diverged(bad);
  signal = agreed.signal;
  ++step;
  samples += global;
  return sums;
}

// Every rank, at the same step: rank 0 gathers what each rank found, and every rank throws the
// same DivergenceError. Nothing is written after this, so the last good checkpoints stay.
void Trainer::State::diverged(const std::string& mine) {
  const std::vector<std::string> found = comm.gather_strings(mine, 0);
  std::string message;
  if (comm.is_root()) {
    message = "training diverged at step " + std::to_string(step + 1) + ":";
    for (size_t r = 0; r < found.size(); ++r)
      if (!found[r].empty()) message += " rank " + std::to_string(r) + ": " + found[r] + ";";
    std::string last = last_checkpoint;
    if (last.empty()) {
      try {
        last = find_latest_checkpoint(out.string());
      } catch (const Error&) {
      }
    }
    char lr[32];
    std::snprintf(lr, sizeof lr, "%g", opt.lr / 10);
    message += " no checkpoint was written after it";
    message += last.empty() ? " (the run has none yet); start again with a lower --lr (e.g. " +
                                  std::string(lr) + ") or --grad-clip 1"
                            : "; the last good one is " + last +
                                  "; go on from it with a lower learning rate or clipping: "
                                  "vae_dist --config " +
                                  (out / "config.ini").string() + " --resume latest --lr " + lr +
                                  " (or --grad-clip 1)";
  }
  comm.broadcast(message, 0);
  throw DivergenceError(message);
}

TrainSummary Trainer::run() {
  State& s = *s_;
  const Options& opt = s.opt;
  const Comm& comm = s.comm;
  EpochPlan& plan = *s.plan;
  const int64_t steps_per_epoch = plan.steps_per_epoch();
  StepBuffers buf;
  buf.x.resize(static_cast<size_t>(opt.batch_size) * s.train.sample_size());
  buf.eps.resize(static_cast<size_t>(opt.batch_size) * opt.latent_dim);
  buf.labels.resize(static_cast<size_t>(opt.batch_size));

  TrainSummary summary;
  summary.test_loss = summary.iw_nll = std::numeric_limits<double>::quiet_NaN();
  const auto t_run = Clock::now();
  double train_seconds = 0;
  int64_t train_samples = 0;
  const int64_t planned = steps_per_epoch * opt.epochs;
  const int64_t last_step = opt.max_steps > 0 ? std::min(opt.max_steps, planned) : planned;
  bool stop = s.step >= last_step;

  for (int64_t epoch = s.start_epoch; epoch <= opt.epochs && !stop; ++epoch) {
    // Plan: this epoch's shuffle and noise stream (or the resumed ones, mid-epoch).
    plan.shuffle(opt.seed, epoch);
    const int64_t first = epoch == s.start_epoch ? s.start_step_in_epoch : 0;
    Rng eps_rng = plan.eps_rng(opt.seed, epoch);
    if (epoch == s.start_epoch && s.resumed_eps_rng) eps_rng = *s.resumed_eps_rng;

    LossSums interval;
    ReportSums epoch_sums;
    double interval_seconds = 0;
    int64_t st = first;
    for (; st < steps_per_epoch && !stop; ++st) {
      // Batch, step, sync.
      const auto t0 = Clock::now();
      const int64_t samples_before = s.samples;
      // A stop signal on any rank stops every rank after the same step.
      int signal = poll_stop_signal();
      interval += s.step_once(st, eps_rng, buf, signal);
      interval_seconds += seconds_since(t0);
      train_samples += s.samples - samples_before;

      if (opt.checksum_every > 0 && s.step % opt.checksum_every == 0)
        s.check_replicas("during training");
      if (signal != 0) summary.signal = signal;
      stop = s.step >= last_step || signal != 0;

      // Report.
      if (s.step % opt.log_every == 0 || st + 1 == steps_per_epoch || stop) {
        const ReportSums sum = reduce(comm, interval);
        epoch_sums.loss += sum.loss;
        epoch_sums.count += sum.count;
        train_seconds += interval_seconds;
        if (s.report) s.report->train(epoch, s.step, s.samples, sum, opt.lr, interval_seconds);
        interval = LossSums{};
        interval_seconds = 0;
      }
    }
    summary.epochs = static_cast<int>(epoch);
    summary.train_loss =
        epoch_sums.loss / std::max<double>(1.0, static_cast<double>(epoch_sums.count));
    if (s.report) s.report->end_of_epoch();
    if (summary.signal != 0) {
      s.save_checkpoint(epoch, st, eps_rng);
      break;
    }

    const ReportSums test = s.evaluate(epoch);
    s.write_grids(epoch);
    if (test.count > 0) {
      const double n = static_cast<double>(test.count);
      summary.test_loss = test.loss / n;
      summary.test_recon = test.recon / n;
      summary.test_kl = test.kl / n;
      if (s.report) s.report->test(epoch, s.step, s.samples, test, opt.lr);
    }
    if (s.checkpoints.due_after_epoch(epoch, stop || epoch == opt.epochs))
      s.save_checkpoint(epoch, st, eps_rng);
  }

  if (summary.signal == 0) {
    summary.iw_nll = s.iw_nll();
    if (s.report && std::isfinite(summary.iw_nll))
      s.report->importance_weighted(summary.epochs, s.step, s.samples, opt.iw_samples,
                                    summary.iw_nll, opt.lr);
  }
  s.check_replicas("at the end of training");
  summary.steps = s.step;
  summary.samples = s.samples;
  summary.seconds = seconds_since(t_run);
  summary.train_images_per_s = static_cast<double>(train_samples) / std::max(1e-9, train_seconds);
  summary.last_checkpoint = s.last_checkpoint;
  comm.broadcast(summary.last_checkpoint, 0);
  return summary;
}

}  // namespace vd
