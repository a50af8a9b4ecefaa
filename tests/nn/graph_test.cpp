// Tests of vd::Graph: a graph with two inputs, two outputs, residual sums (one of them across a
// plain and a blocked layout), a fan-out of the input and of an inner value, a concatenation
// and an unused node, against a double-precision walk of the same graph and central finite
// differences; and the errors of wiring that does not fit.
#include "nn/graph.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/conv.hpp"
#include "nn/linear.hpp"
#include "nn/relu.hpp"
#include "nn/reshape.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"

namespace {

using vd::Activation;
using vd::ConvSpec;
using vd::Graph;
using vd::Shape;

ConvSpec conv(int oc, int k, int p) {
  ConvSpec c;
  c.out_channels = oc;
  c.kernel = k;
  c.pad = p;
  return c;
}

// x [16x8x8] and c [4]:
//   a = conv3x3(x) + relu          b = conv3x3(a)          s = a + b        (residual)
//   t = conv1x1(x)                 s2 = s + t              r = relu(s2)     f = flatten(r)
//   y1 = fc(concat(f, c))          y2 = fc(f)              (f read twice)
//   u = conv1x1(x) to 16 channels  w = u + x (blocked + plain)   y3 = fc(flatten(w))
//   unused = fc(f), read by nothing
// Outputs {y1, y2, y3}.
struct Net {
  static constexpr int kOut1 = 5, kOut2 = 3, kOut3 = 2;
  vd::ParamStore store;
  Graph g{std::vector<Shape>{Shape{16, 8, 8}, Shape{4, 1, 1}}};
  vd::Context ctx;
  Net() {
    const Graph::Value x = 0, c = 1;
    const Shape img = g.shape(x);
    const auto a =
        g.add(std::make_unique<vd::Conv2d>(store, "a", img, conv(32, 3, 1), Activation::ReLU), x);
    const auto b = g.add(
        std::make_unique<vd::Conv2d>(store, "b", g.shape(a), conv(32, 3, 1), Activation::None), a);
    const auto s = g.add_sum("s", {a, b});
    const auto t =
        g.add(std::make_unique<vd::Conv2d>(store, "t", img, conv(32, 1, 0), Activation::None), x);
    const auto s2 = g.add_sum("s2", {s, t});
    const auto r = g.add(std::make_unique<vd::Relu>("r", g.shape(s2)), s2);
    const auto f = g.add(vd::make_flatten("f", g.shape(r)), r);
    const auto cat = g.add_concat("cat", {f, c});
    const auto y1 = g.add(
        std::make_unique<vd::Linear>(store, "y1", g.shape(cat), kOut1, Activation::None), cat);
    const auto y2 =
        g.add(std::make_unique<vd::Linear>(store, "y2", g.shape(f), kOut2, Activation::None), f);
    const auto u =
        g.add(std::make_unique<vd::Conv2d>(store, "u", img, conv(16, 1, 0), Activation::None), x);
    const auto w = g.add_sum("w", {u, x});
    const auto fw = g.add(vd::make_flatten("fw", g.shape(w)), w);
    const auto y3 =
        g.add(std::make_unique<vd::Linear>(store, "y3", g.shape(fw), kOut3, Activation::None), fw);
    g.add(std::make_unique<vd::Linear>(store, "unused", g.shape(f), 2, Activation::None), f);
    g.set_outputs({y1, y2, y3});
    store.finalize();
    vd::Rng rng(3);
    g.init(rng);
  }
};

constexpr int kB = 2, kD = 16 * 64, kC = 4;

struct Data {
  std::vector<float> x, c, r1, r2, r3;
  Data() : x(kB * kD), c(kB * kC), r1(kB * Net::kOut1), r2(kB * Net::kOut2), r3(kB * Net::kOut3) {
    vd::Rng rng(9);
    for (auto* v : {&x, &c, &r1, &r2, &r3})
      for (auto& e : *v) e = static_cast<float>(rng.uniform(-1, 1));
  }
};

// Loss = sum r1*y1 + r2*y2 + r3*y3 of the double-precision walk.
double reference_loss(const Net& net, const std::vector<double>& p, const std::vector<double>& x,
                      const std::vector<double>& c, const Data& d) {
  double total = 0;
  for (int b = 0; b < kB; ++b) {
    const auto y = vd::testing::reference_graph(
        net.store, p, net.g,
        {std::vector<double>(x.begin() + b * kD, x.begin() + (b + 1) * kD),
         std::vector<double>(c.begin() + b * kC, c.begin() + (b + 1) * kC)});
    const std::vector<float>* r[] = {&d.r1, &d.r2, &d.r3};
    for (size_t k = 0; k < 3; ++k)
      for (size_t o = 0; o < y[k].size(); ++o)
        total += (*r[k])[static_cast<size_t>(b) * y[k].size() + o] * y[k][o];
  }
  return total;
}

TEST(Graph, ForwardMatchesDirectLoopsAcrossLayouts) {
  Net net;
  Data d;
  const float* in[] = {d.x.data(), d.c.data()};
  net.g.forward(net.ctx, kB, in);
  // The sum w adds the plain input to a blocked convolution output, and the flatten after
  // the residual reorders from the blocked layout: both paths are what this test covers.
  EXPECT_FALSE(net.g.producer(8).layer->is_view(kB)) << net.g.producer(8).name;
  auto pp = net.store.params();
  const std::vector<double> p(pp.begin(), pp.end());
  double worst = 0;
  for (int b = 0; b < kB; ++b) {
    const auto want = vd::testing::reference_graph(
        net.store, p, net.g,
        {std::vector<double>(d.x.begin() + b * kD, d.x.begin() + (b + 1) * kD),
         std::vector<double>(d.c.begin() + b * kC, d.c.begin() + (b + 1) * kC)});
    for (size_t k = 0; k < 3; ++k) {
      const float* y = net.g.output(k);
      for (size_t i = 0; i < want[k].size(); ++i)
        worst =
            std::max(worst, std::abs(y[static_cast<size_t>(b) * want[k].size() + i] - want[k][i]) /
                                std::max(1.0, std::abs(want[k][i])));
    }
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Graph, GradientsOfSumsFanOutsAndConcatMatchFiniteDifferences) {
  Net net;
  Data d;
  const float* in[] = {d.x.data(), d.c.data()};
  net.g.forward(net.ctx, kB, in);
  std::vector<float> g1 = d.r1, g2 = d.r2, g3 = d.r3;
  float* diff_out[] = {g1.data(), g2.data(), g3.data()};
  // Garbage in the input gradients: backward must overwrite them, not add to them.
  std::vector<float> diff_x(d.x.size(), 7.0f), diff_c(d.c.size(), -3.0f);
  float* diff_in[] = {diff_x.data(), diff_c.data()};
  net.g.backward(net.ctx, kB, in, diff_out, diff_in);

  auto pp = net.store.params();
  std::vector<double> p(pp.begin(), pp.end());
  const std::vector<double> xd(d.x.begin(), d.x.end()), cd(d.c.begin(), d.c.end());
  vd::Rng pick(5);
  std::vector<double> analytic, numeric;
  for (const auto& e : net.store.entries()) {
    if (e.name.rfind("unused.", 0) == 0) {
      // A node nobody reads gets a zero gradient.
      for (size_t i = 0; i < e.size; ++i) EXPECT_EQ(net.store.grads()[e.offset + i], 0.0f);
      continue;
    }
    vd::testing::sample_entry_gradient(
        net.store, e, p,
        [&](const std::vector<double>& q) { return reference_loss(net, q, xd, cd, d); }, pick, 8,
        analytic, numeric);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3)) << "parameters";
  // x feeds three paths (a, t, u) and the sum w directly; c feeds the concatenation.
  analytic.clear();
  numeric.clear();
  for (int t = 0; t < 40; ++t) {
    const size_t i = pick.below(d.x.size());
    std::vector<double> xp = xd, xm = xd;
    xp[i] += 1e-4;
    xm[i] -= 1e-4;
    analytic.push_back(diff_x[i]);
    numeric.push_back((reference_loss(net, p, xp, cd, d) - reference_loss(net, p, xm, cd, d)) /
                      2e-4);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 2e-3)) << "input x";
  analytic.clear();
  numeric.clear();
  for (size_t i = 0; i < d.c.size(); ++i) {
    std::vector<double> cp = cd, cm = cd;
    cp[i] += 1e-4;
    cm[i] -= 1e-4;
    analytic.push_back(diff_c[i]);
    numeric.push_back((reference_loss(net, p, xd, cp, d) - reference_loss(net, p, xd, cm, d)) /
                      2e-4);
  }
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 1e-4)) << "input c";
}

