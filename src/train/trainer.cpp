// Trainer: epochs of sharded, shuffled batches; gradient sum and Adam; evaluation;
// checkpoints and resume.
#include "train/trainer.hpp"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "core/simd.hpp"
#include "data/epoch_plan.hpp"
#include "data/row_stream.hpp"
#include "data/shard.hpp"
#include "data/standardize.hpp"
#include "io/checkpoint.hpp"
#include "io/run_report.hpp"
#include "nn/context.hpp"
#include "nn/precision.hpp"
#include "optim/adam.hpp"
#include "optim/early_stopping.hpp"
#include "optim/lr_schedule.hpp"
#include "parallel/batch_reducer.hpp"
#include "parallel/grad_sync.hpp"
#include "parallel/placement.hpp"
#include "train/data_residency.hpp"
#include "train/evaluation.hpp"
#include "train/kl_schedule.hpp"
#include "train/memory_check.hpp"
#include "train/model_config.hpp"
#include "train/resume.hpp"
#include "train/run_messages.hpp"
#include "train/step_guard.hpp"
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

// True when x is NaN or infinite; by the bits, so it holds under any floating-point flags.
inline bool non_finite(float x) {
  return any_non_finite(&x, 1);
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
  std::optional<Shard> val;  // held-out rows of the training file, or --val-data
  std::optional<Shard> test;
  ParamStore store;
  std::unique_ptr<Vae> vae;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<GradientSync> grad_sync;
  std::unique_ptr<EpochPlan> plan;
  std::unique_ptr<RowStream> stream;  // streamed training data
  std::string data_note;              // where the data live, for the start-up lines
  std::unique_ptr<LrSchedule> schedule;
  EarlyStopping early{0};
  double last_lr = 0;                 // the rate of the newest step, for the metrics rows
  std::unique_ptr<RunReport> report;  // rank 0 only
  std::unique_ptr<SampleGrids> grids;
  std::unique_ptr<Evaluator> eval;
  std::unique_ptr<MpiBatchReducer> batch_reducer;  // free bits on several ranks
  KlSchedule kl;
  FeatureScaling scaling;  // --standardize: the training set's (or the checkpoint's)
  CheckpointPolicy checkpoints;
  std::filesystem::path out;
  int64_t step = 0, samples = 0;
  // Where the loop starts: 1-based epoch and the steps of it already done.
  int64_t start_epoch = 1, start_step_in_epoch = 0;
  int64_t last_step = 0;               // the global step the run ends after
  int64_t resumed_writer_steps = 0;    // steps per epoch of the checkpoint's run
  PlateauState resumed_plateau;        // the plateau schedule's state read by resume()
  std::optional<Rng> resumed_eps_rng;  // this rank's noise stream, for a mid-epoch resume
  ReportSums resumed_epoch_sums;       // the reported training loss of that epoch so far
  std::string last_checkpoint;
  // The update guard; the rollbacks so far and the learning-rate factor they left.
  std::unique_ptr<StepGuard> guard;
  int64_t rollbacks = 0;
  double rollback_lr_scale = 1.0;

  State(const Options& o, const Comm& c) : opt(o), comm(c) {}

  double lr_at(int64_t global_step) const { return schedule->lr(global_step) * rollback_lr_scale; }
  // The DivergenceError in flight was thrown on every rank at the same step (not one rank's
  // write refusing a model): what failed first, and why in a line.
  bool collective_divergence = false;
  int64_t failed_step = 0;
  std::string failure;
  void initialise(bool writes_model);
  void start_stream();
  bool may_roll_back() const {
    return collective_divergence && opt.on_divergence == DivergenceAction::Rollback &&
           rollbacks < opt.max_rollbacks;
  }
  void roll_back();

  float beta_at(int64_t global_step) const { return kl.at(global_step); }
  void check_replicas(const char* when) const { vd::check_replicas(comm, store.params(), when); }
  void resume(const std::string& requested, bool writes_model);
  void prepare_standardization(bool resumed);
  void save_checkpoint(int64_t epoch, int64_t step_in_epoch, const Rng& eps_rng,
                       const ReportSums& epoch_sums, bool best = false);
  LossSums step_once(int64_t epoch, int64_t st, Rng& eps_rng, StepBuffers& buf, int& signal);
  [[noreturn]] void diverged(const std::string& mine);
  [[noreturn]] void spike_diverged();
  std::string newest_checkpoint() const;
};

