// Tests of the gn layer and the res blocks built from the layer syntax: forward against the
// double-precision walk of tests/support/reference_vae.hpp and every gradient against central
// finite differences, on plain and on blocked layouts (channel counts for which oneDNN picks
// nChw16c), nested blocks, and the errors that name the layer and the fix.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/block.hpp"
#include "nn/builder.hpp"
#include "nn/group_norm.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"

namespace {

using vd::Shape;

// A network written in the layer syntax, its parameters drawn (gn's gamma and beta too, so
// they are not the identity), and a random linear loss r . y.
struct Net {
  vd::ParamStore store;
  vd::Graph g;
  vd::Context ctx;
  Net(Shape in, const std::string& layers) : g(in) {
    vd::build_layers(g, store, "net", vd::parse_layers(layers, "net"), false, "net");
    store.finalize();
    vd::Rng rng(3);
    g.init(rng);
    for (const auto& e : store.entries())
      if (e.name.find("norm") != std::string::npos || e.name.find(".gn") != std::string::npos)
        for (size_t i = 0; i < e.size; ++i)
          store.params()[e.offset + i] = static_cast<float>(rng.uniform(0.5, 1.5));
  }
};

double reference_loss(const Net& net, const std::vector<double>& p, const std::vector<double>& x,
                      const std::vector<float>& r, int B) {
  const size_t D = static_cast<size_t>(net.g.in_shape().size());
  const size_t O = static_cast<size_t>(net.g.out_shape().size());
  double total = 0;
  for (int b = 0; b < B; ++b) {
    const auto y = vd::testing::reference_graph(
        net.store, p, net.g, {std::vector<double>(x.begin() + b * D, x.begin() + (b + 1) * D)});
    for (size_t o = 0; o < O; ++o) total += r[b * O + o] * y[0][o];
  }
  return total;
}

// Forward within 1e-5 of the reference; 10 sampled entries of every parameter and 30 of the
// input gradient within `tol` of central differences.
void check(const Shape& in, const std::string& layers, double tol = 2e-3) {
  SCOPED_TRACE(layers);
  Net net(in, layers);
  const int B = 2;
  const size_t D = static_cast<size_t>(in.size()),
               O = static_cast<size_t>(net.g.out_shape().size());
  vd::Rng rng(9);
  std::vector<float> x(B * D), r(B * O);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : r) v = static_cast<float>(rng.uniform(-1, 1));
  const float* y = net.g.forward(net.ctx, B, x.data());
  auto pp = net.store.params();
  std::vector<double> p(pp.begin(), pp.end());
  const std::vector<double> xd(x.begin(), x.end());
  double worst = 0;
  for (int b = 0; b < B; ++b) {
    const auto want = vd::testing::reference_graph(
        net.store, p, net.g, {std::vector<double>(xd.begin() + b * D, xd.begin() + (b + 1) * D)});
    for (size_t o = 0; o < O; ++o)
      worst = std::max(worst,
                       std::abs(y[b * O + o] - want[0][o]) / std::max(1.0, std::abs(want[0][o])));
  }
  EXPECT_LT(worst, 1e-5);

  std::vector<float> diff_y = r, diff_x(x.size());
  net.g.backward(net.ctx, B, x.data(), diff_y.data(), diff_x.data());
  vd::Rng pick(5);
  std::vector<double> analytic, numeric;
  for (const auto& e : net.store.entries())
    vd::testing::sample_entry_gradient(
        net.store, e, p,
        [&](const std::vector<double>& q) { return reference_loss(net, q, xd, r, B); }, pick, 10,
        analytic, numeric);
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, tol)) << "parameters";
  analytic.clear();
  numeric.clear();
  for (int t = 0; t < 30; ++t) {
    const size_t i = pick.below(x.size());
    std::vector<double> xp = xd, xm = xd;
    xp[i] += 1e-5;
    xm[i] -= 1e-5;
    analytic.push_back(diff_x[i]);
    numeric.push_back((reference_loss(net, p, xp, r, B) - reference_loss(net, p, xm, r, B)) / 2e-5);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, tol)) << "input";
}

TEST(GroupNormLayer, PlainAndBlockedMatchReferenceAndFiniteDifferences) {
  check(Shape{6, 5, 5}, "gn 3");                              // plain input
  check(Shape{16, 6, 6}, "conv 32 k3 p1, gn 8, conv 16 k1");  // blocked in and out
  check(Shape{12, 1, 1}, "fc 12, gn 4 1e-5, fc 3");           // flat, eps given
}

TEST(ResBlock, BodyOfOwnLayersWithIdentityAndConvShortcut) {
  // 16 -> 16: the input itself is the shortcut; 16 -> 32: a 1x1 conv is.
  check(Shape{16, 6, 6}, "res(gn 4, relu, conv 16 k3 p1, gn 4, relu, conv 16 k3 p1)");
  check(Shape{16, 6, 6}, "res(conv 32 k3 p1, relu, gn 8, conv 32 k3 p1)");
}

