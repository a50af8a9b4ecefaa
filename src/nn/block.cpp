// vd::Block, and the "res" layer kind: diffusers' ResnetBlock2D ("res C [gG]") and a residual
// block around a body of the user's own ("res(layer, layer, ...)").
#include "nn/block.hpp"

#include "core/error.hpp"
#include "nn/builder.hpp"
#include "nn/conv.hpp"
#include "nn/group_norm.hpp"
#include "nn/linear.hpp"
#include "nn/registry.hpp"

namespace vd {

Block::Block(std::string name, std::string description, std::unique_ptr<Graph> graph)
    : Layer(std::move(name), graph->in_shape(), graph->out_shape()),
      description_(std::move(description)),
      graph_(std::move(graph)) {
  VD_CHECK(graph_->num_inputs() == 1 && graph_->outputs().size() == 1, ShapeError,
           "block " + this->name() + " needs a graph of one input and one output");
}

void Block::set_precision(Precision p) {
  for (Layer* l : graph_->layers()) l->set_precision(p);
}

Precision Block::precision() const {
  for (Layer* l : graph_->layers())
    if (l->precision() == Precision::BF16) return Precision::BF16;
  return Precision::F32;
}

Layout Block::prepare(Context& ctx, int n, const Layout& src) {
  return graph_->prepare(ctx, n, std::span<const Layout>(&src, 1))[0];
}

void Block::forward(Context& ctx, int n, const float* src, float* dst) {
  graph_->forward_into(ctx, n, std::span<const float* const>(&src, 1),
                       std::span<float* const>(&dst, 1));
}

void Block::backward(Context& ctx, int n, const float* src, const float* dst, float* diff_dst,
                     float* diff_src) {
  float* out = const_cast<float*>(dst);  // read only: the graph's output buffer
  graph_->backward_from(ctx, n, std::span<const float* const>(&src, 1),
                        std::span<float* const>(&out, 1), std::span<float* const>(&diff_dst, 1),
                        std::span<float* const>(&diff_src, 1));
}

// ---------------------------------------------------------------------------------------------
// "res C [gG]" and "res(body)"

namespace {

struct ResSpec {
  int channels = 0;  // res C
  int groups = 32;   // diffusers' norm_num_groups
};

ResSpec parse_res(const LayerText& l) {
  ResSpec s;
  if (l.has_body) {
    if (!l.args.empty())
      throw SyntaxError("'res(...)' takes its layers inside the parentheses and nothing after");
    if (l.body.empty()) throw SyntaxError("'res()' needs at least one layer inside");
    return s;
  }
  const auto bad = [] {
    return SyntaxError(
        "'res' takes output channels and optional groups, e.g. 'res 64' or 'res 64 g16', or "
        "layers of its own, e.g. 'res(gn 32, silu, conv 64 k3 p1)'");
  };
  if (l.args.empty() || l.args.size() > 2 || !parse_int(l.args[0], s.channels) || s.channels < 1)
    throw bad();
  if (l.args.size() == 2 && (l.args[1].size() < 2 || l.args[1][0] != 'g' ||
                             !parse_int(l.args[1].substr(1), s.groups) || s.groups < 1))
    throw bad();
  return s;
}

std::unique_ptr<Layer> build_kind(const std::string& keyword, const BuildSite& site,
                                  const LayerText& text) {
  const LayerKind* k = find_layer_kind(keyword);
  VD_CHECK(k, Error, "the layer kind '" + keyword + "' is not registered");
  return k->build(site, text);
}

LayerText words(const std::string& keyword, std::vector<std::string> args) {
  LayerText t;
  t.keyword = keyword;
  t.args = std::move(args);
  t.text = keyword;
  for (const auto& a : t.args) t.text += " " + a;
  return t;
}

// out = shortcut(x) + body(x): the shortcut is x itself, or a 1x1 convolution
// "<name>.conv_shortcut" when the body changes the channels (diffusers' ResnetBlock2D).
void close_residual(Graph& g, ParamStore& store, const std::string& name, Graph::Value body) {
  const Shape in = g.shape(0), out = g.shape(body);
  VD_CHECK(in.spatial() == out.spatial() && in.flat() == out.flat() && in.rank == out.rank,
           ShapeError,
           "the body of residual block " + name + " turns " + in.text() + " into " + out.text() +
               "; a residual block keeps the map size (change it outside the block, e.g. with "
               "'conv C k3 s2 p1' or 'up 2')");
  Graph::Value shortcut = 0;
  if (in.c != out.c) {
    if (in.flat())
      shortcut = g.add(
          std::make_unique<Linear>(store, name + ".conv_shortcut", in, out.c, Activation::None), 0);
    else
      shortcut =
          g.add(std::make_unique<Conv2d>(store, name + ".conv_shortcut", in,
                                         ConvSpec{out.c, 1, 1, 0, 0, false}, Activation::None),
                0);
  }
  // The body first: the sum lies in its layout (a convolution's), not the input's.
  g.add_sum(name + ".add", {body, shortcut});
}

std::unique_ptr<Layer> build_res(const BuildSite& site, const LayerText& l) {
  const ResSpec s = parse_res(l);
  auto g = std::make_unique<Graph>(site.in);
  if (l.has_body) {
    build_layers(*g, site.store, site.name, l.body, false, site.what + ": in '" + l.text + "'");
  } else {
    VD_CHECK(!site.in.flat(), ShapeError,
             "res layer " + site.name + " needs an image input (C x H x W), got " + site.in.text());
    const std::string C = std::to_string(s.channels), G = std::to_string(s.groups);
    const auto add = [&](const std::string& part, const std::string& keyword,
                         std::vector<std::string> args) {
      const Shape in = g->shape(g->last());
      BuildSite inner{site.store, site.name + "." + part, in, Activation::None, site.what};
      g->add(build_kind(keyword, inner, words(keyword, std::move(args))));
    };
    add("norm1", "gn", {G});
    add("silu1", "silu", {});
    add("conv1", "conv", {C, "k3", "p1"});
    add("norm2", "gn", {G});
    add("silu2", "silu", {});
    add("conv2", "conv", {C, "k3", "p1"});
  }
  close_residual(*g, site.store, site.name, g->last());
  return std::make_unique<Block>(site.name, l.text, std::move(g));
}

}  // namespace

LayerKind res_kind() {
  LayerKind k;
  k.keyword = "res";
  k.syntax = "res C [gG]";
  k.what =
      "residual block to C channels: gn G (32), silu, conv 3x3, gn, silu, conv 3x3, plus the "
      "input (through a 1x1 conv when the channels change); 'res(layer, ...)' runs layers of "
      "your own instead";
  k.torch = "diffusers ResnetBlock2D (temb None, dropout 0)";
  k.params = true;
  k.check = [](const LayerText& l) {
    parse_res(l);
    if (l.has_body) check_layers(l.body, "in '" + l.text + "'");
  };
  k.build = build_res;
  return k;
}

}  // namespace vd
