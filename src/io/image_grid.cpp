// Image grid tiling: planar float tiles to one interleaved 8-bit canvas, then write_png; and
// 1-D signals rasterised as anti-aliased polylines into RGB cells of the same kind of grid.
#include "io/image_grid.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

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
                      int width, int cols, int padding, const std::string& description) {
  int grid_width = 0;
  int grid_height = 0;
  const auto canvas =
      tile_image_grid(images, n, channels, height, width, cols, padding, grid_width, grid_height);
  write_png(path, grid_width, grid_height, channels, canvas, description);
}

ValueRange curve_value_range(const float* values, size_t count) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) continue;
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  if (lo > hi || (lo >= 0.0f && hi <= 1.0f)) return {0.0f, 1.0f};
  if (lo == hi) return {lo - 0.5f, hi + 0.5f};
  return {lo, hi};
}

int curve_width(int length) {
  return std::clamp(length, 128, 256);
}

namespace {

constexpr std::array<std::array<uint8_t, 3>, 10> kTab10 = {{{31, 119, 180},
                                                            {255, 127, 14},
                                                            {44, 160, 44},
                                                            {214, 39, 40},
                                                            {148, 103, 189},
                                                            {140, 86, 75},
                                                            {227, 119, 194},
                                                            {127, 127, 127},
                                                            {188, 189, 34},
                                                            {23, 190, 207}}};
constexpr const char* kTab10Names[10] = {"blue",  "orange", "green", "red",   "purple",
                                         "brown", "pink",   "gray",  "olive", "cyan"};

// Half the stroke width: a 1.5 px line stays readable in a 64 px cell without looking bold.
constexpr float kHalfStroke = 0.75f;

// Coverage of a stroke along a..b (pixel centres at integer coordinates): 1 within the stroke,
// a linear ramp over the pixel at its edge; max-combined so joints are not drawn twice.
void stroke(float ax, float ay, float bx, float by, int width, int height, float* cover) {
  const float reach = kHalfStroke + 1.0f;
  const int x0 = std::max(0, static_cast<int>(std::floor(std::min(ax, bx) - reach)));
  const int x1 = std::min(width - 1, static_cast<int>(std::ceil(std::max(ax, bx) + reach)));
  const int y0 = std::max(0, static_cast<int>(std::floor(std::min(ay, by) - reach)));
  const int y1 = std::min(height - 1, static_cast<int>(std::ceil(std::max(ay, by) + reach)));
  const float dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      const float px = static_cast<float>(x) - ax, py = static_cast<float>(y) - ay;
      const float t = len2 > 0.0f ? std::clamp((px * dx + py * dy) / len2, 0.0f, 1.0f) : 0.0f;
      const float ex = px - t * dx, ey = py - t * dy;
      const float c = std::clamp(kHalfStroke + 0.5f - std::sqrt(ex * ex + ey * ey), 0.0f, 1.0f);
      float& dst = cover[static_cast<size_t>(y) * static_cast<size_t>(width) + x];
      dst = std::max(dst, c);
    }
}

// Draws one sample's channels into the RGB cell at `cell` (row stride `stride` bytes).
void draw_curve_cell(const float* signal, int channels, int length, ValueRange range, int height,
                     int width, uint8_t* cell, size_t stride, std::vector<float>& cover) {
  const auto px = [&](int x, int y) {
    return cell + static_cast<size_t>(y) * stride + static_cast<size_t>(x) * 3;
  };
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) std::copy_n(kCurveBackground.data(), 3, px(x, y));
  const float guide_value =
      range.lo < 0.0f && range.hi > 0.0f ? 0.0f : 0.5f * (range.lo + range.hi);
  const int guide = static_cast<int>(std::lround(curve_row(guide_value, range, height)));
  for (int x = 0; x < width; ++x) std::copy_n(kCurveGuide.data(), 3, px(x, guide));

  const auto x_of = [&](int i) {
    return length == 1 ? 0.5f * static_cast<float>(width - 1)
                       : static_cast<float>(i) * static_cast<float>(width - 1) /
                             static_cast<float>(length - 1);
  };
  for (int ch = 0; ch < channels; ++ch) {
    const float* v = signal + static_cast<size_t>(ch) * static_cast<size_t>(length);
    std::fill(cover.begin(), cover.end(), 0.0f);
    for (int i = 0; i < length; ++i) {
      if (!std::isfinite(v[i])) continue;
      const float xa = x_of(i), ya = curve_row(v[i], range, height);
      if (i + 1 < length && std::isfinite(v[i + 1]))
        stroke(xa, ya, x_of(i + 1), curve_row(v[i + 1], range, height), width, height,
               cover.data());
      else if (i == 0 || !std::isfinite(v[i - 1]))
        stroke(xa, ya, xa, ya, width, height, cover.data());  // an isolated point: a dot
    }
    const std::array<uint8_t, 3> colour = curve_colour(ch);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        const float a = cover[static_cast<size_t>(y) * static_cast<size_t>(width) + x];
        if (a <= 0.0f) continue;
        uint8_t* p = px(x, y);
        for (int k = 0; k < 3; ++k)
          p[k] = static_cast<uint8_t>(std::lround((1.0f - a) * p[k] + a * colour[k]));
      }
  }
}

}  // namespace

