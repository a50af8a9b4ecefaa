// Tests of streamed data: EpochPlan's block shuffle (a permutation, blocks aligned to file rows,
// windows of whole blocks, a pure function of seed/epoch/rank), a streamed Shard (the same
// rows and statistics as one in memory, bitwise), and RowStream (every step's batch equals the
// in-memory gather of the plan's rows, across windows and epochs and from a mid-epoch start;
// a bad value in a later block fails the step that needs it, naming the row; a file truncated
// or written over between windows fails the next read, naming the file and the change).
#include "data/row_stream.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "data/epoch_plan.hpp"
#include "data/file_watch.hpp"
#include "data/shard.hpp"
#include "data/standardize.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Rank r of `world`'s rows of `file`'s /images, streamed (or in memory).
Shard shard_of(const std::string& file, int rank = 0, int world = 1,
               ValueCheck check = ValueCheck::UnitInterval,
               Residency residency = Residency::Streamed, const std::string& name = "/images") {
  return Shard::read(file, name, rank, world, check, std::nullopt, residency);
}

// A uint8 file of `n` synthetic 4 x 4 images in `dir`.
std::string u8_file(const TempDir& dir, int64_t n) {
  const std::string path = dir.file("u8_" + std::to_string(n) + ".h5");
  write_synthetic(path, n, 1, 4, 4, 3, SynthDType::UInt8, 4);
  return path;
}

TEST(BlockShuffle, IsAPermutationOfWholeAlignedBlocksInWindows) {
  for (int64_t n : {61, 1000}) {
    for (int world : {1, 2, 3}) {
      for (int64_t first : {0, 13}) {
        for (int64_t br : {1, 5, 7}) {
          for (int64_t wb : {1, 3, 4}) {
            for (int r = 0; r < world; ++r) {
              SCOPED_TRACE("n=" + std::to_string(n) + " world=" + std::to_string(world) +
                           " rank=" + std::to_string(r) + " first=" + std::to_string(first) +
                           " block=" + std::to_string(br) + " window=" + std::to_string(wb));
              EpochPlan p(n, r, world, 4, BlockShuffle{first, br, wb});
              const int64_t f0 = first + p.shard().begin;
              // Blocks tile the shard and end at file rows that are multiples of br.
              int64_t at = 0;
              for (const RowRange& b : p.blocks()) {
                ASSERT_EQ(b.begin, at);
                ASSERT_GT(b.size(), 0);
                ASSERT_LE(b.size(), br);
                if (b.end != p.shard().size()) {
                  ASSERT_EQ((f0 + b.end) % br, 0);
                }
                at = b.end;
              }
              ASSERT_EQ(at, p.shard().size());
              p.shuffle(3, 2);
              EXPECT_EQ(p.windows().size(), p.windows_of(3, 2).size());
              // Windows: consecutive positions, whole blocks, counts within one block.
              std::set<int64_t> rows;
              int64_t pos = 0;
              size_t fewest = SIZE_MAX, most = 0;
              const auto again = p.windows_of(3, 2);
              for (size_t w = 0; w < p.windows().size(); ++w) {
                const PlanWindow& win = p.windows()[w];
                ASSERT_EQ(win.begin, pos);
                ASSERT_EQ(win.blocks.size(), again[w].blocks.size());
                fewest = std::min(fewest, win.blocks.size());
                most = std::max(most, win.blocks.size());
                std::set<int64_t> in_blocks;
                for (size_t k = 0; k < win.blocks.size(); ++k) {
                  EXPECT_EQ(win.blocks[k].begin, again[w].blocks[k].begin);
                  for (int64_t x = win.blocks[k].begin; x < win.blocks[k].end; ++x)
                    in_blocks.insert(x);
                }
                ASSERT_EQ(static_cast<int64_t>(in_blocks.size()), win.end - win.begin);
                // The steps' rows of this window are exactly its blocks' rows.
                for (int64_t q = win.begin; q < win.end; ++q) {
                  const int64_t row = p.local_rows(q / 4)[static_cast<size_t>(q % 4)];
                  EXPECT_TRUE(in_blocks.count(row));
                  rows.insert(row);
                }
                pos = win.end;
              }
              EXPECT_EQ(pos, p.shard().size());
              EXPECT_EQ(static_cast<int64_t>(rows.size()), p.shard().size());
              EXPECT_LE(most - fewest, 1u);
            }
          }
        }
      }
    }
  }
}

