// vd::Sequential: a list of layers run in order forward and in reverse backward, with the
// activation and gradient buffers they need; the encoder and the decoder are each one.
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "nn/layer.hpp"

namespace vd {

class Sequential {
 public:
  explicit Sequential(Shape in) : in_(in) {}

  // Appends a layer; its input shape must be the current output shape (else vd::ShapeError
  // naming the layer and both shapes).
  void add(std::unique_ptr<Layer> layer);
  const Shape& in_shape() const { return in_; }
  Shape out_shape() const { return layers_.empty() ? in_ : layers_.back()->out_shape(); }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  bool empty() const { return layers_.empty(); }

  void init(Rng& rng);  // every layer, in order
  double flops_per_sample() const;

  // x plain [N, in] -> plain [N, out]; the result stays valid until the next forward.
  // N = 0 is not allowed (callers skip empty batches).
  const float* forward(Context& ctx, int n, const float* x);
  // Backward of the last forward (same n and x), layers in reverse order. diff_out plain
  // [N, out] may be MODIFIED. Overwrites every parameter gradient of the layers and writes
  // diff_x plain [N, in] unless it is nullptr (then the first layer skips backward-data).
  void backward(Context& ctx, int n, const float* x, float* diff_out, float* diff_x);

 private:
  // Per batch size: layouts[i] is layer i's src layout, layouts[i + 1] its dst layout.
  struct Plan {
    std::vector<Layout> layouts;
    std::vector<char> view;
    bool plain_out = true;
  };
  Plan& plan(Context& ctx, int n);
  const float* src_of(const Plan& p, size_t i, const float* x) const;

  Shape in_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::map<int, Plan> plans_;
  std::vector<std::vector<float>> act_;  // act_[i]: dst of layer i (unused for views)
  std::vector<float> diff_a_, diff_b_;   // ping-pong gradient buffers
  std::vector<float> out_plain_;         // the output reordered to plain, when it is not
  std::map<int, std::unique_ptr<class ReorderPrims>> to_plain_, from_plain_;
};

}  // namespace vd
