// End-to-end test of SIGTERM handling: a 1-rank vae_dist run stops with exit code 143 and a
// checkpoint, and `--resume latest` continues it, appending to metrics.csv (5 rounds).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "app/child_process.hpp"
#include "data/dataset_file.hpp"
#include "io/metrics_log.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

std::string checkpoint_name(long long step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "checkpoint_step%09lld.h5", step);
  return buf;
}

int count_lines_equal(const std::string& text, const std::string& line) {
  int n = 0;
  for (const std::string& l : split_lines(text)) n += l == line;
  return n;
}

// One round: start, wait for a train row, wait delay_ms more, SIGTERM, check the stop, resume.
void stop_and_resume(const std::string& data, const std::string& out, int delay_ms) {
  SCOPED_TRACE("SIGTERM " + std::to_string(delay_ms) + " ms after the first train row");
  const std::string bin = binary("vae_dist");
  KillMatchingOnExit cleanup(process_pattern(bin, out));
  const std::string csv = out + "/metrics.csv";
  {
    ChildProcess run(env_prefix() + " " + bin + " --data " + data + " --test-data '' --out " + out +
                         " --epochs 100000 --batch-size 32 --hidden 128 --latent-dim 4"
                         " --log-every 10 --checkpoint-every 0 --progress false",
                     out + ".log");
    ASSERT_TRUE(run.started());
    ASSERT_TRUE(training_started(run, csv, 30));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ASSERT_EQ(::kill(run.pid(), SIGTERM), 0);

    const std::optional<int> status = run.wait_for(30);
    ASSERT_TRUE(status.has_value()) << "still running 30 s after SIGTERM:\n" << run.output();
    const std::string output = run.output();
    // Exactly 143 = 128 + SIGTERM from the program's own return; a crash (e.g. SIGABRT from
    // heap corruption, or SIGSEGV) or the default SIGTERM action must not pass.
    ASSERT_TRUE(exited_with(*status, 143)) << describe_status(*status) << "\n" << output;
    EXPECT_TRUE(contains(output, "stopped by signal 15")) << output;
    EXPECT_TRUE(contains(output, "--config " + out + "/config.ini --resume latest")) << output;

    // The stop step is logged, and the checkpoint is named after it.
    const auto rows = metrics_rows(csv, "train");
    ASSERT_FALSE(rows.empty());
    const long long last_step = std::stoll(rows.back()[2]);
    const std::string checkpoint = out + "/" + checkpoint_name(last_step);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(output, m, std::regex("checkpoint (\\S+)\n"))) << output;
    EXPECT_EQ(m[1].str(), checkpoint) << output;
    EXPECT_TRUE(std::filesystem::is_regular_file(checkpoint)) << checkpoint;
    EXPECT_GT(std::filesystem::file_size(checkpoint), 0u);
  }

  const std::string before = read_text(csv);
  const auto rows_before = metrics_rows(csv, "train");
  const int last_epoch = std::stoi(rows_before.back()[1]);
  const long long last_step = std::stoll(rows_before.back()[2]);
  const std::string checkpoint = out + "/" + checkpoint_name(last_step);

  // Resume and finish the interrupted epoch plus one more.
  const int epochs = last_epoch + 1;
  const CommandResult r =
      run_command(env_prefix() + " " + bin + " --config " + out +
                      "/config.ini --resume latest --epochs " + std::to_string(epochs),
                  60);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "resumed from " + checkpoint)) << r.output;
  EXPECT_TRUE(contains(r.output, "done: " + std::to_string(epochs) + " epoch(s)")) << r.output;

  const std::string after = read_text(csv);
  ASSERT_GT(after.size(), before.size());
  EXPECT_EQ(after.substr(0, before.size()), before) << "earlier rows were rewritten";
  EXPECT_EQ(count_lines_equal(after, metrics_header(kVaeTerms)), 1) << after;
  const auto rows_after = metrics_rows(csv, "train");
  ASSERT_GT(rows_after.size(), rows_before.size());
  // Appended rows continue the step count, strictly increasing, and reach the last epoch.
  long long prev = last_step;
  for (size_t i = rows_before.size(); i < rows_after.size(); ++i) {
    const long long step = std::stoll(rows_after[i][2]);
    EXPECT_GT(step, prev) << "row " << i << " of\n" << after;
    prev = step;
  }
  EXPECT_EQ(std::stoi(rows_after.back()[1]), epochs) << after;
}