TEST(BlockShuffle, IsAPureFunctionOfSeedEpochAndRankAndMixesBlocks) {
  const BlockShuffle bs{0, 8, 4};
  EpochPlan a(2000, 1, 3, 16, bs), b(2000, 1, 3, 16, bs), c(2000, 2, 3, 16, bs);
  a.shuffle(9, 4);
  b.shuffle(9, 4);
  c.shuffle(9, 4);
  const auto rows = [](const EpochPlan& p) {
    std::vector<int64_t> v;
    for (int64_t s = 0; s < p.steps_per_epoch(); ++s)
      for (int64_t r : p.local_rows(s)) v.push_back(r);
    return v;
  };
  EXPECT_EQ(rows(a), rows(b));
  EXPECT_NE(rows(a), rows(c));
  b.shuffle(9, 5);
  EXPECT_NE(rows(a), rows(b));
  // Not block-sequential: the first window's first batch mixes rows of several blocks.
  std::set<int64_t> blocks;
  for (int64_t r : a.local_rows(0)) blocks.insert(r / 8);
  EXPECT_GT(blocks.size(), 4u);
}

// A float data set [n, 3] of values in (0, 1), chunked by 4 rows, with `bad` at row `bad_row`.
std::string float_file(const TempDir& dir, int64_t n, int64_t bad_row = -1, float bad = 0) {
  std::vector<float> v(static_cast<size_t>(n * 3));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 101) / 101.0f + 1e-3f;
  if (bad_row >= 0) v[static_cast<size_t>(bad_row * 3 + 1)] = bad;
  const std::string path = dir.file("f" + std::to_string(bad_row) + ".h5");
  h5::File f = h5::create_file(path);
  const std::vector<int64_t> dims{n, 3};
  h5::CreateOptions chunked;
  chunked.chunk = {4, 3};
  h5::write_dataset<float>(f, "/images", v, dims, chunked);
  return path;
}

TEST(StreamedShard, GathersAndStandardisesAsInMemory) {
  TempDir dir;
  const std::string u8 = u8_file(dir, 61);
  const std::string f32 = float_file(dir, 61);
  for (const std::string& file : {u8, f32}) {
    for (int world : {1, 2, 3}) {
      for (int r = 0; r < world; ++r) {
        const Shard mem = shard_of(file, r, world, ValueCheck::UnitInterval, Residency::InMemory);
        const Shard str = shard_of(file, r, world);
        ASSERT_TRUE(str.streamed());
        EXPECT_EQ(str.rows(), mem.rows());
        EXPECT_EQ(str.labels(), mem.labels());
        // Runs, repeats and reversals of rows.
        std::vector<int64_t> idx;
        for (int64_t i = mem.rows() - 1; i >= 0; i -= 3) idx.push_back(i);
        for (int64_t i = 0; i < mem.rows(); ++i) idx.push_back(i);
        idx.push_back(0);
        std::vector<float> a(idx.size() * static_cast<size_t>(mem.sample_size())), b(a.size());
        mem.gather(idx, a.data());
        str.gather(idx, b.data());
        EXPECT_TRUE(same_bits(a, b)) << file << " rank " << r << " of " << world;
      }
    }
  }
  // --standardize: the same statistics from two reads of the file, the same scaled rows.
  Shard mem = shard_of(f32, 0, 1, ValueCheck::None, Residency::InMemory);
  Shard str = shard_of(f32, 0, 1, ValueCheck::None);
  const SumOverRanks alone = [](std::span<double>) {};
  const FeatureScaling sm = feature_scaling(mem, alone), ss = feature_scaling(str, alone);
  EXPECT_EQ(sm.mean, ss.mean);
  EXPECT_EQ(sm.std, ss.std);
  standardize(mem, sm);
  standardize(str, ss);
  std::vector<int64_t> idx{5, 6, 7, 60, 0};
  std::vector<float> a(15), b(15);
  mem.gather(idx, a.data());
  str.gather(idx, b.data());
  EXPECT_TRUE(same_bits(a, b));
  // And they were scaled: a fresh shard gives the raw values.
  const Shard raw = shard_of(f32, 0, 1, ValueCheck::None, Residency::InMemory);
  std::vector<float> c(15);
  raw.gather(idx, c.data());
  EXPECT_FALSE(same_bits(a, c));
}

