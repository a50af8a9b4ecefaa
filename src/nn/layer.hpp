// vd::Layer: the one interface every network layer implements (forward, backward, parameters
// in the ParamStore), vd::Shape (one sample's shape) and the layout a batch lies in.
#pragma once
#include <cstddef>
#include <cstdint>
#include <dnnl.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/precision.hpp"
#include "nn/shape.hpp"

namespace vd {

// A batch's memory layout is a oneDNN memory descriptor. Plain means row-major [N, C, H, W]
// (PyTorch's layout; [N, D] when flat): the layout at the model's boundaries (data, loss,
// reparameterisation). A oneDNN convolution may choose a blocked layout (e.g. nChw16c); it
// then flows to the next oneDNN layer without a reorder.
using Layout = dnnl::memory::desc;
Layout plain_layout(int n, const Shape& shape);  // [N, D] for flat shapes, else [N, C, H, W]
bool is_plain(const Layout& layout, int n, const Shape& shape);
size_t layout_floats(const Layout& layout);  // floats a buffer in this layout needs

enum class Activation { None, ReLU };

// diff_dst[i] = 0 where dst[i] <= 0: the backward of a ReLU fused into the layer's forward
// pass (any layout: it is elementwise, and padding holds zeros).
void relu_backward_in_place(const float* dst, float* diff_dst, size_t n);

class Layer {
 public:
  Layer(std::string name, Shape in, Shape out) : name_(std::move(name)), in_(in), out_(out) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // "encoder.conv1": the prefix of this layer's parameter names (PyTorch module path).
  const std::string& name() const { return name_; }
  const Shape& in_shape() const { return in_; }
  const Shape& out_shape() const { return out_; }
  // What the layer is, for the start-up table: "fc 400 + relu", "conv 32 k4 s2 p1".
  virtual std::string describe() const = 0;
  // PyTorch's default initialisation of this layer's parameters (none: no draws).
  virtual void init(Rng& /*rng*/) {}
  // Forward multiply-adds x 2 per sample.
  virtual double flops_per_sample() const { return 0; }
  // The number format the model asks for (see nn/precision.hpp), set before the first
  // prepare(). Each layer applies its own rule: those with oneDNN primitives that pay in bf16
  // take it; the others stay f32 and ignore it. precision() is what the layer computes in.
  virtual void set_precision(Precision /*p*/) {}
  virtual Precision precision() const { return Precision::F32; }
  // The ParamStore entries this layer owns (not those of layers nested in it): their
  // gradients are final once its backward returns (GradListener).
  virtual std::vector<size_t> param_entries() const { return {}; }
  // The layers nested in this one (a block's), for walks over a whole network.
  virtual std::vector<Layer*> children() const { return {}; }

  // Builds (or finds) the primitives for batches of n samples whose src lies in `src`, and
  // returns the layout dst will lie in. Called once per batch size before forward/backward.
  virtual Layout prepare(Context& ctx, int n, const Layout& src) = 0;
  // True when dst IS src's memory for batches of n (a reshape of plain data): the container
  // gives it no buffer and calls neither forward nor backward.
  virtual bool is_view(int /*n*/) const { return false; }

  // dst = f(src) for n samples, in the layouts prepare() returned.
  virtual void forward(Context& ctx, int n, const float* src, float* dst) = 0;
  // Backward of the forward call that read src and wrote dst. diff_dst (dst's layout) may be
  // MODIFIED in place. Parameter gradients are OVERWRITTEN in the store (a parameter belongs
  // to one layer, run once a step). diff_src (src's layout) is OVERWRITTEN unless it is
  // nullptr (no gradient needed, e.g. the data); a Graph sums the gradients of a value read
  // by several nodes (nn/graph.hpp), so a layer never needs to add.
  virtual void backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                        float* diff_src) = 0;

 private:
  std::string name_;
  Shape in_, out_;
};

}  // namespace vd
