// vd::Graph: planning of layouts and buffers per batch size, the forward walk, and the reverse
// walk that sums the gradients of values read by several nodes.
#include "nn/graph.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.hpp"
#include "nn/dnnl_prims.hpp"

namespace vd {

namespace {
using Clock = std::chrono::steady_clock;

// Times a node for Context::profile under `key`: leaves and merges only (a block's layers time
// themselves), nothing without a profile.
class NodeTimer {
 public:
  NodeTimer(Context& ctx, const Graph::Node& node, const char* pass)
      : ctx_(ctx), on_(ctx.profile && (!node.layer || node.layer->children().empty())) {
    if (!on_) return;
    if (node.layer) {
      const std::string d = node.layer->describe();
      key_ = d.substr(0, d.find_first_of(" ("));
    } else {
      key_ = node.op == Graph::Op::Sum ? "sum" : "concat";
    }
    key_ += pass;
    t0_ = Clock::now();
  }
  ~NodeTimer() {
    if (on_)
      ctx_.profile->seconds[key_] += std::chrono::duration<double>(Clock::now() - t0_).count();
  }

 private:
  Context& ctx_;
  bool on_;
  std::string key_;
  Clock::time_point t0_;
};

bool same_or_flat(const Shape& a, const Shape& b) {
  return a == b || (a.flat() && b.flat() && a.size() == b.size());
}
}  // namespace

Graph::Graph(std::vector<Shape> inputs) : inputs_(std::move(inputs)) {
  VD_CHECK(!inputs_.empty(), ShapeError, "a graph needs at least one input");
  readers_.assign(inputs_.size(), 0);
  outputs_ = {0};
}

Graph::~Graph() = default;

const Shape& Graph::shape(Value v) const {
  check_value(v, "shape()");
  const size_t k = inputs_.size();
  return static_cast<size_t>(v) < k ? inputs_[static_cast<size_t>(v)]
                                    : nodes_[static_cast<size_t>(v) - k].out;
}

const Graph::Node& Graph::producer(Value v) const {
  check_value(v, "producer()");
  VD_CHECK(static_cast<size_t>(v) >= inputs_.size(), ShapeError,
           "value " + std::to_string(v) + " is a graph input, not a node's output");
  return nodes_[static_cast<size_t>(v) - inputs_.size()];
}

Graph::Value Graph::check_value(Value v, const std::string& who) const {
  const Value top = static_cast<Value>(inputs_.size() + nodes_.size()) - 1;
  VD_CHECK(v >= 0 && v <= top, ShapeError,
           who + ": value " + std::to_string(v) + " does not exist in this graph (0.." +
               std::to_string(top) + ")");
  return v;
}

Graph::Value Graph::add_node(Node node) {
  for (Value v : node.from) ++readers_[static_cast<size_t>(check_value(v, node.name))];
  nodes_.push_back(std::move(node));
  readers_.push_back(0);
  outputs_ = {last()};
  plans_.clear();
  last_plan_ = nullptr;
  return last();
}

Graph::Value Graph::add(std::unique_ptr<Layer> layer) {
  return add(std::move(layer), last());
}

Graph::Value Graph::add(std::unique_ptr<Layer> layer, Value from) {
  VD_CHECK(layer, ShapeError, "Graph::add got no layer.");
  const Shape& expect = shape(check_value(from, layer->name()));
  VD_CHECK(same_or_flat(layer->in_shape(), expect), ShapeError,
           "layer " + layer->name() + " (" + layer->describe() + ") expects input " +
               layer->in_shape().text() + " but the layer before it gives " + expect.text());
  Node node;
  node.op = Op::Layer;
  node.name = layer->name();
  node.out = layer->out_shape();
  node.from = {from};
  node.layer = std::move(layer);
  return add_node(std::move(node));
}

Graph::Value Graph::add_sum(std::string name, std::vector<Value> from) {
  VD_CHECK(from.size() >= 2, ShapeError, name + ": a sum needs two or more inputs");
  const Shape first = shape(from[0]);
  for (Value v : from)
    VD_CHECK(shape(v) == first, ShapeError,
             name + ": a sum needs inputs of one shape, got " + first.text() + " and " +
                 shape(v).text());
  Node node;
  node.op = Op::Sum;
  node.name = std::move(name);
  node.out = first;
  node.from = std::move(from);
  return add_node(std::move(node));
}

Graph::Value Graph::add_concat(std::string name, std::vector<Value> from) {
  VD_CHECK(from.size() >= 2, ShapeError, name + ": a concatenation needs two or more inputs");
  Shape out = shape(from[0]);
  for (size_t j = 1; j < from.size(); ++j) {
    const Shape& s = shape(from[j]);
    VD_CHECK(s.flat() == out.flat() && s.spatial() == out.spatial() && s.rank == out.rank,
             ShapeError,
             name + ": a concatenation along channels needs inputs of one spatial size, got " +
                 out.text() + " and " + s.text());
    out.c += s.c;
  }
  Node node;
  node.op = Op::Concat;
  node.name = std::move(name);
  node.out = out;
  node.from = std::move(from);
  return add_node(std::move(node));
}

void Graph::set_outputs(std::vector<Value> outputs) {
  VD_CHECK(!outputs.empty(), ShapeError, "a graph needs at least one output");
  for (size_t i = 0; i < outputs.size(); ++i) {
    check_value(outputs[i], "set_outputs()");
    for (size_t j = 0; j < i; ++j)
      VD_CHECK(outputs[i] != outputs[j], ShapeError, "a graph output is listed twice");
  }
  outputs_ = std::move(outputs);
  plans_.clear();
  last_plan_ = nullptr;
}

std::vector<Layer*> Graph::layers() const {
  std::vector<Layer*> out;
  for (const Node& node : nodes_)
    if (node.layer) out.push_back(node.layer.get());
  return out;
}

std::vector<Layer*> Graph::all_layers() const {
  std::vector<Layer*> out;
  std::vector<Layer*> todo = layers();
  std::reverse(todo.begin(), todo.end());
  while (!todo.empty()) {
    Layer* l = todo.back();
    todo.pop_back();
    out.push_back(l);
    std::vector<Layer*> kids = l->children();
    todo.insert(todo.end(), kids.rbegin(), kids.rend());
  }
  return out;
}

void Graph::init(Rng& rng) {
  for (Node& node : nodes_)
    if (node.layer) node.layer->init(rng);
}

double Graph::flops_per_sample() const {
  double f = 0;
  for (const Node& node : nodes_)
    if (node.layer) f += node.layer->flops_per_sample();
  return f;
}

Graph::Plan& Graph::plan(Context& ctx, int n) {
  auto it = plans_.find(n);
  if (it != plans_.end()) return it->second;
  VD_CHECK(n > 0, ShapeError, "a batch needs at least one sample, got " + std::to_string(n));
  const size_t K = inputs_.size(), V = K + nodes_.size();
  Plan p;
  p.layout.resize(V);
  p.data_home.resize(V);
  p.diff_home.resize(V);
  act_.resize(V);
  const auto grow = [](std::vector<float>& buf, size_t floats) {
    if (buf.size() < floats) buf.resize(floats);
  };
  const auto given = in_layouts_.find(n);
  for (size_t v = 0; v < K; ++v) {
    p.layout[v] = given != in_layouts_.end() ? given->second[v] : plain_layout(n, inputs_[v]);
    p.data_home[v] = p.diff_home[v] = static_cast<Value>(v);
  }
  std::vector<char> is_output(V, 0);
  for (Value v : outputs_) is_output[static_cast<size_t>(v)] = 1;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& node = nodes_[i];
    const size_t v = K + i;
    p.data_home[v] = p.diff_home[v] = static_cast<Value>(v);
    if (node.op == Op::Layer) {
      const size_t u = static_cast<size_t>(node.from[0]);
      p.layout[v] = node.layer->prepare(ctx, n, p.layout[u]);
      if (node.layer->is_view(n)) {
        p.data_home[v] = p.data_home[u];
        // One reader and no output on either side: the gradient passes through unchanged,
        // so both share one buffer.
        if (readers_[u] == 1 && !is_output[u] && !is_output[v]) p.diff_home[v] = p.diff_home[u];
      }
    } else {
      // A sum lies in its first input's layout, a concatenation in plain.
      p.layout[v] = node.op == Op::Sum ? p.layout[static_cast<size_t>(node.from[0])]
                                       : plain_layout(n, node.out);
      for (size_t j = 0; j < node.from.size(); ++j) {
        const Layout& lj = p.layout[static_cast<size_t>(node.from[j])];
        const Layout want = node.op == Op::Sum ? p.layout[v] : plain_layout(n, shape(node.from[j]));
        if (lj == want) continue;
        p.merge_in[{i, j}] = std::make_unique<ReorderPrims>(ctx.engine, lj, want);
        p.merge_back[{i, j}] = std::make_unique<ReorderPrims>(ctx.engine, want, lj);
        p.merge_floats = std::max({p.merge_floats, layout_floats(want), layout_floats(lj)});
      }
    }
    const size_t floats = layout_floats(p.layout[v]);
    if (p.data_home[v] == static_cast<Value>(v)) grow(act_[v], floats);
  }
  // Gradient lifetimes in node indices: a value's gradient is written first by its last
  // reader (or comes from the caller, for an output) and read last by its producer.
  const int end = static_cast<int>(nodes_.size());
  std::vector<int> born(V, -1);
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (Value u : nodes_[i].from) {
      const size_t h = static_cast<size_t>(p.diff_home[static_cast<size_t>(u)]);
      born[h] = std::max(born[h], static_cast<int>(i));
    }
  for (Value o : outputs_) born[static_cast<size_t>(p.diff_home[static_cast<size_t>(o)])] = end;
  // Greedy assignment in the order the reverse walk meets them; a slot is free again once
  // its last value's producer has run.
  p.diff_slot.assign(V, -1);
  std::vector<int> slot_free_below;  // [slot] the slot holds a value until this node index
  for (int t = end; t >= 0; --t)
    for (size_t v = K; v < V; ++v) {
      const int dies = static_cast<int>(v - K);
      if (p.diff_home[v] != static_cast<Value>(v) || std::max(born[v], dies) != t) continue;
      int slot = -1;
      for (size_t s = 0; s < slot_free_below.size() && slot < 0; ++s)
        if (slot_free_below[s] > t) slot = static_cast<int>(s);
      if (slot < 0) {
        slot = static_cast<int>(slot_free_below.size());
        slot_free_below.push_back(0);
        p.slot_floats.push_back(0);
      }
      slot_free_below[static_cast<size_t>(slot)] = dies;
      p.diff_slot[v] = slot;
      auto& f = p.slot_floats[static_cast<size_t>(slot)];
      f = std::max(f, layout_floats(p.layout[v]));
    }
  for (size_t v = 0; v < V; ++v) p.widest = std::max(p.widest, layout_floats(p.layout[v]));
  grow(scratch2_, p.merge_floats);
  out_plain_.resize(outputs_.size());
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const size_t v = static_cast<size_t>(outputs_[k]);
    // Inside a block the outputs stay as they are.
    const bool plain = given != in_layouts_.end() || is_plain(p.layout[v], n, shape(outputs_[k]));
    p.plain_out.push_back(plain ? 1 : 0);
    if (plain) {
      p.to_plain.emplace_back();
      p.from_plain.emplace_back();
      continue;
    }
    const Layout pl = plain_layout(n, shape(outputs_[k]));
    p.to_plain.push_back(std::make_unique<ReorderPrims>(ctx.engine, p.layout[v], pl));
    p.from_plain.push_back(std::make_unique<ReorderPrims>(ctx.engine, pl, p.layout[v]));
    grow(out_plain_[k], layout_floats(pl));
  }
  return plans_.emplace(n, std::move(p)).first->second;
}

