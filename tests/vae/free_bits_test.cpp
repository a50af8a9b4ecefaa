// Tests of free bits (Kingma et al. 2016: the KL term sum_j max(lambda, batch-mean KL_j)) and
// of the logvar clamp: the pieces against their formulas, their gradients against
// double-precision finite differences (zero from the dimensions under the floor, and from
// logvar values outside the clamp), and the whole VAE against the double reference model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"
#include "support/vae_fixture.hpp"
#include "vae/loss.hpp"
#include "vae/model.hpp"

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Per-dimension batch-mean KL of mu, logvar [B, L], in double.
std::vector<double> mean_kl(int B, int L, const std::vector<double>& mu,
                            const std::vector<double>& lv) {
  std::vector<double> m(static_cast<size_t>(L), 0.0);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < L; ++j) {
      const size_t i = static_cast<size_t>(b * L + j);
      m[static_cast<size_t>(j)] += 0.5 * (mu[i] * mu[i] + std::exp(lv[i]) - 1 - lv[i]) / B;
    }
  return m;
}

double floored(const std::vector<double>& m, double lambda) {
  double s = 0;
  for (double v : m) s += std::max(lambda, v);
  return s;
}

TEST(FreeBits, FlooredSumMatchesTheFormulaAndMarksTheActiveDimensions) {
  const double m[4] = {0.1, 0.5, 0.25, 2.0};
  uint8_t active[4];
  EXPECT_DOUBLE_EQ(vd::free_bits_kl(4, m, 0.25, active), 0.25 + 0.5 + 0.25 + 2.0);
  EXPECT_EQ(active[0], 0);
  EXPECT_EQ(active[1], 1);
  EXPECT_EQ(active[2], 0);  // at the floor: no gradient
  EXPECT_EQ(active[3], 1);
  EXPECT_DOUBLE_EQ(vd::free_bits_kl(4, m, 0.0, active), 2.85);
}

TEST(FreeBits, PerDimensionSumsAddUpToTheKlOfEverySample) {
  const int B = 6, L = 5;
  vd::Rng rng(3);
  std::vector<float> mu(B * L), lv(B * L);
  rng.fill_normal(mu.data(), mu.size());
  rng.fill_normal(lv.data(), lv.size());
  std::vector<double> sums(L), per_sample(B);
  vd::kl_per_dim_sums(B, L, mu.data(), lv.data(), sums.data());
  vd::kl_standard_normal(B, L, mu.data(), lv.data(), per_sample.data(), nullptr, nullptr, 0);
  double a = 0, b = 0;
  for (double v : sums) a += v;
  for (double v : per_sample) b += v;
  EXPECT_NEAR(a, b, 1e-12 * b);
  const std::vector<double> want = mean_kl(B, L, std::vector<double>(mu.begin(), mu.end()),
                                           std::vector<double>(lv.begin(), lv.end()));
  for (int j = 0; j < L; ++j) EXPECT_NEAR(sums[j] / B, want[j], 1e-12 * want[j]);
}

