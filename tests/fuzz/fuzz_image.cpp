// libFuzzer target: the PNG/JPEG decoder of `vae_data import-images` on arbitrary bytes, then
// the fit to a small training size. A vd::ImageError is the expected answer to bad input; a
// crash, a sanitizer report or any other exception is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "data/image_decode.hpp"
#include "data/image_resize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // A small pixel limit (256 x 256) keeps a forged header from asking for gigabytes and each
    // input fast.
    const vd::Image8 image = vd::decode_image(std::span<const uint8_t>(data, size), 1 << 16);
    // The decoder promised whole pixels of 1 or 3 channels.
    if ((image.channels != 1 && image.channels != 3) ||
        image.pixels.size() != static_cast<size_t>(image.width) *
                                   static_cast<size_t>(image.height) *
                                   static_cast<size_t>(image.channels))
      __builtin_trap();
    for (int channels : {1, 3})
      if (vd::fit_image(image, channels, 5, 7).size() != static_cast<size_t>(channels * 35))
        __builtin_trap();
  } catch (const vd::ImageError&) {
  }
  return 0;
}
