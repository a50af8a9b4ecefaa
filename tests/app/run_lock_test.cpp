// End-to-end tests of one run per run directory: a second vae_dist on a running run's --out (on
// one rank and on two) is refused naming the first run and writes nothing, while the first
// finishes intact; a run killed with SIGKILL leaves a lock the next run takes over, saying so.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "data/dataset_file.hpp"
#include "io/checkpoint.hpp"
#include "io/metrics_log.hpp"
#include "io/run_lock.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

namespace fs = std::filesystem;

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

// The state field of /proc/<pid>/stat: 'T' once SIGSTOP has stopped the process.
char process_state(pid_t pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

// Every file of dir with its content: what a refused run must leave exactly as it was.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    files[e.path().filename().string()] = read_text(e.path().string());
  return files;
}

std::string names(const std::map<std::string, std::string>& files) {
  std::string s;
  for (const auto& [name, content] : files)
    s += name + " (" + std::to_string(content.size()) + ") ";
  return s;
}

int count_lines_equal(const std::string& text, const std::string& line) {
  int n = 0;
  for (const std::string& l : split_lines(text)) n += l == line;
  return n;
}

TEST(AppRunLock, SecondRunOnARunningRunsOutIsRefusedAndTheFirstFinishesIntact) {
  TempDir tmp;
  const std::string data = tmp.file("train.h5");
  write_synthetic(data, 2000, 1, 28, 28, 11, SynthDType::UInt8, 10);
  const std::string out = tmp.file("run");
  const std::string bin = binary("vae_dist");
  const std::string args = " --data " + data + " --test-data '' --out " + out +
                           " --epochs 2 --batch-size 32 --hidden 64 --latent-dim 4 --log-every 5"
                           " --checkpoint-every 1 --keep-checkpoints 10 --iw-samples 0"
                           " --progress false";
  KillMatchingOnExit cleanup(process_pattern(bin, out));
  // Each checkpoint write pauses 1 s with its .tmp half written: once the first epoch's .tmp
  // exists the run has at least that second to live, a whole epoch after it, whatever the
  // machine's load.
  ChildProcess first(env_prefix() + " VAE_DIST_TEST_SLOW_CHECKPOINT_MS=1000 " + bin + args,
                     tmp.file("first.log"));
  ASSERT_TRUE(first.started());
  const std::string csv = out + "/metrics.csv";
  const std::string tmp_file = out + "/" + checkpoint_file_name(63) + ".tmp";  // 63 steps/epoch
  ASSERT_TRUE(wait_until([&] { return fs::exists(tmp_file) || !first.running(); }, 60))
      << first.output();
  ASSERT_TRUE(first.running()) << first.output();
  // Frozen, the first run holds its lock for as long as the test needs, and nothing in the
  // directory changes unless the second run writes it.
  ASSERT_EQ(::kill(first.pid(), SIGSTOP), 0);
  ASSERT_TRUE(wait_until([&] { return process_state(first.pid()) == 'T'; }, 10))
      << "state " << process_state(first.pid()) << "\n"
      << first.output();
  const std::map<std::string, std::string> before = snapshot(out);
  ASSERT_TRUE(before.count("config.ini") && before.count("metrics.csv")) << names(before);

  const std::string holder = "host " + host_name() + ", pid " + std::to_string(first.pid());
  for (const int ranks : {1, 2}) {
    SCOPED_TRACE(std::to_string(ranks) + " rank(s)");
    const std::string launch = ranks == 1 ? env_prefix() : mpi_prefix(ranks);
    // The very same command: another run of it, on the same --out.
    const CommandResult second = run_command(launch + " " + bin + args, 60);
    EXPECT_EQ(second.exit_code, 2) << second.output;
    EXPECT_TRUE(contains(second.output, "error: the run directory '" + out +
                                            "' is in use by another vae_dist run (" + holder +
                                            ", started "))
        << second.output;
    // The holder's command, as a shell takes it.
    EXPECT_TRUE(contains(second.output, ", started ") &&
                contains(second.output, ": " + bin + " --data " + data + " --test-data '' --out " +
                                            out + " --epochs 2"))
        << second.output;
    EXPECT_TRUE(contains(second.output, "wait for it to end, stop it (kill " +
                                            std::to_string(first.pid()) + " on " + host_name() +
                                            "), or choose another --out"))
        << second.output;
    // Rank 0 speaks once; the other rank exits with it, without an abort.
    EXPECT_EQ(second.output.find("error"), second.output.rfind("error")) << second.output;
    EXPECT_FALSE(contains(second.output, "MPI_ABORT")) << second.output;
    // Refused before a line of its own: no options echo, no training.
    EXPECT_FALSE(contains(second.output, "vae_dist: ")) << second.output;
    const std::map<std::string, std::string> after = snapshot(out);
    EXPECT_TRUE(after == before) << "the refused run changed the run directory: before "
                                 << names(before) << "; after " << names(after);
  }

  ASSERT_EQ(::kill(first.pid(), SIGCONT), 0);
  const std::optional<int> status = first.wait_for(120);
  ASSERT_TRUE(status.has_value()) << "the first run did not finish:\n" << first.output();
  const std::string output = first.output();
  ASSERT_TRUE(exited_with(*status, 0)) << describe_status(*status) << "\n" << output;
  EXPECT_TRUE(contains(output, "done: 2 epoch(s)")) << output;

  // The first run's files are its own: one header, steps rising to its last epoch, its config,
  // and one readable checkpoint per epoch holding that config.
  const std::string metrics = read_text(csv);
  EXPECT_EQ(count_lines_equal(metrics, metrics_header(kVaeTerms)), 1) << metrics;
  const auto rows = metrics_rows(csv, "train");
  ASSERT_FALSE(rows.empty()) << metrics;
  for (size_t i = 1; i < rows.size(); ++i)
    EXPECT_GT(std::stoll(rows[i][2]), std::stoll(rows[i - 1][2])) << "row " << i << "\n" << metrics;
  EXPECT_EQ(rows.front()[1], "1") << metrics;
  EXPECT_EQ(rows.back()[1], "2") << metrics;
  const std::string config = read_text(out + "/config.ini");
  EXPECT_EQ(config, before.at("config.ini"));
  const std::vector<int64_t> steps = checkpoint_steps(out);
  ASSERT_EQ(steps, (std::vector<int64_t>{63, 126}));
  for (const int64_t step : steps) {
    const CheckpointMeta meta = read_checkpoint_meta(out + "/" + checkpoint_file_name(step));
    EXPECT_EQ(meta.step, step);
    EXPECT_EQ(meta.config_ini, config);
  }
  EXPECT_EQ(steps.back(), std::stoll(rows.back()[2]));
  // Released at the end: the lock file names nobody.
  EXPECT_EQ(read_text(out + "/" + RunLock::kFileName), "");
}

