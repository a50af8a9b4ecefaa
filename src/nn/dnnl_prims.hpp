// The oneDNN primitives of the layers: inner product, (transposed) convolution and reorder, each
// for one shape and batch size. dnnl_prims.cpp is the only file that creates oneDNN
// descriptors (a v3 API port touches it alone).
#pragma once
#include <dnnl.hpp>
#include <memory>
#include <string>
#include <vector>

#include "nn/precision.hpp"

namespace vd {

using Layout = dnnl::memory::desc;  // as in nn/layer.hpp
struct Shape;

struct InnerProductShape {
  int batch;  // B
  int in;     // I
  int out;    // O
  bool relu;  // ReLU fused into the forward pass as a post-op
  Precision precision = Precision::F32;
};

// All tensors are user memory in plain row-major layouts, wrapped without copies:
// src [B, I], weights [O, I] (PyTorch layout), bias [O], dst [B, O], and the diff_* alike.
// Forward primitives are built in the constructor; backward ones on first use, so batch
// sizes that only evaluate never pay for them. Every call waits for the stream, so the
// outputs are ready on return. oneDNN failures become vd::Error.
// In bf16 the caller's memory stays f32 as above: forward() converts src and weights into bf16
// copies, which backward_weights() (same src) and backward_data() (same weights) reuse;
// backward_weights() converts diff_dst, which backward_data() with the same diff_dst reuses.
// dst, diff_src, diff_weights and diff_bias are written in f32 by the primitives themselves.
class InnerProductPrims {
 public:
  InnerProductPrims(const dnnl::engine& engine, InnerProductShape shape);
  ~InnerProductPrims();
  InnerProductPrims(InnerProductPrims&&) noexcept;
  InnerProductPrims& operator=(InnerProductPrims&&) noexcept;

  const InnerProductShape& shape() const;

  // dst [B, O] = act(src [B, I] * weights^T + bias).
  void forward(dnnl::stream& stream, const float* src, const float* weights, const float* bias,
               float* dst);
  // Overwrites diff_weights [O, I] = diff_dst^T * src and diff_bias [O] = column sums of
  // diff_dst [B, O]. diff_dst must already include the activation's backward.
  void backward_weights(dnnl::stream& stream, const float* src, const float* diff_dst,
                        float* diff_weights, float* diff_bias);
  // Overwrites diff_src [B, I] = diff_dst [B, O] * weights [O, I].
  void backward_data(dnnl::stream& stream, const float* diff_dst, const float* weights,
                     float* diff_src);

  // oneDNN's implementation names, "forward=..., backward_data=..., backward_weights=...";
  // builds the backward primitives if they do not exist yet.
  std::string impl_info();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The channel block of a dense 3-D, 4-D or 5-D f32 layout: 1 for plain ncw/nchw/ncdhw, 8 or 16
// for nCw16c/nChw16c/nCdhw16c and the like with no other blocking; 0 for anything else (nhwc,
// bf16, ...). Such a layout is [N, C/B, S, B] with S the spatial size, whatever the rank.
int channel_block_of(const Layout& layout);
// The oneDNN name of such a layout for data of `rank` spatial axes: "ncw", "nchw" or "ncdhw"
// for block 1, else e.g. "nCw16c", "nChw8c", "nCdhw16c".
std::string layout_name(int rank, int block);

// {N, C} for a flat shape, else {N, C, spatial...}: a batch's dimensions for oneDNN.
dnnl::memory::dims batch_dims(int n, const Shape& shape);

// Copies a batch from one layout to another (e.g. blocked nChw16c -> plain nchw).
class ReorderPrims {
 public:
  ReorderPrims(const dnnl::engine& engine, const Layout& from, const Layout& to);
  ~ReorderPrims();
  void run(dnnl::stream& stream, const float* src, float* dst);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// How convolutions lay out activations: Any lets oneDNN choose (blocked on AVX-512, the
// default); Plain forces ncw/nchw/ncdhw, for measuring what the blocked layouts are worth
// (vae_bench
// --plain-activations). Read when a primitive is built.
enum class ConvLayouts { Any, Plain };
void set_conv_layouts(ConvLayouts layouts);

// A 1-D, 2-D or 3-D convolution (PyTorch's Conv1d/2d/3d) or transposed convolution
// (ConvTranspose1d/2d/3d) of one batch size. A 1-D length lies in iw/ow (ih = oh = 1), as in
// vd::Shape; a 3-D depth in id/od.
struct ConvShape {
  int batch;        // N
  int ic, ih, iw;   // src [N, IC, IW], [N, IC, IH, IW] or [N, IC, ID, IH, IW]
  int oc, oh, ow;   // dst [N, OC, OW], [N, OC, OH, OW] or [N, OC, OD, OH, OW]
  int kernel;       // K on every axis, unless `kernels` is set
  int stride, pad;  // the same on every axis, unless `strides`/`pads` are set; output padding
                    // of a transposed conv is implied by the sizes
  bool transposed;  // ConvTranspose
  bool relu;        // ReLU fused into the forward pass as a post-op
  Precision precision = Precision::F32;
  int rank = 2;        // spatial axes: 1, 2 or 3
  int id = 1, od = 1;  // depth (rank 3)
  // Per spatial axis ({W}, {H, W}, {D, H, W}) where they differ (a k5x3 kernel); empty: the
  // single kernel, stride and pad above on every axis.
  std::vector<int> kernels = {}, strides = {}, pads = {};

