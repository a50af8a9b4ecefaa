// End-to-end tests that a good run is never lost: a diverging 2-rank run stops every rank at
// the same step with a message and exit code 3 and keeps its good checkpoints, and rank 0
// killed with SIGKILL while writing a checkpoint leaves the previous one to resume from.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "data/dataset_file.hpp"
#include "io/checkpoint.hpp"
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
      "(loss|reconstruction term|KL term|gradient of [a-z0-9_.]+) ");
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

}  // namespace
}  // namespace vd::testing
