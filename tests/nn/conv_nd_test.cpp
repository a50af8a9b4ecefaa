// Tests of vd::Conv on 1-D ([C, L]) and 3-D ([C, D, H, W]) data, and per-axis sizes (k5x3):
// shapes, init, FLOPs, forward against direct double-precision loops, gradients against
// central finite differences in blocked and plain layouts, bf16, and the errors of the syntax.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/builder.hpp"
#include "nn/conv.hpp"
#include "nn/graph.hpp"
#include "nn/relu.hpp"
#include "support/gradcheck.hpp"

namespace {

using vd::Activation;
using vd::Shape;
using Vec = std::vector<double>;

// One sample through a vd::Conv in double precision, straight from PyTorch's definitions.
// Every shape is seen as D x H x W (a missing axis of size 1, kernel 1, stride 1, padding 0),
// which leaves the flat indices of [C, L], [C, H, W] and their weights as they are.
Vec reference_conv(const vd::ParamStore& store, const Vec& p, const vd::Conv& cv, const Vec& in) {
  const Shape is = cv.in_shape(), os = cv.out_shape();
  const auto three = [](std::vector<int64_t> v, int64_t fill) {
    while (v.size() < 3) v.insert(v.begin(), fill);
    return v;
  };
  const auto ints = [](const std::vector<int>& v) {
    return std::vector<int64_t>(v.begin(), v.end());
  };
  const auto I = three(is.spatial(), 1), O = three(os.spatial(), 1);
  const auto K = three(ints(cv.kernel()), 1), S = three(ints(cv.stride()), 1);
  const auto P = three(ints(cv.pad()), 0);
  const double* W = p.data() + store.find(cv.name() + ".weight").offset;
  const double* b = p.data() + store.find(cv.name() + ".bias").offset;
  const bool t = cv.spec().transposed;
  const int64_t isz = I[0] * I[1] * I[2], osz = O[0] * O[1] * O[2], ksz = K[0] * K[1] * K[2];
  Vec out(static_cast<size_t>(os.c * osz));
  for (int oc = 0; oc < os.c; ++oc)
    for (int64_t i = 0; i < osz; ++i) out[static_cast<size_t>(oc * osz + i)] = b[oc];
  for (int ic = 0; ic < is.c; ++ic)
    for (int oc = 0; oc < os.c; ++oc)
      for (int64_t kd = 0; kd < K[0]; ++kd)
        for (int64_t kh = 0; kh < K[1]; ++kh)
          for (int64_t kw = 0; kw < K[2]; ++kw) {
            // Conv weight [OC, IC, K...]; ConvTranspose weight [IC, OC, K...].
            const int64_t k = (kd * K[1] + kh) * K[2] + kw;
            const double wt = t ? W[(ic * os.c + oc) * ksz + k] : W[(oc * is.c + ic) * ksz + k];
            // A convolution reads input (o * s - p + k) into output o; a transposed one
            // writes input i into output (i * s - p + k).
            const auto& A = t ? I : O;  // the side that is looped over
            const auto& B = t ? O : I;  // the side that is indexed
            for (int64_t a0 = 0; a0 < A[0]; ++a0)
              for (int64_t a1 = 0; a1 < A[1]; ++a1)
                for (int64_t a2 = 0; a2 < A[2]; ++a2) {
                  const int64_t b0 = a0 * S[0] - P[0] + kd, b1 = a1 * S[1] - P[1] + kh,
                                b2 = a2 * S[2] - P[2] + kw;
                  if (b0 < 0 || b0 >= B[0] || b1 < 0 || b1 >= B[1] || b2 < 0 || b2 >= B[2])
                    continue;
                  const int64_t ai = (a0 * A[1] + a1) * A[2] + a2,
                                bi = (b0 * B[1] + b1) * B[2] + b2;
                  const int64_t src = t ? ai : bi, dst = t ? bi : ai;
                  out[static_cast<size_t>(oc * osz + dst)] +=
                      wt * in[static_cast<size_t>(ic * isz + src)];
                }
          }
  if (cv.activation() == Activation::ReLU)
    for (auto& v : out) v = std::max(v, 0.0);
  return out;
}

// Convolutions read their layouts when their primitives are built; this restores the default.
struct PlainLayouts {
  PlainLayouts() { vd::set_conv_layouts(vd::ConvLayouts::Plain); }
  ~PlainLayouts() { vd::set_conv_layouts(vd::ConvLayouts::Any); }
};

// A network in the layer syntax (conv, convt, relu) with its double-precision reference.
struct Net {
  vd::ParamStore store;
  vd::Graph graph;
  vd::Context ctx;
  Net(const std::string& layers, Shape in) : graph(in) {
    vd::build_layers(graph, store, "net", vd::parse_layers(layers, "net"), false, "net");
    store.finalize();
    vd::Rng rng(3);
    graph.init(rng);
  }
  Vec reference(const Vec& p, const Vec& x) const {
    Vec h = x;
    for (const vd::Layer* l : graph.layers()) {
      if (auto* cv = dynamic_cast<const vd::Conv*>(l)) {
        h = reference_conv(store, p, *cv, h);
      } else {
        EXPECT_NE(dynamic_cast<const vd::Relu*>(l), nullptr) << l->describe();
        for (auto& v : h) v = std::max(v, 0.0);
      }
    }
    return h;
  }
  // The channel block of the layout the conv layer `i` writes for batches of n, asked of a
  // ConvPrims of the same shape (the layer's own are built for the layout they are given).
  int block_of(size_t i, int n) {
    auto* cv = dynamic_cast<vd::Conv*>(graph.layers().at(i));
    const vd::ConvPrims probe(ctx.engine, cv->conv_shape(n), vd::plain_layout(n, cv->in_shape()));
    return vd::channel_block_of(probe.dst_layout());
  }
};

// Forward against the reference, then every gradient against central differences of the
// reference's loss sum_b,o r[b,o] * y[b,o] (so dL/dy = r).
void check_net(Net& net, int B) {
  const int D = static_cast<int>(net.graph.in_shape().size());
  const int O = static_cast<int>(net.graph.out_shape().size());
  vd::Rng rng(11);
  std::vector<float> x(static_cast<size_t>(B) * D), r(static_cast<size_t>(B) * O);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : r) v = static_cast<float>(rng.uniform(-1, 1));
  const float* y = net.graph.forward(net.ctx, B, x.data());
  auto pp = net.store.params();
  Vec p(pp.begin(), pp.end());
  const Vec xd(x.begin(), x.end());
  double worst = 0;
  for (int b = 0; b < B; ++b) {
    const Vec want = net.reference(p, Vec(xd.begin() + b * D, xd.begin() + (b + 1) * D));
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::abs(y[static_cast<size_t>(b) * O + i] - want[i]) /
                                  std::max(1.0, std::abs(want[i])));
  }
  EXPECT_LT(worst, 1e-5) << "forward";

  std::vector<float> diff_y = r, diff_x(x.size());
  net.graph.backward(net.ctx, B, x.data(), diff_y.data(), diff_x.data());
  auto loss = [&](const Vec& q, const Vec& xs) {
    double total = 0;
    for (int b = 0; b < B; ++b) {
      const Vec yb = net.reference(q, Vec(xs.begin() + b * D, xs.begin() + (b + 1) * D));
      for (size_t o = 0; o < yb.size(); ++o) total += r[static_cast<size_t>(b) * O + o] * yb[o];
    }
    return total;
  };
  vd::Rng pick(5);
  Vec analytic, numeric;
  for (const auto& e : net.store.entries())
    vd::testing::sample_entry_gradient(
        net.store, e, p, [&](const std::vector<double>& q) { return loss(q, xd); }, pick, 10,
        analytic, numeric);
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3)) << "parameters";
  // The loss is piecewise linear in x (ReLU): a small step gives the derivative exactly
  // unless it crosses a kink.
  analytic.clear();
  numeric.clear();
  for (int t = 0; t < 30; ++t) {
    const size_t i = pick.below(x.size());
    Vec xp = xd, xm = xd;
    xp[i] += 1e-4;
    xm[i] -= 1e-4;
    analytic.push_back(diff_x[i]);
    numeric.push_back((loss(p, xp) - loss(p, xm)) / 2e-4);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3)) << "input";
}

