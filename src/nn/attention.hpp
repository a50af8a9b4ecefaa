// vd::Attention: single-head spatial self-attention with a GroupNorm in front and a residual
// connection, as diffusers' Attention in AutoencoderKL's mid-block (config syntax "attn [gG]").
// Not multi-head, not cross-attention, no mask, no dropout.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/dnnl_attention.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/group_norm_kernels.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

// For x [N, C, H, W], S = H*W tokens of C features (legend of nn/dnnl_attention.hpp):
//   h = GroupNorm(G, C, eps)(x)                 <name>.group_norm.weight, .bias [C]
//   t = h as tokens [N, S, C]
//   q = t Wq^T + bq, k = t Wk^T + bk, v = t Wv^T + bv
//                                               <name>.to_q.weight [C, C] (nn.Linear [out, in]),
//                                               .bias [C]; to_k, to_v alike
//   A = softmax(q k^T / sqrt(C)) over the keys  [N, S, S]
//   o = A v Wo^T + bo                           <name>.to_out.weight, .bias (diffusers' to_out.0)
//   y = x + o as [N, C, H, W]                   (residual_connection=True, rescale factor 1)
class Attention final : public Layer {
 public:
  static constexpr int kDefaultGroups = 32;    // diffusers' norm_num_groups of the VAE
  static constexpr float kDefaultEps = 1e-6f;  // diffusers' VAE eps (PyTorch's default: 1e-5)
  // prepare() refuses a batch whose score matrices need more than this many bytes.
  static constexpr double kScoreBudgetBytes = 2.0 * 1024 * 1024 * 1024;  // 2 GiB
  // S x S float matrices per sample that the layer holds: the probabilities A (kept from
  // forward for backward) and their gradient (backward).
  static constexpr int kScoreMatrices = 2;

  // Registers the ten tensors above, in that order. Throws vd::ShapeError naming the layer for
  // a flat input, or when G < 1 or G does not divide C.
  Attention(ParamStore& store, std::string name, Shape in, int groups = kDefaultGroups,
            float eps = kDefaultEps);

  // PyTorch's defaults in the order diffusers creates the modules: group_norm weight 1, bias 0
  // (no draws); then to_q.weight (row-major), to_q.bias, to_k.weight, to_k.bias, to_v.weight,
  // to_v.bias, to_out.weight, to_out.bias, each ~ U(-1/sqrt(C), 1/sqrt(C)) (nn.Linear, fan_in C).
  void init(Rng& rng) override;
  std::string describe() const override;
  // The matmuls: 4 projections of S x C x C, the scores and the context S x S x C; x 2.
  double flops_per_sample() const override;
  // The ten entries above, in that order.
  std::vector<size_t> param_entries() const override;
  // Precision: stays f32 for any request (set_precision is Layer's no-op). bf16 scores would
  // round the softmax's inputs to 8 bits of mantissa, and at mid-block sizes (S <= 256) the
  // layer's matmuls are a small part of a step.

  // src: plain nchw, nChw8c or nChw16c (a convolution's choice) is used as it is: GroupNorm runs
  // in that layout, one reorder makes tokens [N, S, C] for the matmuls, and dst is returned in
  // the same layout, so the residual is an elementwise add and a convolution after the layer
  // reads dst without a reorder. Any other layout is reordered to plain nchw, and dst is plain.
  // Throws vd::ShapeError naming the layer, the map and the bytes when the S x S matrices of n
  // samples exceed kScoreBudgetBytes.
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  // Parameter gradients OVERWRITTEN; diff_src (src's layout) OVERWRITTEN with diff_dst (the
  // residual) + the attention path's gradient, or skipped when nullptr. diff_dst is only read.
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

  int groups() const { return groups_; }
  float eps() const { return eps_; }
  // The channel block GroupNorm runs in for batch n (1 plain, 8 or 16; 0 before prepare()).
  int work_block(int n) const;
  // oneDNN implementation names and the layouts, for the benchmark log; prepare() first.
  std::string impl_info(Context& ctx, int n);

  // Bytes of the S x S matrices the layer holds for n samples of S tokens (map positions).
  static double score_bytes(int64_t n, int64_t tokens);

 private:
  struct PerBatch {
    std::unique_ptr<AttentionPrims> prims;
    GroupNormDims dims;
    Layout src;   // the layout prepare() was given
    Layout work;  // the layout GroupNorm, dst and diff_dst lie in
    size_t work_floats = 0;
    // src in a layout the kernels do not read: reordered into `work` (and diff_src back).
    std::unique_ptr<ReorderPrims> src_to_work, work_to_src;
  };
  PerBatch& batch(int n);
  // Grows the shared buffers to batch n's sizes (buffers are shared by all batch sizes: a
  // backward always follows the forward of the same n).
  void reserve(const PerBatch& b, bool backward);

  ParamStore& store_;
  int groups_;
  float eps_;
  size_t gn_weight_, gn_bias_;
  size_t weight_[4], bias_[4];  // to_q, to_k, to_v, to_out
  std::map<int, PerBatch> batches_;

  // Forward, kept for backward. Token tensors [N, S, C]; a [N, S, S]; mean, rstd [N, G].
  std::vector<float> mean_, rstd_;
  std::vector<float> t_, q_, k_, v_, ctx_, a_;
  std::vector<float> h_;         // GroupNorm's dst, then diff_h in backward (work layout)
  std::vector<float> o_;         // o before the residual, then diff_o in backward [N, S, C]
  std::vector<float> src_work_;  // src reordered into the work layout (other layouts only)
  // Backward only (allocated by the first backward).
  std::vector<float> diff_ctx_, diff_a_, diff_q_, diff_k_, diff_v_, diff_t_;
  std::vector<float> diff_work_;  // diff_src in the work layout (other layouts only)
};

}  // namespace vd