Trainer::Trainer(const Options& options, const Comm& comm)
    : s_(std::make_unique<State>(options, comm)) {
  State& s = *s_;
  const Options& opt = options;
  check_option_combinations(opt);  // every rank throws the same error, before any collective
  const int threads = resolve_threads(opt.threads, comm);
  omp_set_num_threads(threads);
  // Before the data are read: --precision bf16 on a CPU without bf16 fails at once.
  std::string precision_note;
  const Precision precision = resolve_precision(opt.precision, &precision_note);

  const Likelihood likelihood = parse_likelihood(opt.likelihood);
  const ValueCheck check =
      likelihood == Likelihood::Bernoulli ? ValueCheck::UnitInterval : ValueCheck::None;

  TrainingData data = open_training_data(opt, comm, check);
  s.train = std::move(data.train);
  s.val = std::move(data.val);
  s.test = std::move(data.test);
  s.data_note = std::move(data.note);
  const std::optional<BlockShuffle>& blocks = data.blocks;
  s.plan = std::make_unique<EpochPlan>(s.train.global_rows(), comm.rank(), comm.size(),
                                       opt.batch_size, blocks);
  if (blocks) s.stream = std::make_unique<RowStream>(s.train, *s.plan);
  s.kl = kl_schedule_of(opt, s.plan->steps_per_epoch());

  VaeConfig vc =
      vae_config(opt, s.train, s.test ? &*s.test : nullptr, comm, s.val ? &*s.val : nullptr);
  vc.precision = precision;
  s.vae = std::make_unique<Vae>(vc, s.store);
  // Before the parameters, batches and grids are allocated: a size too large is refused here.
  check_run_memory(opt, *s.vae, s.store, s.val ? &*s.val : nullptr, s.test ? &*s.test : nullptr,
                   comm);
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
  s.guard = std::make_unique<StepGuard>(opt, comm.size(), comm.is_root());
  s.guard->arm(*s.grad_sync);
  if (opt.free_bits > 0 && comm.size() > 1) {
    // The free-bits floor needs the global batch's KL per dimension: one small exchange.
    s.batch_reducer = std::make_unique<MpiBatchReducer>(comm);
    s.ctx.batch_reducer = s.batch_reducer.get();
  }

  s.early = EarlyStopping(opt.early_stop_patience);
  s.out = opt.out;
  // With one shared copy of the model per node only that node's first rank writes it.
  const bool writes_model = s.grad_sync->writes_model();
  if (opt.resume.empty()) {
    s.initialise(writes_model);
  } else {
    s.resume(opt.resume, writes_model);
  }
  // The schedule runs on the global step; cosine ends at the run's last step.
  // The run ends with epoch --epochs: the steps left of the start epoch and of the epochs after
  // it, under this run's plan (a resume with another world size or data file has another
  // number of steps per epoch than the run that wrote the checkpoint).
  const int64_t spe = s.plan->steps_per_epoch();
  const int64_t planned =
      s.step + std::max<int64_t>(0, (opt.epochs - s.start_epoch + 1) * spe - s.start_step_in_epoch);
  s.last_step = opt.max_steps > 0 ? std::min(opt.max_steps, planned) : planned;
  if (!opt.resume.empty() && comm.is_root()) {
    ResumedPlan rp;
    rp.writer_steps_per_epoch = s.resumed_writer_steps;
    rp.steps_per_epoch = spe;
    rp.step = s.step;
    rp.start_epoch = s.start_epoch;
    rp.planned = planned;
    rp.last_step = s.last_step;
    rp.rows = s.train.global_rows();
    rp.ranks = comm.size();
    std::printf("%s", resumed_plan_notes(rp, opt).c_str());
    std::fflush(stdout);
  }
  const double rank_scale = lr_rank_scale(opt.lr_scale_with_ranks, comm.size());
  LrScheduleConfig lc;
  lc.kind = parse_lr_schedule(opt.lr_schedule);
  lc.base_lr = rank_scale == 1.0 ? opt.lr : opt.lr * rank_scale;
  lc.warmup_steps = opt.lr_warmup_steps;
  lc.step_size = opt.lr_step_size;
  lc.gamma = opt.lr_gamma;
  lc.total_steps = s.last_step;
  lc.min_lr = opt.lr_min;
  lc.factor = opt.lr_factor;
  lc.patience = opt.lr_patience;
  lc.threshold = opt.lr_threshold;
  lc.cooldown = opt.lr_cooldown;
  s.schedule = std::make_unique<LrSchedule>(lc);
  s.schedule->set_plateau(s.resumed_plateau);

  // The read-ahead starts now, while the rest of start-up runs, and goes on from one epoch
  // into the next by itself.
  s.start_stream();
  s.last_lr = s.lr_at(std::max<int64_t>(0, s.step - 1));  // until the first step
  s.prepare_standardization(!opt.resume.empty());
  // Every rank initialised (or restored) the same values; rank 0's are the truth regardless.
  s.grad_sync->share_initial_state();
  s.check_replicas("after start-up");

  // Fixed prior draws [G*G, L], so the sample grids compare across epochs.
  Rng grid_rng = make_rng(opt.seed, RngStream::Grid);
  std::vector<float> grid_z(static_cast<size_t>(opt.grid_size) * opt.grid_size * opt.latent_dim);
  grid_rng.fill_normal(grid_z.data(), grid_z.size());
  s.grids = std::make_unique<SampleGrids>(std::move(grid_z), opt.grid_size);
  s.eval =
      std::make_unique<Evaluator>(opt, comm, s.ctx, *s.vae, s.train, s.val ? &*s.val : nullptr,
                                  s.test ? &*s.test : nullptr, s.scaling, *s.grids, s.out.string());
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
    if (!cfg)
      throw IoError("cannot write " + (s.out / "config.ini").string() + ": " +
                    std::strerror(errno) + "; choose a writable --out");
    s.report = std::make_unique<RunReport>((s.out / "metrics.csv").string(), !opt.resume.empty(),
                                           opt.progress && isatty(STDOUT_FILENO), opt.epochs,
                                           s.step, s.last_step);
    std::printf(
        "vae_dist: %d rank(s) x %d thread(s); %lld training rows (%lld on rank 0), %lld "
        "steps/epoch of %d x %d; %zu parameters; gradients summed by %s\n",
        comm.size(), threads, static_cast<long long>(s.train.global_rows()),
        static_cast<long long>(s.train.rows()), static_cast<long long>(s.plan->steps_per_epoch()),
        comm.size(), opt.batch_size, s.store.num_parameters(), s.grad_sync->method().c_str());
    std::printf("%s\n", describe_lr(opt, lc, comm.size(), s.lr_at(s.step)).c_str());
    if (s.rollbacks > 0)
      std::printf("after %lld rollback(s) the learning rate is %s times the schedule's\n",
                  static_cast<long long>(s.rollbacks), number_text(s.rollback_lr_scale).c_str());
    if (s.val)
      std::printf("validation: %lld rows (%s), at every epoch end\n",
                  static_cast<long long>(s.val->global_rows()),
                  opt.val_fraction > 0
                      ? ("the last rows " + std::to_string(s.val->selection().begin) + ".." +
                         std::to_string(s.val->selection().end - 1) + " of " + opt.data +
                         ", not trained on")
                            .c_str()
                      : opt.val_data.c_str());
    if (!s.scaling.empty())
      std::printf("standardised %zu features to mean 0, std 1 with the statistics of %s\n",
                  s.scaling.mean.size(),
                  opt.resume.empty() ? "the training set" : "the checkpoint");
    if (!precision_note.empty()) std::printf("%s\n", precision_note.c_str());
    if (opt.resume.empty() && !opt.init_weights.empty())
      std::printf("initial parameters: %s (not --seed's draw)\n", opt.init_weights.c_str());
    std::printf("%s\n", s.data_note.c_str());
    if (const std::string note = grid_note(vc.data); !note.empty())
      std::printf("pictures: %s\n", note.c_str());
    std::printf("model%s (layer, what it is, output shape per sample%s):\n%s",
                vc.classes > 0
                    ? (" conditional on " + std::to_string(vc.classes) + " classes").c_str()
                    : "",
                precision == Precision::F32 ? "" : ", precision", s.vae->summary().c_str());
    std::fflush(stdout);
  }
}

