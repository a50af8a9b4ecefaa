// Image files for `vae_data import-images`: PNG (libpng) and JPEG (libjpeg-turbo) recognised by
// their magic bytes and decoded from memory into 8-bit gray or RGB pixels. Not an encoder.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vd {

// 8-bit pixels, row-major and interleaved: height * width * channels bytes (1 gray, 3 RGB).
struct Image8 {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

enum class ImageFormat { Png, Jpeg, Unknown };

// From the first bytes: PNG's 8-byte signature, JPEG's SOI marker FF D8 FF. The extension
// plays no part.
ImageFormat sniff_image(std::span<const uint8_t> bytes);

// Why a file is not imported; each is a count in the import's summary.
enum class ImageFault { Empty, NotAnImage, Truncated, Corrupt, Unsupported, Unreadable };
inline constexpr int kImageFaultKinds = 6;
// "empty file", "not a PNG or JPEG", "truncated", "corrupt", "unsupported", "unreadable".
const char* image_fault_name(ImageFault fault);

// A file that cannot be imported: its fault and a detail (the decoder's message).
class ImageError : public DataError {
 public:
  ImageError(ImageFault fault, const std::string& detail)
      : DataError(std::string(image_fault_name(fault)) + (detail.empty() ? "" : ": " + detail)),
        fault_(fault) {}
  ImageFault fault() const { return fault_; }

 private:
  ImageFault fault_;
};

// Images with more pixels than this are refused (Unsupported) before their pixels are
// allocated: 2^28 is 16384 x 16384, beyond any training image.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

// Decodes a PNG or JPEG held in memory to 8-bit gray (1 channel) or RGB (3 channels), as PIL
// opens it and before any conversion:
//   - PNG: palette images are expanded to RGB, gray of 1, 2 or 4 bits to 8 bits (0..255), 16-bit
//     samples scaled to 8 bits (round(v * 255 / 65535), libpng's png_set_scale_16); alpha (and a
//     tRNS transparency) is ignored: the colour samples are kept as they are, as PIL's
//     convert("RGB") and convert("L") do. Gamma and ICC profiles are ignored, as PIL does.
//   - JPEG: grayscale stays gray; YCbCr and RGB become RGB with libjpeg's defaults (islow IDCT,
//     fancy upsampling: what PIL gets from the same library). CMYK and YCCK are Unsupported.
// Throws ImageError: Empty, NotAnImage, Truncated (the data end early; libjpeg's premature end
// of file counts, though libjpeg itself only warns), Corrupt (the decoder's error), Unsupported.
Image8 decode_image(std::span<const uint8_t> bytes, int64_t max_pixels = kMaxImagePixels);

}  // namespace vd
