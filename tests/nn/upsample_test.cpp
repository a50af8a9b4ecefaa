// Tests of vd::Upsample (the kind "up S"): hand-computed values, a chain with blocked layouts
// (conv 16 -> 32 before it, a padded 20-channel nChw16c for the second) against the double
// reference and central finite differences, and the parser's messages. PyTorch's
// F.interpolate is compared in tests/nn/activation_test.cpp (PyTorchReference.*).
#include "nn/upsample.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/conv.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/graph.hpp"
#include "nn/linear.hpp"
#include "nn/reshape.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"
#include "vae/architecture.hpp"

namespace {

using vd::Activation;
using vd::Shape;

// Forward and backward of one layer on plain data of batch n.
struct LayerRun {
  std::vector<float> y, dx;
};
LayerRun run_plain(vd::Upsample& up, int n, const std::vector<float>& x,
                   const std::vector<float>& g) {
  vd::Context ctx;
  const vd::Layout dst = up.prepare(ctx, n, vd::plain_layout(n, up.in_shape()));
  EXPECT_EQ(dst, vd::plain_layout(n, up.out_shape())) << "plain src, plain dst";
  LayerRun r{std::vector<float>(g.size()), std::vector<float>(x.size())};
  up.forward(ctx, n, x.data(), r.y.data());
  std::vector<float> diff_dst = g;
  up.backward(ctx, n, x.data(), r.y.data(), diff_dst.data(), r.dx.data());
  return r;
}

TEST(Upsample, ForwardAndBackwardMatchHandComputedValues) {
  // up 2 of 1x2x2 [[1, 2], [3, 4]]: each value over a 2 x 2 block. Backward with diff_dst =
  // 0 .. 15 row-major: diff_src = the sum of each block, 0+1+4+5, 2+3+6+7, 8+9+12+13, 10+11+14+15.
  vd::Upsample up2("u", Shape{1, 2, 2}, 2);
  EXPECT_EQ(up2.out_shape(), (Shape{1, 4, 4}));
  EXPECT_EQ(up2.describe(), "up 2");
  std::vector<float> g(16);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i);
  const LayerRun r = run_plain(up2, 1, {1, 2, 3, 4}, g);
  EXPECT_EQ(r.y, (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  EXPECT_EQ(r.dx, (std::vector<float>{10, 18, 42, 50}));

  // up 3 of two samples of 1x1x2: [5, -1] -> three rows of 5 5 5 -1 -1 -1; the second sample
  // [0, 7]. diff_dst 1 everywhere: each input sums its nine copies.
  vd::Upsample up3("u", Shape{1, 1, 2}, 3);
  const LayerRun r3 = run_plain(up3, 2, {5, -1, 0, 7}, std::vector<float>(36, 1.0f));
  for (int b = 0; b < 2; ++b)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 6; ++x)
        EXPECT_EQ(r3.y[static_cast<size_t>((b * 3 + y) * 6 + x)],
                  (b == 0 ? (x < 3 ? 5.0f : -1.0f) : (x < 3 ? 0.0f : 7.0f)));
  EXPECT_EQ(r3.dx, (std::vector<float>{9, 9, 9, 9}));

  // A flat input of D values is D x 1 x 1 (a plain [N, D] batch, as an fc leaves it).
  vd::Upsample flat("u", Shape{2, 1, 1}, 2);
  EXPECT_EQ(flat.out_shape(), (Shape{2, 2, 2}));
  vd::Context ctx;
  flat.prepare(ctx, 1, vd::plain_layout(1, flat.in_shape()));
  std::vector<float> fy(8);
  const std::vector<float> fx = {3, -4};
  flat.forward(ctx, 1, fx.data(), fy.data());
  EXPECT_EQ(fy, (std::vector<float>{3, 3, 3, 3, -4, -4, -4, -4}));
}

// conv 16 -> 32, up 2, conv 32 -> 20, up 2, conv 20 -> 8, flatten, fc 3: the first up reads
// nChw16c, the second nChw16c with 12 channels of padding; the convolutions after them read
// their dst as it is.
struct Chain {
  static constexpr int kOut = 3;
  vd::ParamStore store;
  vd::Graph g{Shape{16, 4, 4}};
  vd::Context ctx;
  vd::Upsample* up1 = nullptr;
  vd::Upsample* up2 = nullptr;
  vd::Conv2d* c2 = nullptr;
  vd::Conv2d* c3 = nullptr;
  Chain() {
    vd::ConvSpec c;
    c.kernel = 3;
    c.pad = 1;
    c.out_channels = 32;
    g.add(std::make_unique<vd::Conv2d>(store, "c1", g.out_shape(), c, Activation::None));
    g.add(std::make_unique<vd::Upsample>("u1", g.out_shape(), 2));
    c.out_channels = 20;
    g.add(std::make_unique<vd::Conv2d>(store, "c2", g.out_shape(), c, Activation::ReLU));
    g.add(std::make_unique<vd::Upsample>("u2", g.out_shape(), 2));
    c.out_channels = 8;
    g.add(std::make_unique<vd::Conv2d>(store, "c3", g.out_shape(), c, Activation::None));
    g.add(vd::make_flatten("flat", g.out_shape()));
    g.add(std::make_unique<vd::Linear>(store, "fc", g.out_shape(), kOut, Activation::None));
    store.finalize();
    vd::Rng rng(3);
    g.init(rng);
    up1 = dynamic_cast<vd::Upsample*>(g.layers()[1]);
    c2 = dynamic_cast<vd::Conv2d*>(g.layers()[2]);
    up2 = dynamic_cast<vd::Upsample*>(g.layers()[3]);
    c3 = dynamic_cast<vd::Conv2d*>(g.layers()[4]);
  }
  std::vector<double> reference(const std::vector<double>& p, const double* x) const {
    std::vector<double> h(x, x + g.in_shape().size());
    for (const auto& l : g.layers()) h = vd::testing::reference_layer(store, p, *l, h);
    return h;
  }
};

TEST(Upsample, BlockedChainForwardMatchesTheDoubleReference) {
  Chain c;
  EXPECT_EQ(c.g.out_shape(), (Shape{Chain::kOut, 1, 1}));
  EXPECT_EQ(c.up2->out_shape(), (Shape{20, 16, 16}));
  const int B = 3, D = static_cast<int>(c.g.in_shape().size());
  vd::Rng rng(9);
  std::vector<float> x(static_cast<size_t>(B) * D);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  const float* y = c.g.forward(c.ctx, B, x.data());
  // The blocked path is what this test covers, and no reorder on either side of it.
  for (vd::Upsample* up : {c.up1, c.up2})
    EXPECT_NE(up->impl_info(B).find("src nChw16c -> dst nChw16c"), std::string::npos)
        << up->impl_info(B);
  for (vd::Conv2d* cv : {c.c2, c.c3})
    EXPECT_NE(cv->impl_info(c.ctx, B).find("activation reorders: none"), std::string::npos)
        << cv->impl_info(c.ctx, B);
  auto pp = c.store.params();
  const std::vector<double> p(pp.begin(), pp.end());
  const std::vector<double> xd(x.begin(), x.end());
  double worst = 0;
  for (int b = 0; b < B; ++b) {
    const auto want = c.reference(p, xd.data() + static_cast<size_t>(b) * D);
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::abs(y[static_cast<size_t>(b) * Chain::kOut + i] - want[i]) /
                                  std::max(1.0, std::abs(want[i])));
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Upsample, BlockedChainGradientsMatchFiniteDifferences) {
  Chain c;
  const int B = 2, D = static_cast<int>(c.g.in_shape().size()), O = Chain::kOut;
  vd::Rng rng(11);
  std::vector<float> x(static_cast<size_t>(B) * D), r(static_cast<size_t>(B) * O);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : r) v = static_cast<float>(rng.uniform(-1, 1));
  // Loss = sum_b,o r[b,o] * y[b,o]: dL/dy = r.
  c.g.forward(c.ctx, B, x.data());
  std::vector<float> diff_y = r, diff_x(x.size());
  c.g.backward(c.ctx, B, x.data(), diff_y.data(), diff_x.data());