TEST(StreamedShard, DeflateChunksDecodedByLibdeflateEqualHdf5sOwnRead) {
  TempDir dir;
  // uint8 and float32, deflate at 1 and 9, chunks of 7 rows (an edge chunk of 2), one chunk
  // that does not compress (HDF5 then stores it raw).
  const int64_t n = 100, d = 12;
  std::vector<uint8_t> u(static_cast<size_t>(n * d));
  std::vector<float> f(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    u[i] = static_cast<uint8_t>(i / 40 < 10 ? (i * 2654435761u) >> 24 : i % 3);
    f[i] = static_cast<float>(u[i]) / 255.0f;
  }
  const std::vector<int64_t> dims{n, d};
  for (int level : {1, 9}) {
    const std::string file = dir.file("z" + std::to_string(level) + ".h5");
    {
      h5::File h = h5::create_file(file);
      h5::CreateOptions o;
      o.chunk = {7, d};
      o.deflate = level;
      h5::write_dataset<uint8_t>(h, "/images", u, dims, o);
      h5::write_dataset<float>(h, "/floats", f, dims, o);
    }
    for (const char* name : {"/images", "/floats"}) {
      for (int world : {1, 3}) {
        for (int r = 0; r < world; ++r) {
          const Shard mem =
              shard_of(file, r, world, ValueCheck::UnitInterval, Residency::InMemory, name);
          const Shard str =
              shard_of(file, r, world, ValueCheck::UnitInterval, Residency::Streamed, name);
          std::vector<int64_t> idx;
          for (int64_t i = 0; i < mem.rows(); ++i) idx.push_back(i);
          for (int64_t i = mem.rows() - 1; i >= 0; i -= 4) idx.push_back(i);
          std::vector<float> a(idx.size() * d), b(a.size());
          mem.gather(idx, a.data());
          str.gather(idx, b.data());
          EXPECT_TRUE(same_bits(a, b)) << name << " level " << level << " rank " << r;
        }
      }
    }
  }
  // A damaged chunk is a DataError naming the file, not a crash or wrong rows.
  const std::string file = dir.file("z9.h5");
  const Shard str = shard_of(file);
  {
    // Where /images' chunk 3 lies in the file; its bytes overwritten.
    haddr_t addr = 0;
    hsize_t bytes = 0;
    {
      h5::File h = h5::open_file(file);
      h5::Dataset dset = h5::open_dataset(h, "/images");
      const hsize_t at[2] = {21, 0};
      unsigned mask = 0;
      ASSERT_GE(H5Dget_chunk_info_by_coord(dset, at, &mask, &addr, &bytes), 0);
    }
    std::fstream h(file, std::ios::in | std::ios::out | std::ios::binary);
    h.seekp(static_cast<std::streamoff>(addr));
    const std::string junk(static_cast<size_t>(bytes), '\x5a');
    h.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  std::vector<float> x(static_cast<size_t>(n * d));
  try {
    str.gather(all, x.data());
    ADD_FAILURE() << "a damaged file read without an error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

// Every step of `epochs` epochs from (first_epoch, first_step) equals the in-memory gather.
void expect_stream_equals_memory(const std::string& file, int rank, int world, BlockShuffle bs,
                                 int batch, int64_t first_epoch, int64_t first_step) {
  const Shard mem = shard_of(file, rank, world, ValueCheck::UnitInterval, Residency::InMemory);
  const Shard str = shard_of(file, rank, world);
  EpochPlan plan(mem.global_rows(), rank, world, batch, bs);
  RowStream stream(str, plan);
  const auto D = static_cast<size_t>(mem.sample_size());
  std::vector<float> a(static_cast<size_t>(batch) * D), b(a.size());
  int64_t steps = 0;
  for (int64_t e = first_epoch; e < first_epoch + 3; ++e) {
    plan.shuffle(11, e);
    const int64_t first = e == first_epoch ? first_step : 0;
    if (e == first_epoch) stream.start(11, e, first, first_epoch + 2);
    for (int64_t st = first; st < plan.steps_per_epoch(); ++st, ++steps) {
      const auto rows = plan.local_rows(st);
      std::fill(a.begin(), a.end(), -1.0f);
      std::fill(b.begin(), b.end(), -2.0f);
      mem.gather(rows, a.data());
      stream.gather(e, st, b.data());
      a.resize(rows.size() * D);
      b.resize(rows.size() * D);
      ASSERT_TRUE(same_bits(a, b)) << "epoch " << e << " step " << st;
      a.resize(static_cast<size_t>(batch) * D);
      b.resize(a.size());
    }
  }
  EXPECT_GT(steps, 10);
}

TEST(RowStream, BatchesEqualTheInMemoryGatherAcrossWindowsAndEpochs) {
  TempDir dir;
  const std::string u8 = u8_file(dir, 301);
  const std::string f32 = float_file(dir, 301);
  for (const std::string& file : {u8, f32})
    for (int world : {1, 2, 3})
      for (int r = 0; r < world; ++r)
        // Blocks of 5 rows in windows of 6 (about 3..4 windows per shard), and of 2 in 8; a
        // batch of 4 always lies in two windows at most.
        for (BlockShuffle bs : {BlockShuffle{0, 5, 6}, BlockShuffle{7, 2, 8}}) {
          SCOPED_TRACE(file + " rank " + std::to_string(r) + " of " + std::to_string(world) +
                       " block " + std::to_string(bs.block_rows));
          expect_stream_equals_memory(file, r, world, bs, 4, 1, 0);
          // A resumed run starts mid-epoch, also mid-window.
          expect_stream_equals_memory(file, r, world, bs, 4, 2, 9);
        }
}

TEST(RowStream, AWindowThatCannotHoldABatchIsRefused) {
  TempDir dir;
  const Shard str = shard_of(u8_file(dir, 100));
  EpochPlan plan(100, 0, 1, 16, BlockShuffle{0, 2, 2});  // windows of 4 rows, batches of 16
  RowStream stream(str, plan);
  plan.shuffle(1, 1);
  stream.start(1, 1, 0, 1);
  std::vector<float> x(16 * 16);
  EXPECT_THROW(stream.gather(1, 0, x.data()), ShapeError);
}

TEST(RowStream, ABadValueInALaterBlockFailsTheStepThatReadsItNamingTheRow) {
  TempDir dir;
  const std::string file = float_file(dir, 200, 150, std::nanf(""));
  // Streamed, the file opens: values are checked as they are read.
  const Shard str = shard_of(file);
  EpochPlan plan(200, 0, 1, 4, BlockShuffle{0, 10, 6});
  RowStream stream(str, plan);
  std::vector<float> x(4 * 3);
  // The first step with rows of the window that holds row 150 fails; the steps before it run.
  // An epoch where that window is not the first.
  int64_t bad_step = 0, epoch = 0;
  while (bad_step == 0 && epoch < 20) {
    plan.shuffle(1, ++epoch);
    for (const PlanWindow& w : plan.windows())
      for (const RowRange& b : w.blocks)
        if (b.begin <= 150 && 150 < b.end) bad_step = w.begin / 4;
  }
  ASSERT_GT(bad_step, 0);
  stream.start(1, epoch, 0, epoch);
  int64_t st = 0;
  try {
    for (; st < plan.steps_per_epoch(); ++st) stream.gather(epoch, st, x.data());
    ADD_FAILURE() << "no step failed";
  } catch (const DataError& e) {
    EXPECT_EQ(st, bad_step);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("row 150"), std::string::npos) << msg;
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
  }
  // Direct reads (evaluation) check too.
  const std::vector<int64_t> rows{149, 150};
  EXPECT_THROW(str.gather(rows, x.data()), DataError);
}

TEST(RowStream, StopsCleanlyMidEpochAndRestarts) {
  TempDir dir;
  const std::string file = u8_file(dir, 400);
  const Shard str = shard_of(file);
  const Shard mem = shard_of(file, 0, 1, ValueCheck::UnitInterval, Residency::InMemory);
  EpochPlan plan(400, 0, 1, 4, BlockShuffle{0, 5, 6});
  std::vector<float> x(4 * 16), expected(4 * 16);
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE("start at step " + std::to_string(i));
    RowStream stream(str, plan);
    plan.shuffle(1, 1);
    stream.start(1, 1, i, 1);
    stream.gather(1, i, x.data());
    mem.gather(plan.local_rows(i), expected.data());
    EXPECT_TRUE(same_bits(x, expected));
    stream.start(1, 1, i + 1, 1);  // restarting stops the read going on
    stream.gather(1, i + 1, x.data());
    mem.gather(plan.local_rows(i + 1), expected.data());
    EXPECT_TRUE(same_bits(x, expected));
  }  // destroyed with the read-ahead waiting for a free buffer: no hang
}

// A uint8 data set [n, 16] stored uncompressed (read through H5Dread, which gives zeros past a
// truncated file's end), contiguous or in chunks of 8 rows.
std::string plain_u8_file(const TempDir& dir, int64_t n, bool chunked) {
  std::vector<uint8_t> v(static_cast<size_t>(n * 16));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(1 + (i * 131) % 250);
  const std::string path = dir.file(chunked ? "plain_chunked.h5" : "plain_contiguous.h5");
  h5::File f = h5::create_file(path);
  const std::vector<int64_t> dims{n, 16};
  h5::CreateOptions o;
  if (chunked) o.chunk = {8, 16};
  h5::write_dataset<uint8_t>(f, "/images", v, dims, o);
  return path;
}

// Where the contiguous /images of `file` starts, and its bytes.
std::pair<int64_t, int64_t> raw_extent(const std::string& file) {
  h5::File h = h5::open_file(file);
  h5::Dataset dset = h5::open_dataset(h, "/images");
  return {static_cast<int64_t>(H5Dget_offset(dset)),
          static_cast<int64_t>(H5Dget_storage_size(dset))};
}

// Runs the steps of epoch 1 after `change` was made to the file (with window 0 read before it):
// every step either gives the in-memory rows of the file as it was, or throws the change's
// DataError, and one throws at the latest at window 2's first step (window 1 may have been
// read before the change). Returns the message.
std::string steps_after_change(const std::string& file, const std::function<void()>& change) {
  const Shard mem = shard_of(file, 0, 1, ValueCheck::UnitInterval, Residency::InMemory);
  const Shard str = shard_of(file);
  EpochPlan plan(mem.rows(), 0, 1, 4, BlockShuffle{0, 5, 6});  // windows of 30 rows
  RowStream stream(str, plan);
  plan.shuffle(1, 1);
  EXPECT_GE(plan.windows().size(), 4u);
  stream.start(1, 1, 0, 1);
  std::vector<float> x(4 * 16), expected(4 * 16);
  stream.gather(1, 0, x.data());  // window 0 is in memory from here
  change();
  const int64_t window2_step = (plan.windows()[2].begin + 3) / 4;
  for (int64_t st = 0; st < plan.steps_per_epoch(); ++st) {
    try {
      stream.gather(1, st, x.data());
    } catch (const DataError& e) {
      EXPECT_LE(st, window2_step) << "steps ran on after the change";
      return e.what();
    }
    mem.gather(plan.local_rows(st), expected.data());
    EXPECT_TRUE(same_bits(x, expected)) << "step " << st << " has rows read after the change";
  }
  ADD_FAILURE() << "no step failed after the change";
  return "";
}

TEST(RowStream, AFileTruncatedBetweenWindowsFailsTheNextReadNamingTheFileAndTheSizes) {
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "contiguous");
    TempDir dir;
    const std::string file = plain_u8_file(dir, 400, chunked);
    const auto before = static_cast<int64_t>(std::filesystem::file_size(file));
    const int64_t after = before * 4 / 10;
    const std::string msg = steps_after_change(
        file, [&] { std::filesystem::resize_file(file, static_cast<uintmax_t>(after)); });
    EXPECT_NE(msg.find("data file '" + file +
                       "' changed while the run was reading it: its size "
                       "went from " +
                       std::to_string(before) + " to " + std::to_string(after) + " bytes"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("restore the file, then resume with --resume latest"), std::string::npos)
        << msg;
  }
}