const float* Graph::data_of(const Plan& p, Value v) const {
  const size_t home = static_cast<size_t>(p.data_home[static_cast<size_t>(v)]);
  if (home < inputs_.size()) return in_ptr_[home];
  for (size_t k = 0; k < out_dst_.size(); ++k)
    if (out_dst_[k] && static_cast<size_t>(outputs_[k]) == home) return out_dst_[k];
  return act_[home].data();
}

float* Graph::act_of(size_t home) {
  return const_cast<float*>(data_of(*last_plan_, static_cast<Value>(home)));
}

std::vector<Layout> Graph::prepare(Context& ctx, int n, std::span<const Layout> inputs) {
  VD_CHECK(inputs.size() == inputs_.size(), ShapeError,
           "Graph::prepare needs one layout per input");
  std::vector<Layout> in(inputs.begin(), inputs.end());
  auto it = in_layouts_.find(n);
  if (it == in_layouts_.end() || it->second != in) {
    in_layouts_[n] = in;
    plans_.erase(n);
    last_plan_ = nullptr;
  }
  const Plan& p = plan(ctx, n);
  std::vector<Layout> out;
  for (Value v : outputs_) out.push_back(p.layout[static_cast<size_t>(v)]);
  return out;
}

// Points the outputs the graph computes itself (not views, not inputs) at `dst` for one call;
// the guard's end restores the graph's own buffers, also when the call throws.
Graph::OutputsAt::OutputsAt(Graph& g, const Plan& p, std::span<float* const> dst) : g_(g) {
  g.out_dst_.assign(g.outputs_.size(), nullptr);
  for (size_t k = 0; k < g.outputs_.size(); ++k) {
    const size_t v = static_cast<size_t>(g.outputs_[k]);
    if (p.data_home[v] == g.outputs_[k] && v >= g.inputs_.size()) g.out_dst_[k] = dst[k];
  }
}

