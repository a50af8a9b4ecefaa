// vd::Relu: the "relu" layer kind where it cannot be fused into the layer before it.
#pragma once
#include <map>
#include <string>

#include "nn/layer.hpp"

namespace vd {

class Relu final : public Layer {
 public:
  Relu(std::string name, Shape in) : Layer(std::move(name), in, in) {}
  std::string describe() const override { return "relu"; }
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

 private:
  std::map<int, size_t> floats_;  // buffer floats per batch size (blocked layouts pad)
};

}  // namespace vd
