// Tests of vd::Linear: forward against a hand example and a double-precision reference,
// backward against finite differences, gradient overwrite semantics, and init().
#include "nn/linear.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "support/gradcheck.hpp"

namespace {

std::vector<float> random_floats(vd::Rng& rng, size_t n, double lo = -1.0, double hi = 1.0) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// Pre-activation z [B, O] = x [B, I] W^T [I, O] + b [O] in double.
std::vector<double> ref_preact(const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>& b, int batch, int in, int out) {
  std::vector<double> z(static_cast<size_t>(batch) * out);
  for (int n = 0; n < batch; ++n)
    for (int o = 0; o < out; ++o) {
      double acc = b[o];
      for (int i = 0; i < in; ++i) acc += x[n * in + i] * w[o * in + i];
      z[n * out + o] = acc;
    }
  return z;
}

std::vector<double> to_double(const float* p, size_t n) {
  return {p, p + n};
}

// Forward output vs the double reference, each element within 1e-5 of the magnitude of its
// dot product (sum |x_i w_i| + |b|), which is what float rounding can disturb.
void expect_forward_matches(vd::Linear& layer, vd::ParamStore& store, vd::Context& ctx, int batch,
                            vd::Rng& rng) {
  const int in = layer.in(), out = layer.out();
  const bool relu = layer.activation() == vd::Activation::ReLU;
  const auto x = random_floats(rng, static_cast<size_t>(batch) * in);
  std::vector<float> y(static_cast<size_t>(batch) * out, NAN);
  layer.forward(ctx, batch, x.data(), y.data());
  const float* w = store.param(layer.weight_entry());
  const float* b = store.param(layer.bias_entry());
  const auto z = ref_preact(to_double(x.data(), x.size()), to_double(w, size_t(out) * in),
                            to_double(b, out), batch, in, out);
  int bad = 0;
  for (int n = 0; n < batch; ++n)
    for (int o = 0; o < out; ++o) {
      double mag = std::abs(double(b[o]));
      for (int i = 0; i < in; ++i) mag += std::abs(double(x[n * in + i]) * w[o * in + i]);
      const double ref = relu ? std::max(0.0, z[n * out + o]) : z[n * out + o];
      const double got = y[n * out + o];
      if (!(std::abs(got - ref) <= 1e-5 * mag) && bad++ < 5)
        ADD_FAILURE() << "batch " << batch << " [" << n << ", " << o << "]: got " << got
                      << ", reference " << ref << " (magnitude " << mag << ")";
      if (relu && !(got >= 0.0) && bad++ < 5) ADD_FAILURE() << "ReLU output " << got << " < 0";
    }
  EXPECT_EQ(bad, 0) << "batch " << batch;
}

TEST(Linear, RegistersPyTorchNamedParameters) {
  vd::ParamStore store;
  vd::Linear layer(store, "enc1", 784, 400, vd::Activation::ReLU);
  EXPECT_EQ(store.find("enc1.weight").shape, (std::vector<int64_t>{400, 784}));
  EXPECT_EQ(store.find("enc1.bias").shape, (std::vector<int64_t>{400}));
  EXPECT_EQ(layer.in(), 784);
  EXPECT_EQ(layer.out(), 400);
  EXPECT_DOUBLE_EQ(layer.flops_per_sample(), 2.0 * 784 * 400);
  EXPECT_THROW(vd::Linear(store, "enc1", 3, 4, vd::Activation::None), vd::ShapeError);
  EXPECT_THROW(vd::Linear(store, "bad", 0, 4, vd::Activation::None), vd::ShapeError);
}

TEST(Linear, ForwardMatchesHandComputedExample) {
  vd::Context ctx;
  vd::ParamStore store;
  vd::Linear plain(store, "plain", 3, 2, vd::Activation::None);
  vd::Linear relu(store, "relu", 3, 2, vd::Activation::ReLU);
  store.finalize();
  // W [2, 3] = [[1, 2, 3], [-1, 0, 1]], b = [0.5, -2].
  const float w[] = {1, 2, 3, -1, 0, 1};
  const float b[] = {0.5f, -2};
  for (const vd::Linear* l : {&plain, &relu}) {
    std::copy(w, w + 6, store.param(l->weight_entry()));
    std::copy(b, b + 2, store.param(l->bias_entry()));
  }
  // x [2, 3] = [[1, 1, 1], [2, 0, -1]] -> z = [[6.5, -2], [-0.5, -5]].
  const float x[] = {1, 1, 1, 2, 0, -1};
  float y[4];
  plain.forward(ctx, 2, x, y);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{6.5f, -2, -0.5f, -5}));
  relu.forward(ctx, 2, x, y);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{6.5f, 0, 0, 0}));
  // Batch 1 through the same object (second cached primitive).
  relu.forward(ctx, 1, x, y);
  EXPECT_EQ(std::vector<float>(y, y + 2), (std::vector<float>{6.5f, 0}));
}