Graph::OutputsAt::~OutputsAt() {
  g_.out_dst_.clear();
}

void Graph::forward_into(Context& ctx, int n, std::span<const float* const> inputs,
                         std::span<float* const> dst) {
  VD_CHECK(dst.size() == outputs_.size(), ShapeError, "forward_into needs one dst per output");
  Plan& p = plan(ctx, n);
  const OutputsAt at(*this, p, dst);
  forward(ctx, n, inputs);
  for (size_t k = 0; k < outputs_.size(); ++k)
    if (!out_dst_[k])
      std::memcpy(dst[k], data_of(p, outputs_[k]), value_floats(p, outputs_[k]) * sizeof(float));
}

void Graph::backward_from(Context& ctx, int n, std::span<const float* const> inputs,
                          std::span<float* const> dst, std::span<float* const> diff_outputs,
                          std::span<float* const> diff_inputs) {
  VD_CHECK(dst.size() == outputs_.size(), ShapeError, "backward_from needs one dst per output");
  const OutputsAt at(*this, plan(ctx, n), dst);
  backward(ctx, n, inputs, diff_outputs, diff_inputs);
}

size_t Graph::value_floats(const Plan& p, Value v) const {
  return layout_floats(p.layout[static_cast<size_t>(v)]);
}

float* Graph::diff_of(const Plan& p, Value v) {
  return diff_ptr_[static_cast<size_t>(p.diff_home[static_cast<size_t>(v)])];
}

