// vd::Conv: parameters, shapes (1-D, 2-D, 3-D), forward/backward through the cached oneDNN
// primitives of nn/dnnl_prims, and the "conv" and "convt" layer kinds.
#include "nn/conv.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "nn/registry.hpp"

namespace vd {

int conv_output_size(int in, int kernel, int stride, int pad, int output_pad, bool transposed) {
  if (transposed) return (in - 1) * stride - 2 * pad + kernel + output_pad;
  const int span = in + 2 * pad - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

int conv_output_size(int in, const ConvSpec& s) {
  return conv_output_size(in, s.kernel, s.stride, s.pad, s.output_pad, s.transposed);
}

namespace {

// "5x3": sizes joined by x.
std::string joined(const std::vector<int>& v) {
  std::string t;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) t += 'x';
    t += std::to_string(v[i]);
  }
  return t;
}

// Kernel, stride, padding and output padding per spatial axis of `in`.
struct ConvAxes {
  std::vector<int> kernel, stride, pad, output_pad;
};

ConvAxes conv_axes(const std::string& what, const Shape& in, const ConvSpec& s) {
  const size_t rank = static_cast<size_t>(in.rank);
  const auto axes = [&](const std::vector<int>& given, int every, const std::string& letter,
                        const std::string& setting) {
    if (given.empty()) return std::vector<int>(rank, every);
    if (given.size() != rank) {
      // "a 3-D kernel on 2-D data 3x64x64; write k3 or k3x3": the fix keeps the first size.
      const std::string one = letter + std::to_string(given[0]);
      std::string all = one;
      for (size_t a = 1; a < rank; ++a) {
        all += 'x';
        all += std::to_string(given[0]);
      }
      throw ShapeError(what + ": a " + std::to_string(given.size()) + "-D " + setting + " on " +
                       in.kind() + " data " + in.text() + "; write " + one +
                       (rank > 1 ? " or " + all : std::string()));
    }
    return given;
  };
  return ConvAxes{axes(s.kernels, s.kernel, "k", "kernel"),
                  axes(s.strides, s.stride, "s", "stride"), axes(s.pads, s.pad, "p", "padding"),
                  axes(s.output_pads, s.output_pad, "op", "output padding")};
}

std::string layer_what(const std::string& name, const ConvSpec& s) {
  return std::string(s.transposed ? "convt" : "conv") + " layer " + name;
}

Shape conv_out_shape(const std::string& name, Shape in, const ConvSpec& s) {
  const std::string what = layer_what(name, s);
  VD_CHECK(!in.flat() || in.c == 1, ShapeError,
           what +
               " needs 1-D, 2-D or 3-D data (C x L, C x H x W or C x D x H x W) but gets a "
               "flat vector of " +
               in.text() + " values; put a 'reshape CxHxW' (or CxL, CxDxHxW) before it");
  const ConvAxes ax = conv_axes(what, in, s);
  const auto all_of = [](const std::vector<int>& v, int least) {
    for (int x : v)
      if (x < least) return false;
    return true;
  };
  VD_CHECK(s.out_channels > 0 && all_of(ax.kernel, 1) && all_of(ax.stride, 1) &&
               all_of(ax.pad, 0) && all_of(ax.output_pad, 0),
           ShapeError,
           what + " needs positive channels, kernel and stride and no negative padding");
  const std::vector<int64_t> in_sp = in.spatial();
  std::vector<int64_t> out_sp;
  bool fits = true;
  for (size_t a = 0; a < in_sp.size(); ++a) {
    VD_CHECK(ax.output_pad[a] < ax.stride[a] || ax.output_pad[a] == 0, ShapeError,
             what + ": the output padding must be smaller than the stride");
    out_sp.push_back(conv_output_size(static_cast<int>(in_sp[a]), ax.kernel[a], ax.stride[a],
                                      ax.pad[a], ax.output_pad[a], s.transposed));
    fits = fits && out_sp.back() > 0;
  }
  // "a 5x5 kernel", "a 3x3x3 kernel"; one axis: "a kernel of 5".
  const std::string kernel =
      in.rank == 1 ? "kernel of " + std::to_string(ax.kernel[0]) : joined(ax.kernel) + " kernel";
  VD_CHECK(fits, ShapeError, what + ": a " + kernel + " does not fit the input " + in.text());
  return in.with_spatial(s.out_channels, out_sp);
}

}  // namespace

