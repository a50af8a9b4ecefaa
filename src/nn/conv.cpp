// vd::Conv2d: parameters, shapes, forward/backward through the cached oneDNN primitives of
// nn/dnnl_prims, and the "conv" and "convt" layer kinds.
#include "nn/conv.hpp"

#include <cmath>

#include "core/error.hpp"
#include "nn/registry.hpp"

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
               " without prepare(); run it inside a Graph");
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
// The kinds: "conv C kK [sS] [pP]" and "convt C kK [sS] [pP] [opO]".

namespace {

ConvSpec parse_conv(const LayerText& l, bool transposed) {
  const std::string& k = l.keyword;
  ConvSpec spec;
  spec.transposed = transposed;
  if (l.has_body || l.args.size() < 2 || !parse_int(l.args[0], spec.out_channels) ||
      spec.out_channels < 1)
    throw SyntaxError("'" + k + "' needs positive output channels and a kernel, e.g. '" + k +
                      " 32 k4 s2 p1'");
  bool kernel = false;
  for (size_t i = 1; i < l.args.size(); ++i) {
    const std::string& a = l.args[i];
    const bool op = a.rfind("op", 0) == 0;
    int v = 0;
    if (!parse_int(a.substr(op ? 2 : 1), v)) throw SyntaxError("cannot read '" + a + "'");
    if (op && transposed && v >= 0) {
      spec.output_pad = v;
    } else if (a[0] == 'k' && v >= 1) {
      spec.kernel = v;
      kernel = true;
    } else if (a[0] == 's' && v >= 1) {
      spec.stride = v;
    } else if (a[0] == 'p' && v >= 0) {
      spec.pad = v;
    } else {
      throw SyntaxError("'" + a + "' is not a valid setting here");
    }
  }
  if (!kernel) throw SyntaxError("'" + k + "' needs a kernel size, e.g. k4");
  return spec;
}

LayerKind conv_kind_of(bool transposed) {
  LayerKind k;
  k.keyword = transposed ? "convt" : "conv";
  k.syntax = transposed ? "convt C kK [sS] [pP] [opO]" : "conv C kK [sS] [pP]";
  k.what = transposed ? "transposed convolution, output padding O (0)"
                      : "convolution, C output channels, K x K kernel, stride S (1), padding P (0)";
  k.torch = transposed ? "nn.ConvTranspose2d" : "nn.Conv2d";
  k.params = true;
  k.fuses_activation = true;
  k.check = [transposed](const LayerText& l) { parse_conv(l, transposed); };
  k.build = [transposed](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Conv2d>(s.store, s.name, s.in, parse_conv(l, transposed), s.act);
  };
  return k;
}

}  // namespace

LayerKind conv_kind() {
  return conv_kind_of(false);
}

LayerKind convt_kind() {
  return conv_kind_of(true);
}

}  // namespace vd
