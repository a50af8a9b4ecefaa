// End-to-end runs of validation, early stopping, best.h5 and the learning-rate schedule on
// synthetic data, on 2 ranks: where the run stops, what best.h5 holds and who can load it, the
// lr column during a warm-up, and the errors for inconsistent validation settings.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "data/dataset_file.hpp"
#include "io/checkpoint.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

namespace fs = std::filesystem;

std::string run_args(const std::string& data, const std::string& out) {
  return ' ' + binary("vae_dist") + " --data " + shell_quote(data) + " --test-data " +
         shell_quote(data) + " --out " + shell_quote(out) +
         " --batch-size 8 --hidden 16 --latent-dim 2 --progress false --iw-samples 0"
         " --threads 1 --grid-size 2 --eval-batch-size 7";
}

TEST(AppValidation, EarlyStoppingStopsWhereTheValidationRowsSayAndKeepsBestH5) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 128, 1, 8, 8, 3, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  // A rate so small that the validation loss only jitters (fresh noise every epoch): it
  // stops improving within a few epochs.
  const std::string args = run_args(data, out) +
                           " --val-fraction 0.25 --early-stop-patience 2 --lr 1e-7"
                           " --keep-checkpoints 1 --log-every 1000";
  const CommandResult r = run_command(mpi_prefix(2) + args + " --epochs 40", 180);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "validation: 32 rows (the last rows 96..127")) << r.output;
  EXPECT_TRUE(contains(r.output, "96 training rows")) << r.output;

  // The stop follows from the logged validation losses by the rule: 2 evaluations in a row
  // without a new (strictly lower) best.
  const std::string csv = out + "/metrics.csv";
  const auto val = metrics_rows(csv, "val");
  ASSERT_GE(val.size(), 3u) << read_text(csv);
  double best = std::numeric_limits<double>::infinity();
  int bad = 0;
  size_t expected_stop = 0, best_row = 0;
  for (size_t i = 0; i < val.size() && expected_stop == 0; ++i) {
    const double loss = std::stod(val[i][4]);
    if (loss < best) {
      best = loss;
      best_row = i;
      bad = 0;
    } else if (++bad >= 2) {
      expected_stop = i + 1;
    }
  }
  ASSERT_GT(expected_stop, 0u) << "the validation rows never stop improving:\n" << read_text(csv);
  EXPECT_EQ(val.size(), expected_stop) << read_text(csv);
  EXPECT_LT(expected_stop, 40u);
  EXPECT_TRUE(contains(r.output, "early stop after epoch " + std::to_string(expected_stop)))
      << r.output;
  // Every epoch's validation row comes before its test row, with all 32 held-out rows.
  const auto lines = split_lines(read_text(csv));
  for (size_t e = 1; e <= expected_stop; ++e) {
    // Built by appends: "," + to_string(e) trips GCC 12's false -Wrestrict warning.
    std::string tag = ",";
    tag += std::to_string(e);
    tag += ',';
    size_t v = 0, t = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].starts_with("val" + tag)) v = i;
      if (lines[i].starts_with("test" + tag)) t = i;
    }
    EXPECT_TRUE(v > 0 && t > v) << "epoch " << e << "\n" << read_text(csv);
  }

  // best.h5: the model of the lowest validation loss, named in the final line, never pruned
  // (one step checkpoint is kept), no temporary left.
  const std::string best_h5 = out + "/best.h5";
  ASSERT_TRUE(fs::is_regular_file(best_h5));
  EXPECT_FALSE(fs::exists(best_h5 + ".tmp"));
  const CheckpointMeta meta = read_checkpoint_meta(best_h5);
  EXPECT_EQ(std::to_string(meta.step), val[best_row][2]);
  EXPECT_NEAR(meta.early.best, std::stod(val[best_row][4]), 1e-6 * meta.early.best);
  EXPECT_TRUE(contains(r.output, "; best validation loss ")) << r.output;
  EXPECT_TRUE(contains(r.output, "at step " + std::to_string(meta.step) + ": " + best_h5))
      << r.output;
  int step_files = 0;
  for (const auto& e : fs::directory_iterator(out))
    step_files += e.path().filename().string().starts_with("checkpoint_step");
  EXPECT_EQ(step_files, 1);

  // --resume latest takes the newest step checkpoint, not best.h5.
  const std::string latest = find_latest_checkpoint(out);
  const CommandResult again =
      run_command(mpi_prefix(2) + args + " --epochs 45 --resume latest", 180);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "resumed from " + latest)) << again.output;
  // That run had stopped early: the resumed one stops at once instead of training one more
  // epoch first, and writes nothing new.
  EXPECT_TRUE(contains(again.output, "early stop: the resumed run had stopped early"))
      << again.output;
  EXPECT_EQ(find_latest_checkpoint(out), latest);

  // best.h5 into its own run directory, which holds later checkpoints of the run that went on:
  // refused on every rank, since pruning would delete the new checkpoints first.
  const CommandResult into_own =
      run_command(mpi_prefix(2) + args + " --epochs 45 --resume " + shell_quote(best_h5), 180);
  EXPECT_EQ(into_own.exit_code, 2) << into_own.output;
  EXPECT_TRUE(contains(into_own.output,
                       "holds checkpoints written after step " + std::to_string(meta.step)))
      << into_own.output;
  EXPECT_TRUE(contains(into_own.output, "resume into a new directory")) << into_own.output;

  // best.h5 resumes (into another directory) and vae_latent reads it.
  const std::string other = tmp.file("from_best");
  const CommandResult from_best =
      run_command(mpi_prefix(2) + run_args(data, other) + " --val-fraction 0.25 --epochs " +
                      std::to_string(meta.cursor.epoch + 1) + " --resume " + shell_quote(best_h5),
                  180);
  ASSERT_EQ(from_best.exit_code, 0) << from_best.output;
  EXPECT_TRUE(contains(from_best.output, "resumed from " + best_h5)) << from_best.output;
  const CommandResult enc =
      run_command(env_prefix() + " " + binary("vae_latent") + " encode --checkpoint " +
                      shell_quote(best_h5) + " --threads 1 --out " + shell_quote(tmp.file("z.h5")),
                  120);
  ASSERT_EQ(enc.exit_code, 0) << enc.output;
  EXPECT_TRUE(fs::is_regular_file(tmp.file("z.h5")));
}

