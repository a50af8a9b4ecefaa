// Tests of vd::write_png / vd::read_png: gray and RGB round trips, atomic write, errors.
#include "io/png.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.hpp"
#include "support/temp_dir.hpp"

namespace {

std::vector<uint8_t> pattern(size_t n, unsigned mul) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * mul + 7) & 0xff);
  return v;
}

TEST(Png, GrayRoundTrip) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("gray.png");
  const auto pixels = pattern(13 * 7, 31);
  vd::write_png(path, 13, 7, 1, pixels);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const auto img = vd::read_png(path);
  EXPECT_EQ(img.width, 13);
  EXPECT_EQ(img.height, 7);
  EXPECT_EQ(img.channels, 1);
  EXPECT_EQ(img.pixels, pixels);
}

TEST(Png, RgbRoundTripKeepsChannelOrder) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("rgb.png");
  auto pixels = pattern(5 * 9 * 3, 17);
  pixels[0] = 255;  // first pixel pure red: catches swapped channels
  pixels[1] = 0;
  pixels[2] = 0;
  vd::write_png(path, 5, 9, 3, pixels);
  const auto img = vd::read_png(path);
  EXPECT_EQ(img.width, 5);
  EXPECT_EQ(img.height, 9);
  EXPECT_EQ(img.channels, 3);
  EXPECT_EQ(img.pixels, pixels);
}

TEST(Png, OverwritesAnExistingFile) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("img.png");
  vd::write_png(path, 2, 2, 1, std::vector<uint8_t>{1, 2, 3, 4});
  vd::write_png(path, 1, 1, 3, std::vector<uint8_t>{9, 8, 7});
  const auto img = vd::read_png(path);
  EXPECT_EQ(img.width, 1);
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{9, 8, 7}));
}

TEST(Png, UnwritablePathIsIoError) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("missing/dir/out.png");
  try {
    vd::write_png(path, 2, 2, 1, std::vector<uint8_t>(4, 0));
    FAIL() << "no vd::IoError";
  } catch (const vd::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Png, WrongSizesAreShapeErrors) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("x.png");
  EXPECT_THROW(vd::write_png(path, 2, 2, 1, std::vector<uint8_t>(3)), vd::ShapeError);
  EXPECT_THROW(vd::write_png(path, 2, 2, 2, std::vector<uint8_t>(8)), vd::ShapeError);
  EXPECT_THROW(vd::write_png(path, 0, 2, 1, std::vector<uint8_t>()), vd::ShapeError);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Png, ReadingMissingOrNonPngFilesIsIoError) {
  vd::testing::TempDir dir;
  EXPECT_THROW(vd::read_png(dir.file("none.png")), vd::IoError);
  const std::string text = dir.file("text.png");
  std::ofstream(text) << "this is not a png file at all";
  EXPECT_THROW(vd::read_png(text), vd::IoError);
}

TEST(Png, TruncatedPngIsIoErrorNotACrash) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("big.png");
  vd::write_png(path, 64, 64, 3, pattern(64 * 64 * 3, 101));
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);  // libpng fails mid-stream: longjmp path
  try {
    vd::read_png(path);
    FAIL() << "no vd::IoError";
  } catch (const vd::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