Trainer::~Trainer() = default;

// The parameters of --seed's draw (or --init-weights) and a fresh optimizer and guard.
void Trainer::State::initialise(bool writes_model) {
  Rng init_rng = make_rng(opt.seed, RngStream::Init);
  if (writes_model) {
    vae->init(init_rng);
    if (!opt.init_weights.empty()) read_weights(opt.init_weights, store);
    std::fill(adam->exp_avg().begin(), adam->exp_avg().end(), 0.0f);
    std::fill(adam->exp_avg_sq().begin(), adam->exp_avg_sq().end(), 0.0f);
  }
  adam->set_steps(0);
  step = samples = 0;
  start_epoch = 1;
  start_step_in_epoch = 0;
  resumed_eps_rng.reset();
  resumed_plateau = PlateauState{};
  early.set_state(EarlyStopState{});
  guard->restart();
}

// Streamed data: reading ahead from the start step, up to the epoch of the run's last step
// (nothing is read that no step needs).
void Trainer::State::start_stream() {
  if (!stream) return;
  const int64_t spe = plan->steps_per_epoch();
  const int64_t left = last_step - step;
  const int64_t last_epoch =
      left <= 0
          ? start_epoch - 1
          : std::min<int64_t>(opt.epochs, start_epoch + (start_step_in_epoch + left - 1) / spe);
  stream->start(opt.seed, start_epoch, start_step_in_epoch, last_epoch);
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
  if (target.empty())
    initialise(writes_model);
  else
    resume(target, writes_model);
  rollbacks = done;
  rollback_lr_scale = scale;
  last_checkpoint = target;
  schedule->set_plateau(resumed_plateau);
  last_lr = lr_at(std::max<int64_t>(0, step - 1));
  start_stream();
  grad_sync->share_initial_state();
  check_replicas("after a rollback");
  if (comm.is_root()) {
    std::printf(
        "rollback %lld of %d at step %lld: %s\n  back to %s (step %lld); the learning "
        "rate is now %s times the schedule's (%g at step %lld)\n",
        static_cast<long long>(done), opt.max_rollbacks, static_cast<long long>(from_step),
        failure.c_str(), target.empty() ? "the initial parameters" : target.c_str(),
        static_cast<long long>(step), number_text(scale).c_str(), lr_at(step),
        static_cast<long long>(step + 1));
    std::fflush(stdout);
  }
}

