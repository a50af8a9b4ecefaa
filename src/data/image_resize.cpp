// Channel conversion, PIL's bilinear resampling (Pillow's Resample.c arithmetic, rewritten from
// its description: weights per output pixel, normalised, then 22-bit fixed point) and the crop.
#include "data/image_resize.hpp"

#include <algorithm>
#include <cmath>

namespace vd {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's PRECISION_BITS for 8-bit images

// The taps of one axis: output pixel i reads `count[i]` inputs from `first[i]` with the
// fixed-point weights w[i * ksize + k].
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> w;
};

Taps bilinear_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // the triangle's support is 1
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<size_t>(out_size));
  t.count.resize(static_cast<size_t>(out_size));
  t.w.assign(static_cast<size_t>(out_size) * static_cast<size_t>(t.ksize), 0);
  std::vector<double> k(static_cast<size_t>(t.ksize));
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    const int n = hi - lo;
    double total = 0.0;
    for (int x = 0; x < n; ++x) {
      const double d = std::abs((x + lo - center + 0.5) * ss);
      k[static_cast<size_t>(x)] = d < 1.0 ? 1.0 - d : 0.0;
      total += k[static_cast<size_t>(x)];
    }
    for (int x = 0; x < n; ++x) {
      const double v = total != 0.0 ? k[static_cast<size_t>(x)] / total : k[static_cast<size_t>(x)];
      // The weights are never negative: round half up.
      t.w[static_cast<size_t>(i) * static_cast<size_t>(t.ksize) + static_cast<size_t>(x)] =
          static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    t.first[static_cast<size_t>(i)] = lo;
    t.count[static_cast<size_t>(i)] = n;
  }
  return t;
}

uint8_t clip8(int32_t ss) {
  if (ss <= 0) return 0;
  const int32_t v = ss >> kPrecisionBits;
  return static_cast<uint8_t>(v > 255 ? 255 : v);
}

// The horizontal pass: each output pixel sums its taps along the row, channel by channel.
Image8 resample_horizontal(const Image8& src, int width) {
  const Taps t = bilinear_taps(src.width, width);
  Image8 dst{width, src.height, src.channels, {}};
  const size_t c = static_cast<size_t>(src.channels);
  dst.pixels.resize(static_cast<size_t>(width) * static_cast<size_t>(src.height) * c);
  for (size_t y = 0; y < static_cast<size_t>(src.height); ++y) {
    const uint8_t* row = src.pixels.data() + y * static_cast<size_t>(src.width) * c;
    uint8_t* out = dst.pixels.data() + y * static_cast<size_t>(width) * c;
    for (size_t x = 0; x < static_cast<size_t>(width); ++x) {
      const int32_t* w = t.w.data() + x * static_cast<size_t>(t.ksize);
      const uint8_t* in = row + static_cast<size_t>(t.first[x]) * c;
      const int n = t.count[x];
      for (size_t ch = 0; ch < c; ++ch) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int k = 0; k < n; ++k) ss += in[static_cast<size_t>(k) * c + ch] * w[k];
        out[x * c + ch] = clip8(ss);
      }
    }
  }
  return dst;
}

// The vertical pass: an output row is a weighted sum of whole input rows (a loop the compiler
// vectorises), rounded as Pillow rounds each pixel.
Image8 resample_vertical(const Image8& src, int height) {
  const Taps t = bilinear_taps(src.height, height);
  Image8 dst{src.width, height, src.channels, {}};
  const size_t stride = static_cast<size_t>(src.width) * static_cast<size_t>(src.channels);
  dst.pixels.resize(stride * static_cast<size_t>(height));
  std::vector<int32_t> acc(stride);
  for (size_t y = 0; y < static_cast<size_t>(height); ++y) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* w = t.w.data() + y * static_cast<size_t>(t.ksize);
    for (int k = 0; k < t.count[y]; ++k) {
      const uint8_t* in = src.pixels.data() + static_cast<size_t>(t.first[y] + k) * stride;
      const int32_t wk = w[k];
      for (size_t j = 0; j < stride; ++j) acc[j] += in[j] * wk;
    }
    uint8_t* out = dst.pixels.data() + y * stride;
    for (size_t j = 0; j < stride; ++j) out[j] = clip8(acc[j]);
  }
  return dst;
}

// Python's round(x) of a non-negative half-integer or integer x = v / 2: half to even.
int round_half_even_half(int v) {
  const int q = v / 2;
  if (v % 2 == 0) return q;
  return q % 2 == 0 ? q : q + 1;
}

}  // namespace

Image8 convert_channels(const Image8& src, int channels) {
  if (src.channels == channels) return src;
  Image8 dst;
  dst.width = src.width;
  dst.height = src.height;
  dst.channels = channels;
  const size_t n = static_cast<size_t>(src.width) * static_cast<size_t>(src.height);
  dst.pixels.resize(n * static_cast<size_t>(channels));
  if (channels == 1) {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = src.pixels.data() + 3 * i;
      dst.pixels[i] =
          static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    }
  } else {
    for (size_t i = 0; i < n; ++i)
      dst.pixels[3 * i] = dst.pixels[3 * i + 1] = dst.pixels[3 * i + 2] = src.pixels[i];
  }
  return dst;
}

Image8 resize_bilinear(const Image8& src, int width, int height) {
  // Pillow resamples only the axes whose size changes, horizontal first. (It also limits the
  // horizontal pass to the rows the vertical one reads, which changes no value.)
  if (width == src.width && height == src.height) return src;
  if (width == src.width) return resample_vertical(src, height);
  Image8 h = resample_horizontal(src, width);
  if (height == src.height) return h;
  return resample_vertical(h, height);
}

ResizePlan plan_resize(int src_width, int src_height, int width, int height) {
  ResizePlan p;
  // The side whose ratio is larger goes to its target; the other follows, truncated.
  if (static_cast<int64_t>(height) * src_width >= static_cast<int64_t>(width) * src_height) {
    p.height = height;
    p.width = static_cast<int>(static_cast<double>(height) * src_width / src_height);
  } else {
    p.width = width;
    p.height = static_cast<int>(static_cast<double>(width) * src_height / src_width);
  }
  p.width = std::max(p.width, width);
  p.height = std::max(p.height, height);
  p.left = round_half_even_half(p.width - width);
  p.top = round_half_even_half(p.height - height);
  return p;
}

std::vector<uint8_t> fit_image(const Image8& src, int channels, int height, int width) {
  const Image8 conv = convert_channels(src, channels);
  const ResizePlan p = plan_resize(conv.width, conv.height, width, height);
  const Image8 r = resize_bilinear(conv, p.width, p.height);
  std::vector<uint8_t> out(static_cast<size_t>(channels) * static_cast<size_t>(height) *
                           static_cast<size_t>(width));
  const size_t plane = static_cast<size_t>(height) * static_cast<size_t>(width);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int ch = 0; ch < channels; ++ch)
        out[static_cast<size_t>(ch) * plane + static_cast<size_t>(y) * width + x] =
            r.pixels[(static_cast<size_t>(y + p.top) * r.width + static_cast<size_t>(x + p.left)) *
                         channels +
                     ch];
  return out;
}

}  // namespace vd
