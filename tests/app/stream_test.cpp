// End-to-end runs of streamed data through the vae_dist binary: the automatic switch by
// --data-memory-mb and what start-up says about it, --stream always/never, the block-shuffle
// fields of a streamed run's checkpoint, a mid-epoch resume that changes how the data are held
// (it goes on at the next epoch and says why), a bad value met while streaming, and a training
// file truncated while it streams (exit 1 naming the file; the checkpoints before it stay and
// resume once the file is restored; on two ranks no rank hangs).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "io/checkpoint.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

// `rows` synthetic 32 x 32 images (1 KB each, chunks of 1024 rows: blocks of 1 MB).
std::string synth_file(const TempDir& tmp, int64_t rows = 3000) {
  const std::string file = tmp.file("synth.h5");
  write_synthetic(file, rows, 1, 32, 32, 5, SynthDType::UInt8, 4);
  return file;
}

std::string run(const std::string& data, const std::string& out, const std::string& extra,
                int epochs = 2) {
  return env_prefix() + " " + binary("vae_dist") + " --data " + shell_quote(data) +
         " --dataset /images --test-data '' --out " + shell_quote(out) +
         " --hidden 16 --latent-dim 2 --batch-size 50 --epochs " + std::to_string(epochs) +
         " --iw-samples 0 --grid-size 2 --progress false --threads 1 --log-every 1000 " + extra;
}

// Runs `command` and expects its exit code and every text in its output.
void expect_says(const std::string& command, int exit_code, const std::vector<std::string>& texts) {
  const CommandResult r = run_command(command, 120);
  EXPECT_EQ(r.exit_code, exit_code) << r.output;
  for (const std::string& t : texts) EXPECT_TRUE(contains(r.output, t)) << t << "\n" << r.output;
}

TEST(AppStream, TheSwitchIsAutomaticByTheMemoryBudgetAndSaysSo) {
  TempDir tmp;
  const std::string data = synth_file(tmp);
  expect_says(run(data, tmp.file("a"), ""), 0,
              {"data: in memory: 3.1 MB per rank fits the budget of", "auto: half of this node's",
               "peak RSS"});
  // Two windows of at least 6 blocks (a batch's block and 2, twice) cannot fit 2 MB.
  expect_says(run(data, tmp.file("b"), "--data-memory-mb 2"), 2,
              {"needs two windows of 6 blocks of 1024 rows (6.1 MB), more than the memory budget "
               "of 2.1 MB per rank"});
  // 13.8 MB in a budget of 13.6 MB: streamed, in windows of half the budget at most.
  TempDir big;
  expect_says(run(synth_file(big, 13500), tmp.file("b2"), "--data-memory-mb 13 --max-steps 30"), 0,
              {"data: streamed from the files (13.8 MB per rank is more than the budget of 13.6 "
               "MB (--data-memory-mb 13))",
               "windows of 6 blocks of 1024 rows"});
  expect_says(run(data, tmp.file("c"), "--data-memory-mb 2 --stream never"), 0,
              {"data: in memory: 3.1 MB per rank, --stream never"});
  expect_says(run(data, tmp.file("d"), "--stream always"), 0,
              {"data: streamed from the files (3.1 MB per rank, --stream always)"});
  expect_says(run(data, tmp.file("e"), "--stream sometimes"), 2, {"--stream"});
}

TEST(AppStream, AMidEpochResumeThatHoldsTheDataOtherwiseGoesOnAtTheNextEpoch) {
  TempDir tmp;
  const std::string data = synth_file(tmp);
  const std::string out = tmp.file("run");
  // 60 steps an epoch; stopped mid-epoch 1 while streamed.
  CommandResult r = run_command(run(data, out, "--stream always --max-steps 25"), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ckpt = find_latest_checkpoint(out);
  const CheckpointMeta meta = read_checkpoint_meta(ckpt);
  EXPECT_EQ(meta.step, 25);
  EXPECT_EQ(meta.cursor.shuffle_block_rows, 1024);
  EXPECT_GE(meta.cursor.shuffle_window_blocks, 6);

  // The same holding resumes mid-epoch ...
  r = run_command(run(data, out + "_same", "--stream always --resume " + shell_quote(ckpt)), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, "ordered its rows otherwise")) << r.output;
  EXPECT_TRUE(contains(r.output, "done: 2 epoch(s), 120 steps")) << r.output;
  // ... in memory the rest of epoch 1 cannot be replayed: epoch 2 follows, and start-up says so.
  r = run_command(run(data, out + "_mem", "--stream never --resume " + shell_quote(ckpt)), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output,
                       "ordered its rows otherwise (streamed, blocks of 1024 rows in windows of "))
      << r.output;
  EXPECT_TRUE(contains(r.output, "continues at the start of epoch 2")) << r.output;
  EXPECT_TRUE(contains(r.output, "done: 2 epoch(s), 85 steps")) << r.output;
}

TEST(AppStream, ABadValueMetWhileStreamingEndsTheRunNamingTheRow) {
  TempDir tmp;
  // Float rows in [0, 1] but for row 2500, which the Bernoulli likelihood cannot take.
  const int64_t n = 3000, d = 300;
  std::vector<float> v(static_cast<size_t>(n * d), 0.5f);
  v[static_cast<size_t>(2500 * d + 7)] = 1.5f;
  const std::string data = tmp.file("bad.h5");
  {
    h5::File f = h5::create_file(data);
    const std::vector<int64_t> dims{n, d};
    h5::CreateOptions chunked;
    chunked.chunk = {500, d};
    h5::write_dataset<float>(f, "/images", v, dims, chunked);
  }
  const CommandResult r = run_command(run(data, tmp.file("run"), "--stream always"), 120);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "row 2500, element 7 is 1.5, outside [0, 1]")) << r.output;
  EXPECT_TRUE(contains(r.output, data)) << r.output;
}