TEST(AppSignal, SigtermCheckpointsAndResumeContinuesFiveTimes) {
  TempDir tmp;
  const std::string data = tmp.file("train.h5");
  write_synthetic(data, 4000, 1, 28, 28, 11, SynthDType::UInt8, 10);
  const int delays_ms[] = {0, 35, 120, 260, 530};
  for (int round = 0; round < 5; ++round) {
    stop_and_resume(data, tmp.file("run" + std::to_string(round)), delays_ms[round]);
    if (HasFatalFailure()) return;
  }
}

// A stop signal after the last step, during the final importance-weighted estimate (here far
// too long to wait for), ends it at a batch boundary: exit 143, the last epoch's checkpoint
// complete and resumable. With 2 ranks only rank 1 gets the signal, and both stop.
TEST(AppSignal, SigtermStopsTheFinalImportanceWeightedEstimate) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 200, 1, 8, 8, 4, SynthDType::UInt8, 4);
  for (const int ranks : {1, 2}) {
    SCOPED_TRACE(std::to_string(ranks) + " rank(s)");
    const std::string out = tmp.file("run" + std::to_string(ranks));
    const std::string bin = binary("vae_dist");
    KillMatchingOnExit cleanup(process_pattern(bin, out));
    ChildProcess run((ranks == 1 ? env_prefix() + " " : mpi_prefix(ranks) + " ") + bin +
                         " --data " + data + " --test-data " + data + " --out " + out +
                         " --epochs 1 --batch-size 32 --hidden 32 --latent-dim 4"
                         " --iw-samples 200000 --eval-batch-size 8 --progress false --threads 1",
                     out + ".log");
    ASSERT_TRUE(run.started());
    const std::string checkpoint = out + "/" + checkpoint_name(ranks == 1 ? 7 : 4);
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(checkpoint); }, 60))
        << run.output();
    // The checkpoint is renamed into place last: the estimate has begun, or is about to.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    pid_t target = run.pid();
    if (ranks > 1) {
      for (pid_t p : pids_matching(process_pattern(bin, out))) {
        std::ifstream env("/proc/" + std::to_string(p) + "/environ", std::ios::binary);
        const std::string all((std::istreambuf_iterator<char>(env)),
                              std::istreambuf_iterator<char>());
        if (all.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos) target = p;
      }
      ASSERT_NE(target, run.pid()) << "rank 1 not found";
    }
    ASSERT_EQ(::kill(target, SIGTERM), 0);
    const std::optional<int> status = run.wait_for(30);
    ASSERT_TRUE(status.has_value()) << "still running 30 s after SIGTERM:\n" << run.output();
    const std::string output = run.output();
    if (ranks == 1)
      EXPECT_TRUE(exited_with(*status, 143)) << describe_status(*status) << "\n" << output;
    else
      EXPECT_NE(exit_code_of(*status), 0) << describe_status(*status) << "\n" << output;
    EXPECT_TRUE(contains(output, "importance-weighted estimate stopped by signal 15")) << output;
    EXPECT_TRUE(contains(output, "stopped by signal 15 after step")) << output;
    EXPECT_FALSE(contains(output, "MPI_ABORT")) << output;
    const CommandResult again = run_command(
        (ranks == 1 ? env_prefix() + " " : mpi_prefix(ranks) + " ") + bin + " --config " + out +
            "/config.ini --resume latest --epochs 2"
            " --iw-samples 0",
        60);
    EXPECT_EQ(again.exit_code, 0) << again.output;
    EXPECT_TRUE(contains(again.output, "resumed from " + checkpoint)) << again.output;
  }
}

}  // namespace
}  // namespace vd::testing