void Graph::deposit(const Plan& p, Value v, const float* __restrict g, size_t count) {
  float* __restrict d = diff_of(p, v);
  char& written = written_[static_cast<size_t>(p.diff_home[static_cast<size_t>(v)])];
  if (!written) {
    std::memcpy(d, g, count * sizeof(float));
    written = 1;
    return;
  }
#pragma omp simd
  for (size_t i = 0; i < count; ++i) d[i] += g[i];
}

void Graph::forward(Context& ctx, int n, std::span<const float* const> inputs) {
  VD_CHECK(inputs.size() == inputs_.size(), ShapeError,
           "the graph has " + std::to_string(inputs_.size()) + " input(s), forward got " +
               std::to_string(inputs.size()));
  Plan& p = plan(ctx, n);
  last_plan_ = &p;
  in_ptr_.assign(inputs.begin(), inputs.end());
  const size_t K = inputs_.size();
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& node = nodes_[i];
    const size_t v = K + i;
    const NodeTimer timer(ctx, node, " fwd");
    if (node.op != Op::Layer) {
      forward_merge(ctx, n, p, i);
    } else if (p.data_home[v] == static_cast<Value>(v)) {
      node.layer->forward(ctx, n, data_of(p, node.from[0]), act_of(v));
    }
  }
  for (size_t k = 0; k < outputs_.size(); ++k)
    if (!p.plain_out[k])
      p.to_plain[k]->run(ctx.stream, data_of(p, outputs_[k]), out_plain_[k].data());
}

const float* Graph::output(size_t k) const {
  VD_CHECK(k < outputs_.size() && last_plan_, ShapeError,
           "Graph::output(" + std::to_string(k) + ") before a forward, or past the outputs");
  const Plan& p = *last_plan_;
  return p.plain_out[k] ? data_of(p, outputs_[k]) : out_plain_[k].data();
}

