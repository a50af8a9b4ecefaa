// Tests of vd::write_image_grid (tile offsets, clamping and rounding, padding, errors) and of
// the curve cells of 1-D signals (rows, colours, value range, the PNG's Description).
#include "io/image_grid.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>
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

// ---- curves ----

using Rgb = std::array<uint8_t, 3>;

// Pixel (x, y) of an interleaved RGB canvas `width` pixels wide.
Rgb rgb_at(const std::vector<uint8_t>& px, int width, int x, int y) {
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(width) + x) * 3;
  return {px[i], px[i + 1], px[i + 2]};
}

int distance(const Rgb& a, const Rgb& b) {
  int d = 0;
  for (int k = 0; k < 3; ++k) d += std::abs(int{a[k]} - int{b[k]});
  return d;
}

// How far a pixel is from the background, 0 (background) to 255 * 3.
int ink(const Rgb& p) {
  return distance(p, vd::kCurveBackground);
}

TEST(CurveGrid, ValuesMapToRowsBetweenTheMargins) {
  const vd::ValueRange unit{0.0f, 1.0f};
  EXPECT_FLOAT_EQ(vd::curve_row(1.0f, unit, 64), 2.0f);   // top margin
  EXPECT_FLOAT_EQ(vd::curve_row(0.0f, unit, 64), 61.0f);  // bottom margin
  EXPECT_FLOAT_EQ(vd::curve_row(0.5f, unit, 64), 31.5f);
  EXPECT_FLOAT_EQ(vd::curve_row(7.0f, unit, 64), 0.0f);  // beyond the range: clamped to the cell
  EXPECT_FLOAT_EQ(vd::curve_row(-7.0f, unit, 64), 63.0f);
  EXPECT_FLOAT_EQ(vd::curve_row(0.0f, {-1.0f, 1.0f}, 64), 31.5f);
}

TEST(CurveGrid, StepSignalDrawsAtTheExpectedRows) {
  // One cell, no padding: 0 for the first half of 128 values, 1 for the second half.
  const int L = 128, H = vd::kCurveHeight, W = vd::curve_width(L);
  ASSERT_EQ(W, 128);
  std::vector<float> signal(L);
  for (int i = 0; i < L; ++i) signal[static_cast<size_t>(i)] = i < L / 2 ? 0.0f : 1.0f;
  int gw = 0, gh = 0;
  const auto px = vd::tile_curve_grid(signal.data(), 1, 1, L, {0.0f, 1.0f}, H, W, 1, 0, gw, gh);
  ASSERT_EQ(gw, W);
  ASSERT_EQ(gh, H);
  const Rgb blue = vd::curve_colour(0);
  // Left half: the line on row 61 (value 0) in the full colour, nothing at row 2.
  for (int x = 5; x < 60; x += 9) {
    EXPECT_EQ(rgb_at(px, W, x, 61), blue) << x;
    EXPECT_EQ(ink(rgb_at(px, W, x, 2)), 0) << x;
    EXPECT_EQ(ink(rgb_at(px, W, x, 58)), 0) << x;  // 3 rows off the line: untouched
  }
  // Right half: the line on row 2 (value 1), nothing at row 61.
  for (int x = 70; x < W; x += 9) {
    EXPECT_EQ(rgb_at(px, W, x, 2), blue) << x;
    EXPECT_EQ(ink(rgb_at(px, W, x, 61)), 0) << x;
  }
  // The step is joined: the column between values 63 and 64 is inked from top to bottom.
  const int xs = static_cast<int>(std::lround(63.5 * (W - 1) / (L - 1)));
  for (int y = 3; y < 61; ++y) EXPECT_GT(ink(rgb_at(px, W, xs, y)), 100) << y;
  // The faint guide at the middle of [0, 1] (row round(31.5) = 32), where no curve passes.
  EXPECT_EQ(rgb_at(px, W, 20, 32), vd::kCurveGuide);
  EXPECT_EQ(rgb_at(px, W, 20, 20), vd::kCurveBackground);
}

TEST(CurveGrid, ConstantSignalIsAntiAliasedAcrossTwoRows) {
  // 0.5 sits at row 31.5: rows 31 and 32 are equally covered, rows 30 and 33 not at all.
  const std::vector<float> signal(200, 0.5f);
  int gw = 0, gh = 0;
  const int W = vd::curve_width(200);
  ASSERT_EQ(W, 200);
  const auto px = vd::tile_curve_grid(signal.data(), 1, 1, 200, {0.0f, 1.0f}, 64, W, 1, 0, gw, gh);
  for (int x : {10, 100, 190}) {
    const Rgb a = rgb_at(px, W, x, 31), b = rgb_at(px, W, x, 32);
    EXPECT_GT(ink(a), 100) << x;
    EXPECT_LT(ink(a), ink(vd::curve_colour(0)) + 1) << x;
    EXPECT_NEAR(ink(a), ink(b), 30) << x;  // row 32 also holds the guide underneath
    EXPECT_EQ(ink(rgb_at(px, W, x, 29)), 0) << x;
    EXPECT_EQ(ink(rgb_at(px, W, x, 34)), 0) << x;
  }
}