Conv::Conv(ParamStore& store, std::string name, Shape in, const ConvSpec& spec, Activation act)
    : Layer(name, in, conv_out_shape(name, in, spec)), store_(store), spec_(spec), act_(act) {
  ConvAxes ax = conv_axes(layer_what(name, spec), in, spec);
  kernel_ = std::move(ax.kernel);
  stride_ = std::move(ax.stride);
  pad_ = std::move(ax.pad);
  output_pad_ = std::move(ax.output_pad);
  const int64_t ic = in.c, oc = spec.out_channels;
  std::vector<int64_t> shape =
      spec.transposed ? std::vector<int64_t>{ic, oc} : std::vector<int64_t>{oc, ic};
  for (int k : kernel_) shape.push_back(k);
  weight_ = store_.add(this->name() + ".weight", shape);
  bias_ = store_.add(this->name() + ".bias", {oc});
}

void Conv::init(Rng& rng) {
  const auto& w = store_.entries().at(weight_);
  double fan_in = static_cast<double>(w.shape[1]);
  for (int k : kernel_) fan_in *= k;
  const double bound = 1.0 / std::sqrt(fan_in);
  float* wp = store_.param(weight_);
  for (size_t i = 0; i < w.size; ++i) wp[i] = static_cast<float>(rng.uniform(-bound, bound));
  float* bp = store_.param(bias_);
  for (int i = 0; i < spec_.out_channels; ++i)
    bp[i] = static_cast<float>(rng.uniform(-bound, bound));
}

namespace {
// "3" when every axis has the same size, else "5x3".
std::string setting_text(const std::vector<int>& v) {
  for (int x : v)
    if (x != v[0]) return joined(v);
  return std::to_string(v[0]);
}
}  // namespace

std::string Conv::describe() const {
  std::string d = std::string(spec_.transposed ? "convt " : "conv ") +
                  std::to_string(spec_.out_channels) + " k" + setting_text(kernel_) + " s" +
                  setting_text(stride_) + " p" + setting_text(pad_);
  bool op = false;
  for (int v : output_pad_) op = op || v != 0;
  if (op) d += " op" + setting_text(output_pad_);
  return d + (act_ == Activation::ReLU ? " + relu" : "");
}

double Conv::flops_per_sample() const {
  // Every (input value, output value) pair the kernel links: the smaller side's values times
  // the other side's channels times prod(K), for both a convolution and its transpose.
  const Shape& small = spec_.transposed ? in_shape() : out_shape();
  const Shape& other = spec_.transposed ? out_shape() : in_shape();
  double k = 1;
  for (int v : kernel_) k *= v;
  return 2.0 * small.size() * other.c * k;
}

void Conv::set_precision(Precision p) {
  if (p != precision_) cache_.clear();  // primitives are built for one precision
  precision_ = p;
}

ConvPrims& Conv::prims(int n) {
  auto it = cache_.find(n);
  VD_CHECK(it != cache_.end(), Error,
           "conv layer " + name() + " runs batch size " + std::to_string(n) +
               " without prepare(); run it inside a Graph");
  return *it->second;
}