// Stride 2 and padding both ways; 16 and 32 channels, for which oneDNN blocks them.
const char* kChain1d = "conv 32 k3 p1, relu, conv 32 k4 s2 p1, convt 16 k4 s2 p1, relu";
const char* kChain3d = "conv 32 k3 p1, relu, conv 32 k3 s2 p1, convt 16 k3 s2 p1 op1, relu";

TEST(ConvNd, OneDimensionalShapesWeightsAndDescription) {
  vd::ParamStore store;
  const vd::Conv c(store, "c", Shape::signal(3, 11), vd::ConvSpec{8, 3, 2, 1}, Activation::None);
  EXPECT_EQ(c.out_shape(), Shape::signal(8, 6));  // floor((11 + 2 - 3) / 2) + 1
  EXPECT_EQ(store.entries()[0].shape, (std::vector<int64_t>{8, 3, 3}));
  EXPECT_EQ(c.describe(), "conv 8 k3 s2 p1");
  // 2 * (output values) * IC * K.
  EXPECT_DOUBLE_EQ(c.flops_per_sample(), 2.0 * 8 * 6 * 3 * 3);
  const vd::Conv t(store, "t", Shape::signal(8, 6), vd::ConvSpec{4, 4, 2, 1, 1, true},
                   Activation::ReLU);
  EXPECT_EQ(t.out_shape(), Shape::signal(4, 13));  // (6 - 1) * 2 - 2 + 4 + 1
  EXPECT_EQ(store.entries()[2].shape, (std::vector<int64_t>{8, 4, 4}));
  EXPECT_EQ(t.describe(), "convt 4 k4 s2 p1 op1 + relu");
  EXPECT_DOUBLE_EQ(t.flops_per_sample(), 2.0 * 8 * 6 * 4 * 4);  // input values * OC * K
}

