// Tests of the VAE loss pieces against double-precision formulas, finite differences, Monte
// Carlo and hand-computed values, plus extreme inputs, errors and a timing print.
#include "vae/loss.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace {

constexpr double kLog2Pi = 1.8378770664093454836;

// Exact-in-double references.
double softplus_minus_xl(double l, double x) {
  return std::max(l, 0.0) - x * l + std::log1p(std::exp(-std::fabs(l)));
}
double sigmoid(double l) {
  return l >= 0 ? 1.0 / (1.0 + std::exp(-l)) : std::exp(l) / (1.0 + std::exp(l));
}
// sigmoid(l) - x without the cancellation of 1/(1+e^-l) - 1 at large l.
double bernoulli_grad(double l, double x) {
  const double r = std::exp(-std::fabs(l)) / (1.0 + std::exp(-std::fabs(l)));
  return l >= 0 ? (1.0 - x) - r : r - x;
}
double rel_err(double got, double want) {
  return std::fabs(got - want) / std::max(std::fabs(want), std::numeric_limits<double>::min());
}

std::vector<float> normals(vd::Rng& rng, size_t n, double sd, double mean = 0.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(mean + sd * rng.normal());
  return v;
}
std::vector<float> uniforms(vd::Rng& rng, size_t n, double lo, double hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// ---------------------------------------------------------------- Bernoulli

TEST(BernoulliNll, PerSampleMatchesDoubleFormula) {
  vd::Rng rng(1);
  const int B = 9, D = 1000;  // D > the kernel's chunk, and not a multiple of the lanes
  const auto logits = normals(rng, size_t(B) * D, 6.0);
  auto x = uniforms(rng, size_t(B) * D, 0.0, 1.0);
  for (int i = 0; i < B * D; i += 3) x[i] = x[i] < 0.5f ? 0.0f : 1.0f;  // binary pixels too
  std::vector<double> got(B);
  vd::bernoulli_nll(B, D, logits.data(), x.data(), got.data(), nullptr, 1.0f);
  for (int b = 0; b < B; ++b) {
    double want = 0;
    for (int d = 0; d < D; ++d) want += softplus_minus_xl(logits[b * D + d], x[b * D + d]);
    EXPECT_LT(rel_err(got[b], want), 1e-6) << "row " << b;
  }
}

// One element per row, over a dense sweep of logits: this checks the float exp/log1p
// approximations everywhere, not just on average.
TEST(BernoulliNll, EveryElementWithinOneInAMillionOverTheFullRange) {
  std::vector<float> l;
  for (double v = -120.0; v <= 120.0; v += 0.000731) l.push_back(static_cast<float>(v));
  for (float v = 1e-30f; v < 1.0f; v *= 1.37f) {  // tiny logits around 0
    l.push_back(v);
    l.push_back(-v);
  }
  const int n = static_cast<int>(l.size());
  std::vector<double> per(n);
  std::vector<float> grad(n);
  double worst_value = 0, worst_grad_binary = 0, worst_grad_abs = 0;
  for (float xv : {0.0f, 0.3f, 1.0f}) {
    const std::vector<float> x(n, xv);
    vd::bernoulli_nll(n, 1, l.data(), x.data(), per.data(), grad.data(), 1.0f);
    for (int i = 0; i < n; ++i) {
      const double want = softplus_minus_xl(l[i], xv);
      if (want > 1e-30) {
        worst_value = std::max(worst_value, rel_err(per[i], want));
      } else {
        ASSERT_LE(std::fabs(per[i] - want), 1e-37) << "l = " << l[i];
      }
      const double gwant = bernoulli_grad(l[i], xv);
      worst_grad_abs = std::max(worst_grad_abs, std::fabs(grad[i] - gwant));
      // With x in {0, 1} the gradient never cancels, so it is relatively accurate too.
      if (xv != 0.3f && std::fabs(gwant) > 1e-37)
        worst_grad_binary = std::max(worst_grad_binary, rel_err(grad[i], gwant));
    }
  }
  std::printf(
      "bernoulli sweep of %d logits: max rel err value %.3g, grad (x in {0,1}) %.3g, "
      "grad abs %.3g\n",
      n, worst_value, worst_grad_binary, worst_grad_abs);
  EXPECT_LT(worst_value, 1e-6);
  EXPECT_LT(worst_grad_binary, 1e-6);
  EXPECT_LT(worst_grad_abs, 1.5e-7);
}

TEST(BernoulliNll, ExtremeLogitsAreExactAndFinite) {
  const std::vector<float> l = {100.0f, -100.0f, 100.0f, -100.0f, 100.0f, -100.0f};
  const std::vector<float> x = {1.0f, 1.0f, 0.0f, 0.0f, 0.3f, 0.3f};
  std::vector<double> per(6);
  std::vector<float> g(6);
  vd::bernoulli_nll(6, 1, l.data(), x.data(), per.data(), g.data(), 1.0f);
  EXPECT_LE(per[0], 1e-30);  // log1p(e^-100) = 3.7e-44
  EXPECT_NEAR(per[1], 100.0, 1e-5);
  EXPECT_NEAR(per[2], 100.0, 1e-5);
  EXPECT_LE(per[3], 1e-30);
  EXPECT_NEAR(per[4], 70.0, 1e-4);
  EXPECT_NEAR(per[5], 30.0, 1e-4);
  EXPECT_EQ(g[0], 0.0f);  // sigmoid(100) - 1 = -3.7e-44: below float, and no cancellation junk
  EXPECT_EQ(g[1], -1.0f);
  EXPECT_EQ(g[2], 1.0f);
  EXPECT_EQ(g[3], 0.0f);
  EXPECT_NEAR(g[4], 0.7f, 1e-7);
  EXPECT_NEAR(g[5], -0.3f, 1e-7);

  // Huge logits: finite and equal to |l|*(1-x) or |l|*x.
  const std::vector<float> big = {1e4f, -1e4f, 3e3f, -5e3f};
  const std::vector<float> xb = {0.0f, 1.0f, 0.25f, 0.5f};
  vd::bernoulli_nll(4, 1, big.data(), xb.data(), per.data(), g.data(), 1.0f);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::isfinite(per[i]) && std::isfinite(g[i]));
    EXPECT_LT(rel_err(per[i], softplus_minus_xl(big[i], xb[i])), 1e-7);
    EXPECT_EQ(g[i], static_cast<float>(sigmoid(big[i]) - xb[i]));
  }
}