// best.h5 is replaced by rename (a new inode each time), never rewritten in place, so a reader
// or a crash never sees half a file.
TEST(AppValidation, BestH5IsReplacedAtomically) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 96, 1, 8, 8, 3, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  const std::string args = run_args(data, out) + " --val-fraction 0.25 --lr 3e-3";
  ASSERT_EQ(run_command(env_prefix() + args + " --epochs 1", 120).exit_code, 0);
  struct stat before {};
  ASSERT_EQ(stat((out + "/best.h5").c_str(), &before), 0);
  const CheckpointMeta first = read_checkpoint_meta(out + "/best.h5");
  // Learning at 3e-3 improves the validation loss in the next epochs.
  const CommandResult r = run_command(env_prefix() + args + " --epochs 4 --resume latest", 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const CheckpointMeta second = read_checkpoint_meta(out + "/best.h5");
  ASSERT_GT(second.step, first.step) << r.output;
  EXPECT_LT(second.early.best, first.early.best);
  struct stat after {};
  ASSERT_EQ(stat((out + "/best.h5").c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);
  EXPECT_FALSE(fs::exists(out + "/best.h5.tmp"));
}

// With linear scaling on 2 ranks the peak rate is 2 x --lr, printed at start-up; during the
// warm-up each train row's lr is the rate its last step used: 2e-3 * step / 4.
TEST(AppValidation, LrColumnShowsTheWarmupRateOfEachStep) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 3, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  const CommandResult r =
      run_command(mpi_prefix(2) + run_args(data, out) +
                      " --lr 1e-3 --lr-scale-with-ranks linear --lr-warmup-steps 4"
                      " --log-every 1 --max-steps 6",
                  120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "learning rate 0.002 (--lr 0.001 x 2 for the global batch of 2"))
      << r.output;
  const auto train = metrics_rows(out + "/metrics.csv", "train");
  ASSERT_EQ(train.size(), 6u);
  const double want[] = {5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3};
  for (size_t i = 0; i < 6; ++i)
    EXPECT_DOUBLE_EQ(std::stod(train[i][7]), want[i]) << "step " << train[i][2];
}

TEST(AppValidation, InconsistentValidationSettingsAreClearErrors) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 3, SynthDType::UInt8, 4);
  const std::string other_shape = tmp.file("v.h5");
  write_synthetic(other_shape, 20, 1, 4, 4, 3, SynthDType::UInt8, 4);
  const std::string base = run_args(data, tmp.file("run")) + " --epochs 1";
  struct Case {
    std::string args;
    int exit_code;
    std::vector<std::string> said;
  };
  const std::vector<Case> cases = {
      {" --val-fraction 1.5", 2, {"--val-fraction", "1.5", "[0, 1)"}},
      {" --early-stop-patience 3", 2, {"--early-stop-patience needs validation data"}},
      {" --val-fraction 0.1 --val-data " + shell_quote(data), 2, {"give one of them"}},
      {" --val-fraction 0.999", 2, {"holds out 64 rows and trains on 0"}},
      {" --val-data " + shell_quote(other_shape),
       1,
       {"validation data", "[1, 4, 4]", "[1, 8, 8]", "same shape"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    // On 2 ranks: every rank stops, none waits for the others.
    const CommandResult r = run_command(mpi_prefix(2) + base + c.args, 60);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
    for (const std::string& w : c.said) EXPECT_TRUE(contains(r.output, w)) << r.output;
  }
}

}  // namespace
}  // namespace vd::testing
