// vd::Graph: layers and merges (sum, concatenation) wired by their inputs: a chain, skip
// connections, several inputs (the data, a condition) and several outputs (the VAE's mu and
// logvar heads). Forward runs the nodes in the order they were added, backward in reverse,
// summing the gradients of a value that several nodes read. Not a layer itself.
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nn/layer.hpp"

namespace vd {

class ReorderPrims;

class Graph {
 public:
  // A value: a graph input (0 .. inputs-1, in the order given) or a node's output.
  using Value = int;
  enum class Op { Layer, Sum, Concat };
  struct Node {
    Op op = Op::Layer;
    std::unique_ptr<Layer> layer;  // Op::Layer only
    std::string name;              // the layer's name, or the merge's
    std::vector<Value> from;       // one for a layer, two or more for a merge
    Shape out;
  };

  // Inputs are plain [N, shape] (nn/layer.hpp); the first is the data.
  explicit Graph(std::vector<Shape> inputs);
  explicit Graph(Shape in) : Graph(std::vector<Shape>{in}) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph();

  // Appends a layer reading `from` (default: the value added last); returns its output. Its
  // input shape must be from's shape (or a flat one of the same size), else vd::ShapeError
  // naming the layer and both shapes.
  Value add(std::unique_ptr<Layer> layer);
  Value add(std::unique_ptr<Layer> layer, Value from);
  // Elementwise sum of values of one shape (a residual connection).
  Value add_sum(std::string name, std::vector<Value> from);
  // Concatenation along the channels (of flat values: along their D); PyTorch's torch.cat(dim=1).
  Value add_concat(std::string name, std::vector<Value> from);
  // What forward() returns, in this order; by default the value added last.
  void set_outputs(std::vector<Value> outputs);

  size_t num_inputs() const { return inputs_.size(); }
  const std::vector<Value>& outputs() const { return outputs_; }
  const Shape& shape(Value v) const;
  // The value added last; before any node, the first input.
  Value last() const {
    return nodes_.empty() ? 0 : static_cast<Value>(inputs_.size() + nodes_.size()) - 1;
  }
  const Shape& in_shape() const { return inputs_[0]; }
  const Shape& out_shape() const { return shape(outputs_[0]); }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& producer(Value v) const;  // v must be a node's output
  bool empty() const { return nodes_.empty(); }
  // The graph's layers in node order (merges have none); all_layers() includes those nested
  // in blocks, each after its block.
  std::vector<Layer*> layers() const;
  std::vector<Layer*> all_layers() const;

  void init(Rng& rng);  // every layer, in node order
  double flops_per_sample() const;

  // inputs: one plain pointer per graph input, each [N, shape]. Results stay valid until the
  // next forward; output(k) is outputs()[k], plain. N = 0 is not allowed (callers skip empty
  // batches).
  void forward(Context& ctx, int n, std::span<const float* const> inputs);
  const float* output(size_t k = 0) const;
  // One input, one output: the chain's shorthand.
  const float* forward(Context& ctx, int n, const float* x);

  // Backward of the last forward (same n and inputs), nodes in reverse order. diff_outputs:
  // plain, one per output, may be MODIFIED. diff_inputs: plain, one per input, OVERWRITTEN,
  // nullptr where no gradient is needed (a layer that reads only such inputs skips its
  // backward-data). Overwrites the gradient of every parameter of the layers.
  void backward(Context& ctx, int n, std::span<const float* const> inputs,
                std::span<float* const> diff_outputs, std::span<float* const> diff_inputs);
  void backward(Context& ctx, int n, const float* x, float* diff_out, float* diff_x);

