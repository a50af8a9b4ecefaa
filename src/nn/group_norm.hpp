// vd::GroupNorm: the "gn G [EPS]" layer kind (torch.nn.GroupNorm(G, C, eps), affine) on the
// kernels of nn/group_norm_kernels, in the layout the input arrives in (plain or a oneDNN
// channel-blocked one) so a convolution's output needs no reorder.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/dnnl_prims.hpp"
#include "nn/group_norm_kernels.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

class GroupNorm final : public Layer {
 public:
  // diffusers' VAE uses eps 1e-6 (PyTorch's default is 1e-5).
  static constexpr float kDefaultEps = 1e-6f;

  // Registers "<name>.weight" and "<name>.bias" [C]. Throws vd::ShapeError naming the layer
  // when G does not divide the channels.
  GroupNorm(ParamStore& store, std::string name, Shape in, int groups, float eps);

  // PyTorch's: weight 1, bias 0 (no draws).
  void init(Rng& rng) override;
  std::string describe() const override;
  std::vector<size_t> param_entries() const override { return {weight_, bias_}; }
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

  int groups() const { return groups_; }
  float eps() const { return eps_; }

 private:
  struct PerBatch {
    GroupNormDims dims;
    std::vector<float> mean, rstd;  // [N, G]
    // A layout the kernels do not know: src is reordered to plain and back (diff_src).
    std::unique_ptr<ReorderPrims> to_plain, from_plain;
    std::vector<float> plain_src, plain_diff;
  };
  PerBatch& batch(int n);

  ParamStore& store_;
  int groups_;
  float eps_;
  size_t weight_, bias_;
  std::map<int, PerBatch> batches_;
};

}  // namespace vd