TEST(AppRunLock, RunKilledWithSigkillLeavesALockTheNextRunTakesOver) {
  TempDir tmp;
  const std::string data = tmp.file("train.h5");
  write_synthetic(data, 256, 1, 8, 8, 5, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  const std::string bin = binary("vae_dist");
  const std::string args = " --data " + data + " --test-data '' --out " + out +
                           " --batch-size 16 --hidden 16 --latent-dim 2 --log-every 2"
                           " --checkpoint-every 0 --iw-samples 0 --progress false";
  KillMatchingOnExit cleanup(process_pattern(bin, out));
  pid_t killed = -1;
  {
    ChildProcess run(env_prefix() + " " + bin + args + " --epochs 100000", tmp.file("a.log"));
    ASSERT_TRUE(run.started());
    ASSERT_TRUE(training_started(run, out + "/metrics.csv", 60));
    killed = run.pid();
    ASSERT_EQ(::kill(killed, SIGKILL), 0);
    const std::optional<int> status = run.wait_for(30);
    ASSERT_TRUE(status.has_value());
    ASSERT_EQ(exit_code_of(*status), 128 + SIGKILL);
  }
  const std::string record = read_text(out + "/" + RunLock::kFileName);
  EXPECT_TRUE(contains(record, "pid=" + std::to_string(killed) + "\n")) << record;

  const CommandResult next = run_command(env_prefix() + " " + bin + args + " --epochs 1", 120);
  ASSERT_EQ(next.exit_code, 0) << next.output;
  EXPECT_TRUE(contains(next.output, "note: took over the lock of a run that is gone: host " +
                                        host_name() + ", pid " + std::to_string(killed) +
                                        ", started "))
      << next.output;
  EXPECT_EQ(read_text(out + "/" + RunLock::kFileName), "");
}

}  // namespace
}  // namespace vd::testing