TEST(Linear, ForwardMatchesDoubleReferenceAcrossBatchSizes) {
  vd::Context ctx;
  vd::ParamStore store;
  vd::Linear small_plain(store, "small_plain", 37, 29, vd::Activation::None);
  vd::Linear small_relu(store, "small_relu", 37, 29, vd::Activation::ReLU);
  vd::Linear big_relu(store, "big_relu", 784, 400, vd::Activation::ReLU);
  vd::Linear narrow(store, "narrow", 400, 20, vd::Activation::None);
  store.finalize();
  vd::Rng rng(11);
  for (vd::Linear* l : {&small_plain, &small_relu, &big_relu, &narrow}) l->init(rng);
  // Revisiting sizes checks that the per-batch-size cache hands back working primitives.
  for (int batch : {1, 7, 128, 3, 128, 1, 7}) {
    SCOPED_TRACE(batch);
    expect_forward_matches(small_plain, store, ctx, batch, rng);
    expect_forward_matches(small_relu, store, ctx, batch, rng);
    expect_forward_matches(narrow, store, ctx, batch, rng);
  }
  for (int batch : {128, 1, 33, 128}) {
    SCOPED_TRACE(batch);
    expect_forward_matches(big_relu, store, ctx, batch, rng);
  }
}

// A layer's inputs and G for the loss L = sum(dst * G), packed as [x, W, b] for gradcheck.
struct BackwardCase {
  int batch, in, out;
  vd::Activation act;
  std::vector<float> x, w, b, g;  // [B, I], [O, I], [O], [B, O]

  std::vector<double> packed() const {
    std::vector<double> p(x.begin(), x.end());
    p.insert(p.end(), w.begin(), w.end());
    p.insert(p.end(), b.begin(), b.end());
    return p;
  }
  // L in double from packed parameters.
  double loss(const std::vector<double>& p) const {
    const size_t nx = x.size(), nw = w.size();
    const std::vector<double> xs(p.begin(), p.begin() + nx),
        ws(p.begin() + nx, p.begin() + nx + nw), bs(p.begin() + nx + nw, p.end());
    const auto z = ref_preact(xs, ws, bs, batch, in, out);
    double l = 0;
    for (size_t k = 0; k < z.size(); ++k)
      l += (act == vd::Activation::ReLU ? std::max(0.0, z[k]) : z[k]) * g[k];
    return l;
  }
};