  auto pp = c.store.params();
  std::vector<double> p(pp.begin(), pp.end());
  const std::vector<double> xd(x.begin(), x.end());
  const auto loss = [&](const std::vector<double>& q, const std::vector<double>& xs) {
    double total = 0;
    for (int b = 0; b < B; ++b) {
      const auto y = c.reference(q, xs.data() + static_cast<size_t>(b) * D);
      for (int o = 0; o < O; ++o) total += r[static_cast<size_t>(b * O + o)] * y[o];
    }
    return total;
  };
  // c1's and c2's gradients pass through the ups' diff_src.
  vd::Rng pick(5);
  std::vector<double> analytic, numeric;
  for (const auto& e : c.store.entries()) {
    vd::testing::sample_entry_gradient(
        c.store, e, p, [&](const std::vector<double>& q) { return loss(q, xd); }, pick, 12,
        analytic, numeric);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3));
  // The data's gradient: piecewise linear in x (c2's ReLU), exact unless a step crosses a kink.
  analytic.clear();
  numeric.clear();
  for (int t = 0; t < 30; ++t) {
    const size_t i = pick.below(x.size());
    const double h = 1e-4;
    std::vector<double> xp = xd, xm = xd;
    xp[i] += h;
    xm[i] -= h;
    analytic.push_back(diff_x[i]);
    numeric.push_back((loss(p, xp) - loss(p, xm)) / (2 * h));
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3));
}

