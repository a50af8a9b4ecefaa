// Tests of shard_rows and Shard: exact per-rank rows, uint8/float gather, and bad input.
#include "data/shard.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;

// The reference formula in 128-bit arithmetic (__extension__ keeps -Wpedantic quiet).
__extension__ typedef __int128 Int128;
int64_t formula_begin(int64_t n, int rank, int world) {
  return static_cast<int64_t>(static_cast<Int128>(rank) * n / world);
}

void check_tiling(int64_t n, int world) {
  int64_t expected_begin = 0, lo = INT64_MAX, hi = 0;
  for (int r = 0; r < world; ++r) {
    const RowRange rr = shard_rows(n, r, world);
    ASSERT_EQ(rr.begin, expected_begin) << "n=" << n << " world=" << world << " rank=" << r;
    ASSERT_EQ(rr.begin, formula_begin(n, r, world)) << "n=" << n << " world=" << world;
    ASSERT_EQ(rr.end, formula_begin(n, r + 1, world)) << "n=" << n << " world=" << world;
    ASSERT_GE(rr.size(), 0);
    lo = std::min(lo, rr.size());
    hi = std::max(hi, rr.size());
    expected_begin = rr.end;
  }
  ASSERT_EQ(expected_begin, n) << "n=" << n << " world=" << world;
  ASSERT_LE(hi - lo, 1) << "n=" << n << " world=" << world;
}

// Every byte value, at every position of a vector and its tail, is the division i / 255
// bitwise, whichever SIMD clone runs (255 -> exactly 1.0f).
TEST(DecodeU8, IsTheDivisionBitwiseAtEveryPosition) {
  constexpr int64_t n = 256 * 3 + 13;
  std::vector<uint8_t> src(n);
  for (int64_t i = 0; i < n; ++i) src[i] = static_cast<uint8_t>((i * 7 + i / 256) % 256);
  std::vector<float> dst(n, -1.0f);
  decode_u8(src.data(), dst.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(dst[i]), std::bit_cast<uint32_t>(src[i] / 255.0f))
        << "position " << i << " value " << int(src[i]);
  const uint8_t top = 255;
  float one = 0;
  decode_u8(&top, &one, 1);
  EXPECT_EQ(one, 1.0f);
}

TEST(ShardRows, TileExactlyWithSizesWithinOne) {
  for (int64_t n = 0; n <= 70; ++n)
    for (int world = 1; world <= 17; ++world) check_tiling(n, world);
  for (int64_t n : {int64_t{1000}, int64_t{60000}, int64_t{60001}, int64_t{999999937}})
    for (int world : {1, 2, 3, 7, 64, 1000, 4096}) check_tiling(n, world);
}

TEST(ShardRows, NoOverflowForHugeN) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  for (int64_t n : {big, big - 1, int64_t{1} << 62, int64_t{1000000000000000003}})
    for (int world : {1, 2, 3, 5, 1000003, std::numeric_limits<int>::max()})
      for (int r : {0, 1, world / 2, world - 1})
        if (r < world) {
          const RowRange rr = shard_rows(n, r, world);
          EXPECT_EQ(rr.begin, formula_begin(n, r, world));
          EXPECT_EQ(rr.end, formula_begin(n, r + 1, world));
        }
}

TEST(ShardRows, RejectsBadRankOrWorld) {
  EXPECT_THROW(shard_rows(10, 2, 2), ShapeError);
  EXPECT_THROW(shard_rows(10, -1, 2), ShapeError);
  EXPECT_THROW(shard_rows(10, 0, 0), ShapeError);
}

// A file with /images uint8 [n, c, h, w] where every byte encodes (row, element), plus labels.
std::vector<uint8_t> make_u8_file(const std::string& path, int64_t n, bool labels = true) {
  const std::vector<int64_t> dims{n, 2, 3, 2};
  std::vector<uint8_t> data(static_cast<size_t>(n * 12));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 37 + i / 12) % 256);
  h5::File f = h5::create_file(path);
  h5::write_dataset<uint8_t>(f, "/images", data, dims, {{4, 2, 3, 2}, 4});
  if (labels) {
    std::vector<uint8_t> lab(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) lab[static_cast<size_t>(i)] = static_cast<uint8_t>(i % 10);
    const std::vector<int64_t> ld{n};
    h5::write_dataset<uint8_t>(f, "/labels", lab, ld);
  }
  return data;
}

