// vd::Conv2d: a 2-D convolution ("conv 32 k4 s2 p1") or transposed convolution ("convt 32 k4
// s2 p1", PyTorch's ConvTranspose2d) on oneDNN, with its parameters in PyTorch's layout; the
// "conv" and "convt" layer kinds.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/dnnl_prims.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

struct ConvSpec {
  int out_channels = 1;
  int kernel = 3;
  int stride = 1;
  int pad = 0;
  int output_pad = 0;  // transposed only: extra rows/columns at the bottom/right
  bool transposed = false;
};

// Output size along one axis: floor((in + 2p - k) / s) + 1, or for a transposed convolution
// (in - 1) * s - 2p + k + output_pad, as PyTorch computes it. 0 or less means no output.
int conv_output_size(int in, const ConvSpec& spec);

class Conv2d final : public Layer {
 public:
  // Registers "<name>.weight" ([OC, IC, K, K]; transposed: [IC, OC, K, K], as PyTorch) and
  // "<name>.bias" [OC]. `in` must be an image shape (C x H x W). Throws vd::ShapeError
  // naming the layer when the spec does not fit the input.
  Conv2d(ParamStore& store, std::string name, Shape in, const ConvSpec& spec, Activation act);

  // PyTorch's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
  // weight.size(1) * K * K (IC*K*K, or OC*K*K for a transposed convolution); weight first.
  void init(Rng& rng) override;
  std::string describe() const override;
  double flops_per_sample() const override;
  // bf16: the reorders into oneDNN's layouts also convert src, weights and diff_dst (see
  // ConvPrims); activations, parameters and gradients stay f32.
  void set_precision(Precision p) override;
  Precision precision() const override { return precision_; }
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

  std::vector<size_t> param_entries() const override { return {weight_, bias_}; }

  const ConvSpec& spec() const { return spec_; }
  Activation activation() const { return act_; }
  std::string impl_info(Context& ctx, int n);  // oneDNN implementations for batch n
  ConvShape conv_shape(int n) const;

 private:
  ConvPrims& prims(int n);

  ParamStore& store_;
  ConvSpec spec_;
  Activation act_;
  Precision precision_ = Precision::F32;
  size_t weight_, bias_;
  std::map<int, std::unique_ptr<ConvPrims>> cache_;  // one per batch size
};

}  // namespace vd