const ParamStore& Trainer::params() const {
  return s_->store;
}

void Trainer::State::resume(const std::string& requested, bool writes_model) {
  // Rank 0 resolves "latest" and decides whether the file may be resumed here, so every rank
  // opens the same file and throws alike.
  std::string path = requested;
  if (comm.is_root() && requested == "latest") path = find_latest_checkpoint(out.string());
  comm.broadcast(path, 0);
  const CheckpointMeta meta =
      writes_model ? read_checkpoint(path, store, adam->exp_avg(), adam->exp_avg_sq())
                   : read_checkpoint_meta(path);
  std::string refusal;
  if (comm.is_root()) refusal = resume_refusal(meta, path, opt, checkpoint_steps(out.string()));
  comm.broadcast(refusal, 0);
  if (!refusal.empty()) throw ConfigError(refusal);
  adam->set_steps(meta.adam_steps);
  guard->set_state(meta.guard);
  rollbacks = meta.rollbacks;
  rollback_lr_scale = meta.rollback_lr_scale;
  scaling = meta.scaling;
  step = meta.step;
  samples = meta.samples;
  resumed_plateau = meta.plateau;
  early.set_state(meta.early);
  const ResumePoint at = resume_point(meta, path, *plan, comm.size(), opt.batch_size);
  start_epoch = at.start_epoch;
  start_step_in_epoch = at.start_step_in_epoch;
  resumed_writer_steps = at.writer_steps_per_epoch;
  resumed_eps_rng.reset();
  resumed_epoch_sums = ReportSums{};
  if (at.mid_epoch) {
    Rng rng;
    rng.set_state(meta.rng_states.at(static_cast<size_t>(comm.rank())));
    resumed_eps_rng = rng;
    resumed_epoch_sums.loss = meta.epoch_loss_sum;
    resumed_epoch_sums.count = meta.epoch_loss_count;
  }
  if (comm.is_root()) {
    if (!at.note.empty()) std::printf("%s\n", at.note.c_str());
    std::printf("resumed from %s: epoch %lld, step %lld, %lld samples seen\n", path.c_str(),
                static_cast<long long>(meta.cursor.epoch), static_cast<long long>(meta.step),
                static_cast<long long>(meta.samples));
    std::fflush(stdout);
  }
}