TEST(Shard, RanksReassembleTheFileExactly) {
  TempDir dir;
  const int64_t n = 23;
  const auto data = make_u8_file(dir.file("d.h5"), n);
  for (int world : {1, 2, 3, 4, 7, 23}) {
    std::vector<float> all;
    std::vector<int32_t> labels;
    for (int r = 0; r < world; ++r) {
      const Shard s = Shard::read(dir.file("d.h5"), "/images", r, world, ValueCheck::UnitInterval);
      EXPECT_EQ(s.global_rows(), n);
      EXPECT_EQ(s.range().begin, shard_rows(n, r, world).begin);
      EXPECT_EQ(s.range().end, shard_rows(n, r, world).end);
      EXPECT_EQ(s.rows(), s.range().size());
      EXPECT_EQ(s.sample_shape(), (std::vector<int64_t>{2, 3, 2}));
      EXPECT_EQ(s.sample_size(), 12);
      EXPECT_TRUE(s.stored_as_uint8());
      ASSERT_TRUE(s.has_labels());
      ASSERT_EQ(static_cast<int64_t>(s.labels().size()), s.rows());
      std::vector<int64_t> idx(static_cast<size_t>(s.rows()));
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
      std::vector<float> buf(idx.size() * 12);
      s.gather(idx, buf.data());
      all.insert(all.end(), buf.begin(), buf.end());
      labels.insert(labels.end(), s.labels().begin(), s.labels().end());
    }
    ASSERT_EQ(all.size(), data.size()) << "world=" << world;
    for (size_t i = 0; i < data.size(); ++i)
      ASSERT_EQ(all[i], static_cast<float>(data[i]) / 255.0f) << "world=" << world << " i=" << i;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(labels[static_cast<size_t>(i)], i % 10);
  }
}

// A row range of the file (a held-out validation tail, the training head): the ranks split
// exactly those rows, with their labels, and read nothing else.
TEST(Shard, RanksSplitARowRangeOfTheFileExactly) {
  TempDir dir;
  const int64_t n = 23;
  const auto data = make_u8_file(dir.file("d.h5"), n);
  EXPECT_EQ(Shard::count_rows(dir.file("d.h5"), "/images"), n);
  for (const RowRange sel :
       {RowRange{0, 23}, RowRange{0, 17}, RowRange{17, 23}, RowRange{5, 12}, RowRange{22, 23}}) {
    for (int world = 1; world <= sel.size() && world <= 7; ++world) {
      std::vector<float> all;
      std::vector<int32_t> labels;
      for (int r = 0; r < world; ++r) {
        const Shard s =
            Shard::read(dir.file("d.h5"), "/images", r, world, ValueCheck::UnitInterval, sel);
        EXPECT_EQ(s.global_rows(), sel.size());
        EXPECT_EQ(s.selection().begin, sel.begin);
        EXPECT_EQ(s.selection().end, sel.end);
        EXPECT_EQ(s.range().begin, sel.begin + shard_rows(sel.size(), r, world).begin);
        EXPECT_EQ(s.range().end, sel.begin + shard_rows(sel.size(), r, world).end);
        EXPECT_EQ(s.rows(), s.range().size());
        std::vector<int64_t> idx(static_cast<size_t>(s.rows()));
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
        std::vector<float> buf(idx.size() * 12);
        s.gather(idx, buf.data());
        all.insert(all.end(), buf.begin(), buf.end());
        labels.insert(labels.end(), s.labels().begin(), s.labels().end());
      }
      const auto first = static_cast<size_t>(sel.begin * 12);
      ASSERT_EQ(all.size(), static_cast<size_t>(sel.size() * 12));
      for (size_t i = 0; i < all.size(); ++i)
        ASSERT_EQ(all[i], static_cast<float>(data[first + i]) / 255.0f)
            << "rows [" << sel.begin << ", " << sel.end << ") world=" << world << " i=" << i;
      for (int64_t i = 0; i < sel.size(); ++i)
        ASSERT_EQ(labels[static_cast<size_t>(i)], (sel.begin + i) % 10);
    }
  }
}

