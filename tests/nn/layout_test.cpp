// Tests of the Graph's layout planning: a convolution keeps the layout oneDNN chooses, that layout
// flows through activations, GroupNorm, up-sampling and blocks to the next convolution with no
// reorder, and reorders happen only at the edges (the input, a flatten feeding an fc, a reshape
// feeding a convt, the graph output). Each graph is also run with set_conv_layouts(Plain) and must
// give the same outputs and gradients. Not a test of the layers' arithmetic (graph_test,
// conv_test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/block.hpp"
#include "nn/builder.hpp"
#include "nn/context.hpp"
#include "nn/conv.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/graph.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace {

using vd::ConvLayouts;
using vd::Graph;
using vd::Shape;

constexpr int kB = 4;  // N: the batch of every test

// Puts format_tag::any back (the default) when a test ends, also when it fails, so the other
// tests of the process build their primitives as usual. There is no getter: Any is the default.
struct RestoreConvLayouts {
  ~RestoreConvLayouts() { vd::set_conv_layouts(ConvLayouts::Any); }
};

// A graph built from a layer list, parameters from a fixed seed (two Nets of one text hold the
// same parameters).
struct Net {
  vd::ParamStore store;
  Graph g;
  vd::Context ctx;
  Net(const Shape& in, const std::string& text) : g(in) {
    vd::build_layers(g, store, "net", vd::parse_layers(text, "net"), false, "net");
    store.finalize();
    vd::Rng rng(7);
    g.init(rng);
  }
};

// What one forward and backward of a batch gives: y [N, out] plain, diff_x [N, in] plain, and
// every parameter gradient.
struct Result {
  std::vector<float> y, diff_x, grads;
};

std::vector<float> uniform(size_t count, uint64_t seed) {
  vd::Rng rng(seed);
  std::vector<float> v(count);
  for (float& e : v) e = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

// Forward then backward of kB samples, the convolutions' primitives built (by the first
// forward, which plans the graph) in `layouts`.
Result run(Net& net, ConvLayouts layouts) {
  const size_t in = static_cast<size_t>(kB) * net.g.in_shape().size();
  const size_t out = static_cast<size_t>(kB) * net.g.out_shape().size();
  const std::vector<float> x = uniform(in, 11);
  std::vector<float> diff_y = uniform(out, 12);  // backward may modify it
  vd::set_conv_layouts(layouts);
  const float* y = net.g.forward(net.ctx, kB, x.data());
  vd::set_conv_layouts(ConvLayouts::Any);
  Result r;
  r.y.assign(y, y + out);
  r.diff_x.resize(in);
  net.g.backward(net.ctx, kB, x.data(), diff_y.data(), r.diff_x.data());
  const auto grads = net.store.grads();
  r.grads.assign(grads.begin(), grads.end());
  return r;
}

// Element-wise within 1e-5 of the vector's largest magnitude. The blocked and the plain
// primitives sum in different orders, so a value near zero after cancellation differs by a few
// float roundings of the larger terms (about 1e-6 of the peak here); a value read in the wrong
// layout differs by the size of the values themselves.
void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float peak = 0;
  for (float w : want) peak = std::max(peak, std::fabs(w));
  ASSERT_GT(peak, 0.0f) << what << " is all zeros: the comparison would prove nothing";
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= 1e-5f * peak) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", plain build " << want[i];
  EXPECT_EQ(bad, 0u) << what << ": elements that differ from the plain build";
}

// The same graph with format_tag::any and with plain activations: outputs, input gradients and
// parameter gradients agree. Both stores hold the same parameters.
void expect_same_as_plain_build(Net& any, Net& plain) {
  const auto pa = any.store.params(), pp = plain.store.params();
  ASSERT_TRUE(std::equal(pa.begin(), pa.end(), pp.begin(), pp.end()));
  const Result a = run(any, ConvLayouts::Any);
  const Result p = run(plain, ConvLayouts::Plain);
  expect_close(a.y, p.y, "forward output");
  expect_close(a.diff_x, p.diff_x, "diff_src of the input");
  expect_close(a.grads, p.grads, "parameter gradients");
}

// The layout of the output of `text` on `in` when the graph hands it on unreordered (as inside a
// block), planned with the convolutions in `layouts`.
vd::Layout layout_after(const Shape& in, const std::string& text, ConvLayouts layouts) {
  Net net(in, text);
  const vd::Layout src = vd::plain_layout(kB, in);
  vd::set_conv_layouts(layouts);
  const vd::Layout dst = net.g.prepare(net.ctx, kB, std::span<const vd::Layout>(&src, 1))[0];
  vd::set_conv_layouts(ConvLayouts::Any);
  return dst;
}

