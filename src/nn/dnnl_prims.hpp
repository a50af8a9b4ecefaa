// vd::InnerProductPrims: the oneDNN inner-product primitives of one layer shape and batch size.
// dnnl_prims.cpp is the only file that creates oneDNN descriptors (a v3 API port touches it alone).
#pragma once
#include <dnnl.hpp>
#include <memory>
#include <string>

namespace vd {

struct InnerProductShape {
  int batch;  // B
  int in;     // I
  int out;    // O
  bool relu;  // ReLU fused into the forward pass as a post-op
};

// All tensors are user memory in plain row-major layouts, wrapped without copies:
// src [B, I], weights [O, I] (PyTorch layout), bias [O], dst [B, O], and the diff_* alike.
// Forward primitives are built in the constructor; backward ones on first use, so batch
// sizes that only evaluate never pay for them. Every call waits for the stream, so the
// outputs are ready on return. oneDNN failures become vd::Error.
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

}  // namespace vd
