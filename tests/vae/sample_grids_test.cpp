// Tests of how a sample of each data kind becomes a grid tile (vae/sample_grids): 1-D signals
// as curve cells, 3-D volumes as their middle slices, and the notes that say so.
#include "vae/sample_grids.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "io/image_grid.hpp"
#include "io/png.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

TEST(SampleGrids, TileShapesFollowTheDataKind) {
  const TileShape image = tile_shape(Shape{3, 32, 32});
  EXPECT_EQ(image.c, 3);
  EXPECT_EQ(image.h, 32);
  EXPECT_EQ(image.w, 32);
  const TileShape flat = tile_shape(Shape{784, 1, 1});
  EXPECT_EQ(flat.h, 28);
  EXPECT_EQ(flat.w, 28);
  const TileShape volume = tile_shape(Shape::volume(2, 16, 12, 10));
  EXPECT_EQ(volume.c, 1);  // two channels: their gray mean
  EXPECT_EQ(volume.h, 12);
  EXPECT_EQ(volume.w, 10);
  const TileShape signal = tile_shape(Shape::signal(2, 300));
  EXPECT_EQ(signal.c, 3);
  EXPECT_EQ(signal.h, kCurveHeight);
  EXPECT_EQ(signal.w, 256);  // long signals: the widest cell
  EXPECT_EQ(tile_shape(Shape::signal(1, 40)).w, 128);
}

TEST(SampleGrids, NotesSayHowOneAndThreeDimensionalSamplesAreDrawn) {
  EXPECT_EQ(grid_note(Shape{1, 28, 28}), "");
  EXPECT_EQ(grid_note(Shape{784, 1, 1}), "");
  EXPECT_EQ(grid_note(Shape::signal(1, 256)), "1-D samples drawn as curves (1 channel: blue)");
  EXPECT_EQ(grid_note(Shape::signal(2, 256), ValueRange{0.0f, 1.0f}),
            "1-D samples drawn as curves (2 channels: blue, orange; values 0..1)");
  EXPECT_EQ(grid_note(Shape::signal(3, 64), ValueRange{-1.5f, 2.0f}),
            "1-D samples drawn as curves (3 channels: blue, orange, green; values -1.5..2)");
  const std::string many = grid_note(Shape::signal(12, 64));
  EXPECT_NE(many.find("cyan, ... (colours repeat)"), std::string::npos) << many;
  EXPECT_EQ(grid_note(Shape::volume(1, 16, 16, 16)),
            "3-D samples drawn as their middle slices (depth 8 of 0..15)");
  EXPECT_EQ(grid_note(Shape::volume(1, 5, 4, 4)),
            "3-D samples drawn as their middle slices (depth 2 of 0..4)");
}

TEST(SampleGrids, VolumesAreDrawnAsTheirMiddleSlice) {
  // Two volumes [1, 4, 3, 2]: slice z holds z / 10 everywhere, except that the middle slice
  // (z = 2) holds a known image, different per sample.
  const Shape data = Shape::volume(1, 4, 3, 2);
  const int n = 2, hw = 6;
  std::vector<float> volumes(static_cast<size_t>(n) * 4 * hw);
  for (int i = 0; i < n; ++i)
    for (int z = 0; z < 4; ++z)
      for (int p = 0; p < hw; ++p)
        volumes[static_cast<size_t>((i * 4 + z) * hw + p)] =
            z == 2 ? static_cast<float>(i * 6 + p + 1) / 20.0f : static_cast<float>(z) / 10.0f;
  ASSERT_EQ(middle_depth(data), 2);
  const std::vector<float> slices = middle_slices(volumes, n, data);
  ASSERT_EQ(slices.size(), static_cast<size_t>(n * hw));
  for (int i = 0; i < n * hw; ++i)
    EXPECT_FLOAT_EQ(slices[static_cast<size_t>(i)], static_cast<float>(i + 1) / 20.0f);

  testing::TempDir dir;
  const std::string path = dir.file("volumes.png");
  const std::string note = write_grid_png(path, volumes, n, data, 2);
  EXPECT_EQ(note, grid_note(data));
  const PngImage img = read_png(path);
  EXPECT_EQ(img.description, note);
  ASSERT_EQ(img.channels, 1);
  ASSERT_EQ(img.width, 2 * 2 + 3 * 2);
  ASSERT_EQ(img.height, 3 + 2 * 2);
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 2; ++x) {
        const int gx = 2 + i * (2 + 2) + x, gy = 2 + y;
        const float want = static_cast<float>(i * 6 + y * 2 + x + 1) / 20.0f;
        EXPECT_EQ(img.pixels[static_cast<size_t>(gy * img.width + gx)],
                  static_cast<uint8_t>(std::lround(want * 255.0f)))
            << i << " " << x << " " << y;
      }
}

