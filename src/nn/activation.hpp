// vd::Eltwise: the elementwise activation layer kinds "silu", "gelu", "leakyrelu A", "tanh" and
// "sigmoid" (PyTorch's nn.SiLU, nn.GELU, nn.LeakyReLU(A), nn.Tanh, nn.Sigmoid) on oneDNN's
// eltwise primitives. "relu" is vd::Relu (nn/relu.hpp): it fuses into the layer before it.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/dnnl_eltwise.hpp"
#include "nn/layer.hpp"

namespace vd {

class Eltwise final : public Layer {
 public:
  // `alpha` is the slope of LeakyRelu (any finite value, as PyTorch's); the others ignore it.
  Eltwise(std::string name, Shape in, EltwiseOp op, float alpha = 0.0f);

  EltwiseOp op() const { return op_; }
  float alpha() const { return alpha_; }
  // "silu", "gelu", "leakyrelu 0.2", "tanh", "sigmoid": the words that build it.
  std::string describe() const override;

  // dst lies in src's layout, whatever it is (a blocked layout from a convolution stays
  // blocked). Stays f32 in any precision (set_precision is ignored): oneDNN 2.6 writes f32
  // between layers anyway, and a bf16 copy would cost more than the function itself.
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

  // oneDNN's implementation names for batch n (after prepare).
  std::string impl_info(int n);

 private:
  EltwisePrims& prims(int n);

  EltwiseOp op_;
  float alpha_;
  std::map<int, std::unique_ptr<EltwisePrims>> cache_;  // one per batch size
};

// "0.2" for 0.2f: the shortest text that reads back as the same float.
std::string float_text(float v);

}  // namespace vd