TEST(ResBlock, BlocksNestInBlocksAndFollowConvolutions) {
  check(Shape{8, 6, 6},
        "conv 16 k3 p1, res(gn 4, res(relu, conv 16 k3 p1), conv 16 k1), relu, conv 8 k3 s2 p1");
}

// Signals [C, L] and volumes [C, D, H, W] through every layer kind that works on maps: the
// first channel counts keep oneDNN's plain layouts, the later ones (16, 32) its blocked ones.
TEST(NdBlocks, SignalsMatchReferenceAndFiniteDifferences) {
  check(Shape::signal(6, 10), "gn 3, silu, up 2, conv 4 k3 p1");
  check(Shape::signal(16, 12), "conv 32 k3 p1, gn 8, up 2, conv 16 k4 s2 p1, attn g8");
  check(Shape::signal(16, 8), "res 32 g8, attn g8, convt 8 k4 s2 p1");
}

TEST(NdBlocks, VolumesMatchReferenceAndFiniteDifferences) {
  check(Shape::volume(6, 3, 4, 5), "gn 3, gelu, up 2, conv 4 k3 s2 p1");
  check(Shape::volume(16, 4, 4, 4), "conv 32 k3 p1, gn 8, up 2, conv 16 k3 s2 p1, attn g8");
  check(Shape::volume(16, 2, 3, 3), "res 32 g8, attn g8, convt 8 k2 s2");
}

TEST(ResBlock, ResnetBlockHasDiffusersNamesAndMatchesReference) {
  if (!vd::find_layer_kind("silu")) GTEST_SKIP() << "the silu kind is not registered";
  check(Shape{16, 6, 6}, "res 32 g8");
  Net net(Shape{16, 6, 6}, "res 32 g8, res 32 g8");
  std::vector<std::string> names;
  for (const auto& e : net.store.entries()) names.push_back(e.name);
  const std::vector<std::string> want = {
      "net.res1.norm1.weight",       "net.res1.norm1.bias",   "net.res1.conv1.weight",
      "net.res1.conv1.bias",         "net.res1.norm2.weight", "net.res1.norm2.bias",
      "net.res1.conv2.weight",       "net.res1.conv2.bias",   "net.res1.conv_shortcut.weight",
      "net.res1.conv_shortcut.bias", "net.res2.norm1.weight", "net.res2.norm1.bias",
      "net.res2.conv1.weight",       "net.res2.conv1.bias",   "net.res2.norm2.weight",
      "net.res2.norm2.bias",         "net.res2.conv2.weight", "net.res2.conv2.bias"};
  EXPECT_EQ(names, want);  // the second block keeps 32 channels: no shortcut conv
  EXPECT_EQ(net.store.find("net.res1.conv_shortcut.weight").shape,
            (std::vector<int64_t>{32, 16, 1, 1}));
}

std::string config_error(const Shape& in, const std::string& layers) {
  try {
    Net net(in, layers);
  } catch (const vd::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ResBlock, MistakesNameTheLayerAndWhatToChange) {
  const std::pair<std::string, std::string> cases[] = {
      {"gn 5",
       "net: layer 'gn 5' does not fit its input 16x4x4: gn layer net.gn1: 5 groups do "
       "not divide its 16 channels; use a number of groups that divides 16"},
      {"gn", "'gn' takes a number of groups and an optional eps, e.g. 'gn 32' or 'gn 32 1e-5'"},
      {"gn 4 -1", "'gn': the eps '-1' is not a positive number"},
      {"res", "'res' takes output channels and optional groups, e.g. 'res 64' or 'res 64 g16'"},
      {"res 32 x", "'res' takes output channels and optional groups"},
      {"res(conv 8 k3 p1) 4",
       "'res(...)' takes its layers inside the parentheses and nothing after"},
      {"res(conv 8 k3 s2 p1)",
       "the body of residual block net.res1 turns 16x4x4 into 8x2x2; a residual block keeps the "
       "map size"},
      {"res(gn 4, conv 8 k9)",
       "net: in 'res(gn 4, conv 8 k9)': layer 'conv 8 k9' does not fit its "
       "input 16x4x4"},
      {"res(gn 4, bogus 3)", "layer 'bogus 3': unknown layer 'bogus'"},
      {"res(gn 4, relu", "a '(' is never closed"},
  };
  for (const auto& [layers, want] : cases) {
    const std::string got = config_error(Shape{16, 4, 4}, layers);
    EXPECT_NE(got.find(want), std::string::npos) << "'" << layers << "' gave: " << got;
  }
}

}  // namespace