TEST(SampleGrids, ManyChannelVolumesShowTheMeanOfTheirMiddleSlice) {
  // [2, 3, 1, 1]: channel 0's middle slice 0.2, channel 1's 0.6 -> gray 0.4; other slices 1.
  const Shape data = Shape::volume(2, 3, 1, 1);
  const std::vector<float> v = {1.0f, 0.2f, 1.0f, 1.0f, 0.6f, 1.0f};
  testing::TempDir dir;
  write_grid_png(dir.file("v.png"), v, 1, data, 1);
  const PngImage img = read_png(dir.file("v.png"));
  ASSERT_EQ(img.channels, 1);
  EXPECT_EQ(img.pixels[static_cast<size_t>(2 * img.width + 2)], std::lround(0.4f * 255.0f));
}

TEST(SampleGrids, SignalsAreDrawnAsCurvesOnOneSharedScale) {
  // Two 1-channel signals; the second reaches 4, so the grid's range is -1..4 (min..max) and
  // the first signal's constant 0 is drawn at the row of 0 on that scale, not on the bottom.
  const Shape data = Shape::signal(1, 128);
  std::vector<float> x(2 * 128, 0.0f);
  for (int i = 0; i < 128; ++i) x[static_cast<size_t>(128 + i)] = i < 64 ? -1.0f : 4.0f;
  testing::TempDir dir;
  const std::string path = dir.file("signals.png");
  const std::string note = write_grid_png(path, x, 2, data, 2);
  EXPECT_EQ(note, "1-D samples drawn as curves (1 channel: blue; values -1..4)");
  const PngImage img = read_png(path);
  EXPECT_EQ(img.description, note);
  ASSERT_EQ(img.channels, 3);
  ASSERT_EQ(img.width, 2 * 128 + 3 * 2);
  ASSERT_EQ(img.height, kCurveHeight + 2 * 2);
  const auto at = [&](int x0, int y0) {
    const size_t i = (static_cast<size_t>(y0) * img.width + x0) * 3;
    return std::array<uint8_t, 3>{img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]};
  };
  const ValueRange range{-1.0f, 4.0f};
  const int row0 = static_cast<int>(std::lround(curve_row(0.0f, range, kCurveHeight)));
  const int row4 = static_cast<int>(std::lround(curve_row(4.0f, range, kCurveHeight)));
  const int row_neg = static_cast<int>(std::lround(curve_row(-1.0f, range, kCurveHeight)));
  EXPECT_EQ(at(2 + 40, 2 + row0), curve_colour(0));           // first cell: 0
  EXPECT_EQ(at(2 + 40, 2 + row_neg), kCurveBackground);       // ... not at -1
  EXPECT_EQ(at(2 + 130 + 20, 2 + row_neg), curve_colour(0));  // second cell: -1, then 4
  EXPECT_EQ(at(2 + 130 + 100, 2 + row4), curve_colour(0));
  EXPECT_EQ(at(2 + 130 + 100, 2 + row_neg), kCurveBackground);
}

TEST(SampleGrids, ImagesKeepTheirGrayTilesAndNoNote) {
  const Shape data{1, 2, 2};
  const std::vector<float> x = {0.0f, 0.25f, 0.5f, 1.0f};
  testing::TempDir dir;
  EXPECT_EQ(write_grid_png(dir.file("i.png"), x, 1, data, 1), "");
  const PngImage img = read_png(dir.file("i.png"));
  EXPECT_EQ(img.channels, 1);
  EXPECT_EQ(img.width, 2 + 2 * 2);
  EXPECT_EQ(img.description, "");
  EXPECT_EQ(img.pixels[static_cast<size_t>(3 * img.width + 3)], 255);
}

}  // namespace
}  // namespace vd
