// Trainer::State: what a training run holds (data, model, optimizer, schedules, guard, where
// the loop is), shared by the Trainer's files: trainer.cpp (the loop), trainer_setup.cpp
// (start-up, initialisation and resume) and trainer_recovery.cpp (checkpoints, divergence and
// rollback). Internal to src/train.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "core/rng.hpp"
#include "data/epoch_plan.hpp"
#include "data/feature_scaling.hpp"
#include "data/row_stream.hpp"
#include "data/shard.hpp"
#include "io/checkpoint.hpp"
#include "io/run_report.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "optim/adam.hpp"
#include "optim/early_stopping.hpp"
#include "optim/ema.hpp"
#include "optim/lr_schedule.hpp"
#include "parallel/batch_reducer.hpp"
#include "parallel/comm.hpp"
#include "parallel/grad_sync.hpp"
#include "train/evaluation.hpp"
#include "train/kl_schedule.hpp"
#include "train/resume.hpp"
#include "train/step_guard.hpp"
#include "train/trainer.hpp"
#include "vae/latent_model.hpp"
#include "vae/loss.hpp"
#include "vae/sample_grids.hpp"

namespace vd {

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
  std::unique_ptr<LatentModel> model;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<Ema> ema;  // --ema-decay: the moving average of the weights
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
  // --rollback-skip-steps: the steps whose batches the run passes over (the same everywhere).
  StepRanges skipped_steps;

  State(const Options& o, const Comm& c) : opt(o), comm(c) {}

  double lr_at(int64_t global_step) const { return schedule->lr(global_step) * rollback_lr_scale; }
  // The DivergenceError in flight was thrown on every rank at the same step (not one rank's
  // write refusing a model): what failed first, and why in a line.
  bool collective_divergence = false;
  int64_t failed_step = 0;
  int64_t failed_last_step = 0;  // the NaN's step, or the last skipped update of the streak
  std::string failure;
  void initialise(bool writes_model);
  void start_stream();
  bool may_roll_back() const {
    return collective_divergence && opt.on_divergence == DivergenceAction::Rollback &&
           rollbacks < opt.max_rollbacks;
  }
  void roll_back();

  float beta_at(int64_t global_step) const { return kl.at(global_step); }
  void check_replicas(const char* when) const {
    vd::check_replicas(comm, store.params(), when);
    if (ema) vd::check_replicas(comm, ema->values(), when);
  }
  // Runs f with the weights --eval-weights names in the model (every rank alike, nothing
  // copied): the evaluations, the grids and the importance-weighted estimate.
  template <class F>
  auto with_eval_weights(F&& f) {
    if (opt.eval_weights != Weights::Ema) return f();
    struct Back {
      ParamStore& store;
      float* before;
      ~Back() { store.point_params_at(before); }
    } back{store, store.point_params_at(ema->values().data())};
    return f();
  }
  void resume(const std::string& requested, bool writes_model);
  void prepare_standardization(bool resumed);
  void save_checkpoint(int64_t epoch, int64_t step_in_epoch, const Rng& eps_rng,
                       const ReportSums& epoch_sums, bool best = false);
  LossSums step_once(int64_t epoch, int64_t st, Rng& eps_rng, StepBuffers& buf, int& signal);
  void pass_over(int64_t epoch, int64_t st, Rng& eps_rng, StepBuffers& buf);
  [[noreturn]] void diverged(const std::string& mine);
  [[noreturn]] void spike_diverged();
  std::string newest_checkpoint() const;

  // The loop's pieces (trainer.cpp): the stop of a run resumed after its early stop; one
  // epoch's steps; the epoch's end (evaluations, schedules, best.h5, late signals, the
  // checkpoint); the run's end (the importance-weighted estimate, the summary's figures).
  bool resumed_after_early_stop();
  struct EpochRun {
    int64_t steps_done = 0;  // the epoch's step index the loop stopped at
    ReportSums sums;         // the epoch's reported training loss
    double train_seconds = 0;
    int64_t train_samples = 0;
  };
  EpochRun train_epoch(int64_t epoch, Rng& eps_rng, StepBuffers& buf, TrainSummary& summary,
                       bool& stop);
  void end_epoch(int64_t epoch, const EpochRun& done, const Rng& eps_rng, TrainSummary& summary,
                 bool& stop);
  void finish(TrainSummary& summary);
};

}  // namespace vd
