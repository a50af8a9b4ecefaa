// vd::Conv: a convolution ("conv 32 k4 s2 p1") or transposed convolution ("convt 32 k4 s2 p1",
// PyTorch's ConvTranspose1d/2d/3d) of 1-D, 2-D or 3-D data on oneDNN, with its parameters in
// PyTorch's layout; the "conv" and "convt" layer kinds.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/dnnl_prims.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

struct ConvSpec {
  int out_channels = 1;
  int kernel = 3;
  int stride = 1;
  int pad = 0;
  int output_pad = 0;  // transposed only: extra values at the end of each axis
  bool transposed = false;
  // Per-axis sizes as written ("k5x3" is {5, 3}), in the order of the data's spatial axes
  // ({L}, {H, W}, {D, H, W}); empty: the single value above on every axis.
  std::vector<int> kernels = {}, strides = {}, pads = {}, output_pads = {};
};

// Output size along one axis: floor((in + 2p - k) / s) + 1, or for a transposed convolution
// (in - 1) * s - 2p + k + output_pad, as PyTorch computes it. 0 or less means no output.
int conv_output_size(int in, int kernel, int stride, int pad, int output_pad, bool transposed);
// The same with the spec's single sizes (those of every axis).
int conv_output_size(int in, const ConvSpec& spec);

class Conv final : public Layer {
 public:
  // Registers "<name>.weight" ([OC, IC, K...]; transposed: [IC, OC, K...], as PyTorch, one K
  // per spatial axis) and "<name>.bias" [OC]. `in` must be 1-D, 2-D or 3-D data (C x L,
  // C x H x W, C x D x H x W). Throws vd::ShapeError naming the layer when the spec does not
  // fit the input, e.g. a 3-D kernel on 2-D data.
  Conv(ParamStore& store, std::string name, Shape in, const ConvSpec& spec, Activation act);

  // PyTorch's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
  // weight.size(1) * prod(K) (IC*prod(K), or OC*prod(K) transposed); weight first.
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
  // Kernel, stride, padding and output padding per spatial axis ({L}, {H, W}, {D, H, W}).
  const std::vector<int>& kernel() const { return kernel_; }
  const std::vector<int>& stride() const { return stride_; }
  const std::vector<int>& pad() const { return pad_; }
  const std::vector<int>& output_pad() const { return output_pad_; }
  Activation activation() const { return act_; }
  std::string impl_info(Context& ctx, int n);  // oneDNN implementations for batch n
  ConvShape conv_shape(int n) const;

 private:
  ConvPrims& prims(int n);

  ParamStore& store_;
  ConvSpec spec_;
  std::vector<int> kernel_, stride_, pad_, output_pad_;  // per axis, resolved for `in`
  Activation act_;
  Precision precision_ = Precision::F32;
  size_t weight_, bias_;
  std::map<int, std::unique_ptr<ConvPrims>> cache_;  // one per batch size
};

// The name from before 1-D and 3-D data, which the 2-D code and tests still use.
using Conv2d = Conv;

}  // namespace vd
