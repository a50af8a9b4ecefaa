// vd::Relu: an elementwise max(x, 0) in any layout (padding holds zeros), and the "relu" kind.
#include "nn/relu.hpp"

#include "nn/registry.hpp"

namespace vd {

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

LayerKind relu_kind() {
  LayerKind k;
  k.keyword = "relu";
  k.syntax = "relu";
  k.what = "max(x, 0); fused into the fc/conv/convt before it when there is one";
  k.torch = "nn.ReLU";
  k.activation = Activation::ReLU;
  k.check = expect_no_args;
  k.build = [](const BuildSite& s, const LayerText&) -> std::unique_ptr<Layer> {
    return std::make_unique<Relu>(s.name, s.in);
  };
  return k;
}

}  // namespace vd
