// vd::Conv2d, vd::Reshape and vd::Relu: parameters, shapes, and forward/backward through the
// cached oneDNN primitives of nn/dnnl_prims.
#include "nn/conv.hpp"

#include <cmath>

#include "core/error.hpp"

namespace vd {

int conv_output_size(int in, const ConvSpec& s) {
  if (s.transposed) return (in - 1) * s.stride - 2 * s.pad + s.kernel + s.output_pad;
  const int span = in + 2 * s.pad - s.kernel;
  return span < 0 ? 0 : span / s.stride + 1;
}

namespace {

Shape conv_out_shape(const std::string& name, Shape in, const ConvSpec& s) {
  const std::string what = std::string(s.transposed ? "convt" : "conv") + " layer " + name;
  VD_CHECK(!in.flat() || in.c == 1, ShapeError,
           what + " needs an image input (C x H x W) but gets a flat vector of " + in.text() +
               " values; put a 'reshape CxHxW' before it");
  VD_CHECK(s.out_channels > 0 && s.kernel > 0 && s.stride > 0 && s.pad >= 0 && s.output_pad >= 0,
           ShapeError,
           what + " needs positive channels, kernel and stride and no negative padding");
  VD_CHECK(s.output_pad < s.stride || s.output_pad == 0, ShapeError,
           what + ": the output padding must be smaller than the stride");
  const Shape out{s.out_channels, conv_output_size(in.h, s), conv_output_size(in.w, s)};
  VD_CHECK(out.h > 0 && out.w > 0, ShapeError,
           what + ": a " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) +
               " kernel does not fit the input " + in.text());
  return out;
}

}  // namespace

Conv2d::Conv2d(ParamStore& store, std::string name, Shape in, const ConvSpec& spec, Activation act)
    : Layer(name, in, conv_out_shape(name, in, spec)), store_(store), spec_(spec), act_(act) {
  const int64_t ic = in.c, oc = spec.out_channels, k = spec.kernel;
  if (spec.transposed)
    weight_ = store_.add(this->name() + ".weight", {ic, oc, k, k});
  else
    weight_ = store_.add(this->name() + ".weight", {oc, ic, k, k});
  bias_ = store_.add(this->name() + ".bias", {oc});
}

void Conv2d::init(Rng& rng) {
  const auto& w = store_.entries().at(weight_);
  const double fan_in = static_cast<double>(w.shape[1]) * spec_.kernel * spec_.kernel;
  const double bound = 1.0 / std::sqrt(fan_in);
  float* wp = store_.param(weight_);
  for (size_t i = 0; i < w.size; ++i) wp[i] = static_cast<float>(rng.uniform(-bound, bound));
  float* bp = store_.param(bias_);
  for (int i = 0; i < spec_.out_channels; ++i)
    bp[i] = static_cast<float>(rng.uniform(-bound, bound));
}

std::string Conv2d::describe() const {
  std::string d = std::string(spec_.transposed ? "convt " : "conv ") +
                  std::to_string(spec_.out_channels) + " k" + std::to_string(spec_.kernel) + " s" +
                  std::to_string(spec_.stride) + " p" + std::to_string(spec_.pad);
  if (spec_.output_pad) d += " op" + std::to_string(spec_.output_pad);
  return d + (act_ == Activation::ReLU ? " + relu" : "");
}

double Conv2d::flops_per_sample() const {
  // Every (input pixel, output pixel) pair the kernel links: the smaller side's pixels times
  // the other side's channels times K*K, for both a convolution and its transpose.
  const Shape& small = spec_.transposed ? in_shape() : out_shape();
  const Shape& other = spec_.transposed ? out_shape() : in_shape();
  return 2.0 * small.size() * other.c * spec_.kernel * spec_.kernel;
}

void Conv2d::set_precision(Precision p) {
  if (p != precision_) cache_.clear();  // primitives are built for one precision
  precision_ = p;
}

