// vd::Linear: a fully connected layer y = act(x W^T + b) on oneDNN inner products, with its
// parameters in a ParamStore in PyTorch's nn.Linear layout (config syntax: "fc 400").
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

class Linear final : public Layer {
 public:
  // Registers "<name>.weight" [O, I] and "<name>.bias" [O] in `store`, which must outlive
  // the layer and must be finalized before init(), forward() or backward(). The input may
  // be any plain shape; it is read as I = C*H*W values per sample (PyTorch's flatten order).
  // Throws vd::ShapeError for non-positive sizes or a name already in the store.
  Linear(ParamStore& store, std::string name, Shape in, int out, Activation act);
  Linear(ParamStore& store, std::string name, int in, int out, Activation act)
      : Linear(store, std::move(name), Shape{in, 1, 1}, out, act) {}

  // PyTorch nn.Linear's default: weight and bias ~ U(-1/sqrt(I), 1/sqrt(I)); the weight is
  // drawn first in row-major order, then the bias.
  void init(Rng& rng) override;
  std::string describe() const override;
  double flops_per_sample() const override { return 2.0 * in_ * out_; }
  // bf16: src and weights are converted to bf16 copies per forward (see InnerProductPrims);
  // the parameters and gradients in the store stay f32.
  void set_precision(Precision p) override;
  Precision precision() const override { return precision_; }
  // Plain src only (a blocked one needs a flatten first); dst is plain [B, O].
  Layout prepare(Context& ctx, int batch, const Layout& src) override;

  // src [B, I] -> dst [B, O]. Primitives are built on the first call with a batch size
  // and reused afterwards, so alternating batch sizes costs nothing after warm-up.
  void forward(Context& ctx, int batch, const float* src, float* dst) override;

  // Backward of the forward call that read src [B, I] and wrote dst [B, O], given
  // diff_dst [B, O] = dL/d dst. OVERWRITES (does not accumulate) this layer's weight and
  // bias gradients in the store's grad buffer, and writes diff_src [B, I] = dL/d src unless
  // diff_src is nullptr (e.g. for the first layer).
  // With ReLU, diff_dst IS MODIFIED IN PLACE: entries where dst <= 0 are set to 0 (the
  // ReLU backward), which saves a copy; diff_src and diff_dst may not alias.
  void backward(Context& ctx, int batch, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

  std::vector<size_t> param_entries() const override { return {weight_, bias_}; }

  int in() const { return in_; }
  int out() const { return out_; }
  Activation activation() const { return act_; }
  size_t weight_entry() const { return weight_; }  // ParamStore indices
  size_t bias_entry() const { return bias_; }

  // oneDNN implementation names for this batch size (see InnerProductPrims::impl_info).
  std::string impl_info(Context& ctx, int batch);

 private:
  InnerProductPrims& prims(Context& ctx, int batch);

  ParamStore& store_;
  int in_;
  int out_;
  Activation act_;
  Precision precision_ = Precision::F32;
  size_t weight_;
  size_t bias_;
  // One primitive set per batch size; few sizes occur (train, last batch, evaluation).
  std::map<int, std::unique_ptr<InnerProductPrims>> cache_;
};

}  // namespace vd