TEST(Shard, GatherScalesUint8AndFollowsTheRowOrder) {
  TempDir dir;
  const std::vector<int64_t> dims{256, 1};
  std::vector<uint8_t> data(256);
  for (int i = 0; i < 256; ++i) data[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    h5::write_dataset<uint8_t>(f, "/images", data, dims);
  }
  const Shard s = Shard::read(dir.file("d.h5"), "/images", 0, 1, ValueCheck::UnitInterval);
  EXPECT_FALSE(s.has_labels());
  EXPECT_EQ(s.sample_shape(), (std::vector<int64_t>{1}));
  const std::vector<int64_t> rows{255, 0, 128, 128, 1};
  std::vector<float> out(rows.size(), -1.0f);
  s.gather(rows, out.data());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_FLOAT_EQ(out[2], 128.0f / 255.0f);
  EXPECT_EQ(out[3], out[2]);
  EXPECT_FLOAT_EQ(out[4], 1.0f / 255.0f);
  const std::vector<int64_t> bad{256};
  EXPECT_THROW(s.gather(bad, out.data()), ShapeError);
  const std::vector<int64_t> neg{-1};
  EXPECT_THROW(s.gather(neg, out.data()), ShapeError);
}

TEST(Shard, FloatDataIsReturnedUnchangedAndFloat64Converted) {
  TempDir dir;
  const std::vector<int64_t> dims{5, 3};
  std::vector<float> f(15);
  std::vector<double> d(15);
  for (size_t i = 0; i < f.size(); ++i) {
    f[i] = static_cast<float>(i) / 14.0f;
    d[i] = static_cast<double>(i) / 14.0;
  }
  {
    h5::File file = h5::create_file(dir.file("f.h5"));
    h5::write_dataset<float>(file, "/images", f, dims);
    h5::write_dataset<double>(file, "/d64", d, dims);
  }
  for (int world : {1, 2}) {
    const Shard s =
        Shard::read(dir.file("f.h5"), "/images", world - 1, world, ValueCheck::UnitInterval);
    EXPECT_FALSE(s.stored_as_uint8());
    std::vector<int64_t> idx(static_cast<size_t>(s.rows()));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
    std::vector<float> out(idx.size() * 3);
    s.gather(idx, out.data());
    for (size_t i = 0; i < out.size(); ++i)
      EXPECT_EQ(out[i], f[static_cast<size_t>(s.range().begin * 3) + i]);
  }
  const Shard s64 = Shard::read(dir.file("f.h5"), "/d64", 0, 1, ValueCheck::UnitInterval);
  std::vector<float> out(15);
  const std::vector<int64_t> idx{0, 1, 2, 3, 4};
  s64.gather(idx, out.data());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], static_cast<float>(d[i]));
}

// Expects Shard::read to throw DataError whose message contains every word.
void expect_data_error(const std::string& file, const std::string& dataset, int rank, int world,
                       ValueCheck check, const std::vector<std::string>& words,
                       std::optional<RowRange> rows = std::nullopt) {
  try {
    Shard::read(file, dataset, rank, world, check, rows);
    ADD_FAILURE() << "Shard::read(" << file << ", " << dataset << ") did not throw";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    for (const auto& w : words)
      EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
}

// Signals [N, C, L] and volumes [N, C, D, H, W] read as images do: one row per sample, the
// sample's shape kept, values scaled to [0, 1].
TEST(Shard, SignalsAndVolumesKeepTheirSampleShape) {
  TempDir dir;
  std::vector<uint8_t> v(6 * 2 * 3 * 4 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i % 251);
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    h5::write_dataset<uint8_t>(f, "/signals", v, std::vector<int64_t>{6, 2, 60});
    h5::write_dataset<uint8_t>(f, "/volumes", v, std::vector<int64_t>{6, 2, 3, 4, 5});
  }
  for (const auto& [name, sample] :
       {std::pair<std::string, std::vector<int64_t>>{"/signals", {2, 60}},
        {"/volumes", {2, 3, 4, 5}}}) {
    SCOPED_TRACE(name);
    const Shard s = Shard::read(dir.file("d.h5"), name, 1, 2, ValueCheck::None);
    EXPECT_EQ(s.sample_shape(), sample);
    EXPECT_EQ(s.sample_size(), 120);
    EXPECT_EQ(s.rows(), 3);
    std::vector<float> out(120);
    s.gather(std::vector<int64_t>{0}, out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], v[360 + i] / 255.0f) << i;
  }
}

