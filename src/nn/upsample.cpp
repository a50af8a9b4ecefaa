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
  std::vector<int64_t> spatial = in.spatial();
  int64_t size = in.c;
  for (int64_t& v : spatial) {
    v *= factor;
    size *= v;
  }
  VD_CHECK(size <= INT_MAX, ShapeError,
           "up layer " + name + " would turn " + in.text() + " into " +
               in.with_spatial(in.c, spatial).text() + ", too large to index");
  return in.with_spatial(in.c, spatial);
}

// The factor on each of the three axes (depth, height, width) a shape of rank 1 to 3 has:
// 1 on the axes it lacks.
struct Axes {
  int64_t d, h, w;  // input sizes
  int fd, fh, fw;   // factors
};

Axes axes_of(const Shape& in, int s) {
  return Axes{in.d, in.h, in.w, in.rank == 3 ? s : 1, in.rank >= 2 ? s : 1, s};
}

// [R, D, H, W, B] -> [R, fd*D, fh*H, fw*W, B] (R = N * channel blocks): each B-vector of src
// written to fd x fh x fw places. One input line (r, z, y) fills fd * fh output lines.
void up_forward(int64_t rows, const Axes& a, int64_t b, const float* __restrict src,
                float* __restrict dst) {
  const int64_t ow = a.w * a.fw, oh = a.h * a.fh, od = a.d * a.fd;
  const int64_t lines = rows * a.d * a.h;
#pragma omp parallel for if (lines * a.w * b > (1 << 16))
  for (int64_t l = 0; l < lines; ++l) {  // l = (r * D + z) * H + y
    const int64_t y = l % a.h, z = (l / a.h) % a.d, r = l / (a.h * a.d);
    const float* in = src + l * a.w * b;
    float* out = dst + ((r * od + z * a.fd) * oh + y * a.fh) * ow * b;
    for (int64_t x = 0; x < a.w; ++x)
      for (int dx = 0; dx < a.fw; ++dx) {
        float* o = out + (x * a.fw + dx) * b;
#pragma omp simd
        for (int64_t i = 0; i < b; ++i) o[i] = in[x * b + i];
      }
    for (int dz = 0; dz < a.fd; ++dz)
      for (int dy = 0; dy < a.fh; ++dy)
        if (dz || dy) std::copy_n(out, ow * b, out + (dz * oh + dy) * ow * b);
  }
}

// The sum over each fd x fh x fw block of diff_dst, in row-major order within the block.
void up_backward(int64_t rows, const Axes& a, int64_t b, const float* __restrict diff_dst,
                 float* __restrict diff_src) {
  const int64_t ow = a.w * a.fw, oh = a.h * a.fh, od = a.d * a.fd;
  const int64_t lines = rows * a.d * a.h;
#pragma omp parallel for if (lines * a.w * b > (1 << 16))
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t y = l % a.h, z = (l / a.h) % a.d, r = l / (a.h * a.d);
    const float* g = diff_dst + ((r * od + z * a.fd) * oh + y * a.fh) * ow * b;
    float* d = diff_src + l * a.w * b;
    for (int64_t x = 0; x < a.w; ++x) {
      float* o = d + x * b;
      for (int64_t i = 0; i < b; ++i) o[i] = 0.0f;
      for (int dz = 0; dz < a.fd; ++dz)
        for (int dy = 0; dy < a.fh; ++dy)
          for (int dx = 0; dx < a.fw; ++dx) {
            const float* in = g + ((dz * oh + dy) * ow + x * a.fw + dx) * b;
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
  up_forward(int64_t{n} * cb, axes_of(i, factor_), c.block, src, dst);
  zero_padding(n, i.c, out_shape().spatial_size(), c.block, dst);
}

void Upsample::backward(Context& ctx, int n, const float* /*src*/, const float* /*dst*/,
                        float* diff_dst, float* diff_src) {
  if (!diff_src) return;
  const Cached& c = cached(n);
  if (!c.block) return c.prims->backward(ctx.stream, diff_dst, diff_src);
  const Shape& i = in_shape();
  const int64_t cb = (i.c + c.block - 1) / c.block;
  up_backward(int64_t{n} * cb, axes_of(i, factor_), c.block, diff_dst, diff_src);
  zero_padding(n, i.c, i.spatial_size(), c.block, diff_src);
}

std::string Upsample::impl_info(int n) {
  const Cached& c = cached(n);
  if (!c.block) return c.prims->impl_info();
  const std::string layout = layout_name(in_shape().rank, c.block);
  return "forward=own copy loops, backward=own sum loops, src " + layout + " -> dst " + layout;
}

LayerKind up_kind() {
  LayerKind k;
  k.keyword = "up";
  k.syntax = "up S";
  k.what =
      "nearest-neighbour up-sampling by an integer factor S on every axis: C x H x W -> "
      "C x SH x SW (1-D: C x SL, 3-D: C x SD x SH x SW)";
  k.torch = "nn.Upsample(scale_factor=S, mode='nearest') (F.interpolate)";
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