TEST(BernoulliNll, GradientMatchesFiniteDifferencesAndScale) {
  vd::Rng rng(2);
  const int B = 3, D = 300;
  auto l = normals(rng, size_t(B) * D, 3.0);
  const auto x = uniforms(rng, size_t(B) * D, 0.0, 1.0);
  std::vector<float> g(l.size());
  std::vector<double> per(B), per_nograd(B);
  const float scale = 0.25f;
  vd::bernoulli_nll(B, D, l.data(), x.data(), per.data(), g.data(), scale);
  vd::bernoulli_nll(B, D, l.data(), x.data(), per_nograd.data(), nullptr, scale);
  EXPECT_EQ(per, per_nograd);  // the gradient path does not change the value
  for (int i = 0; i < B * D; i += 7) {
    const int b = i / D;
    const float l0 = l[i];
    l[i] = l0 + 1e-2f;
    const float lp = l[i];
    vd::bernoulli_nll(B, D, l.data(), x.data(), per.data(), nullptr, 1.0f);
    const double fp = per[b];
    l[i] = l0 - 1e-2f;
    const float lm = l[i];
    vd::bernoulli_nll(B, D, l.data(), x.data(), per.data(), nullptr, 1.0f);
    const double fm = per[b];
    l[i] = l0;
    const double fd = (fp - fm) / (double(lp) - double(lm));
    EXPECT_NEAR(g[i] / scale, fd, 2e-4) << "element " << i;
  }
}

// ---------------------------------------------------------------- Gaussian

