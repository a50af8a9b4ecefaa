// PNG files via libpng: atomic 8-bit gray/RGB writes for sample grids, and a reader for checks.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vd {

// Writes an 8-bit PNG: channels 1 (gray) or 3 (RGB), pixels row-major and interleaved,
// width * height * channels bytes. Writes path + ".tmp" and renames it over path, so a
// reader never sees a half-written image. Throws vd::IoError on file or libpng failure,
// vd::ShapeError when the sizes disagree. A non-empty `description` is stored as a tEXt
// "Description" chunk (image viewers and `identify -verbose` show it).
void write_png(const std::string& path, int width, int height, int channels,
               std::span<const uint8_t> pixels, const std::string& description = "");

struct PngImage {
  int width = 0;
  int height = 0;
  int channels = 0;             // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;  // row-major, interleaved, 8 bits per sample
  std::string description;      // the tEXt "Description" chunk before the pixels, or ""
};

// Reads any PNG, converted to 8 bits per sample (palette becomes RGB). Throws vd::IoError.
PngImage read_png(const std::string& path);

}  // namespace vd