const float* Graph::forward(Context& ctx, int n, const float* x) {
  VD_CHECK(inputs_.size() == 1, ShapeError, "this graph has several inputs; pass them all");
  forward(ctx, n, std::span<const float* const>(&x, 1));
  return output(0);
}

void Graph::forward_merge(Context& ctx, int n, Plan& p, size_t i) {
  const Node& node = nodes_[i];
  const size_t v = inputs_.size() + i;
  float* __restrict dst = act_of(v);
  // Input j as the merge reads it: reordered into scratch2_ when its layout differs.
  const auto read = [&](size_t j) -> const float* {
    const float* src = data_of(p, node.from[j]);
    auto it = p.merge_in.find({i, j});
    if (it == p.merge_in.end()) return src;
    it->second->run(ctx.stream, src, scratch2_.data());
    return scratch2_.data();
  };
  if (node.op == Op::Sum) {
    const size_t count = value_floats(p, static_cast<Value>(v));
    std::memcpy(dst, read(0), count * sizeof(float));
    for (size_t j = 1; j < node.from.size(); ++j) {
      const float* __restrict s = read(j);
#pragma omp simd
      for (size_t e = 0; e < count; ++e) dst[e] += s[e];
    }
    return;
  }
  // Concat, plain: per sample, each input's C_j*H*W values after the previous inputs'.
  const size_t total = static_cast<size_t>(node.out.size());
  size_t offset = 0;
  for (size_t j = 0; j < node.from.size(); ++j) {
    const size_t width = static_cast<size_t>(shape(node.from[j]).size());
    const float* s = read(j);
    for (size_t b = 0; b < static_cast<size_t>(n); ++b)
      std::memcpy(dst + b * total + offset, s + b * width, width * sizeof(float));
    offset += width;
  }
}

void Graph::backward(Context& ctx, int n, std::span<const float* const> inputs,
                     std::span<float* const> diff_outputs, std::span<float* const> diff_inputs) {
  VD_CHECK(inputs.size() == inputs_.size() && diff_inputs.size() == inputs_.size() &&
               diff_outputs.size() == outputs_.size(),
           ShapeError, "Graph::backward needs one pointer per input and per output");
  Plan& p = plan(ctx, n);
  last_plan_ = &p;
  in_ptr_.assign(inputs.begin(), inputs.end());
  const size_t K = inputs_.size(), V = K + nodes_.size();
  // Which values need a gradient: the inputs the caller asks for, and what a layer with
  // parameters or such a value depends on.
  std::vector<char> need(V, 0);
  for (size_t v = 0; v < K; ++v) need[v] = diff_inputs[v] != nullptr;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    char& nv = need[K + i];
    nv = node.layer && !node.layer->param_entries().empty();
    for (Value u : node.from) nv = nv || need[static_cast<size_t>(u)];
  }
  diff_ptr_.assign(V, nullptr);
  written_.assign(V, 0);
  for (size_t v = 0; v < K; ++v) diff_ptr_[v] = diff_inputs[v];
  if (scratch_.size() < p.widest) scratch_.resize(p.widest);
  if (diff_pool_.size() < p.slot_floats.size()) diff_pool_.resize(p.slot_floats.size());
  for (size_t s = 0; s < p.slot_floats.size(); ++s)
    if (diff_pool_[s].size() < p.slot_floats[s]) diff_pool_[s].resize(p.slot_floats[s]);
  for (size_t v = K; v < V; ++v)
    if (need[v] && p.diff_slot[v] >= 0)
      diff_ptr_[v] = diff_pool_[static_cast<size_t>(p.diff_slot[v])].data();
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const Value v = outputs_[k];
    const size_t uv = static_cast<size_t>(v);
    if (!need[uv]) continue;
    if (uv < K) {  // an input passed straight through
      deposit(p, v, diff_outputs[k], value_floats(p, v));
    } else if (p.plain_out[k]) {
      diff_ptr_[uv] = diff_outputs[k];  // read (and modified) in place
      written_[uv] = 1;
    } else {
      p.from_plain[k]->run(ctx.stream, diff_outputs[k], diff_ptr_[uv]);
      written_[uv] = 1;
    }
  }
  for (size_t i = nodes_.size(); i-- > 0;) {
    Node& node = nodes_[i];
    const Value v = static_cast<Value>(K + i);
    if (!need[K + i]) continue;
    const NodeTimer timer(ctx, node, " bwd");
    const size_t home = static_cast<size_t>(p.diff_home[K + i]);
    if (!written_[home]) {
      // Nothing reads this value: its gradient is zero (the layer's parameters still get
      // theirs, zero, from its backward).
      std::fill_n(diff_of(p, v), value_floats(p, v), 0.0f);
      written_[home] = 1;
    }
    if (node.op != Op::Layer) {
      backward_merge(ctx, n, p, i);
      continue;
    }
    const Value u = node.from[0];
    const size_t uhome = static_cast<size_t>(p.diff_home[static_cast<size_t>(u)]);
    const bool view = p.data_home[K + i] != v;
    if (view) {
      // The gradient passes through unchanged: shared already, or added to u's.
      if (need[static_cast<size_t>(u)] && uhome != home)
        deposit(p, u, diff_of(p, v), value_floats(p, u));
      continue;
    }
    float* target = nullptr;  // where the layer writes diff_src
    if (need[static_cast<size_t>(u)]) target = written_[uhome] ? scratch_.data() : diff_of(p, u);
    node.layer->backward(ctx, n, data_of(p, u), data_of(p, v), diff_of(p, v), target);
    if (target == scratch_.data()) {
      deposit(p, u, scratch_.data(), value_floats(p, u));
    } else if (target) {
      written_[uhome] = 1;
    }
    if (ctx.grad_listener) {
      const std::vector<size_t> entries = node.layer->param_entries();
      if (!entries.empty()) ctx.grad_listener->backward_done(entries);
    }
  }
  // An input whose gradient nothing wrote (no path reads it) gets zeros.
  for (size_t v = 0; v < K; ++v)
    if (diff_inputs[v] && !written_[v])
      std::fill_n(diff_inputs[v], value_floats(p, static_cast<Value>(v)), 0.0f);
}