// up 2 of 20 channels in nChw16c (12 channels of padding) with NaN in the inputs' padding: the
// outputs' padding is zero and their values those of the same layer on plain data.
TEST(Upsample, BlockedPaddingStaysZeroWhateverTheInputsHoldThere) {
  const int N = 2, C = 20, H = 3, W = 2, CB = 32, S = 2;
  vd::Context ctx;
  vd::Upsample up("u", Shape{C, H, W}, S);
  const vd::Layout blocked({N, C, H, W}, dnnl::memory::data_type::f32,
                           dnnl::memory::format_tag::nChw16c);
  const vd::Layout blocked_out({N, C, H * S, W * S}, dnnl::memory::data_type::f32,
                               dnnl::memory::format_tag::nChw16c);
  // The padded positions of an nChw16c buffer of `hw` pixels.
  const auto padding = [&](int hw, const std::function<void(size_t)>& visit) {
    for (int n = 0; n < N; ++n)
      for (int cb = 0; cb < CB / 16; ++cb)
        for (int p = 0; p < hw; ++p)
          for (int ci = 0; ci < 16; ++ci)
            if (cb * 16 + ci >= C)
              visit(static_cast<size_t>(((n * (CB / 16) + cb) * hw + p) * 16 + ci));
  };
  vd::Rng rng(4);
  std::vector<float> x(static_cast<size_t>(N * C * H * W)), g(x.size() * S * S);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-3, 3));
  for (auto& v : g) v = static_cast<float>(rng.uniform(-1, 1));
  const LayerRun want = run_plain(up, N, x, g);
  ASSERT_EQ(up.prepare(ctx, N, blocked), blocked_out) << "dst must keep src's blocking";
  const vd::Layout plain = vd::plain_layout(N, up.in_shape());
  const vd::Layout plain_out = vd::plain_layout(N, up.out_shape());
  std::vector<float> src(vd::layout_floats(blocked)), diff_src(src.size(), 1.0f);
  std::vector<float> diff_dst(vd::layout_floats(blocked_out)), dst(diff_dst.size(), 1.0f);
  vd::ReorderPrims(ctx.engine, plain, blocked).run(ctx.stream, x.data(), src.data());
  vd::ReorderPrims(ctx.engine, plain_out, blocked_out).run(ctx.stream, g.data(), diff_dst.data());
  padding(H * W, [&](size_t i) { src[i] = std::nanf(""); });
  padding(H * W * S * S, [&](size_t i) { diff_dst[i] = std::nanf(""); });
  up.forward(ctx, N, src.data(), dst.data());
  up.backward(ctx, N, src.data(), dst.data(), diff_dst.data(), diff_src.data());
  int bad_dst = 0, bad_diff = 0;
  padding(H * W * S * S, [&](size_t i) { bad_dst += dst[i] != 0.0f; });
  padding(H * W, [&](size_t i) { bad_diff += diff_src[i] != 0.0f; });
  EXPECT_EQ(bad_dst, 0) << "non-zero padding in dst";
  EXPECT_EQ(bad_diff, 0) << "non-zero padding in diff_src";
  std::vector<float> y(g.size()), dx(x.size());
  vd::ReorderPrims(ctx.engine, blocked_out, plain_out).run(ctx.stream, dst.data(), y.data());
  vd::ReorderPrims(ctx.engine, blocked, plain).run(ctx.stream, diff_src.data(), dx.data());
  EXPECT_EQ(y, want.y);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(dx[i], want.dx[i], 1e-6) << i;
}

TEST(Upsample, SyntaxErrorsNameTheLayerAndTheFix) {
  for (const char* text :
       {"up", "up 1", "up 0", "up -2", "up 2.5", "up x2", "up 2 2", "up(fc 3)"}) {
    try {
      vd::parse_layers(std::string("conv 8 k3 p1, ") + text, "decoder");
      ADD_FAILURE() << "no error for '" << text << "'";
    } catch (const vd::ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("decoder"), std::string::npos) << msg;
      EXPECT_NE(msg.find("layer '" + std::string(text) + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("'up' takes one integer factor of at least 2, e.g. 'up 2'"),
                std::string::npos)
          << msg;
    }
  }
}

TEST(Upsample, KindBuildsTheLayerAndChecksItsSize) {
  const vd::LayerKind* k = vd::find_layer_kind("up");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->syntax, "up S");
  EXPECT_FALSE(k->params);
  EXPECT_NE(vd::layer_syntax_help().find("'up S'"), std::string::npos);
  vd::ParamStore store;
  vd::Graph g{Shape{1, 4, 4}};
  vd::build_layers(g, store, "decoder", vd::parse_layers("conv 8 k3 p1, relu, up 2, up 3", "d"),
                   false, "decoder");
  std::vector<std::string> got;
  for (const vd::Layer* l : g.layers()) got.push_back(l->describe());
  EXPECT_EQ(got, (std::vector<std::string>{"conv 8 k3 s1 p1 + relu", "up 2", "up 3"}));
  EXPECT_EQ(g.out_shape(), (Shape{8, 24, 24}));
  try {
    vd::Upsample big("decoder.up1", Shape{4, 40000, 40000}, 2);
    ADD_FAILURE() << "no error";
  } catch (const vd::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("decoder.up1"), std::string::npos) << e.what();
  }
}

}  // namespace