TEST(FreeBits, GradientMatchesDoubleFiniteDifferencesAndIsZeroUnderTheFloor) {
  const int B = 5, L = 6;
  vd::Rng rng(11);
  std::vector<float> mu(B * L), lv(B * L);
  rng.fill_normal(mu.data(), mu.size());
  for (auto& v : lv) v = static_cast<float>(rng.uniform(-1.5, 1.0));
  // Dimensions 0 and 3 are pushed under the floor: small mu, logvar near 0.
  for (int b = 0; b < B; ++b)
    for (int j : {0, 3}) {
      mu[b * L + j] *= 0.05f;
      lv[b * L + j] *= 0.05f;
    }
  std::vector<double> x(2 * B * L);  // [mu, logvar] in double
  std::copy(mu.begin(), mu.end(), x.begin());
  std::copy(lv.begin(), lv.end(), x.begin() + B * L);
  const auto split = [&](const std::vector<double>& v) {
    return std::pair{std::vector<double>(v.begin(), v.begin() + B * L),
                     std::vector<double>(v.begin() + B * L, v.end())};
  };
  const auto [m0, l0] = split(x);
  const std::vector<double> means = mean_kl(B, L, m0, l0);
  const double lambda = 0.2;
  int under = 0;
  for (double v : means) {
    ASSERT_GT(std::abs(v - lambda), 1e-3) << "a dimension sits on the kink";
    under += v < lambda;
  }
  ASSERT_GE(under, 2);
  ASSERT_LE(under, L - 2);

  // Analytic: the library's pieces, gradient of sum_j max(lambda, (1/B) sum_b KL_bj).
  std::vector<double> sums(L);
  vd::kl_per_dim_sums(B, L, mu.data(), lv.data(), sums.data());
  for (auto& v : sums) v /= B;
  std::vector<uint8_t> active(L);
  const double value = vd::free_bits_kl(L, sums.data(), lambda, active.data());
  EXPECT_NEAR(value, floored(means, lambda), 1e-12);
  std::vector<float> dmu(B * L, 0.0f), dlv(B * L, 0.0f);
  vd::kl_free_bits_backward(B, L, mu.data(), lv.data(), active.data(), dmu.data(), dlv.data(),
                            1.0f / B);
  std::vector<double> analytic(dmu.begin(), dmu.end());
  analytic.insert(analytic.end(), dlv.begin(), dlv.end());

  const std::vector<double> numeric = vd::testing::numeric_gradient(
      [&](const std::vector<double>& v) {
        const auto [m, l] = split(v);
        return floored(mean_kl(B, L, m, l), lambda);
      },
      x);
  EXPECT_TRUE(vd::testing::gradients_close(analytic, numeric, 1e-6));
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < L; ++j)
      if (means[j] < lambda) {
        EXPECT_EQ(dmu[b * L + j], 0.0f);
        EXPECT_EQ(dlv[b * L + j], 0.0f);
      }
}

TEST(FreeBits, WithEveryDimensionActiveTheGradientIsTheKlGradient) {
  const int B = 7, L = 9;
  vd::Rng rng(4);
  std::vector<float> mu(B * L), lv(B * L);
  rng.fill_normal(mu.data(), mu.size());
  rng.fill_normal(lv.data(), lv.size());
  const std::vector<uint8_t> all(L, 1);
  std::vector<float> a_mu(B * L, 0.25f), a_lv(B * L, -0.5f), b_mu = a_mu, b_lv = a_lv;
  vd::kl_free_bits_backward(B, L, mu.data(), lv.data(), all.data(), a_mu.data(), a_lv.data(), 0.3f);
  vd::kl_standard_normal(B, L, mu.data(), lv.data(), nullptr, b_mu.data(), b_lv.data(), 0.3f);
  // Equal up to the last bit: the SIMD clones of the KL kernel may fuse the multiply-add.
  for (size_t i = 0; i < a_mu.size(); ++i) {
    ASSERT_NEAR(a_mu[i], b_mu[i], 1e-6f) << i;  // the values are O(1)
    ASSERT_NEAR(a_lv[i], b_lv[i], 1e-6f) << i;
  }
}

TEST(LogvarClamp, ForwardAndBackwardFollowTheirDefinition) {
  const std::vector<float> raw = {-40.0f, -30.0f, -1.0f, 0.0f, 20.0f, 25.0f, NAN};
  std::vector<float> out(raw.size());
  vd::clamp_forward(raw.size(), raw.data(), -30.0f, 20.0f, out.data());
  EXPECT_EQ(out[0], -30.0f);
  EXPECT_EQ(out[1], -30.0f);
  EXPECT_EQ(out[2], -1.0f);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[4], 20.0f);
  EXPECT_EQ(out[5], 20.0f);
  EXPECT_TRUE(std::isnan(out[6]));  // NaN stays visible to the divergence check
  std::vector<float> diff(raw.size(), 1.5f);
  vd::clamp_backward(raw.size(), raw.data(), -30.0f, 20.0f, diff.data());
  // Exact inside, bounds included (as torch.clamp), zero outside.
  EXPECT_EQ(diff, (std::vector<float>{0.0f, 1.5f, 1.5f, 1.5f, 1.5f, 0.0f, 0.0f}));
}

// ---- The whole model -----------------------------------------------------------------------