  // Per spatial axis, whichever way they are given.
  std::vector<int64_t> src_spatial() const;
  std::vector<int64_t> dst_spatial() const;
  std::vector<int64_t> kernel_dims() const;
  std::vector<int64_t> stride_dims() const;
  std::vector<int64_t> pad_dims() const;
  int64_t kernel_volume() const;  // prod(K): weights per (input, output) channel pair
  // Forward multiply-adds x 2 of the whole batch: every (input, output) value pair the kernel
  // links, for a convolution and its transpose alike.
  double flops() const;
};

// Parameters stay in PyTorch's layout in the caller's memory: weights [OC, IC, K...] for a
// convolution, [IC, OC, K...] for a transposed one (one K per spatial axis), bias [OC]. oneDNN
// picks the layouts of src, dst and weights (format_tag::any): src and diff_src are read and
// written in the layout the caller says (`src_layout`) and reordered when the primitive wants
// another one; dst and diff_dst lie in dst_layout(). Weights are reordered into the chosen layout
// by forward() and reused by backward_data() of the same step; diff_weights are reordered back into
// PyTorch's layout. In bf16 the caller's memory is f32 as in f32 (src, dst and their diffs in the
// layouts above, parameters and gradients in PyTorch's): the reorders into the primitive's layouts
// also convert src, weights and diff_dst to bf16, and the primitives write dst, diff_src and
// diff_weights in f32. backward_weights() reuses forward()'s bf16 src, and backward_data() the bf16
// diff_dst of backward_weights(), when the pointers are the same.
class ConvPrims {
 public:
  ConvPrims(const dnnl::engine& engine, const ConvShape& shape, const Layout& src_layout);
  ~ConvPrims();
  ConvPrims(ConvPrims&&) noexcept;
  ConvPrims& operator=(ConvPrims&&) noexcept;

  const ConvShape& shape() const;
  Layout dst_layout() const;
  Layout wanted_src_layout() const;  // the src layout the forward primitive chose

  void forward(dnnl::stream& stream, const float* src, const float* weights, const float* bias,
               float* dst);
  // diff_dst must already include the activation's backward. Overwrites both outputs.
  void backward_weights(dnnl::stream& stream, const float* src, const float* diff_dst,
                        float* diff_weights, float* diff_bias);
  // Uses the weights of the last forward() call (reordered there).
  void backward_data(dnnl::stream& stream, const float* diff_dst, float* diff_src);

  // oneDNN's implementation names of the three passes and which activations they reorder.
  std::string impl_info();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vd
