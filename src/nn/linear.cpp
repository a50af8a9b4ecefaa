// vd::Linear: parameter registration, initialisation, forward/backward through the cached
// oneDNN inner-product primitives, and the "fc" layer kind.
#include "nn/linear.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/error.hpp"
#include "nn/registry.hpp"

namespace vd {

Linear::Linear(ParamStore& store, std::string name, Shape in, int out, Activation act)
    : Layer(std::move(name), in, Shape{out, 1, 1}),
      store_(store),
      in_(static_cast<int>(in.size())),
      out_(out),
      act_(act) {
  VD_CHECK(in.size() > 0 && in.size() <= INT32_MAX && out > 0, ShapeError,
           "Linear layer \"" + this->name() + "\" needs positive sizes, got in " + in.text() +
               ", out " + std::to_string(out) + ".");
  weight_ = store_.add(this->name() + ".weight", {out, in_});
  bias_ = store_.add(this->name() + ".bias", {out});
}

std::string Linear::describe() const {
  return "fc " + std::to_string(out_) + (act_ == Activation::ReLU ? " + relu" : "");
}

Layout Linear::prepare(Context& ctx, int batch, const Layout& src) {
  VD_CHECK(is_plain(src, batch, in_shape()), ShapeError,
           "Linear layer \"" + name() +
               "\" needs its input in plain layout; put a flatten "
               "layer before it.");
  prims(ctx, batch);
  return plain_layout(batch, out_shape());
}

void Linear::init(Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  float* w = store_.param(weight_);  // [O, I]
  for (size_t i = 0, n = static_cast<size_t>(out_) * in_; i < n; ++i)
    w[i] = static_cast<float>(rng.uniform(-bound, bound));
  float* b = store_.param(bias_);  // [O]
  for (int i = 0; i < out_; ++i) b[i] = static_cast<float>(rng.uniform(-bound, bound));
}

void Linear::set_precision(Precision p) {
  if (p != precision_) cache_.clear();  // primitives are built for one precision
  precision_ = p;
}

InnerProductPrims& Linear::prims(Context& ctx, int batch) {
  VD_CHECK(batch > 0, ShapeError,
           "Linear layer \"" + name() + "\" got batch size " + std::to_string(batch) +
               "; it must be positive.");
  auto it = cache_.find(batch);
  if (it == cache_.end()) {
    const InnerProductShape shape{batch, in_, out_, act_ == Activation::ReLU, precision_};
    it = cache_.emplace(batch, std::make_unique<InnerProductPrims>(ctx.engine, shape)).first;
  }
  return *it->second;
}

void Linear::forward(Context& ctx, int batch, const float* src, float* dst) {
  VD_CHECK(src && dst, ShapeError, "Linear layer \"" + name() + "\" forward got a null pointer.");
  prims(ctx, batch).forward(ctx.stream, src, store_.param(weight_), store_.param(bias_), dst);
}

void Linear::backward(Context& ctx, int batch, const float* src, const float* dst, float* diff_dst,
                      float* diff_src) {
  VD_CHECK(src && diff_dst && (dst || act_ == Activation::None), ShapeError,
           "Linear layer \"" + name() + "\" backward got a null pointer.");
  InnerProductPrims& p = prims(ctx, batch);
  if (act_ == Activation::ReLU)
    relu_backward_in_place(dst, diff_dst, static_cast<size_t>(batch) * out_);
  p.backward_weights(ctx.stream, src, diff_dst, store_.grad(weight_), store_.grad(bias_));
  if (diff_src) p.backward_data(ctx.stream, diff_dst, store_.param(weight_), diff_src);
}

std::string Linear::impl_info(Context& ctx, int batch) {
  return prims(ctx, batch).impl_info();
}

LayerKind fc_kind() {
  LayerKind k;
  k.keyword = "fc";
  k.syntax = "fc N";
  k.what = "fully connected, N outputs";
  k.torch = "nn.Linear";
  k.params = true;
  k.fuses_activation = true;
  k.flat_input = true;
  const auto units = [](const LayerText& l) {
    int n = 0;
    if (l.has_body || l.args.size() != 1 || !parse_int(l.args[0], n) || n < 1)
      throw SyntaxError("'fc' takes one positive width");
    return n;
  };
  k.check = [units](const LayerText& l) { units(l); };
  k.build = [units](const BuildSite& s, const LayerText& l) -> std::unique_ptr<Layer> {
    return std::make_unique<Linear>(s.store, s.name, s.in, units(l), s.act);
  };
  return k;
}

}  // namespace vd