// Random case whose pre-activations all stay >= 1e-3 away from the ReLU kink (finite
// differences move them by ~1e-5), with both signs present so the mask is exercised.
BackwardCase make_case(int batch, int in, int out, vd::Activation act, uint64_t seed) {
  for (uint64_t attempt = 0;; ++attempt) {
    vd::Rng rng(vd::Rng::derive_seed(seed, attempt));
    BackwardCase c{batch,
                   in,
                   out,
                   act,
                   random_floats(rng, size_t(batch) * in),
                   random_floats(rng, size_t(out) * in),
                   random_floats(rng, out),
                   random_floats(rng, size_t(batch) * out)};
    const auto z = ref_preact(to_double(c.x.data(), c.x.size()), to_double(c.w.data(), c.w.size()),
                              to_double(c.b.data(), c.b.size()), batch, in, out);
    const bool far = std::all_of(z.begin(), z.end(), [](double v) { return std::abs(v) > 1e-3; });
    const bool both =
        *std::min_element(z.begin(), z.end()) < 0 && *std::max_element(z.begin(), z.end()) > 0;
    if (far && both) return c;
  }
}

// Runs forward + backward of `layer` on the case and returns the analytic gradient packed
// as [diff_src, diff_weights, diff_bias].
std::vector<double> analytic_gradient(vd::Linear& layer, vd::ParamStore& store, vd::Context& ctx,
                                      const BackwardCase& c) {
  std::copy(c.w.begin(), c.w.end(), store.param(layer.weight_entry()));
  std::copy(c.b.begin(), c.b.end(), store.param(layer.bias_entry()));
  std::vector<float> dst(size_t(c.batch) * c.out), diff_src(c.x.size(), NAN);
  layer.forward(ctx, c.batch, c.x.data(), dst.data());
  // Garbage in the grad buffer: backward must overwrite, not accumulate.
  std::fill(store.grad_view(layer.weight_entry()).begin(),
            store.grad_view(layer.weight_entry()).end(), 123.0f);
  std::fill(store.grad_view(layer.bias_entry()).begin(), store.grad_view(layer.bias_entry()).end(),
            -77.0f);
  std::vector<float> diff_dst = c.g;
  layer.backward(ctx, c.batch, c.x.data(), dst.data(), diff_dst.data(), diff_src.data());
  std::vector<double> a(diff_src.begin(), diff_src.end());
  for (float v : store.grad_view(layer.weight_entry())) a.push_back(v);
  for (float v : store.grad_view(layer.bias_entry())) a.push_back(v);
  return a;
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  vd::Context ctx;
  vd::ParamStore store;
  vd::Linear plain(store, "plain", 9, 7, vd::Activation::None);
  vd::Linear relu(store, "relu", 33, 17, vd::Activation::ReLU);
  store.finalize();
  uint64_t seed = 100;
  // Batch sizes revisit cached primitives; 1 and odd sizes included.
  for (int batch : {4, 1, 5, 4}) {
    for (vd::Linear* layer : {&plain, &relu}) {
      SCOPED_TRACE(layer->name() + " batch " + std::to_string(batch));
      const auto c = make_case(batch, layer->in(), layer->out(), layer->activation(), ++seed);
      const auto analytic = analytic_gradient(*layer, store, ctx, c);
      EXPECT_TRUE(vd::testing::check_gradient([&](const auto& p) { return c.loss(p); }, c.packed(),
                                              analytic, 1e-4));
    }
  }
}

