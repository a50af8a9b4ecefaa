// vd::Upsample: the "up S" layer kind, nearest-neighbour up-sampling by an integer factor S
// (PyTorch's F.interpolate(scale_factor=S, mode="nearest"), as diffusers' Upsample2D): copy
// loops on plain and channel-blocked layouts (oneDNN 2.6's jit resampling forward crashed here
// on nChw16c from 64 channels and batch 16), oneDNN's resampling primitive on other layouts.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/dnnl_eltwise.hpp"
#include "nn/layer.hpp"

namespace vd {

class Upsample final : public Layer {
 public:
  // C x H x W -> C x S*H x S*W, every value repeated over an S x S block; a flat input of D
  // values is read as D x 1 x 1. Throws vd::ShapeError naming the layer for S < 1 or an
  // output too large to index.
  Upsample(std::string name, Shape in, int factor);

  int factor() const { return factor_; }
  std::string describe() const override { return "up " + std::to_string(factor_); }

  // dst lies in the layout oneDNN picks for src's (blocked stays blocked, plain stays plain).
  // Stays f32 in any precision (set_precision is ignored).
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  // diff_src = the sum over each S x S block of diff_dst.
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

  // oneDNN's implementation names and layouts for batch n (after prepare).
  std::string impl_info(int n);

 private:
  int factor_;
  struct Cached {
    Layout src;
    std::unique_ptr<ResamplingPrims> prims;
    int block = 0;  // 1, 8 or 16: src and dst dense [N, C/B, H, W, B], run by own loops
  };
  std::map<int, Cached> cache_;  // one per batch size
  const Cached& cached(int n) const;
};

}  // namespace vd