// --standardize: the statistics of the training set over every rank (or, on resume, the ones
// the model was trained with, so the data are the same bits), applied to the shards in place.
void Trainer::State::prepare_standardization(bool resumed) {
  if (!opt.standardize) {
    if (!scaling.empty())
      throw ConfigError(
          "the checkpoint was written by a run with --standardize, so the model "
          "expects standardised data; add --standardize (the statistics come "
          "from the checkpoint)");
    return;
  }
  if (resumed && scaling.empty())
    throw ConfigError(
        "--standardize: the checkpoint was written by a run without it, so the "
        "model was trained on the data as they are; drop --standardize to resume");
  if (!resumed)
    scaling = feature_scaling(train, [&](std::span<double> v) { comm.allreduce_sum(v); });
  standardize(train, scaling);
  if (val) standardize(*val, scaling);
  if (test) standardize(*test, scaling);
}

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
  const Shape& data = vae->config().data;
  meta.data_shape = data.dims();
  meta.classes = vae->config().classes;
  meta.scaling = scaling;
  meta.plateau = schedule->plateau();
  meta.early = early.state();
  meta.epoch_loss_sum = epoch_sums.loss;
  meta.epoch_loss_count = epoch_sums.count;
  meta.guard = guard->state();
  meta.rollbacks = rollbacks;
  meta.rollback_lr_scale = rollback_lr_scale;
  if (best) {
    const std::string path = (out / kBestCheckpointFile).string();
    write_checkpoint(path, meta, store, adam->exp_avg(), adam->exp_avg_sq());
    return;
  }
  const std::string path = (out / checkpoint_file_name(step)).string();
  write_checkpoint(path, meta, store, adam->exp_avg(), adam->exp_avg_sq());
  prune_checkpoints(out.string(), checkpoints.keep);
  last_checkpoint = path;
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
  failure = what;
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
  summary.val_loss = summary.best_val_loss = std::numeric_limits<double>::quiet_NaN();
  const auto t_run = Clock::now();
  double train_seconds = 0;
  int64_t train_samples = 0;
  const int64_t last_step = s.last_step;
  bool stop = s.step >= last_step;
  // A run resumed from a checkpoint whose run had already stopped early would otherwise train
  // one more epoch before the next evaluation stops it again. The state is the same on every
  // rank (read from the same file).
  if (s.val && s.early.patience() > 0 && s.early.state().bad_evaluations >= s.early.patience()) {
    stop = true;
    summary.early_stopped = true;
    if (comm.is_root()) {
      std::printf(
          "early stop: the resumed run had stopped early (the validation loss has not improved "
          "for %lld evaluation(s); best %.4f at step %lld); to train on, raise "
          "--early-stop-patience or set it to 0\n",
          static_cast<long long>(s.early.state().bad_evaluations), s.early.state().best,
          static_cast<long long>(s.early.state().best_step));
      std::fflush(stdout);
    }
  }

  // A divergence under --on-divergence rollback goes back to a healthy state and trains on
  // from there; otherwise (or with no rollback left) it ends the run.
  for (;;) {
    try {
      for (int64_t epoch = s.start_epoch; epoch <= opt.epochs && !stop; ++epoch) {
        // Plan: this epoch's shuffle and noise stream (or the resumed ones, mid-epoch).
        plan.shuffle(opt.seed, epoch);
        const int64_t first = epoch == s.start_epoch ? s.start_step_in_epoch : 0;
        Rng eps_rng = plan.eps_rng(opt.seed, epoch);
        if (epoch == s.start_epoch && s.resumed_eps_rng) eps_rng = *s.resumed_eps_rng;

        LossSums interval;
        // The epoch's reported training loss; a mid-epoch resume starts from the stored part.
        ReportSums epoch_sums =
            epoch == s.start_epoch && s.resumed_eps_rng ? s.resumed_epoch_sums : ReportSums{};
        double interval_seconds = 0;
        int64_t st = first;
        for (; st < steps_per_epoch && !stop; ++st) {
          // Batch, step, sync.
          const auto t0 = Clock::now();
          const int64_t samples_before = s.samples;
          // A stop signal on any rank stops every rank after the same step.
          int signal = poll_stop_signal();
          interval += s.step_once(epoch, st, eps_rng, buf, signal);
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
            if (s.report)
              s.report->train(epoch, s.step, s.samples, sum, s.last_lr, interval_seconds);
            interval = LossSums{};
            interval_seconds = 0;
          }
        }
        summary.epochs = static_cast<int>(epoch);
        summary.train_loss =
            epoch_sums.loss / std::max<double>(1.0, static_cast<double>(epoch_sums.count));
        if (s.report) s.report->end_of_epoch();
        // A signal mid-epoch: checkpoint and stop now. A signal on the epoch's last step lets the
        // epoch's end (validation, schedules, best.h5, the checkpoint) run first, since the
        // resumed run starts with the next epoch and would never count this one.
        if (summary.signal != 0 && st < steps_per_epoch) {
          s.save_checkpoint(epoch, st, eps_rng, epoch_sums);
          break;
        }

        // Validation first, then the test rows.
        if (s.val) {
          const ReportSums val = s.eval->validate(epoch);
          const double n = static_cast<double>(val.count);
          summary.val_loss = val.loss / n;
          summary.val_recon = val.recon / n;
          summary.val_kl = val.kl / n;
          if (s.report) s.report->validation(epoch, s.step, s.samples, val, s.last_lr);
        }
        const ReportSums test = s.eval->test(epoch);
        s.eval->write_grids(epoch);
        if (test.count > 0) {
          const double n = static_cast<double>(test.count);
          summary.test_loss = test.loss / n;
          summary.test_recon = test.recon / n;
          summary.test_kl = test.kl / n;
          if (s.report) s.report->test(epoch, s.step, s.samples, test, s.last_lr);
        }
        // The schedules see complete epochs only: an epoch cut short by --max-steps is finished by
        // the resumed run, which must not count it twice.
        if (st == steps_per_epoch) {
          // Rank 0's values decide, so every rank takes the same branches (an allreduce need not
          // round alike on every rank).
          double seen[2] = {s.val            ? summary.val_loss
                            : test.count > 0 ? summary.test_loss
                                             : summary.train_loss,
                            summary.val_loss};
          comm.broadcast(std::span<double>(seen, 2), 0);
          const double monitored = seen[0];
          summary.val_loss = seen[1];
          if (s.schedule->observe(monitored) && comm.is_root()) {
            std::printf("epoch %lld: no improvement for %lld evaluation(s); learning rate now %g\n",
                        static_cast<long long>(epoch),
                        static_cast<long long>(s.schedule->config().patience + 1), s.lr_at(s.step));
            std::fflush(stdout);
          }
          if (s.val) {
            const EarlyStopping::Verdict v = s.early.observe(summary.val_loss, s.step);
            if (v.improved) s.save_checkpoint(epoch, st, eps_rng, epoch_sums, true);
            if (v.stop) {
              stop = true;
              summary.early_stopped = true;
              if (comm.is_root()) {
                std::printf(
                    "early stop after epoch %lld: the validation loss has not improved for %lld "
                    "evaluation(s); best %.4f at step %lld\n",
                    static_cast<long long>(epoch), static_cast<long long>(s.early.patience()),
                    s.early.state().best, static_cast<long long>(s.early.state().best_step));
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
        if (s.checkpoints.due_after_epoch(epoch, stop || epoch == opt.epochs))
          s.save_checkpoint(epoch, st, eps_rng, epoch_sums);
      }
      break;
    } catch (const DivergenceError& e) {
      if (!s.collective_divergence || s.opt.on_divergence != DivergenceAction::Rollback) throw;
      if (!s.may_roll_back())
        throw DivergenceError(std::string(e.what()) + " (after " + std::to_string(s.rollbacks) +
                              " rollback(s): --max-rollbacks " + std::to_string(opt.max_rollbacks) +
                              " reached)");
      s.roll_back();
      stop = s.step >= last_step;
    }
  }

  if (summary.signal == 0) {
    int late = 0;
    summary.iw_nll = s.eval->iw_nll(&late);
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
    if (s.report && std::isfinite(summary.iw_nll))
      s.report->importance_weighted(summary.epochs, s.step, s.samples, opt.iw_samples,
                                    summary.iw_nll, s.last_lr);
  }
  if (const std::string line = s.guard->summary_line(); !line.empty() && comm.is_root()) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  s.check_replicas("at the end of training");
  summary.steps = s.step;
  summary.samples = s.samples;
  summary.seconds = seconds_since(t_run);
  summary.train_images_per_s = static_cast<double>(train_samples) / std::max(1e-9, train_seconds);
  summary.last_checkpoint = s.last_checkpoint;
  comm.broadcast(summary.last_checkpoint, 0);
  {
    // Every rank's figures in its own slot: the sum is the list, its maximum the answer.
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::vector<double> v(2 * static_cast<size_t>(comm.size()), 0.0);
    v[2 * static_cast<size_t>(comm.rank())] = static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB
    v[2 * static_cast<size_t>(comm.rank()) + 1] = s.stream ? s.stream->wait_seconds() : 0.0;
    comm.allreduce_sum(v);
    for (size_t r = 0; r < v.size(); r += 2) {
      summary.peak_rss_mb = std::max(summary.peak_rss_mb, v[r]);
      summary.data_wait_seconds = std::max(summary.data_wait_seconds, v[r + 1]);
    }
  }
  if (s.val && s.early.state().best_step >= 0) {
    summary.best_val_loss = s.early.state().best;
    summary.best_val_step = s.early.state().best_step;
    // Written by this run, or by the run it resumed in the same directory.
    std::error_code ec;
    if (comm.is_root() && std::filesystem::exists(s.out / kBestCheckpointFile, ec))
      summary.best_checkpoint = (s.out / kBestCheckpointFile).string();
    comm.broadcast(summary.best_checkpoint, 0);
  }
  return summary;
}

}  // namespace vd
