// vd::Upsample: nearest-neighbour up-sampling on oneDNN's resampling primitive, and the "up S"
// layer kind.
#include "nn/upsample.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>

#include "core/error.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/registry.hpp"

namespace vd {

namespace {

Shape upsampled(const std::string& name, const Shape& in, int factor) {
  VD_CHECK(factor >= 1, ShapeError,
           "up layer " + name + " needs a factor of at least 1, got " + std::to_string(factor));
  const int64_t h = int64_t{in.h} * factor, w = int64_t{in.w} * factor;
  VD_CHECK(h <= INT_MAX && w <= INT_MAX && in.c * h * w <= INT_MAX, ShapeError,
           "up layer " + name + " would turn " + in.text() + " into " + std::to_string(in.c) + "x" +
               std::to_string(h) + "x" + std::to_string(w) + ", too large to index");
  return Shape{in.c, static_cast<int>(h), static_cast<int>(w)};
}

// [N, Cb, H, W, B] -> [N, Cb, S*H, S*W, B]: each B-vector of src written to S x S places.
void up_forward(int64_t rows, int64_t h, int64_t w, int64_t b, int s, const float* __restrict src,
                float* __restrict dst) {
  const int64_t ow = w * s;
#pragma omp parallel for if (rows * h * w * b > (1 << 16))
  for (int64_t r = 0; r < rows * h; ++r) {  // r = (n * Cb + cb) * H + y
    const float* in = src + r * w * b;
    float* out = dst + r * s * ow * b;
    for (int64_t x = 0; x < w; ++x)
      for (int dx = 0; dx < s; ++dx) {
        float* o = out + (x * s + dx) * b;
#pragma omp simd
        for (int64_t i = 0; i < b; ++i) o[i] = in[x * b + i];
      }
    for (int dy = 1; dy < s; ++dy) std::copy_n(out, ow * b, out + dy * ow * b);
  }
}

// The sum over each S x S block of diff_dst, in row-major order within the block.
void up_backward(int64_t rows, int64_t h, int64_t w, int64_t b, int s,
                 const float* __restrict diff_dst, float* __restrict diff_src) {
  const int64_t ow = w * s;
#pragma omp parallel for if (rows * h * w * b > (1 << 16))
  for (int64_t r = 0; r < rows * h; ++r) {
    const float* g = diff_dst + r * s * ow * b;
    float* d = diff_src + r * w * b;
    for (int64_t x = 0; x < w; ++x) {
      float* o = d + x * b;
      for (int64_t i = 0; i < b; ++i) o[i] = 0.0f;
      for (int dy = 0; dy < s; ++dy)
        for (int dx = 0; dx < s; ++dx) {
          const float* in = g + (dy * ow + x * s + dx) * b;
#pragma omp simd
          for (int64_t i = 0; i < b; ++i) o[i] += in[i];
        }
    }
  }
}

// Zeroes the padding lanes (channels c..Cb*B-1) of the last channel block of every sample of a
// [N, Cb, P, B] buffer (P positions): inputs may hold anything there, outputs must hold zeros.
void zero_padding(int64_t n, int64_t c, int64_t positions, int64_t b, float* data) {
  const int64_t cb = (c + b - 1) / b, used = c - (cb - 1) * b;
  if (used == b) return;
  for (int64_t i = 0; i < n; ++i) {
    float* block = data + (i * cb + cb - 1) * positions * b;
    for (int64_t p = 0; p < positions; ++p)
      std::fill(block + p * b + used, block + (p + 1) * b, 0.0f);
  }
}

}  // namespace

Upsample::Upsample(std::string name, Shape in, int factor)
    : Layer(name, in, upsampled(name, in, factor)), factor_(factor) {}

const Upsample::Cached& Upsample::cached(int n) const {
  auto it = cache_.find(n);
  VD_CHECK(it != cache_.end(), Error,
           "up layer " + name() + " runs batch size " + std::to_string(n) +
               " without prepare(); run it inside a Graph");
  return it->second;
}

Layout Upsample::prepare(Context& ctx, int n, const Layout& src) {
  auto it = cache_.find(n);
  if (it == cache_.end() || it->second.src != src) {
    auto prims = std::make_unique<ResamplingPrims>(ctx.engine, src, factor_);
    const int block = channel_block_of(src);
    const bool own = block > 0 && channel_block_of(prims->dst_layout()) == block;
    it = cache_.insert_or_assign(n, Cached{src, std::move(prims), own ? block : 0}).first;
  }
  return it->second.prims->dst_layout();
}

void Upsample::forward(Context& ctx, int n, const float* src, float* dst) {
  const Cached& c = cached(n);
  if (!c.block) return c.prims->forward(ctx.stream, src, dst);
  const Shape& i = in_shape();
  const int64_t cb = (i.c + c.block - 1) / c.block;
  up_forward(int64_t{n} * cb, i.h, i.w, c.block, factor_, src, dst);
  zero_padding(n, i.c, int64_t{i.h} * i.w * factor_ * factor_, c.block, dst);
}

void Upsample::backward(Context& ctx, int n, const float* /*src*/, const float* /*dst*/,
                        float* diff_dst, float* diff_src) {
  if (!diff_src) return;
  const Cached& c = cached(n);
  if (!c.block) return c.prims->backward(ctx.stream, diff_dst, diff_src);
  const Shape& i = in_shape();
  const int64_t cb = (i.c + c.block - 1) / c.block;
  up_backward(int64_t{n} * cb, i.h, i.w, c.block, factor_, diff_dst, diff_src);
  zero_padding(n, i.c, int64_t{i.h} * i.w, c.block, diff_src);
}

std::string Upsample::impl_info(int n) {
  const Cached& c = cached(n);
  if (!c.block) return c.prims->impl_info();
  const std::string layout = c.block == 1 ? "nchw" : "nChw" + std::to_string(c.block) + "c";
  return "forward=own copy loops, backward=own sum loops, src " + layout + " -> dst " + layout;
}

LayerKind up_kind() {
  LayerKind k;
  k.keyword = "up";
  k.syntax = "up S";
  k.what = "nearest-neighbour up-sampling by an integer factor S: C x H x W -> C x SH x SW";
  k.torch = "nn.Upsample(scale_factor=S, mode='nearest')";
  const auto factor = [](const LayerText& l) {
    int s = 0;
    if (l.has_body || l.args.size() != 1 || !parse_int(l.args[0], s) || s < 2)
      throw SyntaxError("'up' takes one integer factor of at least 2, e.g. 'up 2'");
    return s;
  };
  k.check = [factor](const LayerText& l) { factor(l); };
  k.build = [factor](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Upsample>(s.name, s.in, factor(l));
  };
  return k;
}

}  // namespace vd
