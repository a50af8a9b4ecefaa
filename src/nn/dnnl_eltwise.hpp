// The oneDNN eltwise and resampling primitives of the activation and up-sampling layers, each
// for one src layout and batch size. dnnl_eltwise.cpp creates their descriptors, as
// dnnl_prims.cpp does for the others (a v3 API port touches the dnnl_*.cpp files alone).
#pragma once
#include <dnnl.hpp>
#include <memory>
#include <string>

namespace vd {

using Layout = dnnl::memory::desc;  // as in nn/layer.hpp

// The elementwise functions, each as PyTorch defines it.
enum class EltwiseOp {
  Silu,       // x * sigmoid(x)             nn.SiLU        oneDNN eltwise_swish, alpha 1
  Gelu,       // x * Phi(x), erf form       nn.GELU()      eltwise_gelu_erf
  LeakyRelu,  // x > 0 ? x : alpha * x      nn.LeakyReLU   eltwise_relu, alpha = the slope
  Tanh,       //                            nn.Tanh        eltwise_tanh
  Sigmoid,    // 1 / (1 + exp(-x))          nn.Sigmoid     eltwise_logistic
};

// One function over a batch lying in `layout`, whatever it is (plain [N, D] or [N, C, H, W],
// or blocked nChw16c from a convolution): dst and diff_src lie in the same layout, so nothing
// is reordered. The padding of a blocked layout (the channels past C in nChw16c) is zero in dst
// and diff_src whatever the inputs hold there: oneDNN 2.6's jit computes f on the padding too,
// so it is zeroed after each call. sigmoid on a padded layout runs over the whole buffer as one
// flat array: oneDNN's jit declines that layout for a function with f(0) != 0, and its
// fallback (ref:any) is a scalar loop.
// The backward reads dst where oneDNN has a use_dst_for_bwd variant whose derivative is exact
// in dst (tanh: 1 - y^2; sigmoid: y (1 - y); leaky ReLU of slope >= 0: y > 0 iff x > 0), src
// otherwise (silu, gelu, negative slopes). The backward primitive is built on first use.
// Every call waits for the stream; oneDNN failures become vd::Error.
class EltwisePrims {
 public:
  EltwisePrims(const dnnl::engine& engine, EltwiseOp op, float alpha, const Layout& layout);
  ~EltwisePrims();
  EltwisePrims(EltwisePrims&&) noexcept;
  EltwisePrims& operator=(EltwisePrims&&) noexcept;

  const Layout& layout() const;
  // True: backward() reads dst; false: it reads src.
  bool backward_uses_dst() const;

  // dst = f(src).
  void forward(dnnl::stream& stream, const float* src, float* dst);
  // Overwrites diff_src = f'(x) * diff_dst, with src and dst of the forward call.
  void backward(dnnl::stream& stream, const float* src, const float* dst, const float* diff_dst,
                float* diff_src);

  // oneDNN's implementation names and the layout, "forward=..., backward=..., layout nChw16c"
  // (builds the backward).
  std::string impl_info();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Nearest-neighbour up-sampling of src [N, C, H, W] by an integer factor S to dst
// [N, C, S*H, S*W] (PyTorch's F.interpolate(scale_factor=S, mode="nearest")): every value
// repeated over an S x S block. src lies in the caller's layout (plain, or blocked from a
// convolution; a plain [N, C] is read as [N, C, 1, 1]); dst in the layout oneDNN chooses
// (format_tag::any: it keeps src's blocking), which the next layer reads as it is. Backward:
// diff_src (src's layout) = the sum over each S x S block of diff_dst (dst's layout). The
// padding of dst and diff_src is zeroed after each call, as EltwisePrims does.
class ResamplingPrims {
 public:
  ResamplingPrims(const dnnl::engine& engine, const Layout& src_layout, int factor);
  ~ResamplingPrims();
  ResamplingPrims(ResamplingPrims&&) noexcept;
  ResamplingPrims& operator=(ResamplingPrims&&) noexcept;

  Layout dst_layout() const;

  void forward(dnnl::stream& stream, const float* src, float* dst);
  // Overwrites diff_src.
  void backward(dnnl::stream& stream, const float* diff_dst, float* diff_src);

  // oneDNN's implementation names and the layouts, "forward=..., backward=..., src nChw16c ->
  // dst nChw16c" (builds the backward).
  std::string impl_info();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vd