TEST(Graph, ASecondBackwardGivesTheSameGradients) {
  // Nothing of one step's gradient sums may leak into the next.
  Net net;
  Data d;
  const float* in[] = {d.x.data(), d.c.data()};
  std::vector<std::vector<float>> grads, dxs;
  for (int rep = 0; rep < 2; ++rep) {
    net.g.forward(net.ctx, kB, in);
    std::vector<float> g1 = d.r1, g2 = d.r2, g3 = d.r3;
    float* diff_out[] = {g1.data(), g2.data(), g3.data()};
    std::vector<float> diff_x(d.x.size()), diff_c(d.c.size());
    float* diff_in[] = {diff_x.data(), diff_c.data()};
    net.g.backward(net.ctx, kB, in, diff_out, diff_in);
    grads.emplace_back(net.store.grads().begin(), net.store.grads().end());
    dxs.push_back(diff_x);
  }
  EXPECT_EQ(grads[0], grads[1]);
  EXPECT_EQ(dxs[0], dxs[1]);
}

TEST(Graph, AnInputWithoutGradientSkipsItsBackwardData) {
  // diff_x = nullptr: the layers reading x compute their parameter gradients only, and the
  // parameter gradients are those of a run that asks for diff_x.
  Net a, b;
  Data d;
  const float* in[] = {d.x.data(), d.c.data()};
  std::vector<std::vector<float>> grads;
  for (Net* net : {&a, &b}) {
    net->g.forward(net->ctx, kB, in);
    std::vector<float> g1 = d.r1, g2 = d.r2, g3 = d.r3;
    float* diff_out[] = {g1.data(), g2.data(), g3.data()};
    std::vector<float> diff_x(d.x.size());
    float* diff_in[] = {net == &a ? diff_x.data() : nullptr, nullptr};
    net->g.backward(net->ctx, kB, in, diff_out, diff_in);
    grads.emplace_back(net->store.grads().begin(), net->store.grads().end());
  }
  EXPECT_EQ(grads[0], grads[1]);
}