using Model = vd::testing::VaeFixture;

vd::ModelConfig small_mlp(vd::Likelihood lik) {
  vd::ModelConfig c = vd::ModelConfig::mlp(12, {7}, 5);
  c.likelihood = lik;
  c.gaussian_sigma = 0.7f;
  return c;
}

// The reference objective in double: mean recon + beta * sum_j max(lambda, mean KL_j), with
// logvar clamped to [lo, hi]. Also returns the per-dimension mean KL.
double reference_objective(const vd::testing::ReferenceVae& ref, const std::vector<double>& p,
                           const Model& m, double beta, double lambda, double lo, double hi,
                           std::vector<double>* means = nullptr) {
  const int L = m.cfg.latent_dim;
  const size_t D = static_cast<size_t>(m.cfg.data.size());
  double recon = 0;
  std::vector<double> kl(static_cast<size_t>(L), 0.0);
  for (int b = 0; b < m.B; ++b) {
    const float* xb = m.x.data() + static_cast<size_t>(b) * D;
    vd::testing::ReferenceVae::Sample s;
    const auto enc = vd::testing::reference_graph(ref.store, p, m.vae->encoder(),
                                                  ref.inputs(std::vector<double>(xb, xb + D), 0));
    s.mu = enc[0];
    s.logvar = enc[1];
    for (auto& v : s.logvar) v = std::clamp(v, lo, hi);
    s.z.resize(s.mu.size());
    for (int j = 0; j < L; ++j)
      s.z[j] = s.mu[j] + std::exp(0.5 * s.logvar[j]) * m.eps[static_cast<size_t>(b * L + j)];
    s.out = vd::testing::reference_graph(ref.store, p, m.vae->decoder(), ref.inputs(s.z, 0))[0];
    recon += ref.recon(s, xb);
    for (int j = 0; j < L; ++j)
      kl[j] += 0.5 * (s.mu[j] * s.mu[j] + std::exp(s.logvar[j]) - 1 - s.logvar[j]) / m.B;
  }
  if (means) *means = kl;
  double k = 0;
  for (double v : kl) k += lambda > 0 ? std::max(lambda, v) : v;
  return recon / m.B + beta * k;
}

// Every parameter's gradient against central differences of the reference objective.
void expect_gradients_match(Model& m, double beta, double lambda, double lo, double hi) {
  const vd::LossSums sums = m.vae->train_step(m.ctx, m.batch(), beta, 1.0f / m.B);
  vd::testing::ReferenceVae ref{*m.vae, m.store};
  const auto pf = m.store.params();
  const std::vector<double> p(pf.begin(), pf.end());
  const double want = reference_objective(ref, p, m, beta, lambda, lo, hi);
  EXPECT_NEAR(sums.loss / m.B, want, 1e-5 * std::abs(want));
  const std::vector<double> fd = vd::testing::numeric_gradient(
      [&](const std::vector<double>& q) {
        return reference_objective(ref, q, m, beta, lambda, lo, hi);
      },
      p);
  double gmax = 0;
  for (double g : fd) gmax = std::max(gmax, std::abs(g));
  ASSERT_GT(gmax, 1e-3);
  const auto grads = m.store.grads();
  size_t bad = 0;
  for (size_t i = 0; i < fd.size(); ++i) {
    const double tol = 2e-3 * std::abs(fd[i]) + 2e-5 * gmax;
    if (std::abs(grads[i] - fd[i]) > tol && bad++ < 10)
      ADD_FAILURE() << "parameter " << i << ": analytic " << grads[i] << " vs finite difference "
                    << fd[i];
  }
  EXPECT_EQ(bad, 0u);
}

