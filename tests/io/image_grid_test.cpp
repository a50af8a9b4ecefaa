// Tests of vd::write_image_grid: tile offsets, clamping and rounding, padding, errors.
#include "io/image_grid.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.hpp"
#include "io/png.hpp"
#include "support/temp_dir.hpp"

namespace {

TEST(ImageGrid, GrayTilesLandAtTheirOffsets) {
  // 5 tiles of 3x4 (HxW) in rows of 2: 3 rows, the last with one empty cell.
  const int n = 5, h = 3, w = 4, cols = 2, pad = 2;
  std::vector<float> images(static_cast<size_t>(n) * h * w);
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        images[(static_cast<size_t>(i) * h + y) * w + x] = (i * 12 + y * w + x) / 255.0f;
  vd::testing::TempDir dir;
  const std::string path = dir.file("grid.png");
  vd::write_image_grid(path, images.data(), n, 1, h, w, cols, pad);
  const auto img = vd::read_png(path);
  ASSERT_EQ(img.channels, 1);
  ASSERT_EQ(img.width, cols * w + (cols + 1) * pad);  // 14
  ASSERT_EQ(img.height, 3 * h + 4 * pad);             // 17
  auto at = [&](int x, int y) { return img.pixels[static_cast<size_t>(y) * img.width + x]; };
  for (int i = 0; i < n; ++i) {
    const int x0 = pad + (i % cols) * (w + pad);
    const int y0 = pad + (i / cols) * (h + pad);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) EXPECT_EQ(at(x0 + x, y0 + y), i * 12 + y * w + x) << i;
  }
  // Border, gutters and the empty sixth cell are padding.
  EXPECT_EQ(at(0, 0), vd::kGridPadValue);
  EXPECT_EQ(at(pad + w, pad), vd::kGridPadValue);  // vertical gutter
  EXPECT_EQ(at(pad, pad + h), vd::kGridPadValue);  // horizontal gutter
  EXPECT_EQ(at(img.width - 1, img.height - 1), vd::kGridPadValue);
  const int ex = pad + (w + pad), ey = pad + 2 * (h + pad);  // empty cell
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) EXPECT_EQ(at(ex + x, ey + y), vd::kGridPadValue);
}

TEST(ImageGrid, ValuesClampAndRound) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> images = {-1.0f, 0.0f, 0.5f,          1.0f,
                                     2.0f,  nan,  0.2f / 255.0f, 0.6f / 255.0f};
  int gw = 0, gh = 0;
  const auto px = vd::tile_image_grid(images.data(), 1, 1, 1, 8, 1, 0, gw, gh);
  ASSERT_EQ(gw, 8);
  ASSERT_EQ(gh, 1);
  EXPECT_EQ(px, (std::vector<uint8_t>{0, 0, 128, 255, 255, 0, 0, 1}));
}

TEST(ImageGrid, RgbPlanesAreInterleaved) {
  // One 1x2 RGB tile, planar: R = {1, 0}, G = {0, 1}, B = {0.5, 0}.
  const std::vector<float> images = {1, 0, 0, 1, 0.5f, 0};
  vd::testing::TempDir dir;
  const std::string path = dir.file("rgb.png");
  vd::write_image_grid(path, images.data(), 1, 3, 1, 2, 1, 1);
  const auto img = vd::read_png(path);
  ASSERT_EQ(img.channels, 3);
  ASSERT_EQ(img.width, 4);
  ASSERT_EQ(img.height, 3);
  auto px = [&](int x, int y, int c) {
    return img.pixels[(static_cast<size_t>(y) * 4 + x) * 3 + c];
  };
  EXPECT_EQ(px(1, 1, 0), 255);
  EXPECT_EQ(px(1, 1, 1), 0);
  EXPECT_EQ(px(1, 1, 2), 128);
  EXPECT_EQ(px(2, 1, 0), 0);
  EXPECT_EQ(px(2, 1, 1), 255);
  EXPECT_EQ(px(2, 1, 2), 0);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(px(0, 0, c), vd::kGridPadValue);
}

TEST(ImageGrid, DefaultPaddingAndSquareSampleGrid) {
  std::vector<float> images(64 * 28 * 28, 0.0f);
  vd::testing::TempDir dir;
  const std::string path = dir.file("samples.png");
  vd::write_image_grid(path, images.data(), 64, 1, 28, 28, 8);
  const auto img = vd::read_png(path);
  EXPECT_EQ(img.width, 8 * 28 + 9 * 2);
  EXPECT_EQ(img.height, 8 * 28 + 9 * 2);
}

TEST(ImageGrid, BadArgumentsThrow) {
  std::vector<float> images(16, 0.0f);
  vd::testing::TempDir dir;
  const std::string path = dir.file("bad.png");
  EXPECT_THROW(vd::write_image_grid(path, images.data(), 0, 1, 2, 2, 1), vd::ShapeError);
  EXPECT_THROW(vd::write_image_grid(path, images.data(), 1, 2, 2, 2, 1), vd::ShapeError);
  EXPECT_THROW(vd::write_image_grid(path, images.data(), 1, 1, 2, 2, 0), vd::ShapeError);
  EXPECT_THROW(vd::write_image_grid(path, images.data(), 1, 1, 2, 2, 1, -1), vd::ShapeError);
  EXPECT_THROW(vd::write_image_grid(path, nullptr, 1, 1, 2, 2, 1), vd::ShapeError);
  EXPECT_THROW(vd::write_image_grid(dir.file("no/such/dir.png"), images.data(), 1, 1, 2, 2, 1),
               vd::IoError);
}

}  // namespace