TEST(GaussianNll, ClosedFormAndGradient) {
  vd::Rng rng(4);
  const int B = 5, D = 777;
  const float sigma = 0.35f, scale = 0.125f;
  const auto m = normals(rng, size_t(B) * D, 1.0);
  const auto x = uniforms(rng, size_t(B) * D, 0.0, 1.0);
  std::vector<double> per(B);
  std::vector<float> g(m.size(), 123.0f);  // overwritten
  vd::gaussian_nll(B, D, m.data(), x.data(), sigma, per.data(), g.data(), scale);
  const double s = sigma;
  for (int b = 0; b < B; ++b) {
    double want = 0;
    for (int d = 0; d < D; ++d) {
      const double z = (double(x[b * D + d]) - m[b * D + d]) / s;
      want += 0.5 * z * z + std::log(s) + 0.5 * kLog2Pi;
    }
    EXPECT_LT(rel_err(per[b], want), 1e-9);
  }
  for (size_t i = 0; i < m.size(); ++i) {
    const double want = scale * (double(m[i]) - x[i]) / (s * s);
    ASSERT_LT(std::fabs(g[i] - want), 2e-7 * std::fabs(want) + 1e-30) << i;
  }
  // Hand value: m = x gives only the normalising constant.
  const float one = 1.0f;
  vd::gaussian_nll(1, 1, &one, &one, 1.0f, per.data(), nullptr, 1.0f);
  EXPECT_DOUBLE_EQ(per[0], 0.5 * kLog2Pi);
  // Finite differences in double of the per-sample value.
  auto mm = m;
  for (int i = 0; i < D; i += 37) {
    const float m0 = mm[i];
    mm[i] = m0 + 1e-2f;
    const float a = mm[i];
    vd::gaussian_nll(1, D, mm.data(), x.data(), sigma, per.data(), nullptr, 1.0f);
    const double fp = per[0];
    mm[i] = m0 - 1e-2f;
    const float c = mm[i];
    vd::gaussian_nll(1, D, mm.data(), x.data(), sigma, per.data(), nullptr, 1.0f);
    mm[i] = m0;
    EXPECT_NEAR(g[i] / scale, (fp - per[0]) / (double(a) - double(c)),
                1e-5 * (1 + std::fabs(g[i] / scale)));
  }
  EXPECT_THROW(vd::gaussian_nll(1, 1, &one, &one, 0.0f, per.data(), nullptr, 1.0f), vd::ShapeError);
}

// ---------------------------------------------------------------- KL

double kl_ref(double mu, double lv) {
  return -0.5 * (1 + lv - mu * mu - std::exp(lv));
}

TEST(KlStandardNormal, HandValues) {
  const std::vector<float> mu = {0.0f, 1.0f, 0.0f, 0.0f, 2.0f};
  const std::vector<float> lv = {0.0f, 0.0f, 1.0f, -1.0f, std::log(4.0f)};
  std::vector<double> per(5);
  std::vector<float> dmu(5, 0.0f), dlv(5, 0.0f);
  vd::kl_standard_normal(5, 1, mu.data(), lv.data(), per.data(), dmu.data(), dlv.data(), 1.0f);
  EXPECT_EQ(per[0], 0.0);
  EXPECT_EQ(dmu[0], 0.0f);
  EXPECT_EQ(dlv[0], 0.0f);
  EXPECT_DOUBLE_EQ(per[1], 0.5);
  EXPECT_NEAR(per[2], 0.5 * (std::numbers::e - 2.0), 1e-15);
  EXPECT_NEAR(per[3], 0.5 / std::numbers::e, 1e-15);
  // mu = 2, sigma^2 = 4: 0.5 * (4 + 4 - 1 - log 4).
  EXPECT_NEAR(per[4], 0.5 * (7.0 - double(std::log(4.0f))), 1e-6);
  EXPECT_FLOAT_EQ(dlv[2], 0.5f * (std::exp(1.0f) - 1.0f));
}

TEST(KlStandardNormal, MatchesDoubleFormulaOverWideLogvarRange) {
  std::vector<float> lv, mu;
  for (double v = -700.0; v <= 88.0; v += 0.0123) {
    lv.push_back(static_cast<float>(v));
    mu.push_back(static_cast<float>(std::sin(v)));
  }
  const int n = static_cast<int>(lv.size());
  std::vector<double> per(n);
  std::vector<float> dlv(n, 0.0f);
  vd::kl_standard_normal(n, 1, mu.data(), lv.data(), per.data(), nullptr, dlv.data(), 1.0f);
  double worst = 0, worst_g = 0;
  for (int i = 0; i < n; ++i) {
    worst = std::max(worst, rel_err(per[i], kl_ref(mu[i], lv[i])));
    const double gw = 0.5 * std::expm1(double(lv[i]));
    worst_g = std::max(worst_g, rel_err(dlv[i], gw));
  }
  EXPECT_LT(worst, 1e-9);    // the naive double reference itself cancels near logvar = 0
  EXPECT_LT(worst_g, 1e-7);  // one float rounding
}