void Graph::backward(Context& ctx, int n, const float* x, float* diff_out, float* diff_x) {
  VD_CHECK(inputs_.size() == 1 && outputs_.size() == 1, ShapeError,
           "this graph has several inputs or outputs; pass them all");
  backward(ctx, n, std::span<const float* const>(&x, 1), std::span<float* const>(&diff_out, 1),
           std::span<float* const>(&diff_x, 1));
}

void Graph::backward_merge(Context& ctx, int n, Plan& p, size_t i) {
  const Node& node = nodes_[i];
  const size_t K = inputs_.size();
  const Value v = static_cast<Value>(K + i);
  const float* g = diff_of(p, v);
  // Sends input j's part of the gradient (in the merge's layout) back in j's own layout.
  const auto give = [&](size_t j, const float* part, size_t floats) {
    const Value u = node.from[j];
    auto it = p.merge_back.find({i, j});
    if (it == p.merge_back.end()) return deposit(p, u, part, floats);
    it->second->run(ctx.stream, part, scratch2_.data());
    deposit(p, u, scratch2_.data(), value_floats(p, u));
  };
  std::vector<char> need(node.from.size());
  for (size_t j = 0; j < node.from.size(); ++j) {
    const size_t u = static_cast<size_t>(node.from[j]);
    const size_t home = static_cast<size_t>(p.diff_home[u]);
    need[j] = diff_ptr_[home] != nullptr;
  }
  if (node.op == Op::Sum) {
    for (size_t j = 0; j < node.from.size(); ++j)
      if (need[j]) give(j, g, value_floats(p, v));
    return;
  }
  // Concat: input j's columns of each sample, gathered into scratch_ (plain).
  const size_t total = static_cast<size_t>(node.out.size());
  size_t offset = 0;
  for (size_t j = 0; j < node.from.size(); ++j) {
    const size_t width = static_cast<size_t>(shape(node.from[j]).size());
    if (need[j]) {
      for (size_t b = 0; b < static_cast<size_t>(n); ++b)
        std::memcpy(scratch_.data() + b * width, g + b * total + offset, width * sizeof(float));
      give(j, scratch_.data(), static_cast<size_t>(n) * width);
    }
    offset += width;
  }
}

}  // namespace vd