TEST(Graph, WiringThatDoesNotFitIsRefusedWithNames) {
  vd::ParamStore store;
  Graph g{std::vector<Shape>{Shape{4, 3, 3}, Shape{5, 1, 1}}};
  const auto expect = [](const std::function<void()>& f, const std::string& part) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning " << part;
    } catch (const vd::ShapeError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect(
      [&] {
        g.add_sum("res", {0, 1});
      },
      "res: a sum needs inputs of one shape, got 4x3x3 and 5");
  expect([&] { g.add_concat("cat", {0, 1}); }, "cat: a concatenation along channels");
  expect(
      [&] {
        g.add(std::make_unique<vd::Relu>("r", Shape{4, 3, 3}), 7);
      },
      "value 7 does not exist");
  expect(
      [&] {
        g.add(std::make_unique<vd::Relu>("r2", Shape{5, 1, 1}), 0);
      },
      "layer r2 (relu) expects input 5 but the layer before it gives 4x3x3");
  expect([&] { g.set_outputs({0, 0}); }, "listed twice");
  // The same shapes concatenate along channels.
  Graph ok{std::vector<Shape>{Shape{4, 3, 3}, Shape{2, 3, 3}}};
  EXPECT_EQ(ok.shape(ok.add_concat("cat", {0, 1})), (Shape{6, 3, 3}));
}

}  // namespace