TEST(KlStandardNormal, AgreesWithMonteCarloEstimate) {
  const int L = 3;
  const float mu[L] = {0.7f, -1.2f, 0.1f};
  const float lv[L] = {-0.5f, 0.8f, -2.0f};
  double kl;
  vd::kl_standard_normal(1, L, mu, lv, &kl, nullptr, nullptr, 1.0f);
  vd::Rng rng(2024);
  const int n = 1000000;
  double sum = 0, sq = 0;
  for (int s = 0; s < n; ++s) {
    double log_ratio = 0;  // log q(z) - log p(z)
    for (int j = 0; j < L; ++j) {
      const double sd = std::exp(0.5 * lv[j]);
      const double z = mu[j] + sd * rng.normal();
      const double u = (z - mu[j]) / sd;
      log_ratio += -0.5 * (u * u + lv[j]) + 0.5 * z * z;
    }
    sum += log_ratio;
    sq += log_ratio * log_ratio;
  }
  const double mean = sum / n;
  const double se = std::sqrt((sq / n - mean * mean) / n);
  EXPECT_LT(std::fabs(mean - kl), 4 * se) << "MC " << mean << " +- " << se << ", exact " << kl;
}

TEST(KlStandardNormal, GradientAccumulatesAndMatchesFiniteDifferences) {
  vd::Rng rng(6);
  const int B = 4, L = 20;
  auto mu = normals(rng, size_t(B) * L, 1.0);
  auto lv = normals(rng, size_t(B) * L, 1.0);
  const float scale = 0.5f;
  std::vector<float> dmu(mu.size(), 1.0f), dlv(lv.size(), -2.0f);  // pre-existing gradient
  std::vector<double> per(B);
  vd::kl_standard_normal(B, L, mu.data(), lv.data(), per.data(), dmu.data(), dlv.data(), scale);
  for (int i = 0; i < B * L; ++i) {
    EXPECT_FLOAT_EQ(dmu[i], 1.0f + scale * mu[i]);
    EXPECT_NEAR(dlv[i], -2.0f + scale * 0.5 * (std::exp(double(lv[i])) - 1.0), 1e-6);
  }
  for (int i = 0; i < B * L; i += 3) {
    const int b = i / L;
    for (auto* v : {&mu, &lv}) {
      const float v0 = (*v)[i];
      (*v)[i] = v0 + 1e-3f;
      const float a = (*v)[i];
      vd::kl_standard_normal(B, L, mu.data(), lv.data(), per.data(), nullptr, nullptr, 1.0f);
      const double fp = per[b];
      (*v)[i] = v0 - 1e-3f;
      const float c = (*v)[i];
      vd::kl_standard_normal(B, L, mu.data(), lv.data(), per.data(), nullptr, nullptr, 1.0f);
      (*v)[i] = v0;
      const double fd = (fp - per[b]) / (double(a) - double(c));
      const double an = v == &mu ? mu[i] : 0.5 * (std::exp(double(lv[i])) - 1.0);
      EXPECT_NEAR(an, fd, 1e-5 * (1 + std::fabs(an)));
    }
  }
}

// ---------------------------------------------------------------- reparameterisation

TEST(Reparameterize, ForwardAndBackwardMatchFormulaAndFiniteDifferences) {
  vd::Rng rng(7);
  const int B = 6, L = 17;
  const auto mu = normals(rng, size_t(B) * L, 1.0);
  auto lv = normals(rng, size_t(B) * L, 1.5);
  const auto eps = normals(rng, size_t(B) * L, 1.0);
  const auto dz = normals(rng, size_t(B) * L, 1.0);
  std::vector<float> z(mu.size()), dmu(mu.size(), 9.0f), dlv(mu.size(), 9.0f);
  vd::reparameterize(B, L, mu.data(), lv.data(), eps.data(), z.data());
  for (size_t i = 0; i < z.size(); ++i) {
    const double want = mu[i] + std::exp(0.5 * lv[i]) * eps[i];
    EXPECT_LE(std::fabs(z[i] - want), 6e-8 * std::fabs(want) + 1e-30);
  }
  vd::reparameterize_backward(B, L, lv.data(), eps.data(), dz.data(), dmu.data(), dlv.data());
  EXPECT_EQ(dmu, dz);  // overwritten, not accumulated
  std::vector<float> zp(z.size()), zm(z.size());
  for (size_t i = 0; i < z.size(); ++i) {
    const double want = double(dz[i]) * eps[i] * 0.5 * std::exp(0.5 * lv[i]);
    EXPECT_LE(std::fabs(dlv[i] - want), 6e-8 * std::fabs(want) + 1e-30);
    // d(dz . z)/d logvar_i by central differences.
    const float l0 = lv[i];
    lv[i] = l0 + 1e-2f;
    const float a = lv[i];
    vd::reparameterize(B, L, mu.data(), lv.data(), eps.data(), zp.data());
    lv[i] = l0 - 1e-2f;
    const float c = lv[i];
    vd::reparameterize(B, L, mu.data(), lv.data(), eps.data(), zm.data());
    lv[i] = l0;
    const double fd = double(dz[i]) * (double(zp[i]) - zm[i]) / (double(a) - double(c));
    EXPECT_NEAR(dlv[i], fd, 1e-4 * (1 + std::fabs(fd)));
  }
  // A null diff_logvar only writes diff_mu.
  std::vector<float> dmu2(mu.size(), 0.0f);
  vd::reparameterize_backward(B, L, nullptr, nullptr, dz.data(), dmu2.data(), nullptr);
  EXPECT_EQ(dmu2, dz);
}