TEST(RowStream, AFileWrittenOverWithOtherRowsFailsTheNextReadSayingWhenItWasModified) {
  TempDir dir;
  const std::string file = plain_u8_file(dir, 400, false);
  const auto [offset, bytes] = raw_extent(file);
  const std::optional<FileStamp> opened = FileStamp::of(file);
  const std::string msg = steps_after_change(file, [&, offset = offset, bytes = bytes] {
    // The kernel stamps writes with a clock that ticks every few ms: let it tick.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Other rows in the same place, the size unchanged: as `cp` of a file of the same shape.
    std::fstream h(file, std::ios::in | std::ios::out | std::ios::binary);
    h.seekp(static_cast<std::streamoff>(offset));
    const std::string other(static_cast<size_t>(bytes), '\x07');
    h.write(other.data(), static_cast<std::streamsize>(other.size()));
  });
  const std::optional<FileStamp> now = FileStamp::of(file);
  ASSERT_TRUE(opened && now);
  ASSERT_EQ(now->size, opened->size);
  ASSERT_NE(now->mtime_ns, opened->mtime_ns) << "the file system did not stamp the write";
  EXPECT_NE(msg.find("data file '" + file +
                     "' changed while the run was reading it: it was "
                     "modified at " +
                     time_text(now->mtime_ns) + " (it was last modified at " +
                     time_text(opened->mtime_ns) + " when the run opened it)"),
            std::string::npos)
      << msg;
}

