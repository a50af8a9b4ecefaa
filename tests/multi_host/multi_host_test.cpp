// Multi-host tests over a real TCP network: two network-namespace hosts on this machine
// (tests/support/netns_hosts.sh), mpirun starting ranks on both. The MPI test suites run there
// unchanged (P ranks equal one process on the union batch; bitwise resume), vae_dist matches
// one node, a resumed multi-host run is bitwise the uninterrupted one, and a rank killed on
// one host ends the whole job. Needs root and iproute2; skips, saying why, without them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

const std::string kScript = std::string(VD_SOURCE_DIR) + "/tests/support/netns_hosts.sh";

// The two hosts of this test process, made once for the whole suite.
class MultiHost : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skip_reason_ = "needs root to make network namespaces";
      return;
    }
    if (std::system("command -v ip >/dev/null 2>&1") != 0) {
      skip_reason_ = "needs iproute2 (bash launch/setup.sh --with-cluster)";
      return;
    }
    id_ = "mh" + std::to_string(getpid() % 100000);
    const CommandResult r = run_command(kScript + " up " + id_ + " 2", 60);
    if (r.exit_code != 0) {
      skip_reason_ = "cannot make network namespaces here: " + r.output;
      run_command(kScript + " down " + id_, 60);
      id_.clear();
    }
  }
  static void TearDownTestSuite() {
    if (!id_.empty()) run_command(kScript + " down " + id_, 60);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  }

  static std::string host(int i) { return id_ + "-h" + std::to_string(i); }
  // mpirun on host 1 with `per_host` ranks on each of the two hosts, started over the hosts'
  // own network (eth0), ranks on another host reached through the namespace launcher.
  static std::string mpirun(int per_host) {
    const std::string n = std::to_string(per_host);
    return kScript + " exec " + host(1) + " " + env_prefix() + " VD_TEST_HOSTS=1 mpirun --host " +
           host(1) + ":" + n + "," + host(2) + ":" + n + " --mca plm_rsh_agent " +
           shell_quote(kScript + " rsh") +
           " --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 --bind-to none"
           " --oversubscribe -x OMP_NUM_THREADS -x HWLOC_COMPONENTS -x VD_TEST_HOSTS";
  }

  static std::string id_;
  static std::string skip_reason_;
};
std::string MultiHost::id_;
std::string MultiHost::skip_reason_;

// Every dataset under /params of a checkpoint, by name.
std::map<std::string, std::vector<float>> checkpoint_params(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  h5::File f = h5::open_file(path);
  for (const std::string& name : h5::list_datasets(f, "/params"))
    out[name] = h5::read_dataset<float>(f, name).data;
  return out;
}

// The newest checkpoint file name in a run directory ("" when there is none).
std::string newest_checkpoint(const std::string& dir) {
  std::string best;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint_step", 0) == 0 && name > best) best = name;
  }
  return best;
}

std::string final_line_value(const std::string& output, const std::string& key) {
  const size_t at = output.rfind(key);
  if (at == std::string::npos) return "";
  return output.substr(at + key.size(), output.find_first_of("\n;", at) - at - key.size());
}

TEST_F(MultiHost, HostsAreSeparateNodesOfOneJob) {
  const CommandResult r = run_command(mpirun(2) + " hostname", 60);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::map<std::string, int> ranks_per_host;
  for (const std::string& line : split_lines(r.output))
    if (!line.empty()) ++ranks_per_host[line];
  EXPECT_EQ(ranks_per_host[host(1)], 2) << r.output;
  EXPECT_EQ(ranks_per_host[host(2)], 2) << r.output;
}

// The suites that compare P ranks with one process on the union of their batches (and resume
// bitwise), now with the gradient sum crossing the network: 2 hosts x 1 and x 2 ranks.
TEST_F(MultiHost, MpiTestSuitesPassAcrossHosts) {
  for (int per_host : {1, 2})
    for (const char* suite :
         {"parallel_comm_mpi_test", "parallel_grad_sync_mpi_test", "train_trainer_mpi_test"}) {
      const CommandResult r =
          run_command(mpirun(per_host) + " " + binary(std::string("tests/") + suite), 240);
      EXPECT_EQ(r.exit_code, 0) << suite << " on 2 hosts x " << per_host << " ranks:\n" << r.output;
      EXPECT_TRUE(contains(r.output, "PASSED")) << r.output;
    }
}

