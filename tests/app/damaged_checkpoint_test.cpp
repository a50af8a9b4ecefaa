// End-to-end runs of vae_latent and vae_dist --resume on damaged checkpoints: each ends with
// the error naming the file and exit code 1, never a signal. (HDF5 1.10 freed pointers it had
// never set when a damaged block of a group's link heap failed its checksum: the run printed
// the right error, then crashed in MPI_Finalize.) tests/io/checkpoint_test.cpp sweeps every
// byte in-process; these few runs check the exit path of the real programs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "support/heap_link_checkpoint.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A copy of `from` at `to` with every bit of the byte at `at` flipped.
void write_flipped(const std::string& from, const std::string& to, size_t at) {
  std::vector<char> bytes = file_bytes(from);
  ASSERT_LT(at, bytes.size());
  bytes[at] = static_cast<char>(~bytes[at]);
  std::ofstream(to, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A 16-unit MLP trained for 4 steps on synthetic 8 x 8 images: its checkpoint has 10 entries,
// more links per group than HDF5 keeps in a group's header by default.
class AppDamagedCheckpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    data_ = dir_->file("synth.h5");
    const CommandResult made =
        run_command(binary("vae_data") + " synth --out " + shell_quote(data_) +
                        " --n 64 --channels 1 --height 8 --width 8 --seed 3",
                    60);
    ASSERT_EQ(made.exit_code, 0) << made.output;
    const CommandResult r = train(dir_->file("run"), "");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    checkpoint_ = dir_->file("run") + "/checkpoint_step000000004.h5";
    ASSERT_TRUE(std::filesystem::exists(checkpoint_)) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }

  // vae_dist on the synthetic data into out, with extra options, on `ranks` ranks.
  static CommandResult train(const std::string& out, const std::string& extra, int ranks = 1) {
    return run_command((ranks == 1 ? env_prefix() : mpi_prefix(ranks)) + " " + binary("vae_dist") +
                           " --data " + shell_quote(data_) + " --test-data '' --out " +
                           shell_quote(out) +
                           " --hidden 16 --latent-dim 2 --epochs 1 --max-steps 4 --batch-size 8"
                           " --iw-samples 0 --progress false --threads 1 --grid-size 2 " +
                           extra,
                       120);
  }
  static CommandResult sample(const std::string& checkpoint) {
    return run_command(env_prefix() + " " + binary("vae_latent") + " sample --checkpoint " +
                           shell_quote(checkpoint) + " --threads 1 --size 2 --out " +
                           shell_quote(dir_->file("samples.png")),
                       120);
  }

  static TempDir* dir_;
  static std::string data_, checkpoint_;
};
TempDir* AppDamagedCheckpoint::dir_ = nullptr;
std::string AppDamagedCheckpoint::data_, AppDamagedCheckpoint::checkpoint_;

// The exit of a run on a damaged file: code 1 (an exit, not a signal) and a message that names
// the file and says it is damaged.
void expect_clean_failure(const CommandResult& r, const std::string& path) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error")) << r.output;
  EXPECT_TRUE(contains(r.output, path)) << r.output;
  EXPECT_TRUE(contains(r.output, "damaged")) << r.output;
  EXPECT_FALSE(contains(r.output, "Segmentation fault")) << r.output;
  EXPECT_FALSE(contains(r.output, "Signal:")) << r.output;  // Open MPI's report of a crash
}

// A checkpoint in the layout written before the groups kept their links in their headers,
// one byte of a link heap's block flipped: sampling and resuming end with the error.
TEST_F(AppDamagedCheckpoint, OlderLayoutWithADamagedLinkHeapFailsWithTheErrorNotASignal) {
  const std::string old = dir_->file("old.h5");
  write_heap_link_copy(checkpoint_, old);
  const CommandResult intact = sample(old);
  ASSERT_EQ(intact.exit_code, 0) << intact.output;
  const std::vector<size_t> blocks = heap_block_offsets(file_bytes(old));
  ASSERT_EQ(blocks.size(), 3u);  // /params, /adam/exp_avg, /adam/exp_avg_sq
  const std::string bad = dir_->file("old_bad.h5");
  for (size_t block : blocks) {
    write_flipped(old, bad, block + 40);  // inside the block's first link
    expect_clean_failure(sample(bad), bad);
  }
  // The first block holds the links of /params (written first), the group a load lists.
  write_flipped(old, bad, blocks[0] + 40);
  expect_clean_failure(train(dir_->file("resumed_old"), "--resume " + shell_quote(bad)), bad);
}

// The current layout, one byte of its last 8 KB flipped (the data sets' last headers and
// values): sampling and resuming, on one rank and on two, end with the error.
TEST_F(AppDamagedCheckpoint, DamageNearTheEndFailsWithTheErrorNotASignal) {
  const size_t size = std::filesystem::file_size(checkpoint_);
  ASSERT_GT(size, 8192u);
  const std::string bad = dir_->file("bad.h5");
  for (size_t from_end : {17u, 1500u, 4000u}) {
    write_flipped(checkpoint_, bad, size - from_end);
    const CommandResult r = sample(bad);
    if (r.exit_code == 0) continue;  // a byte that carried nothing
    expect_clean_failure(r, bad);
  }
  write_flipped(checkpoint_, bad, size - 17);
  expect_clean_failure(train(dir_->file("resumed"), "--resume " + shell_quote(bad)), bad);
  const CommandResult two = train(dir_->file("resumed2"), "--resume " + shell_quote(bad), 2);
  EXPECT_NE(two.exit_code, 0) << two.output;
  EXPECT_NE(two.exit_code, kTimedOut) << "the job hung:\n" << two.output;
  EXPECT_TRUE(contains(two.output, bad)) << two.output;
}

}  // namespace
}  // namespace vd::testing
