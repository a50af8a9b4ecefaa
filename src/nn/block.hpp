// vd::Block: a layer that is a graph of layers with one input and one output, such as the
// residual blocks "res C" (diffusers' ResnetBlock2D) and "res(layer, layer, ...)" (a body of
// the user's own plus a shortcut). Layouts flow through it as between layers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/graph.hpp"
#include "nn/layer.hpp"

namespace vd {

class Block final : public Layer {
 public:
  // `graph` has one input of shape `in` and one output; its layers are named under `name`.
  Block(std::string name, std::string description, std::unique_ptr<Graph> graph);

  const Graph& graph() const { return *graph_; }
  std::string describe() const override { return description_; }
  void init(Rng& rng) override { graph_->init(rng); }
  double flops_per_sample() const override { return graph_->flops_per_sample(); }
  void set_precision(Precision p) override;
  Precision precision() const override;  // bf16 when any layer inside computes in bf16
  std::vector<Layer*> children() const override { return graph_->layers(); }
  Layout prepare(Context& ctx, int n, const Layout& src) override;
  void forward(Context& ctx, int n, const float* src, float* dst) override;
  void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                float* diff_src) override;

 private:
  std::string description_;
  std::unique_ptr<Graph> graph_;
};

}  // namespace vd
