// MPI tests of the Trainer (2 and 3 ranks): P ranks equal one process that trains on the union
// of their batches (also with free bits, and streamed data's block-shuffled batches), resume is
// bitwise identical to an uninterrupted run at the same world size (for the MLP, a conditional
// conv model and streamed data, and in the middle of a learning-rate warm-up or a plateau wait), a
// checkpoint of P ranks resumes on one rank, and validation on P ranks equals validation of the
// same model in one process.
#include "train/trainer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "data/epoch_plan.hpp"
#include "data/shard.hpp"
#include "io/checkpoint.hpp"
#include "nn/context.hpp"
#include "optim/adam.hpp"
#include "optim/ema.hpp"
#include "support/small_run.hpp"
#include "support/temp_dir.hpp"
#include "train/data_residency.hpp"
#include "train/stop_signals.hpp"
#include "vae/latent.hpp"
#include "vae/model.hpp"

namespace {

using vd::testing::small_options;
using vd::testing::train;

// A synthetic data set on rank 0's temporary directory, visible to every rank of this node:
// 61 images of 4 x 4, or with `rows` images of 32 x 32 (1 KB, chunks of 1024 rows).
struct SharedData {
  std::unique_ptr<vd::testing::TempDir> dir;  // rank 0 only
  std::string root, file;
  const vd::Comm& comm;
  explicit SharedData(const vd::Comm& c, int64_t rows = 0) : comm(c) {
    if (comm.is_root()) {
      dir = std::make_unique<vd::testing::TempDir>();
      root = dir->path().string();
      file = dir->file("synth.h5");
      if (rows > 0)
        vd::write_synthetic(file, rows, 1, 32, 32, 3, vd::SynthDType::UInt8, 4);
      else
        vd::write_synthetic(file, 61, 1, 4, 4, 3, vd::SynthDType::UInt8, 4);
    }
    comm.broadcast(root, 0);
    comm.broadcast(file, 0);
  }
  // Rank 0 deletes the directory only after every rank is done with it.
  ~SharedData() { comm.barrier(); }
};

// The same run with a conditional convolutional model on the 1 x 4 x 4 images.
constexpr const char* kConvEncoder = "conv 4 k3 s1 p1, relu, conv 8 k2 s2, relu, fc 8, relu";
constexpr const char* kConvDecoder =
    "fc 8, relu, fc 32, relu, reshape 8x2x2, convt 4 k2 s2, relu, conv 1 k3 s1 p1";
vd::Options conv_options(const std::string& data, const std::string& out) {
  vd::Options o = small_options(data, out);
  o.encoder = kConvEncoder;
  o.decoder = kConvDecoder;
  o.conditional = true;
  return o;
}

// A model of the layers beyond a chain on the same images: a residual block, attention, GroupNorm,
// SiLU/GELU, up-sampling and a spatial latent of 1x2x2.
constexpr const char* kBlocksEncoder = "conv 4 k3 s1 p1, res 4 g2, attn g2, conv 4 k2 s2, silu";
constexpr const char* kBlocksDecoder =
    "conv 4 k3 p1, res(gn 2, gelu, conv 4 k3 p1), up 2, conv 1 k3 p1";
constexpr const char* kBlocksLatent = "1x2x2";
vd::Options blocks_options(const std::string& data, const std::string& out) {
  vd::Options o = small_options(data, out);
  o.encoder = kBlocksEncoder;
  o.decoder = kBlocksDecoder;
  o.latent_shape = kBlocksLatent;
  o.latent_dim = 4;
  return o;
}

enum class Model { Mlp, ConditionalConv, Blocks };

// Sets VAE_DIST_GRAD_SYNC for the lifetime of a test ("allreduce" forces MPI_Allreduce; unset
// lets ranks on one node share memory).
struct GradSyncMethod {
  explicit GradSyncMethod(const char* method) {
    if (method) setenv("VAE_DIST_GRAD_SYNC", method, 1);
  }
  ~GradSyncMethod() { unsetenv("VAE_DIST_GRAD_SYNC"); }
};

// Streamed: every rank holds 7300 images of 1 KB, 8 blocks of 1024 rows in two windows of
// 4 (--stream-window-mb 1, raised to the 6 blocks a batch of 512 needs), 15 steps an epoch.
constexpr int64_t kStreamRowsPerRank = 7300;
vd::Options streamed_options(const std::string& data, const std::string& out) {
  vd::Options o = small_options(data, out);
  o.stream = vd::StreamMode::Always;
  o.stream_window_mb = 1;
  o.batch_size = 512;
  return o;
}

void check_ranks_equal_union(const char* method, Model model, double free_bits = 0,
                             bool streamed = false, double ema_decay = 0, int train_iw = 1) {
  const bool conv = model == Model::ConditionalConv;
  GradSyncMethod scope(method);
  vd::Comm comm;
  const int P = comm.size();
  SharedData data(comm, streamed ? kStreamRowsPerRank * P : 0);
  vd::Options o = conv                     ? conv_options(data.file, data.root + "/union")
                  : model == Model::Blocks ? blocks_options(data.file, data.root + "/union")
                  : streamed               ? streamed_options(data.file, data.root + "/union")
                                           : small_options(data.file, data.root + "/union");
  // Crosses epoch boundaries for any P up to 4 (8, 6, 4 steps per epoch; streamed 15, and a
  // window boundary at step 7 or 8); enough epochs that max_steps, not epochs, ends the run.
  o.max_steps = streamed ? 20 : 13;
  o.epochs = 10;
  o.free_bits = free_bits;
  o.ema_decay = ema_decay;
  o.train_iw_samples = train_iw;
  if (train_iw > 1) o.model = "iwae";
  std::vector<float> got_average;
  const std::vector<float> got = train(o, comm, &got_average);

  // The reference: one model, fed each step the concatenation of every rank's batch and
  // noise, drawn from the same plans and streams the ranks use.
  const vd::Shard all = vd::Shard::read(data.file, "/images", 0, 1, vd::ValueCheck::UnitInterval);
  const auto D = static_cast<size_t>(all.sample_size());
  vd::ModelConfig cfg = vd::ModelConfig::mlp(static_cast<int>(D), o.hidden, o.latent_dim);
  if (conv) {
    cfg.data = vd::Shape{1, 4, 4};
    cfg.encoder = kConvEncoder;
    cfg.decoder = kConvDecoder;
    cfg.classes = 4;  // write_synthetic's 4 classes: the trainer takes max label + 1
  }
  if (model == Model::Blocks) {
    cfg.data = vd::Shape{1, 4, 4};
    cfg.encoder = kBlocksEncoder;
    cfg.decoder = kBlocksDecoder;
    cfg.latent = vd::Shape{1, 2, 2};
    cfg.latent_dim = 4;
  }
  cfg.free_bits = free_bits;
  cfg.iw_train_samples = train_iw;
  vd::ParamStore store;
  vd::Vae vae(cfg, store);
  store.finalize();
  vd::Rng init = vd::make_rng(o.seed, vd::RngStream::Init);
  vae.init(init);
  vd::AdamConfig ac;
  ac.lr = o.lr;
  vd::Adam adam(store.size(), ac);
  std::optional<vd::Ema> ema;
  if (ema_decay > 0) {
    ema.emplace(store.size(), ema_decay, o.ema_warmup);
    ema->reset(store.params());
  }
  vd::Context ctx;
  // Streamed ranks shuffle by blocks within windows; the reference plans do the same.
  std::optional<vd::BlockShuffle> blocks;
  if (streamed) blocks = vd::block_shuffle_for(all, o);
  std::vector<vd::EpochPlan> plans;
  for (int r = 0; r < P; ++r) plans.emplace_back(all.global_rows(), r, P, o.batch_size, blocks);
  const int L = o.latent_dim;
  int64_t step = 0;
  for (int64_t epoch = 1; step < o.max_steps; ++epoch) {
    std::vector<vd::Rng> eps_rngs;
    for (auto& p : plans) {
      p.shuffle(o.seed, epoch);
      eps_rngs.push_back(p.eps_rng(o.seed, epoch));
      if (streamed) {
        ASSERT_EQ(p.windows().size(), 2u);
      }
    }
    for (int64_t st = 0; st < plans[0].steps_per_epoch() && step < o.max_steps; ++st, ++step) {
      std::vector<int64_t> rows;
      std::vector<float> eps;
      for (int r = 0; r < P; ++r) {
        const auto local = plans[static_cast<size_t>(r)].local_rows(st);
        for (int64_t i : local) rows.push_back(plans[static_cast<size_t>(r)].shard().begin + i);
        std::vector<float> e(local.size() * static_cast<size_t>(L * train_iw));
        eps_rngs[static_cast<size_t>(r)].fill_normal(e.data(), e.size());
        eps.insert(eps.end(), e.begin(), e.end());
      }
      const int n = static_cast<int>(rows.size());
      ASSERT_EQ(n, plans[0].global_count(st));
      std::vector<float> x(rows.size() * D);
      all.gather(rows, x.data());
      std::vector<int32_t> labels;
      for (int64_t r : rows) labels.push_back(all.labels()[static_cast<size_t>(r)]);
      vae.train_step(ctx, vd::Batch{n, x.data(), labels.data(), eps.data()}, 1.0f,
                     1.0f / static_cast<float>(n));
      adam.step(store.params(), store.grads(), o.lr);
      if (ema) {
        ema->begin_update();
        ema->apply(store.params(), 0, store.size());
      }
    }
  }
  const auto want = store.params();
  const auto compare = [&](const std::vector<float>& got_values, std::span<const float> want_values,
                           const char* what) {
    ASSERT_EQ(got_values.size(), want_values.size()) << what;
    size_t bad = 0;
    double worst = 0;
    for (const auto& e : store.entries()) {
      // An attention's key bias has a zero gradient in exact arithmetic (the softmax ignores
      // q . b_k), so Adam turns its rounding noise, which depends on how the batch is split,
      // into steps of lr: it is not compared.
      if (e.name.ends_with(".to_k.bias")) continue;
      for (size_t i = e.offset; i < e.offset + e.size; ++i) {
        const double diff = std::abs(double(got_values[i]) - want_values[i]);
        worst = std::max(worst, diff);
        if (diff > 1e-5 * std::abs(want_values[i]) + 1e-6 && bad++ < 5)
          ADD_FAILURE() << what << " " << e.name << "[" << i - e.offset << "]: " << P << " ranks "
                        << got_values[i] << ", union " << want_values[i];
      }
    }
    EXPECT_EQ(bad, 0u) << what << ": largest difference " << worst;
  };
  compare(got, want, "parameters");
  if (ema) {
    compare(got_average, ema->values(), "moving average");
    // The average lags the weights: it is not a copy of them.
    EXPECT_NE(got_average, got);
  } else {
    EXPECT_TRUE(got_average.empty());
  }
  // The training really moved the parameters.
  vd::ParamStore fresh;
  vd::Vae untrained(cfg, fresh);
  fresh.finalize();
  vd::Rng init2 = vd::make_rng(o.seed, vd::RngStream::Init);
  untrained.init(init2);
  double moved = 0;
  for (size_t i = 0; i < want.size(); ++i) moved += std::abs(fresh.params()[i] - want[i]);
  EXPECT_GT(moved, 1e-2);
}

TEST(Trainer, RanksSharingMemoryEqualOneProcessTrainingOnTheUnionOfTheirBatches) {
  check_ranks_equal_union(nullptr, Model::Mlp);
}

TEST(Trainer, RanksUsingAllreduceEqualOneProcessTrainingOnTheUnionOfTheirBatches) {
  check_ranks_equal_union("allreduce", Model::Mlp);
}

TEST(Trainer, ConditionalConvRanksEqualOneProcessTrainingOnTheUnionOfTheirBatches) {
  check_ranks_equal_union(nullptr, Model::ConditionalConv);
}

TEST(Trainer, BlocksAndSpatialLatentRanksEqualOneProcessTrainingOnTheUnionOfTheirBatches) {
  check_ranks_equal_union(nullptr, Model::Blocks);
}

TEST(Trainer, FreeBitsRanksEqualOneProcessTrainingOnTheUnionOfTheirBatches) {
  // A floor among the dimensions' batch-mean KLs of these first steps (about 0.01 to 0.06
  // nats): some are under it, some above.
  check_ranks_equal_union(nullptr, Model::Mlp, 0.015);
}

TEST(Trainer, StreamedRanksEqualOneProcessTrainingOnTheUnionOfTheirBlockShuffledBatches) {
  check_ranks_equal_union(nullptr, Model::Mlp, 0, true);
}

// --train-iw-samples 3: P ranks training on the importance-weighted bound equal one process on
// the union of their batches (each rank's k noise draws per row come from its own stream).
TEST(Trainer, ImportanceWeightedTrainingRanksEqualOneProcessOnTheUnionOfTheirBatches) {
  check_ranks_equal_union(nullptr, Model::Mlp, 0, false, 0, 3);
  check_ranks_equal_union(nullptr, Model::ConditionalConv, 0, false, 0, 2);
}

// --ema-decay: the moving average of P ranks (each averaging its slice of the shared copy, or
// all of it on every rank under allreduce) equals vd::Ema following the one-process run.
TEST(Trainer, MovingAverageOfRanksEqualsTheOneProcessAverage) {
  check_ranks_equal_union(nullptr, Model::Mlp, 0, false, 0.9);
  check_ranks_equal_union("allreduce", Model::Mlp, 0, false, 0.9);
}

void check_resume_is_bitwise(Model model, bool streamed = false);

TEST(Trainer, ResumeIsBitwiseIdenticalToAnUninterruptedRun) {
  for (const char* method : {static_cast<const char*>(nullptr), "allreduce"}) {
    SCOPED_TRACE(method ? method : "shared memory");
    GradSyncMethod scope(method);
    check_resume_is_bitwise(Model::Mlp);
  }
}

TEST(Trainer, ConditionalConvResumeIsBitwiseIdenticalToAnUninterruptedRun) {
  check_resume_is_bitwise(Model::ConditionalConv);
}

TEST(Trainer, BlocksAndSpatialLatentResumeIsBitwiseIdenticalToAnUninterruptedRun) {
  check_resume_is_bitwise(Model::Blocks);
}

TEST(Trainer, StreamedResumeIsBitwiseIdenticalToAnUninterruptedRun) {
  check_resume_is_bitwise(Model::Mlp, true);
}

void check_resume_is_bitwise(Model model, bool streamed) {
  vd::Comm comm;
  SharedData data(comm, streamed ? kStreamRowsPerRank * comm.size() : 0);
  const auto options = model == Model::ConditionalConv ? conv_options
                       : model == Model::Blocks        ? blocks_options
                       : streamed                      ? streamed_options
                                                       : small_options;
  const int64_t end = streamed ? 20 : 17;
  vd::Options whole = options(data.file, data.root + "/whole");
  whole.max_steps = end;
  // The MLP keeps a moving average of its weights, which must resume bitwise too.
  if (model == Model::Mlp && !streamed) whole.ema_decay = 0.95;
  std::vector<float> whole_average;
  const std::vector<float> uninterrupted = train(whole, comm, &whole_average);

  // Stop mid-epoch at step 5 and at an epoch end, then continue to 17. Streamed: in the first
  // window, in the second (the read-ahead restarts mid-window) and at the epoch's end.
  const std::vector<int64_t> stops =
      streamed ? std::vector<int64_t>{5, 10, 15} : std::vector<int64_t>{5, 8};
  for (int64_t stop : stops) {
    vd::Options first = options(data.file, data.root + "/split" + std::to_string(stop));
    first.max_steps = stop;
    first.ema_decay = whole.ema_decay;
    train(first, comm);
    vd::Options second = first;
    second.max_steps = end;
    second.resume = "latest";
    std::vector<float> resumed_average;
    const std::vector<float> resumed = train(second, comm, &resumed_average);
    ASSERT_EQ(resumed.size(), uninterrupted.size());
    size_t differing = 0;
    for (size_t i = 0; i < resumed.size(); ++i) differing += resumed[i] != uninterrupted[i];
    EXPECT_EQ(differing, 0u) << "resume after step " << stop << " changed " << differing
                             << " parameters";
    ASSERT_EQ(resumed_average.size(), whole_average.size());
    differing = 0;
    for (size_t i = 0; i < resumed_average.size(); ++i)
      differing += resumed_average[i] != whole_average[i];
    EXPECT_EQ(differing, 0u) << "resume after step " << stop << " changed " << differing
                             << " values of the moving average";
  }
}

// A run with validation (the last 15 of the 61 rows; 46 train), a plateau schedule that sees no
// improvement after the first evaluation (threshold 0.5) and early stopping counting along.
vd::Options plateau_options(const SharedData& data, const std::string& name, int epochs) {
  vd::Options o = small_options(data.file, data.root + "/" + name);
  o.epochs = epochs;
  o.val_fraction = 0.25;
  o.lr_schedule = vd::LrScheduleKind::Plateau;
  o.lr_patience = 1;
  o.lr_factor = 0.5;
  o.lr_threshold = 0.5;
  o.early_stop_patience = 5;
  return o;
}

// The resumed run `t` ended where the uninterrupted one did: bitwise parameters, and the same
// schedule and early-stopping state in its last checkpoint.
void expect_same_end(const vd::Trainer& t, const vd::TrainSummary& resumed,
                     const vd::TrainSummary& whole, std::span<const float> uninterrupted) {
  EXPECT_EQ(resumed.epochs, whole.epochs);
  EXPECT_EQ(resumed.early_stopped, whole.early_stopped);
  EXPECT_EQ(resumed.best_val_loss, whole.best_val_loss);
  EXPECT_EQ(resumed.best_val_step, whole.best_val_step);
  const vd::CheckpointMeta end = vd::read_checkpoint_meta(whole.last_checkpoint);
  const vd::CheckpointMeta last = vd::read_checkpoint_meta(resumed.last_checkpoint);
  EXPECT_EQ(last.plateau.scale, end.plateau.scale);
  EXPECT_EQ(last.plateau.best, end.plateau.best);
  EXPECT_EQ(last.plateau.bad_evaluations, end.plateau.bad_evaluations);
  EXPECT_EQ(last.early.best, end.early.best);
  EXPECT_EQ(last.early.bad_evaluations, end.early.bad_evaluations);
  const auto got = t.params().params();
  ASSERT_EQ(got.size(), uninterrupted.size());
  size_t differing = 0;
  for (size_t i = 0; i < got.size(); ++i) differing += got[i] != uninterrupted[i];
  EXPECT_EQ(differing, 0u);
}

// Warm-up over the first 1.5 epochs, and a plateau schedule that sees no improvement after
// the first evaluation (threshold 0.5), so it reduces after evaluations 3 and 5 of 6; early
// stopping counts along. Stopped mid-warm-up, in the plateau's wait (one bad evaluation
// counted, mid-epoch 3) and at an epoch end, then resumed, the run ends bitwise equal, with
// the same schedule state.
TEST(Trainer, ResumeInAWarmupOrAPlateauWaitIsBitwiseIdentical) {
  vd::Comm comm;
  SharedData data(comm);
  const int64_t spe = vd::EpochPlan(46, 0, comm.size(), 4).steps_per_epoch();
  const auto options = [&](const std::string& name) {
    vd::Options o = plateau_options(data, name, 6);
    o.lr_warmup_steps = spe + spe / 2;
    return o;
  };
  vd::Trainer whole_trainer(options("whole"), comm);
  const vd::TrainSummary whole = whole_trainer.run();
  const auto uninterrupted = whole_trainer.params().params();
  const vd::CheckpointMeta end = vd::read_checkpoint_meta(whole.last_checkpoint);
  EXPECT_EQ(end.plateau.scale, 0.25);
  EXPECT_EQ(end.plateau.bad_evaluations, 1);

  for (const int64_t stop : {spe / 2 + 1, 2 * spe + 1, 2 * spe}) {
    SCOPED_TRACE("stopped after step " + std::to_string(stop));
    vd::Options first = options("split" + std::to_string(stop));
    first.max_steps = stop;
    train(first, comm);
    const vd::CheckpointMeta meta = vd::read_checkpoint_meta(vd::find_latest_checkpoint(first.out));
    EXPECT_EQ(meta.step, stop);
    if (stop == 2 * spe + 1) {
      EXPECT_EQ(meta.plateau.bad_evaluations, 1);  // waiting: one bad evaluation of two
      EXPECT_GT(meta.epoch_loss_count, 0);
    }
    vd::Options second = first;
    second.max_steps = 0;
    second.resume = "latest";
    vd::Trainer t(second, comm);
    expect_same_end(t, t.run(), whole, uninterrupted);
  }
}

// SIGTERM agreed on the last step of an epoch: the epoch still ends (validation, plateau,
// early stopping, best.h5) before the checkpoint, since the resumed run starts the next epoch
// and would never count it. Stopped one step before epoch 2's end, resumed with SIGTERM pending
// on rank 0 (so it lands on that last step), then resumed again, the run ends bitwise where
// the uninterrupted one does; without the epoch's evaluation the plateau would reduce later.
TEST(Trainer, StopSignalOnAnEpochsLastStepStillEndsTheEpoch) {
  vd::Comm comm;
  SharedData data(comm);
  const int64_t spe = vd::EpochPlan(46, 0, comm.size(), 4).steps_per_epoch();
  const auto options = [&](const std::string& name) { return plateau_options(data, name, 5); };
  vd::Trainer whole_trainer(options("whole"), comm);
  const vd::TrainSummary whole = whole_trainer.run();
  const auto uninterrupted = whole_trainer.params().params();

  vd::Options first = options("signalled");
  first.max_steps = 2 * spe - 1;
  train(first, comm);
  vd::Options second = first;
  second.max_steps = 0;
  second.resume = "latest";
  {
    vd::Trainer t(second, comm);
    vd::block_stop_signals();
    if (comm.rank() == 0) raise(SIGTERM);  // pending: the first step's poll takes it
    const vd::TrainSummary stopped = t.run();
    EXPECT_EQ(stopped.signal, SIGTERM);
    const vd::CheckpointMeta meta = vd::read_checkpoint_meta(stopped.last_checkpoint);
    EXPECT_EQ(meta.step, 2 * spe);
    EXPECT_EQ(meta.cursor.step_in_epoch, spe);
    // Epoch 2's evaluation was counted, as in a run that simply ends with epoch 2.
    vd::Options ref = options("epoch2");
    ref.max_steps = 2 * spe;
    vd::Trainer ref_trainer(ref, comm);
    const vd::CheckpointMeta want = vd::read_checkpoint_meta(ref_trainer.run().last_checkpoint);
    EXPECT_EQ(meta.early.best, want.early.best);
    EXPECT_EQ(meta.early.best_step, want.early.best_step);
    EXPECT_EQ(meta.early.bad_evaluations, want.early.bad_evaluations);
    EXPECT_EQ(meta.plateau.bad_evaluations, want.plateau.bad_evaluations);
    EXPECT_EQ(meta.plateau.scale, want.plateau.scale);
  }
  vd::Trainer t(second, comm);
  expect_same_end(t, t.run(), whole, uninterrupted);
}

// The validation loss of P ranks is the loss of the same model on the validation rows in one
// process, evaluated in other batches: each row draws its noise from its own stream.
// Validation of the weights --eval-weights names: the run's figure equals one process's
// evaluation of the same weights. `trained` receives the trained parameters.
void check_validation(vd::Weights weights, std::vector<float>* trained = nullptr) {
  vd::Comm comm;
  SharedData data(comm);
  vd::Options o = small_options(data.file, data.root + "/val");
  if (weights == vd::Weights::Ema) {
    o.ema_decay = 0.8;
    o.eval_weights = vd::Weights::Ema;
  }
  o.val_fraction = 0.25;  // rows 46..60
  o.epochs = 2;
  o.eval_batch_size = 3;
  o.kl_warmup_epochs = 10;  // validation still uses the full beta
  o.beta = 2;
  vd::Trainer t(o, comm);
  const vd::TrainSummary s = t.run();
  if (trained) trained->assign(t.params().params().begin(), t.params().params().end());
  ASSERT_TRUE(std::isfinite(s.val_loss));
  if (comm.is_root()) {
    const vd::Shard all = vd::Shard::read(data.file, "/images", 0, 1, vd::ValueCheck::UnitInterval);
    const auto D = static_cast<size_t>(all.sample_size());
    vd::ModelConfig cfg = vd::ModelConfig::mlp(static_cast<int>(D), o.hidden, o.latent_dim);
    vd::ParamStore store;
    vd::Vae vae(cfg, store);
    store.finalize();
    const std::span<const float> evaluated =
        weights == vd::Weights::Ema ? t.moving_average() : t.params().params();
    std::copy(evaluated.begin(), evaluated.end(), store.params().begin());
    const vd::Shard val = vd::Shard::read(data.file, "/images", 0, 1, vd::ValueCheck::UnitInterval,
                                          vd::RowRange{46, 61});
    ASSERT_EQ(val.rows(), 15);
    std::vector<int64_t> rows(15);
    std::iota(rows.begin(), rows.end(), 0);
    std::vector<float> x(15 * 16), eps(15 * 3);
    val.gather(rows, x.data());
    for (int r = 0; r < 15; ++r)
      vd::make_rng(o.seed, vd::RngStream::ValEps, 2, static_cast<uint64_t>(r))
          .fill_normal(eps.data() + r * 3, 3);
    vd::Context ctx;
    const vd::LossSums want = vae.evaluate(ctx, vd::Batch{15, x.data(), nullptr, eps.data()}, 2.0f);
    EXPECT_NEAR(s.val_loss, want.loss / 15, 1e-6 * want.loss / 15);
    EXPECT_NEAR(s.val_terms.at(1), want.term[vd::Vae::kKl] / 15,
                1e-6 * want.term[vd::Vae::kKl] / 15 + 1e-9);
    EXPECT_NEAR(s.val_loss, s.val_terms.at(0) + 2 * s.val_terms.at(1), 1e-9 * s.val_loss);
    if (weights == vd::Weights::Ema) {
      // The optimizer's weights give another figure: the average really was evaluated.
      std::copy(t.params().params().begin(), t.params().params().end(), store.params().begin());
      const vd::LossSums raw =
          vae.evaluate(ctx, vd::Batch{15, x.data(), nullptr, eps.data()}, 2.0f);
      EXPECT_GT(std::abs(s.val_loss - raw.loss / 15), 1e-4 * raw.loss / 15);
    }
  }
}

TEST(Trainer, ValidationOnSeveralRanksEqualsValidationInOneProcess) {
  check_validation(vd::Weights::Raw);
}

// --eval-weights ema: validation, test and best.h5's choice see the moving average, and the
// training goes on with the optimizer's weights exactly as without it.
TEST(Trainer, ValidationOfTheMovingAverageEqualsOneProcessAndLeavesTrainingAlone) {
  std::vector<float> raw, ema;
  check_validation(vd::Weights::Raw, &raw);
  check_validation(vd::Weights::Ema, &ema);
  ASSERT_FALSE(raw.empty());
  EXPECT_EQ(raw, ema);
}

TEST(Trainer, CheckpointOfSeveralRanksResumesOnOneRank) {
  vd::Comm comm;
  SharedData data(comm);
  vd::Options first = small_options(data.file, data.root + "/rescale");
  first.max_steps = 2 * 8;  // whole epochs at P = 2; mid-epoch at P = 3
  train(first, comm);

  // Rank 0 alone continues, on a communicator of its own.
  MPI_Comm solo_comm;
  MPI_Comm_split(MPI_COMM_WORLD, comm.rank() == 0 ? 0 : MPI_UNDEFINED, 0, &solo_comm);
  if (comm.rank() == 0) {
    {
      vd::Comm solo(solo_comm);
      const std::string written = vd::find_latest_checkpoint(first.out);
      const vd::CheckpointMeta before = vd::read_checkpoint_meta(written);
      vd::Options second = first;
      second.resume = "latest";
      second.max_steps = 0;
      second.epochs = 4;
      ::testing::internal::CaptureStdout();
      vd::Trainer t(second, solo);
      const std::string said = ::testing::internal::GetCapturedStdout();
      // The restored parameters are the checkpoint's, bitwise.
      {
        vd::h5::File f = vd::h5::open_file(written);
        const auto& entries = t.params().entries();
        for (size_t i = 0; i < entries.size(); ++i) {
          const auto stored = vd::h5::read_dataset<float>(f, "/params/" + entries[i].name).data;
          ASSERT_EQ(stored.size(), entries[i].size) << entries[i].name;
          EXPECT_EQ(0, std::memcmp(stored.data(), t.params().param(i), stored.size() * 4))
              << entries[i].name;
        }
      }
      // The writer ran ceil(61 / 4P) steps per epoch. P = 2 wrote at the end of epoch 2 (8
      // steps per epoch): no note, epochs 3 and 4 follow. P = 3 wrote 4 of epoch 3's 6 steps:
      // the note says the rest of epoch 3 is skipped. (P = 4, across hosts, ends epoch 3.)
      const int P = comm.size();
      EXPECT_EQ(before.cursor.steps_per_epoch, (61 + 4 * P - 1) / (4 * P));
      const bool mid_epoch = before.cursor.step_in_epoch < before.cursor.steps_per_epoch;
      if (P == 2) {
        EXPECT_FALSE(mid_epoch);
      }
      if (P == 3) {
        EXPECT_TRUE(mid_epoch);
      }
      EXPECT_EQ(said.find("written mid-epoch") != std::string::npos, mid_epoch) << said;
      const vd::TrainSummary s = t.run();
      // One rank runs 16 steps per epoch over the 61 rows, from the epoch after the
      // checkpoint's to epoch 4.
      EXPECT_EQ(s.steps, before.step + 16 * (4 - before.cursor.epoch));
      const vd::CheckpointMeta meta = vd::read_checkpoint_meta(s.last_checkpoint);
      EXPECT_EQ(meta.world_size, 1);
      EXPECT_EQ(s.epochs, 4);
      EXPECT_TRUE(std::isfinite(s.train_loss));
    }
    MPI_Comm_free(&solo_comm);
  }
  comm.barrier();
}

// The other direction: one rank trains 2 epochs of 16 steps, then P ranks take 16 / P steps per
// epoch. The run still ends with epoch --epochs: it trains epoch 3 and says how the steps
// changed, and a resume with nothing left to train says so.
TEST(Trainer, ResumeOnMoreRanksTrainsTheEpochsThatAreLeft) {
  vd::Comm comm;
  SharedData data(comm);
  vd::Options first = small_options(data.file, data.root + "/grow");
  first.epochs = 2;
  MPI_Comm solo_comm;
  MPI_Comm_split(MPI_COMM_WORLD, comm.rank() == 0 ? 0 : MPI_UNDEFINED, 0, &solo_comm);
  if (comm.rank() == 0) {
    {
      vd::Comm solo(solo_comm);
      train(first, solo);
    }
    MPI_Comm_free(&solo_comm);
  }
  comm.barrier();
  const int P = comm.size();
  const int64_t spe = (61 + 4 * P - 1) / (4 * P);
  vd::Options second = first;
  second.resume = "latest";
  second.epochs = 3;
  ::testing::internal::CaptureStdout();
  vd::TrainSummary s;
  {
    vd::Trainer t(second, comm);
    s = t.run();
  }
  const std::string said = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(s.epochs, 3);
  EXPECT_EQ(s.steps, 2 * 16 + spe);
  if (comm.is_root()) {
    EXPECT_NE(said.find("took 16 steps per epoch; this one takes " + std::to_string(spe)),
              std::string::npos)
        << said;
  }
  // Again with --epochs 3: the checkpoint is after epoch 3, nothing is left.
  ::testing::internal::CaptureStdout();
  vd::TrainSummary again;
  {
    vd::Trainer t(second, comm);
    again = t.run();
  }
  const std::string said_again = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(again.steps, s.steps);
  if (comm.is_root()) {
    EXPECT_NE(said_again.find("nothing left to train: the checkpoint is at step " +
                              std::to_string(s.steps) +
                              ", after epoch 3 of --epochs 3; raise "
                              "--epochs"),
              std::string::npos)
        << said_again;
  }
}

// The test and validation sets are checked by shape, not by value count: 2 x 8 images for a
// model of 4 x 4 ones are refused on every rank, naming both shapes.
TEST(Trainer, TestAndValidationDataOfAnotherShapeAreRefused) {
  vd::Comm comm;
  SharedData data(comm);
  std::string other = data.root + "/other.h5";
  if (comm.is_root()) vd::write_synthetic(other, 20, 1, 2, 8, 3, vd::SynthDType::UInt8, 4);
  comm.barrier();
  for (const bool test : {true, false}) {
    vd::Options o = small_options(data.file, data.root + "/shape");
    (test ? o.test_data : o.val_data) = other;
    try {
      vd::Trainer t(o, comm);
      ADD_FAILURE() << "a " << (test ? "test" : "validation") << " set of 1x2x8 was accepted";
    } catch (const vd::DataError& e) {
      const std::string want = std::string("the ") + (test ? "test" : "validation") + " data '" +
                               other +
                               "' has samples of shape [1, 2, 8] but the "
                               "training data '" +
                               data.file + "' has [1, 4, 4]";
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

// A checkpoint resumes only under the likelihood it was trained with.
TEST(Trainer, ResumeUnderAnotherLikelihoodIsRefused) {
  vd::Comm comm;
  SharedData data(comm);
  vd::Options o = small_options(data.file, data.root + "/lik");
  o.epochs = 1;
  train(o, comm);
  o.resume = "latest";
  o.epochs = 2;
  o.likelihood = vd::DecoderLikelihood::Gaussian;
  try {
    vd::Trainer t(o, comm);
    ADD_FAILURE() << "a Bernoulli checkpoint resumed under --likelihood gaussian";
  } catch (const vd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("was trained with --likelihood bernoulli, and this run "
                                         "asks for --likelihood gaussian; resume with "
                                         "--likelihood bernoulli"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace

namespace {

// --on-divergence rollback at a learning rate of 10: the first update breaks the model, the
// guard skips until --max-skips, and the run goes back to its initial parameters with the rate
// times 0.1, until it trains. A run stopped after the rollbacks (at an epoch end and mid-epoch)
// and resumed ends bitwise equal to the uninterrupted one, with the same rollback state.
// A rolled-back run, with --rollback-skip-steps passing over the batches up to each failure or
// without, resumes bitwise; `without` receives the parameters of the run without skipping.
void check_rolled_back_run_resumes_bitwise(int skip_steps, std::vector<float>* params) {
  vd::Comm comm;
  SharedData data(comm);
  const auto options = [&](const std::string& name) {
    vd::Options o = small_options(data.file, data.root + "/" + name);
    o.rollback_skip_steps = skip_steps;
    o.lr = 10;
    o.on_divergence = vd::DivergenceAction::Rollback;
    o.max_skips = 2;
    o.max_rollbacks = 5;
    o.rollback_lr_factor = 0.1;
    o.checkpoint_every = 1;
    o.epochs = 8;
    return o;
  };
  vd::Options whole = options("whole");
  std::vector<float> uninterrupted;
  vd::CheckpointMeta end;
  int64_t steps = 0;
  {
    vd::Trainer t(whole, comm);
    const vd::TrainSummary s = t.run();
    const auto p = t.params().params();
    uninterrupted.assign(p.begin(), p.end());
    end = vd::read_checkpoint_meta(s.last_checkpoint);
    steps = s.steps;
  }
  ASSERT_GE(end.rollbacks, 1) << "the run never rolled back: the test shows nothing";
  *params = uninterrupted;
  if (skip_steps > 0) {
    ASSERT_FALSE(end.skipped_steps.empty());
    // Each range ends at a failed step and spans at most skip_steps steps.
    for (const auto& [first, last] : end.skipped_steps) {
      EXPECT_LE(first, last);
      EXPECT_LE(last, steps);
    }
    // Updates: every step but the guard's skips and the passed-over ones.
    int64_t passed = 0;
    for (const auto& [first, last] : end.skipped_steps) passed += last - first + 1;
    EXPECT_LE(end.adam_steps, end.step - passed);
  } else {
    EXPECT_TRUE(end.skipped_steps.empty());
  }
  ASSERT_LT(end.rollbacks, 5);
  EXPECT_DOUBLE_EQ(end.rollback_lr_scale, std::pow(0.1, static_cast<double>(end.rollbacks)));
  const int64_t spe = vd::EpochPlan(61, 0, comm.size(), 4).steps_per_epoch();
  for (const int64_t stop : {4 * spe, 4 * spe + 2}) {
    vd::Options first = options("split" + std::to_string(stop));
    first.max_steps = stop;
    vd::Trainer(first, comm).run();
    vd::Options second = options("split" + std::to_string(stop));
    second.resume = "latest";
    vd::Trainer t(second, comm);
    const vd::TrainSummary s = t.run();
    EXPECT_EQ(s.steps, steps);
    const vd::CheckpointMeta last = vd::read_checkpoint_meta(s.last_checkpoint);
    EXPECT_EQ(last.rollbacks, end.rollbacks);
    EXPECT_EQ(last.rollback_lr_scale, end.rollback_lr_scale);
    EXPECT_EQ(last.guard, end.guard);
    EXPECT_EQ(last.skipped_steps, end.skipped_steps);
    EXPECT_EQ(last.adam_steps, end.adam_steps);
    const auto got = t.params().params();
    ASSERT_EQ(got.size(), uninterrupted.size());
    size_t differing = 0;
    for (size_t i = 0; i < got.size(); ++i) differing += got[i] != uninterrupted[i];
    EXPECT_EQ(differing, 0u) << "resume after step " << stop;
  }
}

TEST(Trainer, RolledBackRunResumesBitwise) {
  std::vector<float> plain, skipping;
  check_rolled_back_run_resumes_bitwise(0, &plain);
  check_rolled_back_run_resumes_bitwise(3, &skipping);
  // Passing over the batches changed the run.
  EXPECT_NE(plain, skipping);
}

}  // namespace
