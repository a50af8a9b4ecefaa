// vd::ConcatCondition: appends a per-sample condition vector (the one-hot class label of a
// conditional VAE) to a flat input: [N, D] -> [N, D + K].
#pragma once
#include <memory>

#include "nn/layer.hpp"

namespace vd {

class ConcatCondition final : public Layer {
 public:
  // `condition` points at the model's pointer to the current batch's [N, K] plain
  // condition; the model sets it before every forward and backward.
  ConcatCondition(std::string name, Shape in, int k, const float* const* condition);
  std::string describe() const override { return "concat one-hot " + std::to_string(k_); }
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  // diff_src = the first D columns of diff_dst (the label needs no gradient).
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

 private:
  int d_, k_;
  const float* const* condition_;
};

}  // namespace vd
