// The oneDNN primitives of single-head spatial self-attention (nn/attention): the q/k/v/out
// projections, the scores q k^T, their softmax and the context A v, forward and backward, on
// matmul, softmax and reorder. dnnl_attention.cpp creates all their descriptors.
#pragma once
#include <dnnl.hpp>
#include <memory>
#include <string>

namespace vd {

using Layout = dnnl::memory::desc;  // as in nn/layer.hpp

// Legend: N = samples, C = channels (the features of a token), S = H*W tokens per sample (1-D
// and 3-D maps come as H = S / W).
struct AttentionShape {
  int batch;                                                               // N
  int channels;                                                            // C
  int height;                                                              // H
  int width;                                                               // W
  int64_t tokens() const { return static_cast<int64_t>(height) * width; }  // S
};

// Every buffer is caller memory in a fixed layout, wrapped without copies:
//   work  [N, C, H, W] in the work layout given to the constructor (nchw, nChw8c or nChw16c),
//         or any spatial rank in the same layout (ncw, nCdhw16c, ...) with S = H*W positions
//   t, y, q, k, v, ctx and their diffs: tokens [N, S, C] row-major (nhwc), i.e. [N*S, C]
//   a and diff_a: [N, S, S] row-major (query, key)
//   weights [C, C] in PyTorch's nn.Linear layout [out, in], biases [C].
// All in f32. Forward primitives are built by the constructor, backward ones on first use (an
// evaluation batch size never pays for them). Every call waits for the stream. oneDNN
// failures become vd::Error naming the step.
class AttentionPrims {
 public:
  AttentionPrims(const dnnl::engine& engine, const AttentionShape& shape, const Layout& work);
  ~AttentionPrims();
  AttentionPrims(AttentionPrims&&) noexcept;
  AttentionPrims& operator=(AttentionPrims&&) noexcept;

  const AttentionShape& shape() const;

  // work -> tokens [N, S, C] and back (a reorder; padding channels of a blocked work layout
  // are written as zeros).
  void to_tokens(dnnl::stream& stream, const float* work, float* tokens);
  void from_tokens(dnnl::stream& stream, const float* tokens, float* work);

  // y [N*S, C] = t [N*S, C] weights^T + bias (nn.Linear on every token).
  void project(dnnl::stream& stream, const float* t, const float* weights, const float* bias,
               float* y);
  // OVERWRITES diff_weights [C, C] = diff_y^T t and diff_bias [C] = sum over tokens of diff_y.
  void project_backward_weights(dnnl::stream& stream, const float* t, const float* diff_y,
                                float* diff_weights, float* diff_bias);
  // diff_t [N*S, C] = diff_y [N*S, C] weights [C, C], OVERWRITTEN, or added to diff_t when
  // accumulate (the token feeds q, k and v).
  void project_backward_data(dnnl::stream& stream, const float* diff_y, const float* weights,
                             float* diff_t, bool accumulate);

  // a [N, S, S] = softmax over the last axis (keys) of q k^T / sqrt(C); q, k [N, S, C].
  void scores(dnnl::stream& stream, const float* q, const float* k, float* a);
  // ctx [N, S, C] = a [N, S, S] v [N, S, C].
  void context(dnnl::stream& stream, const float* a, const float* v, float* ctx);

  // Backward of context(): diff_a [N, S, S] = diff_ctx v^T, diff_v [N, S, C] = a^T diff_ctx
  // (both OVERWRITTEN).
  void context_backward(dnnl::stream& stream, const float* a, const float* v, const float* diff_ctx,
                        float* diff_a, float* diff_v);
  // Backward of scores(): diff_a holds dL/da on entry and dL/d(q k^T / sqrt(C)) on return (the
  // softmax backward runs in place); diff_q = diff_scores k / sqrt(C), diff_k = diff_scores^T q
  // / sqrt(C), both [N, S, C], OVERWRITTEN.
  void scores_backward(dnnl::stream& stream, const float* q, const float* k, const float* a,
                       float* diff_a, float* diff_q, float* diff_k);

  // "project=..., scores=..., softmax=..., ..." oneDNN's implementation names; builds the
  // backward primitives if they do not exist yet.
  std::string impl_info();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vd