TEST(ShardErrors, RowRangeOutsideTheFileOrSmallerThanTheWorld) {
  TempDir dir;
  make_u8_file(dir.file("d.h5"), 10);
  for (const RowRange bad : {RowRange{-1, 3}, RowRange{4, 11}, RowRange{6, 5}})
    expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None,
                      {dir.file("d.h5"), "10 rows", "cannot be read"}, bad);
  expect_data_error(dir.file("d.h5"), "/images", 0, 3, ValueCheck::None,
                    {"2 rows to split", "rows [8, 10) of 10", "3 ranks"}, RowRange{8, 10});
  EXPECT_THROW(Shard::count_rows(dir.file("missing.h5"), "/images"), DataError);
}

TEST(ShardErrors, MissingFile) {
  TempDir dir;
  expect_data_error(dir.file("no.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("no.h5"), "does not exist"});
}

TEST(ShardErrors, NotAnHdf5File) {
  TempDir dir;
  std::ofstream(dir.file("x.h5")) << "hello, I am text\n";
  expect_data_error(dir.file("x.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("x.h5"), "not an HDF5 file", "import-idx"});
}

TEST(ShardErrors, MissingDatasetListsTheExistingOnes) {
  TempDir dir;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    const std::vector<float> v{0.5f, 0.5f};
    const std::vector<int64_t> dims{2, 1};
    h5::write_dataset<float>(f, "/pixels", v, dims);
    h5::Group g = h5::create_group(f, "/extra");
    h5::write_dataset<float>(f, "/extra/more", v, dims);
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("d.h5"), "no data set '/images'", "/pixels", "/extra/more"});
  expect_data_error(dir.file("d.h5"), "/extra", 0, 1, ValueCheck::None, {"no data set '/extra'"});
}

TEST(ShardErrors, WrongRank) {
  TempDir dir;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    std::vector<uint8_t> v(4 * 5 * 6);
    const std::vector<int64_t> d6{4, 5, 1, 2, 3, 1}, d1{120};
    h5::write_dataset<uint8_t>(f, "/images", v, d6);
    h5::write_dataset<uint8_t>(f, "/flat", v, d1);
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("d.h5"), "[4, 5, 1, 2, 3, 1]", "[N, C, H, W]", "[N, C, L]",
                     "[N, C, D, H, W]", "[N, D]"});
  expect_data_error(dir.file("d.h5"), "/flat", 0, 1, ValueCheck::None, {"[120]", "[N, D]"});
}

TEST(ShardErrors, UnsupportedDtype) {
  TempDir dir;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    std::vector<int64_t> v(8, 1);
    const std::vector<int64_t> dims{4, 2};
    h5::write_dataset<int64_t>(f, "/images", v, dims);
    std::vector<int32_t> w(8, 1);
    h5::write_dataset<int32_t>(f, "/i32", w, dims);
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("d.h5"), "unsupported dtype int64", "uint8", "float32"});
  expect_data_error(dir.file("d.h5"), "/i32", 0, 1, ValueCheck::None, {"unsupported dtype int32"});
}

TEST(ShardErrors, EmptyDataset) {
  TempDir dir;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    const std::vector<uint8_t> none;
    const std::vector<int64_t> d0{0, 1, 2, 2}, dz{3, 0};
    h5::write_dataset<uint8_t>(f, "/images", none, d0);
    h5::write_dataset<uint8_t>(f, "/zero_width", none, dz);
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("d.h5"), "empty", "[0, 1, 2, 2]"});
  expect_data_error(dir.file("d.h5"), "/zero_width", 0, 1, ValueCheck::None, {"empty", "[3, 0]"});
}

TEST(ShardErrors, FewerRowsThanRanks) {
  TempDir dir;
  make_u8_file(dir.file("d.h5"), 2);
  expect_data_error(dir.file("d.h5"), "/images", 2, 3, ValueCheck::None,
                    {dir.file("d.h5"), "2 rows", "3 ranks", "fewer ranks"});
  // Exactly one row per rank is fine.
  EXPECT_EQ(Shard::read(dir.file("d.h5"), "/images", 1, 2, ValueCheck::None).rows(), 1);
}

