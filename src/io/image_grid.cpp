// Image grid tiling: planar float tiles to one interleaved 8-bit canvas, then write_png.
#include "io/image_grid.hpp"

#include <cmath>

#include "core/error.hpp"
#include "io/png.hpp"

namespace vd {

namespace {

uint8_t to_byte(float v) {
  if (!(v > 0.0f)) return 0;  // also catches NaN
  if (v >= 1.0f) return 255;
  return static_cast<uint8_t>(std::lround(v * 255.0f));
}

}  // namespace

std::vector<uint8_t> tile_image_grid(const float* images, int n, int channels, int height,
                                     int width, int cols, int padding, int& grid_width,
                                     int& grid_height) {
  if (images == nullptr || n < 1 || (channels != 1 && channels != 3) || height < 1 || width < 1 ||
      cols < 1 || padding < 0) {
    throw ShapeError(
        "image grid: need images, n >= 1, 1 or 3 channels, height, width, cols >= 1 "
        "and padding >= 0; got n=" +
        std::to_string(n) + " channels=" + std::to_string(channels) +
        " height=" + std::to_string(height) + " width=" + std::to_string(width) +
        " cols=" + std::to_string(cols) + " padding=" + std::to_string(padding));
  }
  const int rows = (n + cols - 1) / cols;
  grid_width = cols * width + (cols + 1) * padding;
  grid_height = rows * height + (rows + 1) * padding;
  const size_t c = static_cast<size_t>(channels);
  const size_t gw = static_cast<size_t>(grid_width);
  std::vector<uint8_t> canvas(gw * static_cast<size_t>(grid_height) * c, kGridPadValue);
  const size_t plane = static_cast<size_t>(height) * static_cast<size_t>(width);
  for (int i = 0; i < n; ++i) {
    const float* tile = images + static_cast<size_t>(i) * c * plane;
    const size_t x0 = static_cast<size_t>(padding + (i % cols) * (width + padding));
    const size_t y0 = static_cast<size_t>(padding + (i / cols) * (height + padding));
    for (size_t ch = 0; ch < c; ++ch) {
      for (size_t y = 0; y < static_cast<size_t>(height); ++y) {
        for (size_t x = 0; x < static_cast<size_t>(width); ++x) {
          const float v = tile[ch * plane + y * static_cast<size_t>(width) + x];
          canvas[((y0 + y) * gw + x0 + x) * c + ch] = to_byte(v);
        }
      }
    }
  }
  return canvas;
}

void write_image_grid(const std::string& path, const float* images, int n, int channels, int height,
                      int width, int cols, int padding) {
  int grid_width = 0;
  int grid_height = 0;
  const auto canvas =
      tile_image_grid(images, n, channels, height, width, cols, padding, grid_width, grid_height);
  write_png(path, grid_width, grid_height, channels, canvas);
}

}  // namespace vd