TEST_F(MultiHost, VaeDistAcrossHostsMatchesOneNodeAndResumesBitwise) {
  TempDir tmp;
  const std::string train = tmp.file("train.h5"), test = tmp.file("test.h5");
  write_synthetic(train, 2000, 1, 28, 28, 3, SynthDType::UInt8, 10);
  write_synthetic(test, 500, 1, 28, 28, 4, SynthDType::UInt8, 10);
  const std::string args = " --data " + train + " --test-data " + test +
                           " --epochs 2 --batch-size 32 --hidden 64 --latent-dim 4"
                           " --iw-samples 0 --progress false --checkpoint-every 1";
  const std::string bin = binary("vae_dist");
  // The same 4-rank world on one node (gradients through shared memory) and on two hosts.
  const CommandResult one =
      run_command(mpi_prefix(4) + " " + bin + args + " --out " + tmp.file("one"), 180);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const CommandResult two =
      run_command(mpirun(2) + " " + bin + args + " --out " + tmp.file("two"), 180);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_TRUE(contains(two.output, "shared memory + allreduce across 2 nodes")) << two.output;
  // The node sums add in another order than one node's, so equal to rounding, not bitwise.
  const double a = std::stod(final_line_value(one.output, "final test loss "));
  const double b = std::stod(final_line_value(two.output, "final test loss "));
  EXPECT_NEAR(a, b, 1e-5 * std::abs(a)) << one.output << two.output;

  // Stopped mid-epoch (step 20; an epoch is 15 steps) and resumed on the same hosts: bitwise
  // the same as the uninterrupted run.
  const CommandResult first = run_command(
      mpirun(2) + " " + bin + args + " --max-steps 20 --out " + tmp.file("resumed"), 180);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const CommandResult rest = run_command(
      mpirun(2) + " " + bin + args + " --resume latest --out " + tmp.file("resumed"), 180);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_TRUE(contains(rest.output, "resumed from")) << rest.output;
  const std::string last = "/" + newest_checkpoint(tmp.file("two"));
  EXPECT_EQ(last, "/" + newest_checkpoint(tmp.file("resumed")));
  const auto want = checkpoint_params(tmp.file("two") + last);
  const auto got = checkpoint_params(tmp.file("resumed") + last);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, values] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got.at(name) == values) << name << " differs after the resume";
  }
}

TEST_F(MultiHost, KilledRankOnOneHostEndsTheWholeJob) {
  TempDir tmp;
  const std::string data = tmp.file("train.h5");
  write_synthetic(data, 4000, 1, 28, 28, 3, SynthDType::UInt8, 10);
  const std::string out = tmp.file("killed");
  const std::string bin = binary("vae_dist");
  const std::string pattern = process_pattern(bin, out);
  KillMatchingOnExit cleanup(pattern);
  // Far more epochs than the test waits for: the job only ends because a rank dies.
  ChildProcess job(mpirun(2) + " " + bin + " --data " + data + " --test-data '' --out " + out +
                       " --epochs 100000 --batch-size 32 --hidden 128 --latent-dim 4"
                       " --log-every 10 --checkpoint-every 0 --progress false",
                   tmp.file("job.log"));
  ASSERT_TRUE(job.started());
  const std::string csv = out + "/metrics.csv";
  ASSERT_TRUE(training_started(job, csv, 60));
  // A rank on host 2: a vae_dist process in that host's network namespace.
  const CommandResult on_h2 = run_command("ip netns pids " + host(2), 10);
  pid_t victim = 0;
  for (const std::string& line : split_lines(on_h2.output)) {
    if (line.empty()) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(line));
    const std::vector<pid_t> ranks = pids_matching(pattern);
    if (std::find(ranks.begin(), ranks.end(), pid) != ranks.end()) victim = pid;
  }
  ASSERT_NE(victim, 0) << "no vae_dist rank found on " << host(2) << ":\n" << job.output();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto t0 = Clock::now();
  const std::optional<int> status = job.wait_for(30);
  ASSERT_TRUE(status.has_value()) << "mpirun still runs 30 s after a rank was killed:\n"
                                  << job.output();
  const double seconds = seconds_since(t0);
  EXPECT_LT(seconds, 10.0) << job.output();
  std::printf("the job ended %.2f s after a rank on %s was killed\n", seconds, host(2).c_str());
  EXPECT_NE(exit_code_of(*status), 0) << describe_status(*status) << "\n" << job.output();
  EXPECT_TRUE(wait_until([&] { return pids_matching(pattern).empty(); }, 5))
      << "vae_dist processes with --out " << out << " remain after mpirun exited";
}

}  // namespace
}  // namespace vd::testing
