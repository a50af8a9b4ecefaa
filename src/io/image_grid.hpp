// Tiles a batch of float images into one PNG: prior-sample and reconstruction grids; a batch
// of 1-D signals is drawn as one cell of curves per sample, tiled the same way.
#pragma once
#include <array>
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
// A non-empty `description` goes into the PNG's tEXt "Description" chunk.
void write_image_grid(const std::string& path, const float* images, int n, int channels, int height,
                      int width, int cols, int padding = 2, const std::string& description = "");

// The grid's pixels (interleaved, row-major) without writing a file; sets grid_width/height.
std::vector<uint8_t> tile_image_grid(const float* images, int n, int channels, int height,
                                     int width, int cols, int padding, int& grid_width,
                                     int& grid_height);

// ---- 1-D signals as curves ----

// The values a curve cell's height spans, shared by every cell of a grid so cells compare.
struct ValueRange {
  float lo = 0.0f, hi = 1.0f;
};

// [0, 1] when every finite value lies in it (data in [0, 1], the usual case, keeps one scale
// across epochs); else the finite min..max, widened to lo - 0.5 .. hi + 0.5 when all values
// are equal; [0, 1] when none is finite.
ValueRange curve_value_range(const float* values, size_t count);

// A curve cell is kCurveHeight pixels high and curve_width(L) wide: one pixel per value for
// 128..256 values, 128 for shorter signals (points further apart), 256 for longer ones
// (several values per pixel column, joined by the polyline).
inline constexpr int kCurveHeight = 64;
inline constexpr int kCurveMargin = 2;  // pixels kept free above the top and below the bottom
int curve_width(int length);

// The light cell background and the faint horizontal guide line (at 0 when the range spans 0
// inside it, else at the middle of the range).
inline constexpr std::array<uint8_t, 3> kCurveBackground = {250, 250, 250};
inline constexpr std::array<uint8_t, 3> kCurveGuide = {218, 218, 218};
// The colour of channel c's curve: ten distinct colours (matplotlib's "tab10": blue, orange,
// green, red, purple, ...), repeating from the 11th channel on.
std::array<uint8_t, 3> curve_colour(int channel);
// "blue", "orange", ...: channel c's colour by name, for notes.
const char* curve_colour_name(int channel);

// The pixel row value v is drawn at in a cell of `height` rows (fractional; row 0 at the top):
// range.hi at kCurveMargin, range.lo at height - 1 - kCurveMargin, clamped to the cell.
float curve_row(float v, ValueRange range, int height);

// Signals [n, channels, length] drawn as anti-aliased polylines (about 1.5 px wide, one per
// channel, channel 0 underneath) on RGB cells of height x width, tiled like tile_image_grid
// (interleaved RGB; padding and empty cells kGridPadValue). Value i of a signal sits at x =
// i * (width - 1) / (length - 1) (the middle for length 1); NaN values break the line.
std::vector<uint8_t> tile_curve_grid(const float* signals, int n, int channels, int length,
                                     ValueRange range, int height, int width, int cols, int padding,
                                     int& grid_width, int& grid_height);

// Writes tile_curve_grid's grid (cells kCurveHeight x curve_width(length)) as an RGB PNG.
void write_curve_grid(const std::string& path, const float* signals, int n, int channels,
                      int length, ValueRange range, int cols, const std::string& description = "",
                      int padding = 2);

}  // namespace vd
