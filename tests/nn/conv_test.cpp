// Tests of vd::Conv2d (and its transposed form), vd::Reshape and vd::Relu inside a Graph,
// with channel counts for which oneDNN picks blocked layouts: forward against direct
// double-precision loops, gradients of parameters and input against central finite
// differences, PyTorch's output-size formulas, and shape errors that name the layer.
#include "nn/conv.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/graph.hpp"
#include "nn/linear.hpp"
#include "nn/relu.hpp"
#include "nn/reshape.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"

namespace {

using vd::Activation;
using vd::ConvSpec;
using vd::Shape;

ConvSpec conv(int oc, int k, int s, int p, bool transposed = false, int op = 0) {
  ConvSpec c;
  c.out_channels = oc;
  c.kernel = k;
  c.stride = s;
  c.pad = p;
  c.transposed = transposed;
  c.output_pad = op;
  return c;
}

TEST(Conv2d, OutputSizesFollowPyTorch) {
  EXPECT_EQ(vd::conv_output_size(28, conv(32, 4, 2, 1)), 14);
  EXPECT_EQ(vd::conv_output_size(14, conv(64, 4, 2, 1)), 7);
  EXPECT_EQ(vd::conv_output_size(7, conv(64, 3, 2, 0)), 3);  // floor((7 - 3) / 2) + 1
  EXPECT_EQ(vd::conv_output_size(7, conv(32, 4, 2, 1, true)), 14);
  EXPECT_EQ(vd::conv_output_size(3, conv(1, 3, 2, 1, true, 1)), 6);
}

// A chain with blocked layouts inside: conv 16 -> 32 (ReLU), conv 32 -> 32 stride 2, convt
// 32 -> 16 (ReLU), standalone relu, flatten, fc. Input and output plain, as in the model.
struct Chain {
  vd::ParamStore store;
  vd::Graph seq{Shape{16, 8, 8}};
  vd::Context ctx;
  Chain() {
    seq.add(std::make_unique<vd::Conv2d>(store, "c1", seq.out_shape(), conv(32, 3, 1, 1),
                                         Activation::ReLU));
    seq.add(std::make_unique<vd::Conv2d>(store, "c2", seq.out_shape(), conv(32, 4, 2, 1),
                                         Activation::None));
    seq.add(std::make_unique<vd::Conv2d>(store, "t1", seq.out_shape(), conv(16, 4, 2, 1, true),
                                         Activation::ReLU));
    seq.add(std::make_unique<vd::Relu>("r", seq.out_shape()));
    seq.add(std::make_unique<vd::Reshape>("flat", seq.out_shape(), Shape{16 * 8 * 8, 1, 1}));
    seq.add(std::make_unique<vd::Linear>(store, "fc", seq.out_shape(), 5, Activation::None));
    store.finalize();
    vd::Rng rng(3);
    seq.init(rng);
  }
  std::vector<double> reference(const std::vector<double>& p, const float* x) const {
    std::vector<double> h(x, x + seq.in_shape().size());
    for (const auto& l : seq.layers()) h = vd::testing::reference_layer(store, p, *l, h);
    return h;
  }
};

TEST(Conv2d, BlockedChainForwardMatchesDirectLoops) {
  Chain c;
  const int B = 3;
  vd::Rng rng(9);
  std::vector<float> x(static_cast<size_t>(B) * 16 * 64);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  const float* y = c.seq.forward(c.ctx, B, x.data());
  // The flatten got a blocked layout from the convolutions (so it reorders, not a view):
  // the blocked path is what this test covers.
  EXPECT_FALSE(c.seq.layers()[4]->is_view(B));
  auto pp = c.store.params();
  const std::vector<double> p(pp.begin(), pp.end());
  double worst = 0;
  for (int b = 0; b < B; ++b) {
    const auto want = c.reference(p, x.data() + static_cast<size_t>(b) * 16 * 64);
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::abs(y[static_cast<size_t>(b) * 5 + i] - want[i]) /
                                  std::max(1.0, std::abs(want[i])));
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Conv2d, BlockedChainGradientsMatchFiniteDifferences) {
  Chain c;
  const int B = 2, D = 16 * 64;
  vd::Rng rng(11);
  std::vector<float> x(static_cast<size_t>(B) * D), r(static_cast<size_t>(B) * 5);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : r) v = static_cast<float>(rng.uniform(-1, 1));
  // Loss = sum_b,o r[b,o] * y[b,o]: dL/dy = r.
  c.seq.forward(c.ctx, B, x.data());
  std::vector<float> diff_y = r, diff_x(x.size());
  c.seq.backward(c.ctx, B, x.data(), diff_y.data(), diff_x.data());

  auto pp = c.store.params();
  std::vector<double> p(pp.begin(), pp.end());
  std::vector<double> xd(x.begin(), x.end());
  auto loss = [&](const std::vector<double>& q, const std::vector<double>& xs) {
    double total = 0;
    for (int b = 0; b < B; ++b) {
      const std::vector<double> xb(xs.begin() + b * D, xs.begin() + (b + 1) * D);
      std::vector<double> y = xb;
      for (const auto& l : c.seq.layers()) y = vd::testing::reference_layer(c.store, q, *l, y);
      for (size_t o = 0; o < y.size(); ++o) total += r[static_cast<size_t>(b) * 5 + o] * y[o];
    }
    return total;
  };
  vd::Rng pick(5);
  std::vector<double> analytic, numeric;
  for (const auto& e : c.store.entries()) {
    vd::testing::sample_entry_gradient(
        c.store, e, p, [&](const std::vector<double>& q) { return loss(q, xd); }, pick, 12,
        analytic, numeric);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3));
  // Input gradient: the loss is piecewise linear in x (ReLU), so a small step gives the
  // derivative exactly unless it crosses a kink.
  analytic.clear();
  numeric.clear();
  for (int t = 0; t < 40; ++t) {
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

TEST(Conv2d, ShapeErrorsNameTheLayer) {
  vd::ParamStore store;
  try {
    vd::Conv2d c(store, "encoder.conv1", Shape{1, 3, 3}, conv(8, 5, 1, 0), Activation::None);
    ADD_FAILURE() << "no error";
  } catch (const vd::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("encoder.conv1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1x3x3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(vd::Conv2d(store, "flat", Shape{10, 1, 1}, conv(8, 1, 1, 0), Activation::None),
               vd::ShapeError);
  EXPECT_THROW(vd::Reshape("r", Shape{6, 1, 1}, Shape{4, 2, 2}), vd::ShapeError);
}

}  // namespace