TEST(Linear, BackwardWithoutDiffSrcStillWritesParameterGradients) {
  vd::Context ctx;
  vd::ParamStore store;
  vd::Linear layer(store, "l", 12, 6, vd::Activation::ReLU);
  vd::Linear other(store, "other", 4, 4, vd::Activation::None);
  store.finalize();
  const auto c = make_case(5, 12, 6, vd::Activation::ReLU, 7);
  const auto full = analytic_gradient(layer, store, ctx, c);  // [diff_src, dW, db]

  for (float& v : store.grad_view(other.weight_entry())) v = 9.0f;
  std::vector<float> dst(5 * 6), diff_dst = c.g;
  layer.forward(ctx, 5, c.x.data(), dst.data());
  std::fill(store.grads().begin(), store.grads().begin() + 1, 5.0f);  // dirty the first weight grad
  layer.backward(ctx, 5, c.x.data(), dst.data(), diff_dst.data(), nullptr);
  const size_t nx = c.x.size();
  const float* dw = store.grad(layer.weight_entry());
  const float* db = store.grad(layer.bias_entry());
  for (size_t k = 0; k < c.w.size(); ++k) ASSERT_EQ(dw[k], static_cast<float>(full[nx + k]));
  for (size_t k = 0; k < c.b.size(); ++k)
    ASSERT_EQ(db[k], static_cast<float>(full[nx + c.w.size() + k]));
  // The other layer's gradients are untouched.
  for (float v : store.grad_view(other.weight_entry())) ASSERT_EQ(v, 9.0f);
  // Documented side effect: diff_dst is masked in place where dst <= 0.
  for (size_t k = 0; k < dst.size(); ++k) EXPECT_EQ(diff_dst[k], dst[k] > 0 ? c.g[k] : 0.0f) << k;
}

TEST(Linear, MisuseThrows) {
  vd::Context ctx;
  vd::ParamStore store;
  vd::Linear layer(store, "l", 3, 2, vd::Activation::None);
  float x[3] = {}, y[2] = {};
  vd::Rng rng(1);
  EXPECT_THROW(layer.forward(ctx, 1, x, y), vd::Error);  // store not finalized
  EXPECT_THROW(layer.init(rng), vd::Error);
  store.finalize();
  EXPECT_THROW(layer.forward(ctx, 0, x, y), vd::ShapeError);
  EXPECT_THROW(layer.forward(ctx, 1, nullptr, y), vd::ShapeError);
  EXPECT_NO_THROW(layer.forward(ctx, 1, x, y));
}

TEST(Linear, InitIsUniformWithinPyTorchBoundAndDeterministic) {
  const int in = 784, out = 400;
  vd::ParamStore a, b, c;
  vd::Linear la(a, "l", in, out, vd::Activation::ReLU), lb(b, "l", in, out, vd::Activation::ReLU),
      lc(c, "l", in, out, vd::Activation::ReLU);
  a.finalize();
  b.finalize();
  c.finalize();
  vd::Rng ra(5), rb(5), rc(6);
  la.init(ra);
  lb.init(rb);
  lc.init(rc);
  EXPECT_TRUE(std::equal(a.params().begin(), a.params().end(), b.params().begin()));
  EXPECT_FALSE(std::equal(a.params().begin(), a.params().end(), c.params().begin()));

  // Exact draw order: weight row-major, then bias, each uniform(-bound, bound).
  const double bound = 1.0 / std::sqrt(double(in));
  vd::Rng replay(5);
  for (float v : a.param_view(la.weight_entry()))
    ASSERT_EQ(v, static_cast<float>(replay.uniform(-bound, bound)));
  for (float v : a.param_view(la.bias_entry()))
    ASSERT_EQ(v, static_cast<float>(replay.uniform(-bound, bound)));

  for (size_t e : {la.weight_entry(), la.bias_entry()}) {
    double sum = 0, sq = 0;
    for (float v : a.param_view(e)) {
      ASSERT_LE(std::abs(v), bound);
      sum += v;
      sq += double(v) * v;
    }
    const double n = static_cast<double>(a.entries()[e].size);
    const double var = sq / n - (sum / n) * (sum / n);
    // Standard error of the variance of U(-b, b) over n draws is b^2 sqrt(4 / (45 n)); the
    // mean's is b / sqrt(3 n). Allow 5 standard errors.
    const double expected = bound * bound / 3;
    EXPECT_NEAR(var, expected, 5 * bound * bound * std::sqrt(4.0 / (45 * n)) + 1e-12)
        << a.entries()[e].name;
    EXPECT_NEAR(sum / n, 0.0, 5 * bound / std::sqrt(3 * n)) << a.entries()[e].name;
  }
}

}  // namespace