// Every convolution of the graph, blocks' included, in node order (a block's after it).
std::vector<vd::Conv*> convs_of(const Graph& g) {
  std::vector<vd::Conv*> out;
  for (vd::Layer* l : g.all_layers())
    if (auto* c = dynamic_cast<vd::Conv*>(l)) out.push_back(c);
  return out;
}

// "none", "src", "src diff_src", ...: the activation reorders Conv::impl_info reports.
std::string reorders_of(vd::Conv& conv, vd::Context& ctx) {
  const std::string info = conv.impl_info(ctx, kB);
  const std::string key = "activation reorders:";
  const size_t at = info.find(key);
  return at == std::string::npos ? "(not reported: " + info + ")"
                                 : info.substr(at + key.size() + 1);
}

// The channel block oneDNN picks for a 32-channel convolution here (16 on AVX-512, 8 on AVX2);
// with 1 (plain) there is no planning to test.
int chosen_block() {
  return vd::channel_block_of(layout_after(Shape{16, 8, 8}, "conv 32 k3 p1", ConvLayouts::Any));
}

#define SKIP_WITHOUT_BLOCKED_LAYOUTS()                                                    \
  do {                                                                                    \
    if (chosen_block() <= 1)                                                              \
      GTEST_SKIP() << "oneDNN chooses plain layouts for convolutions on this CPU, so no " \
                      "layout flows between layers";                                      \
  } while (false)

TEST(LayoutPlanning, PlainModeGivesPlainConvolutionOutputs) {
  const RestoreConvLayouts restore;
  const Shape in{16, 8, 8};
  const vd::Layout plain = layout_after(in, "conv 32 k3 p1", ConvLayouts::Plain);
  EXPECT_TRUE(vd::is_plain(plain, kB, Shape{32, 8, 8}));
  EXPECT_EQ(vd::channel_block_of(plain), 1);
}

// conv -> X -> conv, X an activation (fused or not), GroupNorm or up-sampling: the value between
// the convolutions stays in the first one's blocked layout, the second reads it as it is, and
// the graph output reaches the caller plain.
TEST(LayoutPlanning, LayoutFlowsBetweenConvolutionsAndTheOutputIsPlain) {
  const RestoreConvLayouts restore;
  SKIP_WITHOUT_BLOCKED_LAYOUTS();
  const Shape in{16, 8, 8};
  const int block = chosen_block();
  for (const std::string middle : {"relu", "silu", "gn 8", "up 2", "gn 8, silu"}) {
    SCOPED_TRACE(middle);
    const std::string head = "conv 32 k3 p1, " + middle;
    const vd::Layout between = layout_after(in, head, ConvLayouts::Any);
    EXPECT_EQ(vd::channel_block_of(between), block)
        << "the value after '" << head << "' is not in the convolution's "
        << vd::layout_name(2, block);
    if (middle != "up 2") {  // the others keep the shape, so the whole descriptor is the same
      EXPECT_EQ(between, layout_after(in, "conv 32 k3 p1", ConvLayouts::Any))
          << "'" << middle << "' changed the layout it received";
    }
    EXPECT_TRUE(
        vd::is_plain(layout_after(in, head, ConvLayouts::Plain), kB, Net(in, head).g.out_shape()));

    const std::string text = head + ", conv 32 k3 p1";
    Net any(in, text), plain(in, text);
    if (middle == "relu") {  // fused: the graph is two convolutions
      ASSERT_EQ(any.g.nodes().size(), 2u);
      EXPECT_EQ(any.g.nodes()[0].layer->describe(), "conv 32 k3 s1 p1 + relu");
    }
    expect_same_as_plain_build(any, plain);
    const std::vector<vd::Conv*> ca = convs_of(any.g), cp = convs_of(plain.g);
    ASSERT_EQ(ca.size(), 2u);
    // The second convolution reads src and writes diff_src in the layout it chose itself, and
    // its diff_dst (from the plain caller, reordered once at the output) in its dst layout.
    EXPECT_EQ(reorders_of(*ca[1], any.ctx), "none");
    // The first reads the plain data: the graph input is an edge too, whose reorder (src in,
    // diff_src out) happens inside that convolution.
    EXPECT_EQ(reorders_of(*ca[0], any.ctx), "src diff_src");
    EXPECT_EQ(reorders_of(*cp[1], plain.ctx), "none");
    EXPECT_EQ(reorders_of(*cp[0], plain.ctx), "none");
  }
}