  // A graph inside a layer (nn/block): its inputs arrive in `inputs` layouts for batches of n
  // and its outputs stay in the layouts their producers chose (returned), so layouts flow
  // through a block as between layers. After this, forward, backward and output() for n read
  // and write those layouts instead of plain ones.
  std::vector<Layout> prepare(Context& ctx, int n, std::span<const Layout> inputs);
  // As forward(), with the outputs written to `dst` (one buffer per output, in its layout)
  // instead of the graph's own buffers, and backward() of the same call reading them there.
  void forward_into(Context& ctx, int n, std::span<const float* const> inputs,
                    std::span<float* const> dst);
  void backward_from(Context& ctx, int n, std::span<const float* const> inputs,
                     std::span<float* const> dst, std::span<float* const> diff_outputs,
                     std::span<float* const> diff_inputs);

 private:
  // Per batch size: each value's layout and where its data and gradient live.
  struct Plan {
    std::vector<Layout> layout;    // [value]
    std::vector<Value> data_home;  // [value] the value whose buffer holds it (views alias)
    std::vector<Value> diff_home;  // [value] likewise for gradients
    // [value] the pool buffer of a gradient that has no home elsewhere (-1: none). Gradients
    // whose lifetimes in the reverse walk do not overlap share one buffer.
    std::vector<int> diff_slot;
    std::vector<size_t> slot_floats;  // [slot]
    size_t widest = 0;                // floats of the largest value (scratch_, backward only)
    size_t merge_floats = 0;          // floats of the largest reordered merge input (scratch2_)
    std::vector<char> plain_out;      // [output] true: no reorder at the boundary
    std::vector<std::unique_ptr<ReorderPrims>> to_plain, from_plain;  // [output]
    // Sum: the inputs whose layout differs from the first are reordered into it.
    std::map<std::pair<size_t, size_t>, std::unique_ptr<ReorderPrims>> merge_in, merge_back;
  };
  Plan& plan(Context& ctx, int n);
  struct OutputsAt {  // forward_into/backward_from: the outputs in the caller's buffers
    OutputsAt(Graph& g, const Plan& p, std::span<float* const> dst);
    ~OutputsAt();
    OutputsAt(const OutputsAt&) = delete;
    OutputsAt& operator=(const OutputsAt&) = delete;
    Graph& g_;
  };
  float* act_of(size_t home);  // a value's own data buffer: the caller's dst, or act_
  Value check_value(Value v, const std::string& who) const;
  Value add_node(Node node);
  const float* data_of(const Plan& p, Value v) const;
  size_t value_floats(const Plan& p, Value v) const;
  // diff_dst of value v: the gradient buffer the consumers of v sum into.
  float* diff_of(const Plan& p, Value v);
  // Adds (or, when v's gradient is still unwritten, copies) `count` floats into diff_of(v).
  void deposit(const Plan& p, Value v, const float* g, size_t count);
  void forward_merge(Context& ctx, int n, Plan& p, size_t i);
  void backward_merge(Context& ctx, int n, Plan& p, size_t i);

  std::vector<Shape> inputs_;
  std::vector<Node> nodes_;
  std::vector<Value> outputs_;
  std::vector<int> readers_;  // [value] how many nodes read it
  std::map<int, Plan> plans_;
  const Plan* last_plan_ = nullptr;                // the last forward's
  std::map<int, std::vector<Layout>> in_layouts_;  // prepare(): not plain, per batch size
  std::vector<float*> out_dst_;                    // [output] forward_into's dst, else nullptr

  std::vector<std::vector<float>> act_;  // [value] own data buffers (nodes that are no view)
  // Gradient buffers, allocated by the first backward of a batch size (evaluation sizes run
  // forward only and never pay for them).
  std::vector<std::vector<float>> diff_pool_;
  std::vector<std::vector<float>> out_plain_;  // [output] reordered to plain, when needed
  std::vector<float> scratch_;   // a layer's diff_src before it is added, a concat's part
  std::vector<float> scratch2_;  // a merge input reordered into (or back from) the merge's layout
  // Per backward call: the pointers of the caller's inputs/outputs gradients and which
  // values' gradients have been written this step.
  std::vector<float*> diff_ptr_;
  std::vector<char> written_;
  std::vector<const float*> in_ptr_;
};

}  // namespace vd