ConvPrims& Conv2d::prims(int n) {
  auto it = cache_.find(n);
  VD_CHECK(it != cache_.end(), Error,
           "conv layer " + name() + " runs batch size " + std::to_string(n) +
               " without prepare(); run it inside a Sequential");
  return *it->second;
}

ConvShape Conv2d::conv_shape(int n) const {
  const Shape& i = in_shape();
  const Shape& o = out_shape();
  return ConvShape{n,
                   i.c,
                   i.h,
                   i.w,
                   o.c,
                   o.h,
                   o.w,
                   spec_.kernel,
                   spec_.stride,
                   spec_.pad,
                   spec_.transposed,
                   act_ == Activation::ReLU,
                   precision_};
}

Layout Conv2d::prepare(Context& ctx, int n, const Layout& src) {
  auto it = cache_.find(n);
  if (it == cache_.end())
    it = cache_.emplace(n, std::make_unique<ConvPrims>(ctx.engine, conv_shape(n), src)).first;
  return it->second->dst_layout();
}

void Conv2d::forward(Context& ctx, int n, const float* src, float* dst) {
  prims(n).forward(ctx.stream, src, store_.param(weight_), store_.param(bias_), dst);
}

void Conv2d::backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                      float* diff_src) {
  ConvPrims& p = prims(n);
  if (act_ == Activation::ReLU)
    relu_backward_in_place(dst, diff_dst, layout_floats(p.dst_layout()));
  p.backward_weights(ctx.stream, src, diff_dst, store_.grad(weight_), store_.grad(bias_));
  if (diff_src) p.backward_data(ctx.stream, diff_dst, diff_src);
}

std::string Conv2d::impl_info(Context& /*ctx*/, int n) {
  return prims(n).impl_info();
}

// ---------------------------------------------------------------------------------------------

Reshape::Reshape(std::string name, Shape in, Shape out) : Layer(std::move(name), in, out) {
  VD_CHECK(in.size() == out.size(), ShapeError,
           "reshape layer " + this->name() + " cannot turn " + in.text() + " (" +
               std::to_string(in.size()) + " values) into " + out.text() + " (" +
               std::to_string(out.size()) + " values)");
}

std::string Reshape::describe() const {
  return out_shape().flat() ? "flatten" : "reshape " + out_shape().text();
}

Layout Reshape::prepare(Context& ctx, int n, const Layout& src) {
  if (!is_plain(src, n, in_shape()) && !blocked_.count(n)) {
    const Layout plain = plain_layout(n, in_shape());
    blocked_[n] = Reorders{std::make_unique<ReorderPrims>(ctx.engine, src, plain),
                           std::make_unique<ReorderPrims>(ctx.engine, plain, src)};
  }
  return plain_layout(n, out_shape());
}

bool Reshape::is_view(int n) const {
  return !blocked_.count(n);
}

void Reshape::forward(Context& ctx, int n, const float* src, float* dst) {
  blocked_.at(n).to_plain->run(ctx.stream, src, dst);
}

void Reshape::backward(Context& ctx, int n, const float* /*src*/, const float* /*dst*/,
                       float* diff_dst, float* diff_src) {
  if (diff_src) blocked_.at(n).from_plain->run(ctx.stream, diff_dst, diff_src);
}

// ---------------------------------------------------------------------------------------------

Layout Relu::prepare(Context& /*ctx*/, int n, const Layout& src) {
  floats_[n] = layout_floats(src);
  return src;
}

void Relu::forward(Context& /*ctx*/, int n, const float* __restrict src, float* __restrict dst) {
  const size_t count = floats_.at(n);
  for (size_t i = 0; i < count; ++i) dst[i] = src[i] > 0.0f ? src[i] : 0.0f;
}

void Relu::backward(Context& /*ctx*/, int n, const float* /*src*/, const float* __restrict dst,
                    float* __restrict diff_dst, float* __restrict diff_src) {
  if (!diff_src) return;
  const size_t count = floats_.at(n);
  for (size_t i = 0; i < count; ++i) diff_src[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
}

}  // namespace vd