// ---------------------------------------------------------------- log densities

TEST(LogDensities, MatchClosedForms) {
  vd::Rng rng(8);
  const int L = 50;
  const auto z = normals(rng, L, 2.0);
  const auto mu = normals(rng, L, 1.0);
  const auto lv = normals(rng, L, 1.0);
  double want = 0, want_std = 0;
  for (int j = 0; j < L; ++j) {
    const double var = std::exp(double(lv[j]));
    const double e = double(z[j]) - mu[j];
    want += -0.5 * (kLog2Pi + lv[j] + e * e / var);
    want_std += -0.5 * (kLog2Pi + double(z[j]) * z[j]);
  }
  EXPECT_LT(rel_err(vd::log_normal_diag(L, z.data(), mu.data(), lv.data()), want), 1e-13);
  EXPECT_LT(rel_err(vd::log_standard_normal(L, z.data()), want_std), 1e-13);
  // Standard parameters reduce to the standard normal; z = mu gives the peak.
  const std::vector<float> zeros(L, 0.0f);
  EXPECT_DOUBLE_EQ(vd::log_normal_diag(L, z.data(), zeros.data(), zeros.data()),
                   vd::log_standard_normal(L, z.data()));
  const float m1 = 0.3f, l1 = 1.2f;
  EXPECT_NEAR(vd::log_normal_diag(1, &m1, &m1, &l1), -0.5 * (kLog2Pi + double(l1)), 1e-15);
}

TEST(LogMeanExp, StableForLargeMagnitudes) {
  const double big[] = {1000.0, 1000.0};
  EXPECT_DOUBLE_EQ(vd::log_mean_exp(big, 2), 1000.0);
  const double small[] = {-1000.0, -1000.0, -1000.0};
  EXPECT_DOUBLE_EQ(vd::log_mean_exp(small, 3), -1000.0);
  const double mixed[] = {1000.0, -1000.0};
  EXPECT_DOUBLE_EQ(vd::log_mean_exp(mixed, 2), 1000.0 - std::log(2.0));
  const double two[] = {0.0, std::log(3.0)};
  EXPECT_NEAR(vd::log_mean_exp(two, 2), std::log(2.0), 1e-15);
  const double one[] = {-7.5};
  EXPECT_EQ(vd::log_mean_exp(one, 1), -7.5);
  const double inf = std::numeric_limits<double>::infinity();
  const double with_neg_inf[] = {-inf, 2.0};
  EXPECT_DOUBLE_EQ(vd::log_mean_exp(with_neg_inf, 2), 2.0 - std::log(2.0));
  const double all_neg_inf[] = {-inf, -inf};
  EXPECT_EQ(vd::log_mean_exp(all_neg_inf, 2), -inf);
  EXPECT_THROW(vd::log_mean_exp(one, 0), vd::ShapeError);
}

// ---------------------------------------------------------------- errors and timing

TEST(LossErrors, BadSizesAndNullArraysThrowShapeError) {
  std::vector<float> a(4, 0.0f);
  std::vector<double> per(2);
  EXPECT_THROW(vd::bernoulli_nll(-1, 2, a.data(), a.data(), per.data(), nullptr, 1.0f),
               vd::ShapeError);
  EXPECT_THROW(vd::bernoulli_nll(2, 2, nullptr, a.data(), per.data(), nullptr, 1.0f),
               vd::ShapeError);
  EXPECT_THROW(
      vd::kl_standard_normal(2, -2, a.data(), a.data(), per.data(), nullptr, nullptr, 1.0f),
      vd::ShapeError);
  EXPECT_THROW(vd::reparameterize(2, 2, a.data(), a.data(), nullptr, a.data()), vd::ShapeError);
  EXPECT_THROW(vd::log_standard_normal(-3, a.data()), vd::ShapeError);
  // Empty batches are fine and touch nothing.
  EXPECT_NO_THROW(vd::bernoulli_nll(0, 784, nullptr, nullptr, nullptr, nullptr, 1.0f));
}

}  // namespace