TEST(ConvNd, ThreeDimensionalAndPerAxisShapes) {
  vd::ParamStore store;
  const vd::Conv c(store, "c", Shape::volume(2, 5, 6, 7), vd::ConvSpec{4, 3, 2, 1},
                   Activation::None);
  EXPECT_EQ(c.out_shape(), Shape::volume(4, 3, 3, 4));
  EXPECT_EQ(store.entries()[0].shape, (std::vector<int64_t>{4, 2, 3, 3, 3}));
  EXPECT_DOUBLE_EQ(c.flops_per_sample(), 2.0 * 4 * 36 * 2 * 27);
  const vd::ConvShape s = c.conv_shape(5);
  EXPECT_EQ(s.rank, 3);
  EXPECT_EQ(s.src_spatial(), (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(s.dst_spatial(), (std::vector<int64_t>{3, 3, 4}));
  EXPECT_DOUBLE_EQ(s.flops(), 5 * c.flops_per_sample());
  vd::ConvSpec per;
  per.out_channels = 3;
  per.kernels = {3, 1, 2};
  per.strides = {1, 2, 1};
  per.pads = {1, 0, 1};
  const vd::Conv a(store, "a", Shape::volume(2, 4, 5, 6), per, Activation::None);
  EXPECT_EQ(a.out_shape(), Shape::volume(3, 4, 3, 7));
  EXPECT_EQ(store.entries()[2].shape, (std::vector<int64_t>{3, 2, 3, 1, 2}));
  EXPECT_EQ(a.describe(), "conv 3 k3x1x2 s1x2x1 p1x0x1");
  EXPECT_EQ(a.conv_shape(1).kernel_volume(), 6);
  // A 2-D k5x3 from the syntax: the weight [OC, IC, 5, 3].
  Net n("conv 6 k5x3 s2x1 p2x1", Shape{3, 9, 8});
  EXPECT_EQ(n.graph.out_shape(), (Shape{6, 5, 8}));
  EXPECT_EQ(n.store.entries()[0].shape, (std::vector<int64_t>{6, 3, 5, 3}));
  EXPECT_EQ(n.graph.layers()[0]->describe(), "conv 6 k5x3 s2x1 p2x1");
}

TEST(ConvNd, InitIsPyTorchsUniformOverTheFanIn) {
  // fan_in = weight.size(1) * prod(K): 4 * 27 for the 3-D conv, 6 * 3 for the 1-D transpose.
  vd::ParamStore store;
  vd::Conv c(store, "c", Shape::volume(4, 4, 4, 4), vd::ConvSpec{6, 3, 1, 1}, Activation::None);
  vd::Conv t(store, "t", Shape::signal(4, 9), vd::ConvSpec{6, 3, 1, 1, 0, true}, Activation::None);
  store.finalize();
  vd::Rng rng(1);
  c.init(rng);
  t.init(rng);
  const auto max_abs = [&](size_t e) {
    double m = 0;
    for (size_t i = 0; i < store.entries()[e].size; ++i)
      m = std::max(m, std::abs(static_cast<double>(store.param(e)[i])));
    return m;
  };
  const double bc = 1 / std::sqrt(4.0 * 27), bt = 1 / std::sqrt(6.0 * 3);
  EXPECT_LE(max_abs(0), bc);
  EXPECT_GT(max_abs(0), 0.95 * bc);  // 648 draws come close to the bound
  EXPECT_LE(max_abs(1), bc);
  EXPECT_LE(max_abs(2), bt);
  EXPECT_GT(max_abs(2), 0.9 * bt);
  EXPECT_LE(max_abs(3), bt);
}

TEST(ConvNd, OneDimensionalChainInBlockedLayoutsMatchesReferenceAndFiniteDifferences) {
  Net net(kChain1d, Shape::signal(16, 12));
  EXPECT_EQ(net.graph.out_shape(), Shape::signal(16, 12));
  EXPECT_GT(net.block_of(0, 2), 1) << "oneDNN chose no blocked layout: the test covers less";
  check_net(net, 2);
}

TEST(ConvNd, OneDimensionalChainInPlainLayoutsMatchesReferenceAndFiniteDifferences) {
  PlainLayouts plain;
  Net net(kChain1d, Shape::signal(16, 12));
  EXPECT_EQ(net.block_of(0, 2), 1);
  check_net(net, 2);
}

TEST(ConvNd, ThreeDimensionalChainInBlockedLayoutsMatchesReferenceAndFiniteDifferences) {
  Net net(kChain3d, Shape::volume(16, 4, 5, 4));
  EXPECT_EQ(net.graph.out_shape(), Shape::volume(16, 4, 6, 4));
  EXPECT_GT(net.block_of(0, 2), 1) << "oneDNN chose no blocked layout: the test covers less";
  check_net(net, 2);
}

TEST(ConvNd, ThreeDimensionalChainInPlainLayoutsMatchesReferenceAndFiniteDifferences) {
  PlainLayouts plain;
  Net net(kChain3d, Shape::volume(16, 4, 5, 4));
  EXPECT_EQ(net.block_of(0, 2), 1);
  check_net(net, 2);
}

TEST(ConvNd, PerAxisSizesMatchReferenceAndFiniteDifferences) {
  Net net3("conv 16 k3x1x2 s1x2x1 p1x0x1, relu, convt 8 k2x3x3 s2x1x2 p0x1x1 op1x0x1",
           Shape::volume(4, 3, 5, 4));
  check_net(net3, 2);
  Net net2("conv 16 k5x3 s2x1 p2x1, relu, convt 4 k3x4 s1x2 p1", Shape{3, 7, 6});
  check_net(net2, 2);
}

TEST(ConvNd, Bf16StaysCloseToF32In1dAnd3d) {
  for (const auto& [layers, in] : {std::pair{kChain1d, Shape::signal(16, 12)},
                                   std::pair{kChain3d, Shape::volume(16, 4, 5, 4)}}) {
    Net f32(layers, in), bf16(layers, in);
    for (vd::Layer* l : bf16.graph.layers()) l->set_precision(vd::Precision::BF16);
    ASSERT_EQ(bf16.graph.layers()[0]->precision(), vd::Precision::BF16);
    const int B = 2;
    vd::Rng rng(4);
    std::vector<float> x(static_cast<size_t>(B) * in.size());
    for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
    const float* a = f32.graph.forward(f32.ctx, B, x.data());
    const float* b = bf16.graph.forward(bf16.ctx, B, x.data());
    double worst = 0, scale = 0;
    const size_t n = static_cast<size_t>(B) * f32.graph.out_shape().size();
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
      scale = std::max(scale, static_cast<double>(std::abs(a[i])));
    }
    EXPECT_LT(worst, 2e-2 * scale) << layers;
    EXPECT_GT(worst, 0) << layers << ": bf16 gave f32's exact values; did it run in bf16?";
  }
}

// The ConfigError the builder gives for a layer list on data of shape `in`.
std::string build_error(const std::string& layers, Shape in) {
  vd::ParamStore store;
  vd::Graph g(in);
  try {
    vd::build_layers(g, store, "encoder", vd::parse_layers(layers, "encoder"), false, "encoder");
  } catch (const vd::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(ConvNd, SettingsWithMoreAxesThanTheDataAreClearErrors) {
  const std::vector<std::pair<std::string, std::pair<std::string, Shape>>> cases = {
      {"encoder: layer 'conv 32 k3x3x3' does not fit its input 3x64x64: conv layer "
       "encoder.conv1: a 3-D kernel on 2-D data 3x64x64; write k3 or k3x3",
       {"conv 32 k3x3x3", Shape{3, 64, 64}}},
      {"a 2-D stride on 1-D data 2x16; write s2", {"conv 8 k3 s2x2", Shape::signal(2, 16)}},
      {"a 2-D kernel on 3-D data 2x4x4x4; write k5 or k5x5x5",
       {"conv 8 k5x3", Shape::volume(2, 4, 4, 4)}},
      {"convt layer encoder.convt1: a 3-D padding on 1-D data 2x16; write p1",
       {"convt 8 k3 p1x1x1", Shape::signal(2, 16)}},
      {"a 2-D output padding on 3-D data", {"convt 8 k3 s2 op1x1", Shape::volume(2, 4, 4, 4)}},
      {"conv layer encoder.conv1: a kernel of 5 does not fit the input 2x4",
       {"conv 8 k5", Shape::signal(2, 4)}},
      {"a 5x5x5 kernel does not fit the input 1x4x4x4", {"conv 8 k5", Shape::volume(1, 4, 4, 4)}},
      {"a 3x5x3 kernel does not fit the input 1x4x4x4",
       {"conv 8 k3x5x3", Shape::volume(1, 4, 4, 4)}},
      {"encoder: layer 'conv 8 k3' does not fit its input 10: conv layer encoder.conv1 needs "
       "1-D, 2-D or 3-D data",
       {"fc 10, conv 8 k3", Shape{6, 1, 1}}},
  };
  for (const auto& [want, c] : cases) {
    const std::string got = build_error(c.first, c.second);
    EXPECT_NE(got.find(want), std::string::npos) << "'" << c.first << "' gave: " << got;
  }
  vd::ParamStore store;
  EXPECT_THROW(vd::Conv(store, "flat", Shape{10, 1, 1}, vd::ConvSpec{8, 1}, Activation::None),
               vd::ShapeError);
}

TEST(ConvNd, PerAxisSyntaxErrorsSayWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"conv 8 k3x3x3x3",
       "encoder: layer 'conv 8 k3x3x3x3': 'k3x3x3x3' gives 4 axes; data have "
       "at most 3 (D x H x W)"},
      {"conv 8 k3x", "cannot read 'k3x'"},
      {"conv 8 kx3", "cannot read 'kx3'"},
      {"conv 8 k3x0", "'k3x0' is not a valid setting here"},
      {"conv 8 k3 s1x0", "'s1x0' is not a valid setting here"},
      {"conv 8 k3 op1x1", "'op1x1' is not a valid setting here"},  // conv has no output padding
  };
  for (const auto& [text, want] : cases) {
    std::string got = "no error";
    try {
      vd::parse_layers(text, "encoder");
    } catch (const vd::ConfigError& e) {
      got = e.what();
    }
    EXPECT_NE(got.find(want), std::string::npos) << "'" << text << "' gave: " << got;
  }
  // Good per-axis text passes the syntax check whatever the data (checked when built).
  EXPECT_NO_THROW(vd::parse_layers("conv 8 k5x3 s2x1 p2x1, convt 4 k3x3x3 s2 p1 op1x0x1", "e"));
}

}  // namespace