TEST(StreamedShard, EveryReadAfterAChangeFailsAndADamagedReadNamesTheChange) {
  TempDir dir;
  // Uncompressed: rows still inside the truncated file are refused too (the file is another).
  const std::string plain = plain_u8_file(dir, 400, true);
  const Shard str = shard_of(plain);
  std::vector<float> x(2 * 16);
  const std::vector<int64_t> rows{0, 1};
  str.gather(rows, x.data());
  std::filesystem::resize_file(plain, std::filesystem::file_size(plain) - 100);
  try {
    str.gather(rows, x.data());
    ADD_FAILURE() << "a read after the truncation passed";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("its size went from"), std::string::npos) << e.what();
  }
  // Deflate: the truncated chunks no longer inflate, and the message says why.
  const std::string packed = u8_file(dir, 3000);
  const Shard z = shard_of(packed);
  std::vector<float> y(3000 * 16);
  std::vector<int64_t> all(3000);
  for (int64_t i = 0; i < 3000; ++i) all[static_cast<size_t>(i)] = i;
  std::filesystem::resize_file(packed, std::filesystem::file_size(packed) / 2);
  try {
    z.gather(all, y.data());
    ADD_FAILURE() << "a read of a truncated deflate file passed";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("data file '" + packed + "' changed while the run"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace vd
