// vd::Linear: parameter registration, initialisation, and forward/backward through the
// cached oneDNN inner-product primitives.
#include "nn/linear.hpp"

#include <cmath>
#include <cstddef>

#include "core/error.hpp"

namespace vd {

namespace {

// diff_dst[i] = 0 where dst[i] <= 0. Branch-free so -O3 vectorises it; measured 5 us for
// 128 x 400 on one Zen 4 core, against 26 us for oneDNN's eltwise_relu_use_dst_for_bwd.
void relu_backward_in_place(const float* __restrict dst, float* __restrict diff_dst, size_t n) {
  for (size_t i = 0; i < n; ++i) diff_dst[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
}

}  // namespace

Linear::Linear(ParamStore& store, std::string name, int in, int out, Activation act)
    : store_(store), name_(std::move(name)), in_(in), out_(out), act_(act) {
  VD_CHECK(in > 0 && out > 0, ShapeError,
           "Linear layer \"" + name_ + "\" needs positive sizes, got in " + std::to_string(in) +
               ", out " + std::to_string(out) + ".");
  weight_ = store_.add(name_ + ".weight", {out, in});
  bias_ = store_.add(name_ + ".bias", {out});
}

void Linear::init(Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  float* w = store_.param(weight_);  // [O, I]
  for (size_t i = 0, n = static_cast<size_t>(out_) * in_; i < n; ++i)
    w[i] = static_cast<float>(rng.uniform(-bound, bound));
  float* b = store_.param(bias_);  // [O]
  for (int i = 0; i < out_; ++i) b[i] = static_cast<float>(rng.uniform(-bound, bound));
}

InnerProductPrims& Linear::prims(Context& ctx, int batch) {
  VD_CHECK(batch > 0, ShapeError,
           "Linear layer \"" + name_ + "\" got batch size " + std::to_string(batch) +
               "; it must be positive.");
  auto it = cache_.find(batch);
  if (it == cache_.end()) {
    const InnerProductShape shape{batch, in_, out_, act_ == Activation::ReLU};
    it = cache_.emplace(batch, std::make_unique<InnerProductPrims>(ctx.engine, shape)).first;
  }
  return *it->second;
}

void Linear::forward(Context& ctx, int batch, const float* src, float* dst) {
  VD_CHECK(src && dst, ShapeError, "Linear layer \"" + name_ + "\" forward got a null pointer.");
  prims(ctx, batch).forward(ctx.stream, src, store_.param(weight_), store_.param(bias_), dst);
}

void Linear::backward(Context& ctx, int batch, const float* src, const float* dst, float* diff_dst,
                      float* diff_src) {
  VD_CHECK(src && diff_dst && (dst || act_ == Activation::None), ShapeError,
           "Linear layer \"" + name_ + "\" backward got a null pointer.");
  InnerProductPrims& p = prims(ctx, batch);
  if (act_ == Activation::ReLU)
    relu_backward_in_place(dst, diff_dst, static_cast<size_t>(batch) * out_);
  p.backward_weights(ctx.stream, src, diff_dst, store_.grad(weight_), store_.grad(bias_));
  if (diff_src) p.backward_data(ctx.stream, diff_dst, store_.param(weight_), diff_src);
}

std::string Linear::impl_info(Context& ctx, int batch) {
  return prims(ctx, batch).impl_info();
}

}  // namespace vd
