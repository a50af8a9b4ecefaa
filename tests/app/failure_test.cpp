// End-to-end tests that a failure on ONE rank of a 2-rank mpiexec job ends the whole job
// promptly: bad data in rank 1's shard, an error on rank 0 after start-up, and a rank killed
// with SIGKILL mid-run; and that an uncreatable run directory stops every rank at once.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(AppFailure, NanInRankOnesShardEndsTheWholeJob) {
  TempDir tmp;
  const std::string data = tmp.file("nan.h5");
  constexpr int64_t kRows = 64, kSide = 28;
  write_synthetic(data, kRows, 1, kSide, kSide, 5, SynthDType::Float32, 10);
  // With 2 ranks, rank 1 reads rows [32, 64); poison row 50, element 0 only.
  constexpr int64_t kBadRow = 50;
  {
    h5::File f = h5::open_file(data, /*writable=*/true);
    h5::Dataset images = h5::open_dataset(f, "/images");
    std::vector<float> row(static_cast<size_t>(kSide * kSide));
    h5::read_rows(images, kBadRow, 1, row.data());
    row[0] = std::numeric_limits<float>::quiet_NaN();
    h5::write_rows(images, kBadRow, 1, row.data());
  }
  {  // The file really holds exactly one non-finite value, in rank 1's half.
    h5::File f = h5::open_file(data);
    const auto all = h5::read_dataset<float>(f, "/images");
    int64_t bad = 0, bad_index = -1;
    for (size_t i = 0; i < all.data.size(); ++i)
      if (!std::isfinite(all.data[i])) ++bad, bad_index = static_cast<int64_t>(i);
    ASSERT_EQ(bad, 1);
    ASSERT_EQ(bad_index, kBadRow * kSide * kSide);
  }

  const CommandResult r =
      run_command(mpi_prefix(2) + " " + binary("vae_dist") + " --data " + data +
                      " --test-data '' --out " + tmp.file("run") +
                      " --epochs 1 --batch-size 8 --hidden 16 --latent-dim 2 --progress false",
                  60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, kTimedOut) << "the job hung:\n" << r.output;
  EXPECT_LT(r.seconds, 30.0) << r.output;
  EXPECT_TRUE(contains(r.output, "rank 1")) << r.output;
  EXPECT_TRUE(contains(r.output, "row " + std::to_string(kBadRow))) << r.output;
  // The message prints the value with iostreams, i.e. "nan"; accept any spelling of NaN.
  EXPECT_TRUE(contains(lower(r.output), "nan")) << r.output;
  EXPECT_TRUE(contains(r.output, data)) << r.output;
  // Rank 0's shard is clean: no rank 0 error, and no training started.
  EXPECT_FALSE(contains(r.output, "error (rank 0)")) << r.output;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("run") + "/metrics.csv")) << r.output;
}

// An --out that cannot be made (under a regular file) is refused before start-up: rank 0
// finds it while it locks the run directory, and every rank exits with it, with one message.
TEST(AppFailure, UncreatableRunDirectoryIsRefusedOnEveryRankBeforeStartUp) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 5, SynthDType::UInt8, 4);
  { std::ofstream(tmp.file("blocker")) << "x"; }
  const std::string out = tmp.file("blocker") + "/run";
  const CommandResult r = run_command(
      mpi_prefix(2) + " " + binary("vae_dist") + " --data " + data + " --test-data '' --out " +
          out + " --epochs 50 --batch-size 8 --hidden 16 --latent-dim 2 --progress false",
      60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error: cannot create the run directory '" + out +
                                     "': Not a directory; choose another --out"))
      << r.output;
  EXPECT_EQ(r.output.find("error"), r.output.rfind("error")) << r.output;
  EXPECT_FALSE(contains(r.output, "MPI_ABORT")) << r.output;
}

// Rank 0 fails after the ranks share the model (it alone writes config.ini; here a directory
// of that name, since root writes to read-only directories) while rank 1 goes on into
// training: rank 0 must not wait in a collective while unwinding, and the error gives the
// reason.
TEST(AppFailure, RunDirectoryErrorOnRankZeroEndsTheWholeJob) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 5, SynthDType::UInt8, 4);
  const std::string out = tmp.file("run");
  std::filesystem::create_directories(out + "/config.ini");
  const CommandResult r = run_command(
      mpi_prefix(2) + " " + binary("vae_dist") + " --data " + data + " --test-data '' --out " +
          out + " --epochs 50 --batch-size 8 --hidden 16 --latent-dim 2 --progress false",
      60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 30.0) << r.output;
  EXPECT_TRUE(contains(r.output, "error (rank 0)")) << r.output;
  EXPECT_TRUE(contains(r.output, "cannot write " + out + "/config.ini: Is a directory"))
      << r.output;
}

TEST(AppFailure, KilledRankEndsTheWholeJob) {
  TempDir tmp;
  const std::string data = tmp.file("train.h5");
  write_synthetic(data, 4000, 1, 28, 28, 3, SynthDType::UInt8, 10);
  const std::string out = tmp.file("killed_rank_run");
  const std::string bin = binary("vae_dist");
  const std::string pattern = process_pattern(bin, out);
  KillMatchingOnExit cleanup(pattern);

  // Far more epochs than the test waits for: the job only ends because a rank dies.
  ChildProcess job(mpi_prefix(2) + " " + bin + " --data " + data + " --test-data '' --out " + out +
                       " --epochs 100000 --batch-size 32 --hidden 128 --latent-dim 4"
                       " --log-every 10 --checkpoint-every 0 --progress false",
                   tmp.file("job.log"));
  ASSERT_TRUE(job.started());
  const std::string csv = out + "/metrics.csv";
  ASSERT_TRUE(training_started(job, csv, 40));

  const std::vector<pid_t> ranks = pids_matching(pattern);
  ASSERT_EQ(ranks.size(), 2u) << "expected the 2 vae_dist rank processes:\n" << job.output();
  ASSERT_EQ(::kill(ranks.back(), SIGKILL), 0);
  const auto t0 = Clock::now();

  const std::optional<int> status = job.wait_for(30);
  ASSERT_TRUE(status.has_value()) << "mpiexec still runs 30 s after a rank was killed:\n"
                                  << job.output();
  EXPECT_LT(seconds_since(t0), 30.0);
  EXPECT_NE(exit_code_of(*status), 0) << describe_status(*status) << "\n" << job.output();
  // The surviving rank must not linger once mpiexec is gone (a short grace for the reaper).
  EXPECT_TRUE(wait_until([&] { return pids_matching(pattern).empty(); }, 3))
      << "vae_dist processes with --out " << out << " remain after mpiexec exited";
}

}  // namespace
}  // namespace vd::testing
