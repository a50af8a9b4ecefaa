// Tests of the IDX reader: plain and gzip files, shapes, and every malformed-file error.
#include "data/idx.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "data/idx_files.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;
using testing::write_bytes;
using testing::write_idx;

std::vector<uint8_t> iota_bytes(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + 7 * i);
  return v;
}

// Expects read_idx(path) to throw DataError whose message contains every word.
void expect_error(const std::string& path, const std::vector<std::string>& words) {
  try {
    read_idx(path);
    FAIL() << "read_idx(" << path << ") did not throw";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << msg;
  }
}

class IdxPlainOrGzip : public ::testing::TestWithParam<bool> {};

TEST_P(IdxPlainOrGzip, Reads3DImagesAnd1DLabels) {
  TempDir dir;
  const bool gz = GetParam();
  const auto pixels = iota_bytes(5 * 3 * 4);
  const std::vector<uint8_t> labels{3, 1, 4, 1, 5};
  write_idx(dir.file("img"), {5, 3, 4}, pixels, gz);
  write_idx(dir.file("lab"), {5}, labels, gz);
  const IdxArray img = read_idx(dir.file("img"));
  EXPECT_EQ(img.dims, (std::vector<int64_t>{5, 3, 4}));
  EXPECT_EQ(img.data, pixels);
  const IdxArray lab = read_idx(dir.file("lab"));
  EXPECT_EQ(lab.dims, (std::vector<int64_t>{5}));
  EXPECT_EQ(lab.data, labels);
}

TEST_P(IdxPlainOrGzip, Reads4DImages) {
  TempDir dir;
  const auto pixels = iota_bytes(2 * 3 * 2 * 2, 11);
  write_idx(dir.file("img"), {2, 3, 2, 2}, pixels, GetParam());
  const IdxArray img = read_idx(dir.file("img"));
  EXPECT_EQ(img.dims, (std::vector<int64_t>{2, 3, 2, 2}));
  EXPECT_EQ(img.data, pixels);
}

TEST_P(IdxPlainOrGzip, TruncatedPayloadNamesFileAndByteCounts) {
  TempDir dir;
  write_idx(dir.file("img"), {4, 3, 3}, iota_bytes(4 * 3 * 3 - 5), GetParam());
  expect_error(dir.file("img"), {dir.file("img"), "truncated", "36", "31"});
}

TEST_P(IdxPlainOrGzip, TruncatedHeaderIsAnError) {
  TempDir dir;
  auto header = testing::idx_header(0x08, {4, 3, 3});
  header.resize(9);  // cut inside the second dimension
  write_bytes(dir.file("img"), header, GetParam());
  expect_error(dir.file("img"), {dir.file("img"), "truncated", "header"});
  write_bytes(dir.file("short"), {0, 0}, GetParam());
  expect_error(dir.file("short"), {dir.file("short"), "header"});
}

TEST_P(IdxPlainOrGzip, TrailingBytesAreAnError) {
  TempDir dir;
  write_idx(dir.file("img"), {2, 2}, iota_bytes(4 + 3), GetParam());
  expect_error(dir.file("img"), {dir.file("img"), "3 bytes after", "4 bytes"});
}

TEST_P(IdxPlainOrGzip, BadMagicIsAnError) {
  TempDir dir;
  std::vector<uint8_t> bytes{0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 1, 42};
  write_bytes(dir.file("img"), bytes, GetParam());
  expect_error(dir.file("img"), {dir.file("img"), "not an IDX file", "magic"});
}

TEST_P(IdxPlainOrGzip, UnsupportedTypeNamesTheType) {
  TempDir dir;
  std::vector<uint8_t> bytes = testing::idx_header(0x0D, {2});
  bytes.resize(bytes.size() + 8, 0);
  write_bytes(dir.file("img"), bytes, GetParam());
  expect_error(dir.file("img"), {dir.file("img"), "float32", "0x0D", "0x08"});
}

TEST_P(IdxPlainOrGzip, DimensionCountOutside1To4IsAnError) {
  TempDir dir;
  write_idx(dir.file("five"), {1, 1, 1, 1, 1}, {7}, GetParam());
  expect_error(dir.file("five"), {dir.file("five"), "5 dimensions"});
  write_bytes(dir.file("zero"), {0, 0, 8, 0}, GetParam());
  expect_error(dir.file("zero"), {dir.file("zero"), "0 dimensions"});
}

INSTANTIATE_TEST_SUITE_P(Idx, IdxPlainOrGzip, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "Gzip" : "Plain"; });

TEST(Idx, MissingFileNamesThePath) {
  TempDir dir;
  expect_error(dir.file("nope.gz"), {dir.file("nope.gz"), "does not exist"});
}

TEST(Idx, CorruptGzipStreamIsADataError) {
  TempDir dir;
  write_idx(dir.file("img.gz"), {64, 64}, iota_bytes(64 * 64), true);
  // Flip bytes in the middle of the compressed stream.
  std::fstream f(dir.file("img.gz"), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(30);
  const char junk[8] = {'\x55', '\x66', '\x77', '\x11', '\x22', '\x33', '\x44', '\x55'};
  f.write(junk, sizeof junk);
  f.close();
  EXPECT_THROW(read_idx(dir.file("img.gz")), DataError);
}

}  // namespace
}  // namespace vd