TEST(ShardErrors, NonFiniteFloatNamesTheRow) {
  TempDir dir;
  const std::vector<int64_t> dims{6, 2};
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    std::vector<float> v(12, 0.25f);
    v[3 * 2 + 1] = bad;  // row 3
    {
      h5::File f = h5::create_file(dir.file("d.h5"));
      h5::write_dataset<float>(f, "/images", v, dims);
    }
    for (ValueCheck check : {ValueCheck::None, ValueCheck::UnitInterval}) {
      expect_data_error(dir.file("d.h5"), "/images", 0, 1, check,
                        {dir.file("d.h5"), "row 3", "finite"});
      // The rank whose shard holds row 3 fails; the other rank reads fine.
      expect_data_error(dir.file("d.h5"), "/images", 1, 2, check, {"row 3", "finite"});
      EXPECT_EQ(Shard::read(dir.file("d.h5"), "/images", 0, 2, check).rows(), 3);
    }
  }
}

TEST(ShardErrors, OutsideUnitIntervalNamesRowAndValue) {
  TempDir dir;
  const std::vector<int64_t> dims{4, 3};
  std::vector<float> v(12, 0.5f);
  v[2 * 3] = 1.5f;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    h5::write_dataset<float>(f, "/images", v, dims);
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::UnitInterval,
                    {dir.file("d.h5"), "row 2", "1.5", "[0, 1]", "--likelihood gaussian"});
  // Without the check (Gaussian likelihood) the same data is accepted unchanged.
  const Shard s = Shard::read(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None);
  std::vector<float> out(3);
  const std::vector<int64_t> idx{2};
  s.gather(idx, out.data());
  EXPECT_EQ(out[0], 1.5f);
  v[2 * 3] = -0.01f;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    h5::write_dataset<float>(f, "/images", v, dims);
  }
  // Every digit of the float: -0.01f is -0.00999999978.
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::UnitInterval,
                    {"row 2", "is -0.00999999978, outside [0, 1]"});
}

// A value just above 1 is printed with all its digits (max_digits10), so the message shows why
// it is outside [0, 1]; with the default 6 digits 1.0000001 was reported as "is 1".
TEST(ShardErrors, ValueJustAboveOneIsPrintedExactly) {
  TempDir dir;
  std::vector<float> v(6, 0.5f);
  v[4] = 1.0000001f;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    h5::write_dataset<float>(f, "/images", v, std::vector<int64_t>{2, 3});
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::UnitInterval,
                    {"row 1, element 1 is 1.00000012, outside [0, 1]"});
}

// float64 images are read as float32, rounded to the nearest (docs/data.md): values a float32
// holds exactly read as the float32 file's, bit for bit, in memory and streamed; a value beyond
// float32's range becomes infinite and is refused as non-finite; 1.0000001 rounds to
// 1.00000012, outside [0, 1].
TEST(Shard, Float64IsReadAsTheNearestFloat32InMemoryAndStreamed) {
  TempDir dir;
  const std::vector<int64_t> dims{6, 1, 2, 4};
  std::vector<float> f(48);
  std::vector<double> d(48);
  for (size_t i = 0; i < f.size(); ++i) {
    f[i] = static_cast<float>((i * 37) % 257) / 256.0f;  // k / 256: exact in both
    d[i] = static_cast<double>(f[i]);
  }
  {
    h5::File file = h5::create_file(dir.file("f32.h5"));
    h5::write_dataset<float>(file, "/images", f, dims);
    h5::File file64 = h5::create_file(dir.file("f64.h5"));
    h5::write_dataset<double>(file64, "/images", d, dims);
  }
  for (const Residency residency : {Residency::InMemory, Residency::Streamed}) {
    const Shard a = Shard::read(dir.file("f32.h5"), "/images", 0, 1, ValueCheck::UnitInterval,
                                std::nullopt, residency);
    const Shard b = Shard::read(dir.file("f64.h5"), "/images", 0, 1, ValueCheck::UnitInterval,
                                std::nullopt, residency);
    EXPECT_EQ(b.sample_shape(), a.sample_shape());
    EXPECT_FALSE(b.stored_as_uint8());
    const std::vector<int64_t> rows{5, 0, 3, 1, 4, 2};
    std::vector<float> xa(48), xb(48, -1.0f);
    a.gather(rows, xa.data());
    b.gather(rows, xb.data());
    for (size_t i = 0; i < xa.size(); ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(xb[i]), std::bit_cast<uint32_t>(xa[i])) << i;
  }
  d[9] = 1e300;
  d[20] = 1.0000001;
  {
    h5::File file64 = h5::create_file(dir.file("big.h5"));
    h5::write_dataset<double>(file64, "/images", d, dims);
  }
  expect_data_error(dir.file("big.h5"), "/images", 0, 1, ValueCheck::None,
                    {"row 1, element 1 is inf; the data must be finite"});
  d[9] = 0.5;
  {
    h5::File file64 = h5::create_file(dir.file("big.h5"));
    h5::write_dataset<double>(file64, "/images", d, dims);
  }
  expect_data_error(dir.file("big.h5"), "/images", 0, 1, ValueCheck::UnitInterval,
                    {"row 2, element 4 is 1.00000012, outside [0, 1]"});
}