// conv -> flatten -> fc: the fc reads plain [N, D], so the flatten after a blocked convolution
// is a reorder (no view); with plain convolutions it is a view.
TEST(LayoutPlanning, FlattenAfterABlockedConvolutionReordersToPlain) {
  const RestoreConvLayouts restore;
  SKIP_WITHOUT_BLOCKED_LAYOUTS();
  const Shape in{16, 8, 8};
  const std::string text = "conv 32 k3 p1, relu, fc 10";
  Net any(in, text), plain(in, text);
  expect_same_as_plain_build(any, plain);
  ASSERT_EQ(any.g.nodes().size(), 3u);
  const vd::Layer& flatten_any = *any.g.nodes()[1].layer;
  ASSERT_EQ(flatten_any.describe(), "flatten");
  EXPECT_FALSE(flatten_any.is_view(kB)) << "a flatten of a blocked layout must reorder";
  EXPECT_TRUE(plain.g.nodes()[1].layer->is_view(kB)) << "a flatten of plain data is a view";
  const vd::Layout flat = layout_after(in, "conv 32 k3 p1, relu, flatten", ConvLayouts::Any);
  EXPECT_TRUE(vd::is_plain(flat, kB, any.g.nodes()[1].out));
  // The flatten hands the gradient back in the convolution's own layout.
  EXPECT_EQ(reorders_of(*convs_of(any.g)[0], any.ctx).find("diff_dst"), std::string::npos);
}

// fc -> reshape -> convt: the reshape of plain [N, D] is a view, and the convolution reorders
// that plain src into its own layout (and diff_src back); the convt's blocked output is
// reordered to plain at the graph output.
TEST(LayoutPlanning, ReshapeFeedingAConvtIsTheReorderEdge) {
  const RestoreConvLayouts restore;
  SKIP_WITHOUT_BLOCKED_LAYOUTS();
  const Shape in{64, 1, 1};
  const std::string text = "fc 512, relu, reshape 32x4x4, convt 16 k4 s2 p1";
  Net any(in, text), plain(in, text);
  expect_same_as_plain_build(any, plain);
  ASSERT_EQ(any.g.nodes().size(), 3u);
  EXPECT_EQ(any.g.nodes()[1].layer->describe(), "reshape 32x4x4");
  EXPECT_TRUE(any.g.nodes()[1].layer->is_view(kB));
  EXPECT_TRUE(vd::is_plain(layout_after(in, "fc 512, relu, reshape 32x4x4", ConvLayouts::Any), kB,
                           Shape{32, 4, 4}));
  const vd::Layout out = layout_after(in, text, ConvLayouts::Any);
  EXPECT_GT(vd::channel_block_of(out), 1) << "the convt should keep a blocked dst";
  EXPECT_EQ(reorders_of(*convs_of(any.g)[0], any.ctx), "src diff_src");
  EXPECT_EQ(reorders_of(*convs_of(plain.g)[0], plain.ctx), "none");
}

// conv -> block -> conv: the blocked layout flows into the block, through its GroupNorms,
// activations, convolutions and residual sum, and out to the next convolution, with no
// activation reorder at any convolution but the first (which reads the plain data).
TEST(LayoutPlanning, LayoutFlowsThroughBlocks) {
  const RestoreConvLayouts restore;
  SKIP_WITHOUT_BLOCKED_LAYOUTS();
  const Shape in{16, 8, 8};
  const int block = chosen_block();
  for (const std::string body : {"res 32", "res(gn 8, silu, conv 32 k3 p1)"}) {
    SCOPED_TRACE(body);
    const vd::Layout after = layout_after(in, "conv 32 k3 p1, " + body, ConvLayouts::Any);
    EXPECT_EQ(vd::channel_block_of(after), block);
    EXPECT_EQ(after, layout_after(in, "conv 32 k3 p1", ConvLayouts::Any));

    const std::string text = "conv 32 k3 p1, " + body + ", conv 32 k3 p1";
    Net any(in, text), plain(in, text);
    expect_same_as_plain_build(any, plain);
    ASSERT_NE(dynamic_cast<const vd::Block*>(any.g.nodes()[1].layer.get()), nullptr);
    const std::vector<vd::Conv*> convs = convs_of(any.g);
    ASSERT_GE(convs.size(), 3u);
    for (size_t k = 1; k < convs.size(); ++k)
      EXPECT_EQ(reorders_of(*convs[k], any.ctx), "none") << convs[k]->name();
  }
}

}  // namespace