std::array<uint8_t, 3> curve_colour(int channel) {
  return kTab10[static_cast<size_t>(channel) % kTab10.size()];
}

const char* curve_colour_name(int channel) {
  return kTab10Names[static_cast<size_t>(channel) % kTab10.size()];
}

float curve_row(float v, ValueRange range, int height) {
  const int margin = height > 2 * kCurveMargin ? kCurveMargin : 0;
  const float top = static_cast<float>(margin);
  const float bottom = static_cast<float>(height - 1 - margin);
  if (!(range.hi > range.lo)) return 0.5f * (top + bottom);
  const float t = (range.hi - v) / (range.hi - range.lo);
  return std::clamp(top + t * (bottom - top), 0.0f, static_cast<float>(height - 1));
}

std::vector<uint8_t> tile_curve_grid(const float* signals, int n, int channels, int length,
                                     ValueRange range, int height, int width, int cols, int padding,
                                     int& grid_width, int& grid_height) {
  if (signals == nullptr || n < 1 || channels < 1 || length < 1 || height < 1 || width < 1 ||
      cols < 1 || padding < 0 || !std::isfinite(range.lo) || !std::isfinite(range.hi) ||
      !(range.hi > range.lo)) {
    throw ShapeError(
        "curve grid: need signals, n, channels, length, height, width, cols >= 1, padding >= 0 "
        "and a finite range lo < hi; got n=" +
        std::to_string(n) + " channels=" + std::to_string(channels) +
        " length=" + std::to_string(length) + " height=" + std::to_string(height) +
        " width=" + std::to_string(width) + " cols=" + std::to_string(cols) +
        " padding=" + std::to_string(padding) + " range=" + std::to_string(range.lo) + ".." +
        std::to_string(range.hi));
  }
  const int rows = (n + cols - 1) / cols;
  grid_width = cols * width + (cols + 1) * padding;
  grid_height = rows * height + (rows + 1) * padding;
  const size_t stride = static_cast<size_t>(grid_width) * 3;
  std::vector<uint8_t> canvas(stride * static_cast<size_t>(grid_height), kGridPadValue);
  std::vector<float> cover(static_cast<size_t>(height) * static_cast<size_t>(width));
  const size_t sample = static_cast<size_t>(channels) * static_cast<size_t>(length);
  for (int i = 0; i < n; ++i) {
    const size_t x0 = static_cast<size_t>(padding + (i % cols) * (width + padding));
    const size_t y0 = static_cast<size_t>(padding + (i / cols) * (height + padding));
    draw_curve_cell(signals + static_cast<size_t>(i) * sample, channels, length, range, height,
                    width, canvas.data() + y0 * stride + x0 * 3, stride, cover);
  }
  return canvas;
}

void write_curve_grid(const std::string& path, const float* signals, int n, int channels,
                      int length, ValueRange range, int cols, const std::string& description,
                      int padding) {
  int grid_width = 0;
  int grid_height = 0;
  const auto canvas = tile_curve_grid(signals, n, channels, length, range, kCurveHeight,
                                      curve_width(length), cols, padding, grid_width, grid_height);
  write_png(path, grid_width, grid_height, 3, canvas, description);
}

}  // namespace vd
