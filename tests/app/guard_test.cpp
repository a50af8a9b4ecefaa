// End-to-end tests that a good run is never lost: a diverging 2-rank run stops every rank at
// the same step with a message and exit code 3 and keeps its good checkpoints, and rank 0
// killed with SIGKILL while writing a checkpoint leaves the previous one to resume from.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "data/dataset_file.hpp"
#include "io/checkpoint.hpp"
#include "support/fashion_mnist.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

namespace fs = std::filesystem;

// checkpoint_step*.h5 and *.tmp in dir, sorted.
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("checkpoint_step")) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + " ";
  return s;
}

TEST(AppGuard, DivergenceStopsEveryRankAndKeepsTheGoodCheckpoints) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 5, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  const std::string common = ' ' + binary("vae_dist") + " --data " + data +
                             " --test-data '' --out " + out +
                             " --batch-size 8 --hidden 16 --latent-dim 2 --progress false"
                             " --keep-checkpoints 2 --iw-samples 0";
  // Two good epochs of 4 steps each, a checkpoint after each.
  const CommandResult good = run_command(mpi_prefix(2) + common + " --epochs 2", 120);
  ASSERT_EQ(good.exit_code, 0) << good.output;
  const std::vector<std::string> kept = files_in(out);
  ASSERT_EQ(kept.size(), 2u) << joined(kept);

  // An absurd learning rate: the first update sends the weights to ~1e30, and the next
  // forward pass overflows.
  const CommandResult bad =
      run_command(mpi_prefix(2) + common + " --epochs 6 --resume latest --lr 1e30", 120);
  EXPECT_EQ(bad.exit_code, 3) << bad.output;
  const std::regex said(
      "error: training diverged at step (\\d+): rank [01]: the "
      "(loss|[a-z_]+ term|gradient of [a-z0-9_.]+) ");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(bad.output, m, said)) << bad.output;
  const int step = std::stoi(m[1]);
  EXPECT_GT(step, 8) << bad.output;
  EXPECT_LE(step, 12) << bad.output;
  // One message (rank 0's), not one per rank and no abort.
  EXPECT_EQ(bad.output.find("training diverged"), bad.output.rfind("training diverged"))
      << bad.output;
  EXPECT_FALSE(contains(bad.output, "MPI_ABORT")) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--resume latest --lr")) << bad.output;
  EXPECT_TRUE(contains(bad.output, kept.back())) << bad.output;
  // The good checkpoints stay, nothing newer was written, and they hold finite values.
  EXPECT_EQ(files_in(out), kept);
  const CommandResult again =
      run_command(mpi_prefix(2) + common + " --epochs 3 --resume latest --lr 1e-3", 120);
  EXPECT_EQ(again.exit_code, 0) << again.output;
}

// The rank that Open MPI started as world rank `rank`, among pids.
pid_t rank_pid(const std::vector<pid_t>& pids, int rank) {
  for (pid_t p : pids) {
    std::ifstream env("/proc/" + std::to_string(p) + "/environ", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (all.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos)
      return p;
  }
  return -1;
}

TEST(AppGuard, KillDuringCheckpointWriteKeepsThePreviousOne) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 5, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  const std::string bin = binary("vae_dist");
  const std::string common = ' ' + bin + " --data " + data + " --test-data '' --out " + out +
                             " --batch-size 8 --hidden 16 --latent-dim 2 --progress false"
                             " --iw-samples 0";
  const CommandResult first = run_command(mpi_prefix(2) + common + " --epochs 1", 120);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::string good = vd::checkpoint_file_name(4);
  ASSERT_EQ(files_in(out), std::vector<std::string>{good});

  const std::string pattern = process_pattern(bin, out);
  KillMatchingOnExit cleanup(pattern);
  {
    // Every checkpoint write now pauses 60 s with its .tmp half written.
    const std::string prefix = mpi_prefix(2);  // "env A=1 ... mpiexec ...": one more variable
    const size_t after_env = prefix.find(' ') + 1;
    const std::string launch = prefix.substr(0, after_env) +
                               "VAE_DIST_TEST_SLOW_CHECKPOINT_MS=60000 " + prefix.substr(after_env);
    ChildProcess job(launch + common + " --epochs 2 --resume latest", tmp.file("job.log"));
    ASSERT_TRUE(job.started());
    const std::string tmp_file = out + "/" + vd::checkpoint_file_name(8) + ".tmp";
    ASSERT_TRUE(wait_until([&] { return fs::exists(tmp_file) || !job.running(); }, 60))
        << job.output();
    ASSERT_TRUE(job.running()) << job.output();
    const pid_t rank0 = rank_pid(pids_matching(pattern), 0);
    ASSERT_GT(rank0, 0) << job.output();
    ASSERT_EQ(::kill(rank0, SIGKILL), 0);
    const std::optional<int> status = job.wait_for(30);
    ASSERT_TRUE(status.has_value()) << "still running 30 s after rank 0 was killed";
    EXPECT_NE(exit_code_of(*status), 0) << job.output();
    EXPECT_TRUE(fs::exists(tmp_file));
  }
  // The leftover .tmp is never taken for a checkpoint: latest is the previous one, intact.
  EXPECT_EQ(find_latest_checkpoint(out), out + "/" + good);
  const CommandResult resumed =
      run_command(mpi_prefix(2) + common + " --epochs 2 --resume latest", 120);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + out + "/" + good + ": epoch 1, step 4"))
      << resumed.output;
  // The run went on to epoch 2's checkpoint, and pruning removed the stale .tmp.
  const std::vector<std::string> now = files_in(out);
  EXPECT_EQ(now, (std::vector<std::string>{good, vd::checkpoint_file_name(8)})) << joined(now);
}

