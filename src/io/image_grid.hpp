// Tiles a batch of float images into one PNG: prior-sample and reconstruction grids.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vd {

// Padding and empty cells are mid-gray, distinct from both the black background and the
// white strokes of Fashion-MNIST images.
inline constexpr uint8_t kGridPadValue = 128;

// Tiles images[n, channels, height, width] (floats, clamped to [0,1] and scaled to 0..255 with
// rounding; NaN becomes 0) in row-major order into rows of `cols` tiles. `padding` pixels
// separate the tiles and frame the grid, so the grid is
//   cols * width + (cols + 1) * padding  wide and  rows * height + (rows + 1) * padding  high,
// with rows = ceil(n / cols); tile i sits at x = padding + (i % cols) * (width + padding),
// y = padding + (i / cols) * (height + padding). channels must be 1 (gray) or 3 (RGB).
// Throws vd::ShapeError for bad sizes and vd::IoError when the file cannot be written.
void write_image_grid(const std::string& path, const float* images, int n, int channels, int height,
                      int width, int cols, int padding = 2);

// The grid's pixels (interleaved, row-major) without writing a file; sets grid_width/height.
std::vector<uint8_t> tile_image_grid(const float* images, int n, int channels, int height,
                                     int width, int cols, int padding, int& grid_width,
                                     int& grid_height);

}  // namespace vd
