// vd::Reshape: the "flatten" (C x H x W -> D) and "reshape CxHxW" layer kinds, the same values
// in PyTorch's order. A view of plain input; after a blocked oneDNN layer, a reorder to plain.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/dnnl_prims.hpp"
#include "nn/layer.hpp"

namespace vd {

class Reshape final : public Layer {
 public:
  Reshape(std::string name, Shape in, Shape out);
  std::string describe() const override;
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  bool is_view(int n) const override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

 private:
  struct Reorders {
    std::unique_ptr<ReorderPrims> to_plain, from_plain;
  };
  std::map<int, Reorders> blocked_;  // batch sizes whose src is not plain
};

// A flatten of `in` named `name` (the builder puts one before an fc layer on an image).
std::unique_ptr<Layer> make_flatten(const std::string& name, const Shape& in);

}  // namespace vd