TEST(CurveGrid, ChannelsHaveDistinctColours) {
  // Three channels at 0.9, 0.5 and 0.1 in one cell: each row in its own colour.
  const int L = 150, W = vd::curve_width(L);
  std::vector<float> signal(3 * L);
  const float level[3] = {0.9f, 0.5f, 0.1f};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < L; ++i) signal[static_cast<size_t>(c * L + i)] = level[c];
  int gw = 0, gh = 0;
  const auto px = vd::tile_curve_grid(signal.data(), 1, 3, L, {0.0f, 1.0f}, 64, W, 1, 0, gw, gh);
  for (int c = 0; c < 3; ++c) {
    const float y = vd::curve_row(level[c], {0.0f, 1.0f}, 64);
    // The row nearest the line is nearer this channel's colour than the others'.
    const Rgb p = rgb_at(px, W, 75, static_cast<int>(std::lround(y)));
    for (int o = 0; o < 3; ++o) {
      if (o == c) continue;
      EXPECT_LT(distance(p, vd::curve_colour(c)), distance(p, vd::curve_colour(o)))
          << c << " vs " << o;
    }
  }
  EXPECT_NE(vd::curve_colour(0), vd::curve_colour(1));
  EXPECT_NE(vd::curve_colour(1), vd::curve_colour(2));
  EXPECT_EQ(vd::curve_colour(10), vd::curve_colour(0));  // ten colours, then they repeat
  EXPECT_STREQ(vd::curve_colour_name(1), "orange");
}

TEST(CurveGrid, ValueRangeIsUnitForUnitDataElseMinMax) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> unit = {0.2f, 0.9f, nan, 0.0f};
  vd::ValueRange r = vd::curve_value_range(unit.data(), unit.size());
  EXPECT_EQ(r.lo, 0.0f);
  EXPECT_EQ(r.hi, 1.0f);
  const std::vector<float> wide = {-2.0f, 3.0f, nan, 0.5f};
  r = vd::curve_value_range(wide.data(), wide.size());
  EXPECT_EQ(r.lo, -2.0f);
  EXPECT_EQ(r.hi, 3.0f);
  const std::vector<float> flat = {4.0f, 4.0f};
  r = vd::curve_value_range(flat.data(), flat.size());
  EXPECT_EQ(r.lo, 3.5f);
  EXPECT_EQ(r.hi, 4.5f);
  const std::vector<float> none = {nan};
  r = vd::curve_value_range(none.data(), none.size());
  EXPECT_EQ(r.lo, 0.0f);
  EXPECT_EQ(r.hi, 1.0f);
}

TEST(CurveGrid, ZeroLineWhenTheRangeSpansZero) {
  // Range -1..3: the guide is at 0 (row 2 + 59 * 3 / 4 = 46.25 -> 46), not at the middle.
  const std::vector<float> signal(128, 3.0f);  // the curve stays on the top row
  int gw = 0, gh = 0;
  const auto px =
      vd::tile_curve_grid(signal.data(), 1, 1, 128, {-1.0f, 3.0f}, 64, 128, 1, 0, gw, gh);
  EXPECT_EQ(rgb_at(px, 128, 50, 46), vd::kCurveGuide);
  EXPECT_EQ(rgb_at(px, 128, 50, 32), vd::kCurveBackground);
}

TEST(CurveGrid, CellsTileWithPaddingAndTheDescriptionIsStored) {
  // 3 signals in rows of 2: cells of 64 x 128 (length 32 is widened to 128) in a padded grid.
  const int n = 3, L = 32, pad = 2;
  std::vector<float> signals(n * L, 0.5f);
  vd::testing::TempDir dir;
  const std::string path = dir.file("curves.png");
  vd::write_curve_grid(path, signals.data(), n, 1, L, {0.0f, 1.0f}, 2, "1-D test note");
  const auto img = vd::read_png(path);
  ASSERT_EQ(img.channels, 3);
  EXPECT_EQ(img.width, 2 * 128 + 3 * pad);
  EXPECT_EQ(img.height, 2 * 64 + 3 * pad);
  EXPECT_EQ(img.description, "1-D test note");
  EXPECT_EQ(rgb_at(img.pixels, img.width, 0, 0), (Rgb{128, 128, 128}));  // frame
  EXPECT_EQ(rgb_at(img.pixels, img.width, pad + 5, pad + 5), vd::kCurveBackground);
  // The empty fourth cell is padding.
  EXPECT_EQ(rgb_at(img.pixels, img.width, pad + 128 + pad + 60, pad + 64 + pad + 30),
            (Rgb{128, 128, 128}));
  // An image grid without a description has none.
  std::vector<float> images(4, 0.5f);
  vd::write_image_grid(dir.file("plain.png"), images.data(), 1, 1, 2, 2, 1);
  EXPECT_EQ(vd::read_png(dir.file("plain.png")).description, "");
}

TEST(CurveGrid, BadArgumentsThrow) {
  std::vector<float> s(16, 0.0f);
  int gw = 0, gh = 0;
  EXPECT_THROW(vd::tile_curve_grid(nullptr, 1, 1, 16, {0, 1}, 64, 128, 1, 0, gw, gh),
               vd::ShapeError);
  EXPECT_THROW(vd::tile_curve_grid(s.data(), 1, 0, 16, {0, 1}, 64, 128, 1, 0, gw, gh),
               vd::ShapeError);
  EXPECT_THROW(vd::tile_curve_grid(s.data(), 1, 1, 16, {1, 1}, 64, 128, 1, 0, gw, gh),
               vd::ShapeError);
}

}  // namespace