// A training file that changes under a streamed run: `ranks` ranks train on a copy of an
// uncompressed synthetic file in windows of 6 blocks (two windows an epoch on one rank, one on
// two), every checkpoint write pausing 1 s (VAE_DIST_TEST_SLOW_CHECKPOINT_MS); the copy is cut to
// 40% while epoch 1's checkpoint is written, so the windows read after it are read from the
// truncated file. Returns the run's output and exit code (-1, and a failure added, when the run
// ended before that checkpoint or did not end); `out` holds its checkpoints.
struct ChangedRun {
  std::string data, pristine, out, output;
  int exit_code = -1;
  int64_t size_before = 0, size_after = 0;
};
ChangedRun truncate_while_streaming(const TempDir& tmp, int ranks, int epochs) {
  namespace fs = std::filesystem;
  ChangedRun r;
  r.pristine = tmp.file("pristine.h5");
  r.data = tmp.file("train.h5");
  r.out = tmp.file("run");
  write_synthetic(r.pristine, 12288, 1, 32, 32, 5, SynthDType::UInt8, 4, /*deflate=*/0);
  fs::copy_file(r.pristine, r.data);
  std::string command = run(r.data, r.out, "--stream always --stream-window-mb 1", epochs);
  // "env A=1 ... vae_dist ...": the hook is one more variable, and mpiexec goes before vae_dist.
  command.insert(command.find(' ') + 1, "VAE_DIST_TEST_SLOW_CHECKPOINT_MS=1000 ");
  if (ranks > 1)
    command.insert(command.find(binary("vae_dist")),
                   "mpiexec -n " + std::to_string(ranks) + " --oversubscribe ");
  const int64_t steps = (12288 / ranks + 49) / 50;  // an epoch's, on every rank
  ChildProcess job(command, tmp.file("job.log"));
  EXPECT_TRUE(job.started());
  const std::string first_tmp = r.out + "/" + checkpoint_file_name(steps) + ".tmp";
  if (!wait_until([&] { return fs::exists(first_tmp) || !job.running(); }, 60) || !job.running()) {
    ADD_FAILURE() << "no checkpoint write while the run went on:\n" << job.output();
    return r;
  }
  r.size_before = static_cast<int64_t>(fs::file_size(r.data));
  r.size_after = r.size_before * 4 / 10;
  fs::resize_file(r.data, static_cast<uintmax_t>(r.size_after));  // as `truncate -s` does
  const std::optional<int> status = job.wait_for(60);
  if (!status) {
    ADD_FAILURE() << "the run still goes on 60 s after its data file was truncated:\n"
                  << job.output();
    return r;
  }
  r.exit_code = exit_code_of(*status);
  r.output = job.output();
  return r;
}

TEST(AppStream, ATrainingFileTruncatedWhileStreamingEndsTheRunAndTheCheckpointsBeforeItResume) {
  TempDir tmp;
  const ChangedRun r = truncate_while_streaming(tmp, 1, 2);
  ASSERT_NE(r.exit_code, -1);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error: data file '" + r.data +
                                     "' changed while the run was reading it: its size went "
                                     "from " +
                                     std::to_string(r.size_before) + " to " +
                                     std::to_string(r.size_after) + " bytes"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "restore the file, then resume with --resume latest")) << r.output;
  // Epoch 1's checkpoint (246 steps) stays, and none was written from the truncated file.
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(r.out))
    if (e.path().extension() == ".h5" || e.path().extension() == ".tmp")
      files.push_back(e.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{checkpoint_file_name(246)}) << r.output;
  EXPECT_EQ(read_checkpoint_meta(r.out + "/" + checkpoint_file_name(246)).step, 246);
  // Doing what the message says: restore the file, resume.
  std::filesystem::copy_file(r.pristine, r.data, std::filesystem::copy_options::overwrite_existing);
  const CommandResult resumed =
      run_command(run(r.data, r.out, "--stream always --stream-window-mb 1 --resume latest"), 120);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resumed from " + r.out + "/" + checkpoint_file_name(246)))
      << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "done: 2 epoch(s), 492 steps")) << resumed.output;
}

TEST(AppStream, ATrainingFileTruncatedWhileTwoRanksStreamItEndsEveryRank) {
  TempDir tmp;
  // One window an epoch per rank: epoch 2 trains on the window read before the change, epoch
  // 3's is read after it.
  const ChangedRun r = truncate_while_streaming(tmp, 2, 3);
  ASSERT_NE(r.exit_code, -1);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error (rank ")) << r.output;
  EXPECT_TRUE(contains(r.output, "data file '" + r.data + "' changed while the run was reading it"))
      << r.output;
  EXPECT_EQ(read_checkpoint_meta(r.out + "/" + checkpoint_file_name(123)).step, 123);
  EXPECT_FALSE(std::filesystem::exists(r.out + "/" + checkpoint_file_name(369))) << r.output;
}

}  // namespace
}  // namespace vd::testing