ConvShape Conv::conv_shape(int n) const {
  const Shape& i = in_shape();
  const Shape& o = out_shape();
  const auto same = [](const std::vector<int>& v) {
    for (int x : v)
      if (x != v[0]) return false;
    return true;
  };
  ConvShape s{n,
              i.c,
              i.h,
              i.w,
              o.c,
              o.h,
              o.w,
              kernel_[0],
              stride_[0],
              pad_[0],
              spec_.transposed,
              act_ == Activation::ReLU,
              precision_};
  s.rank = i.rank;
  s.id = i.rank == 3 ? i.d : 1;
  s.od = o.rank == 3 ? o.d : 1;
  // Per axis only where the axes differ, so the single sizes above are exact otherwise.
  if (!same(kernel_) || !same(stride_) || !same(pad_)) {
    s.kernels = kernel_;
    s.strides = stride_;
    s.pads = pad_;
  }
  return s;
}

Layout Conv::prepare(Context& ctx, int n, const Layout& src) {
  auto it = cache_.find(n);
  if (it == cache_.end())
    it = cache_.emplace(n, std::make_unique<ConvPrims>(ctx.engine, conv_shape(n), src)).first;
  return it->second->dst_layout();
}

void Conv::forward(Context& ctx, int n, const float* src, float* dst) {
  prims(n).forward(ctx.stream, src, store_.param(weight_), store_.param(bias_), dst);
}

void Conv::backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                    float* diff_src) {
  ConvPrims& p = prims(n);
  if (act_ == Activation::ReLU)
    relu_backward_in_place(dst, diff_dst, layout_floats(p.dst_layout()));
  p.backward_weights(ctx.stream, src, diff_dst, store_.grad(weight_), store_.grad(bias_));
  if (diff_src) p.backward_data(ctx.stream, diff_dst, diff_src);
}

std::string Conv::impl_info(Context& /*ctx*/, int n) {
  return prims(n).impl_info();
}

// ---------------------------------------------------------------------------------------------
// The kinds: "conv C kK [sS] [pP]" and "convt C kK [sS] [pP] [opO]".

namespace {

// "3" or "5x3" or "3x3x3": one size, or one per spatial axis (at most 3); false when a part is
// not a number.
bool parse_sizes(const std::string& text, std::vector<int>& sizes) {
  sizes.clear();
  size_t from = 0;
  while (true) {
    const size_t x = text.find('x', from);
    int v = 0;
    if (!parse_int(text.substr(from, x == std::string::npos ? std::string::npos : x - from), v))
      return false;
    sizes.push_back(v);
    if (x == std::string::npos) return true;
    from = x + 1;
  }
}

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
    std::vector<int> v;
    if (!parse_sizes(a.substr(op ? 2 : 1), v)) throw SyntaxError("cannot read '" + a + "'");
    if (v.size() > 3)
      throw SyntaxError("'" + a + "' gives " + std::to_string(v.size()) +
                        " axes; data have at most 3 (D x H x W)");
    const int least = *std::min_element(v.begin(), v.end());
    // One size is every axis' (kept in the single field, as before per-axis sizes); several
    // are per axis, checked against the data's rank when the layer is built.
    const auto set = [&](int& every, std::vector<int>& axes) {
      if (v.size() == 1)
        every = v[0];
      else
        axes = v;
    };
    if (op && transposed && least >= 0) {
      set(spec.output_pad, spec.output_pads);
    } else if (a[0] == 'k' && least >= 1) {
      set(spec.kernel, spec.kernels);
      kernel = true;
    } else if (a[0] == 's' && least >= 1) {
      set(spec.stride, spec.strides);
    } else if (a[0] == 'p' && least >= 0) {
      set(spec.pad, spec.pads);
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
                      : "convolution of 1-D, 2-D or 3-D data, C output channels, kernel K, "
                        "stride S (1), padding P (0); each one size for every axis or one per "
                        "axis (k5x3, k3x3x3)";
  k.torch = transposed ? "nn.ConvTranspose1d/2d/3d" : "nn.Conv1d/2d/3d";
  k.params = true;
  k.fuses_activation = true;
  k.check = [transposed](const LayerText& l) { parse_conv(l, transposed); };
  k.build = [transposed](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Conv>(s.store, s.name, s.in, parse_conv(l, transposed), s.act);
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