TEST(ShardErrors, LabelCountDiffersFromRows) {
  TempDir dir;
  make_u8_file(dir.file("d.h5"), 6, false);
  {
    h5::File f = h5::open_file(dir.file("d.h5"), true);
    const std::vector<uint8_t> lab(5, 1);
    const std::vector<int64_t> ld{5};
    h5::write_dataset<uint8_t>(f, "/labels", lab, ld);
  }
  expect_data_error(dir.file("d.h5"), "/images", 0, 1, ValueCheck::None,
                    {dir.file("d.h5"), "/labels", "5 labels", "6 rows"});
}

// A header claiming more rows than the file stores is refused before the shard is allocated:
// a chunked data set with chunks never written (its writer stopped) and a contiguous one
// never written would otherwise read as zeros.
TEST(ShardErrors, DataSetsWithUnwrittenStorageAreRefused) {
  TempDir dir;
  {
    h5::File f = h5::create_file(dir.file("d.h5"));
    const std::vector<int64_t> dims{12, 2}, chunked{4, 2};
    h5::Dataset part = h5::create_dataset<float>(f, "/part", dims, {chunked, 0, false});
    const std::vector<float> rows(8, 0.5f);
    h5::write_rows(part, 0, 4, rows.data());  // chunk 1 of 3
    h5::Dataset none = h5::create_dataset<float>(f, "/none", dims);
    h5::Dataset full = h5::create_dataset<float>(f, "/full", dims, {chunked, 0, false});
    const std::vector<float> all(24, 0.25f);
    h5::write_rows(full, 0, 12, all.data());
  }
  expect_data_error(dir.file("d.h5"), "/part", 0, 1, ValueCheck::None,
                    {dir.file("d.h5"), "/part", "1 of its 3 chunks", "re-create it"});
  expect_data_error(dir.file("d.h5"), "/none", 0, 1, ValueCheck::None,
                    {"/none", "0 bytes of data", "re-create it"});
  EXPECT_EQ(Shard::read(dir.file("d.h5"), "/full", 1, 2, ValueCheck::None).rows(), 6);
}

// Found by fuzz_h5_dataset: a damaged header whose shape (2,902,458,372 rows) exceeds its
// maximum shape (4 rows), in a file of 8 KB; the shard of 5.8 GB was allocated before.
TEST(ShardErrors, ShapeBeyondItsMaximumIsRefused) {
  const std::string seed =
      std::string(VD_SOURCE_DIR) + "/tests/fuzz/corpus/h5_dataset/regress_shape_beyond_max.h5";
  expect_data_error(seed, "/images", 1, 2, ValueCheck::UnitInterval,
                    {"beyond its maximum shape", "damaged"});
}

TEST(ShardErrors, BadRankArgumentsAreShapeErrors) {
  TempDir dir;
  make_u8_file(dir.file("d.h5"), 6);
  EXPECT_THROW(Shard::read(dir.file("d.h5"), "/images", 2, 2, ValueCheck::None), ShapeError);
  EXPECT_THROW(Shard::read(dir.file("d.h5"), "/images", 0, 0, ValueCheck::None), ShapeError);
}

}  // namespace
}  // namespace vd
