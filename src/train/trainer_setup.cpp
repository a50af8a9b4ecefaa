// The Trainer's start-up: the data, the model, the optimizer and the gradient sum; a fresh
// initialisation or a resume from a checkpoint; the start-up lines rank 0 prints.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
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
#include "optim/ema.hpp"
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
#include "train/trainer_state.hpp"
#include "vae/latent.hpp"
#include "vae/models.hpp"
#include "vae/sample_grids.hpp"

namespace vd {

Trainer::Trainer(const Options& options, const Comm& comm)
    : s_(std::make_unique<State>(options, comm)) {
  State& s = *s_;
  const Options& opt = options;
  check_option_combinations(opt);  // every rank throws the same error, before any collective
  const int threads = resolve_threads(opt.threads, comm);
  omp_set_num_threads(threads);
  // Before the data are read: --precision bf16 on a CPU without bf16 fails at once.
  std::string precision_note;
  const Precision precision =
      resolve_precision(precision_choice_name(opt.precision), &precision_note);

  const Likelihood likelihood = model_likelihood(opt.likelihood);
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

  ModelConfig vc =
      model_config(opt, s.train, s.test ? &*s.test : nullptr, comm, s.val ? &*s.val : nullptr);
  vc.precision = precision;
  s.model = make_model(vc, s.store);
  // Before the parameters, batches and grids are allocated: a size too large is refused here.
  check_run_memory(opt, *s.model, s.store, s.val ? &*s.val : nullptr, s.test ? &*s.test : nullptr,
                   comm);
  s.store.finalize();
  AdamConfig ac;
  ac.lr = opt.lr;
  ac.beta1 = opt.adam_beta1;
  ac.beta2 = opt.adam_beta2;
  ac.eps = opt.adam_eps;
  ac.weight_decay = opt.weight_decay;
  s.adam = std::make_unique<Adam>(s.store.size(), ac);
  if (opt.ema_decay > 0)
    s.ema = std::make_unique<Ema>(s.store.size(), opt.ema_decay, opt.ema_warmup);
  s.grad_sync = std::make_unique<GradientSync>(comm, s.store, *s.adam, s.ema.get());
  s.grad_sync->set_grad_clip(opt.grad_clip);
  s.guard = std::make_unique<StepGuard>(opt, comm.size(), comm.is_root());
  s.guard->arm(*s.grad_sync);
  if (comm.size() > 1) {
    // For a model whose step needs the global batch (free bits: the KL per dimension;
    // beta-TCVAE: every sample's mu and logvar); unused otherwise.
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
  lc.kind = opt.lr_schedule;
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
      std::make_unique<Evaluator>(opt, comm, s.ctx, *s.model, s.train, s.val ? &*s.val : nullptr,
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
                                           s.step, s.last_step, s.model->term_names());
    if (opt.eval_weights == Weights::Ema) s.report->set_weights_note("ema weights");
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
    if (s.ema)
      std::printf(
          "moving average of the weights: decay %s%s, %lld update(s) so far; evaluations, "
          "grids and best.h5 use the %s weights\n",
          number_text(opt.ema_decay).c_str(), opt.ema_warmup ? " with warm-up" : "",
          static_cast<long long>(s.ema->updates()), weights_name(opt.eval_weights));
    if (opt.resume.empty() && !opt.init_weights.empty())
      std::printf("initial parameters: %s (not --seed's draw)\n", opt.init_weights.c_str());
    std::printf("%s\n", s.data_note.c_str());
    if (const std::string note = grid_note(vc.data); !note.empty())
      std::printf("pictures: %s\n", note.c_str());
    std::printf("model%s (layer, what it is, output shape per sample%s):\n%s",
                vc.classes > 0
                    ? (" conditional on " + std::to_string(vc.classes) + " classes").c_str()
                    : "",
                precision == Precision::F32 ? "" : ", precision", s.model->summary().c_str());
    std::fflush(stdout);
  }
}

Trainer::~Trainer() = default;

// The parameters of --seed's draw (or --init-weights) and a fresh optimizer and guard.
void Trainer::State::initialise(bool writes_model) {
  Rng init_rng = make_rng(opt.seed, RngStream::Init);
  if (writes_model) {
    model->init(init_rng);
    if (!opt.init_weights.empty()) read_weights(opt.init_weights, store);
    std::fill(adam->exp_avg().begin(), adam->exp_avg().end(), 0.0f);
    std::fill(adam->exp_avg_sq().begin(), adam->exp_avg_sq().end(), 0.0f);
    if (ema) ema->reset(store.params());
  }
  if (ema) ema->set_updates(0);
  adam->set_steps(0);
  step = samples = 0;
  start_epoch = 1;
  start_step_in_epoch = 0;
  resumed_eps_rng.reset();
  resumed_plateau = PlateauState{};
  early.set_state(EarlyStopState{});
  guard->restart();
  skipped_steps.clear();
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

void Trainer::State::resume(const std::string& requested, bool writes_model) {
  // Rank 0 resolves "latest" and decides whether the file may be resumed here, so every rank
  // opens the same file and throws alike.
  std::string path = requested;
  if (comm.is_root() && requested == "latest") path = find_latest_checkpoint(out.string());
  comm.broadcast(path, 0);
  // Refused before the parameters are read: a checkpoint of another model family would
  // otherwise fail as a list of mismatched tensors.
  std::string refusal;
  if (comm.is_root())
    refusal = resume_refusal(read_checkpoint_meta(path), path, opt, checkpoint_steps(out.string()));
  comm.broadcast(refusal, 0);
  if (!refusal.empty()) throw ConfigError(refusal);
  const CheckpointMeta meta =
      writes_model ? read_checkpoint(path, store, adam->exp_avg(), adam->exp_avg_sq(),
                                     ema ? ema->values() : std::span<float>())
                   : read_checkpoint_meta(path);
  adam->set_steps(meta.adam_steps);
  // The moving average goes on from the file's, or starts from the resumed weights.
  std::string ema_note;
  if (ema && meta.ema_decay > 0) {
    ema->set_updates(meta.ema_updates);
    if (meta.ema_decay != opt.ema_decay || meta.ema_warmup != opt.ema_warmup)
      ema_note = "the moving average goes on with decay " + number_text(opt.ema_decay) +
                 (opt.ema_warmup ? " and warm-up" : " without warm-up") +
                 " (the checkpoint's run used " + number_text(meta.ema_decay) +
                 (meta.ema_warmup ? " and warm-up)" : " without warm-up)");
  } else if (ema) {
    if (writes_model) ema->reset(store.params());
    ema->set_updates(0);
    ema_note = "the checkpoint holds no moving average: it starts from the resumed weights";
  } else if (meta.ema_decay > 0) {
    ema_note =
        "the checkpoint's moving average of the weights is not continued (no --ema-decay), and "
        "this run's checkpoints hold none";
  }
  guard->set_state(meta.guard);
  rollbacks = meta.rollbacks;
  rollback_lr_scale = meta.rollback_lr_scale;
  skipped_steps = meta.skipped_steps;
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
    if (!ema_note.empty()) std::printf("%s\n", ema_note.c_str());
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

}  // namespace vd