TEST(FreeBitsVae, GradientMatchesFiniteDifferencesOfTheFlooredObjective) {
  for (const vd::Likelihood lik : {vd::Likelihood::Bernoulli, vd::Likelihood::Gaussian}) {
    vd::ModelConfig cfg = small_mlp(lik);
    cfg.logvar_min = -kInf;
    cfg.logvar_max = kInf;
    // lambda between the dimensions' mean KLs, so some are floored and some are not.
    Model probe(cfg, 6);
    vd::testing::ReferenceVae ref{*probe.vae, probe.store};
    const auto pf = probe.store.params();
    std::vector<double> means;
    reference_objective(ref, std::vector<double>(pf.begin(), pf.end()), probe, 1, 0, -1e9, 1e9,
                        &means);
    std::vector<double> sorted = means;
    std::sort(sorted.begin(), sorted.end());
    const double lambda = 0.5 * (sorted[1] + sorted[2]);  // 2 of 5 dimensions under the floor
    for (double v : means) ASSERT_GT(std::abs(v - lambda), 1e-4);
    cfg.free_bits = lambda;
    Model m(cfg, 6);
    expect_gradients_match(m, 0.8, lambda, -1e9, 1e9);
    // The floor changed the loss: floored dims count lambda instead of their KL.
    const vd::LossSums s = m.vae->train_step(m.ctx, m.batch(), 0.8f, 1.0f / m.B);
    double true_kl = 0;
    for (double v : means) true_kl += v;
    EXPECT_NEAR(s.term[vd::Vae::kKl] / m.B, true_kl, 1e-5 * true_kl);  // logged: the true KL
    EXPECT_NEAR(s.loss - s.term[vd::Vae::kRecon], 0.8 * m.B * floored(means, lambda), 1e-4);
  }
}

TEST(LogvarClampVae, InsideTheRangeTheClampChangesNoBit) {
  vd::ModelConfig on = small_mlp(vd::Likelihood::Gaussian);  // default clamp -30, 20
  vd::ModelConfig off = on;
  off.logvar_min = -kInf;
  off.logvar_max = kInf;
  Model a(on, 6), b(off, 6);
  const vd::LossSums sa = a.vae->train_step(a.ctx, a.batch(), 0.9f, 1.0f / 6);
  const vd::LossSums sb = b.vae->train_step(b.ctx, b.batch(), 0.9f, 1.0f / 6);
  EXPECT_EQ(sa.loss, sb.loss);
  EXPECT_EQ(sa.term[vd::Vae::kKl], sb.term[vd::Vae::kKl]);
  EXPECT_EQ(a.grads(), b.grads());
}

TEST(LogvarClampVae, OutsideTheRangeTheGradientIsZeroAndInsideExact) {
  // Bounds between the raw logvar values of this batch, so some are clamped and some not.
  vd::ModelConfig cfg = small_mlp(vd::Likelihood::Bernoulli);
  cfg.logvar_min = -kInf;
  cfg.logvar_max = kInf;
  Model probe(cfg, 6);
  std::vector<float> mu(6 * 5), lv(6 * 5);
  probe.vae->encode(probe.ctx, probe.batch(), mu.data(), lv.data());
  std::vector<float> sorted = lv;
  std::sort(sorted.begin(), sorted.end());
  const float lo = 0.5f * (sorted[7] + sorted[8]), hi = 0.5f * (sorted[21] + sorted[22]);
  cfg.logvar_min = lo;
  cfg.logvar_max = hi;
  Model m(cfg, 6);
  std::vector<float> clamped(lv.size());
  m.vae->encode(m.ctx, m.batch(), mu.data(), clamped.data());
  int at_bounds = 0;
  for (float v : clamped) {
    ASSERT_GE(v, lo);
    ASSERT_LE(v, hi);
    at_bounds += v == lo || v == hi;
  }
  EXPECT_EQ(at_bounds, 16);  // 8 below, 8 above
  expect_gradients_match(m, 1.0, 0.0, lo, hi);

  // A logvar head whose outputs are all beyond the upper bound gets no gradient at all.
  vd::ModelConfig tight = cfg;
  tight.logvar_min = -30.0f;
  tight.logvar_max = sorted[0] - 0.5f;
  Model t(tight, 6);
  t.vae->train_step(t.ctx, t.batch(), 1.0f, 1.0f / 6);
  for (const char* name : {"encoder.logvar.weight", "encoder.logvar.bias"}) {
    const auto& e = t.store.find(name);
    for (size_t k = 0; k < e.size; ++k) ASSERT_EQ(t.store.grads()[e.offset + k], 0.0f) << name;
  }
}

}  // namespace