// The bytes of a file.
std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A learning rate of 10 keeps every value finite (the logvar clamp), so no NaN guard fires: the
// update guard sees the loss and gradient norm leave their history, skips, and after
// --max-skips stops the run with exit 3. Resumed from a good run, it writes nothing and keeps
// every good checkpoint byte for byte, so --resume latest still finds the newest good one.
TEST(AppGuard, ABlowUpWithoutNaNStopsAndKeepsEveryGoodCheckpoint) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 256, 1, 8, 8, 4, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  const std::string flags = ' ' + binary("vae_dist") + " --data " + data + " --test-data " + data +
                            " --batch-size 16 --hidden 32 --latent-dim 4 --progress false"
                            " --keep-checkpoints 2 --iw-samples 0 --threads 1";
  const std::string common = flags + " --out " + out;
  const CommandResult good = run_command(mpi_prefix(2) + common + " --epochs 3", 120);
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(contains(good.output, "update guard: 0 update(s) skipped")) << good.output;
  const std::vector<std::string> kept = files_in(out);
  ASSERT_EQ(kept.size(), 2u) << joined(kept);
  std::vector<std::string> contents;
  for (const auto& f : kept) contents.push_back(bytes_of(out + "/" + f));

  const CommandResult bad =
      run_command(mpi_prefix(2) + common + " --epochs 8 --resume latest --lr 10", 120);
  EXPECT_EQ(bad.exit_code, 3) << bad.output;
  const std::regex said(
      "error: training diverged at step (\\d+): the update guard skipped 21 updates in a row "
      "\\(steps 26\\.\\.(\\d+), more than --max-skips 20\\); at the last, the loss ");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(bad.output, m, said)) << bad.output;
  EXPECT_EQ(m[1], m[2]);
  EXPECT_TRUE(contains(bad.output, "step 26: update skipped (1 in a row, --max-skips 20)"))
      << bad.output;
  EXPECT_TRUE(contains(bad.output, "no checkpoint written: the update guard is skipping"))
      << bad.output;
  EXPECT_TRUE(contains(bad.output, "the last good one is " + out + "/" + kept.back()))
      << bad.output;
  EXPECT_EQ(bad.output.find("training diverged"), bad.output.rfind("training diverged"));
  EXPECT_FALSE(contains(bad.output, "MPI_ABORT")) << bad.output;
  ASSERT_EQ(files_in(out), kept);
  for (size_t i = 0; i < kept.size(); ++i)
    EXPECT_TRUE(bytes_of(out + "/" + kept[i]) == contents[i]) << kept[i] << " changed";

  // A fresh run: the first update breaks the model and nothing is ever written.
  const std::string fresh = tmp.file("fresh");
  const CommandResult first = run_command(
      mpi_prefix(2) + flags + " --epochs 8 --lr 10 --out " + fresh + " --max-skips 5", 120);
  EXPECT_EQ(first.exit_code, 3) << first.output;
  EXPECT_TRUE(contains(first.output, "skipped 6 updates in a row (steps 2..7")) << first.output;
  EXPECT_TRUE(contains(first.output, "(the run has none yet)")) << first.output;
  EXPECT_TRUE(files_in(fresh).empty());
}

// Issue 21's runs on Fashion-MNIST: --lr 10 stops with exit 3 at once; with
// --on-divergence rollback the run goes back to its initial parameters with a tenth of the
// rate, as often as it needs, and ends within 20% of the good run's test loss.
TEST(AppGuard, RollbackRecoversARunAtLearningRate10) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  const std::string run = "cd " + shell_quote(VD_SOURCE_DIR) + " && " + mpi_prefix(2) + ' ' +
                          binary("vae_dist") +
                          " --config configs/fashion_mlp.cfg --epochs 2 --iw-samples 0"
                          " --progress false --threads 1 --out ";
  const CommandResult stopped = run_command(run + tmp.file("stop") + " --lr 10", 120);
  EXPECT_EQ(stopped.exit_code, 3) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "the update guard skipped")) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "--on-divergence rollback does that")) << stopped.output;

  const auto test_loss = [](const std::string& output) {
    std::smatch m;
    static const std::regex final_loss("final test loss ([0-9.]+)");
    return std::regex_search(output, m, final_loss) ? std::stod(m[1]) : -1.0;
  };
  const CommandResult good = run_command(run + tmp.file("good"), 300);
  ASSERT_EQ(good.exit_code, 0) << good.output;
  const CommandResult rolled =
      run_command(run + tmp.file("rolled") + " --lr 10 --on-divergence rollback", 300);
  ASSERT_EQ(rolled.exit_code, 0) << rolled.output;
  EXPECT_TRUE(contains(rolled.output, "rollback 1 of 3 at step ")) << rolled.output;
  EXPECT_TRUE(contains(rolled.output, "back to the initial parameters (step 0)")) << rolled.output;
  EXPECT_FALSE(contains(rolled.output, "error")) << rolled.output;
  const double want = test_loss(good.output), got = test_loss(rolled.output);
  ASSERT_GT(want, 0) << good.output;
  ASSERT_GT(got, 0) << rolled.output;
  EXPECT_LT(got, 1.2 * want) << rolled.output;
}

}  // namespace
}  // namespace vd::testing
