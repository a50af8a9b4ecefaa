// The per-row anomaly scores against a double-precision reference VAE that shares no numerical
// code with the model (tests/support/reference_vae.hpp), on the rows' own noise streams: the
// negative ELBO and its terms, the importance-weighted -log p(x), the NLL and squared error
// through z = mu, the per-feature log-likelihood (Bernoulli, a fixed and a learned Gaussian
// variance), PSNR and SSIM of the mean reconstruction; a row's scores are the same wherever it
// sits in its batch; and for probabilistic PCA with its exact posterior the importance-weighted
// -log p(x) is the closed-form Gaussian likelihood, for any k.
#include "vae/anomaly.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/rng.hpp"
#include "support/reference_vae.hpp"
#include "support/vae_fixture.hpp"
#include "vae/image_quality.hpp"

namespace vd {
namespace {

using testing::ReferenceVae;
using testing::VaeFixture;

ModelConfig image_mlp(Likelihood lik, bool learned = true) {
  ModelConfig c = ModelConfig::mlp(64, {16}, 3);  // L = 3: fill_normal's odd tail in every draw
  c.data = Shape{1, 8, 8};
  c.likelihood = lik;
  c.gaussian_sigma = 0.7f;
  if (lik == Likelihood::Gaussian && learned)
    c.output_variance = ModelConfig::OutputVariance::LearnedPerOutput;
  return c;
}

double rel(double a, double b) {
  return std::abs(a - b) / std::max(1.0, std::abs(b));
}

void check_scores(Likelihood lik, bool learned = true) {
  VaeFixture f(image_mlp(lik, learned), 6);
  if (lik == Likelihood::Gaussian && learned) {
    // A learned log-variance away from 0, different per output.
    auto v = f.store.param_view(f.store.index_of("decoder.out_logvar"));
    for (size_t j = 0; j < v.size(); ++j) v[j] = -1.0f + 0.03f * static_cast<float>(j);
  }
  ScoreSettings set;
  set.iw_samples = 5;
  set.per_pixel = true;
  set.image_quality = true;
  set.seed = 42;
  const int B = f.B, lo = 1, hi = 5, L = f.cfg.latent_dim, D = 64;
  const int64_t first = 10;  // the batch holds the data set's rows 10..15; 11..14 are real
  RowScores out;
  out.resize(hi - lo, D, set);
  score_batch(f.ctx, *f.vae, B, f.x.data(), f.labels.data(), first, lo, hi, set, nullptr, out, 0);

  ReferenceVae ref{*f.vae, f.store};
  const auto p = f.params_double();
  for (int i = lo; i < hi; ++i) {
    const size_t o = static_cast<size_t>(i - lo);
    const float* x = f.x.data() + static_cast<size_t>(i) * D;
    const auto row = static_cast<uint64_t>(first + i);
    std::vector<float> eps(static_cast<size_t>(L));
    Rng(Rng::derive_seed(42, kScoreEpsStream, row)).fill_normal(eps.data(), eps.size());
    const auto smp = ref.forward(p, x, eps.data(), 0);
    EXPECT_LT(rel(out.recon[o], ref.recon(smp, x)), 1e-5) << i;
    EXPECT_LT(rel(out.kl[o], ReferenceVae::kl(smp)), 1e-5) << i;
    EXPECT_EQ(out.neg_elbo[o], out.recon[o] + out.kl[o]);

    const std::vector<float> zero(static_cast<size_t>(L), 0.0f);
    const auto at_mu = ref.forward(p, x, zero.data(), 0);
    EXPECT_LT(rel(out.recon_nll_mu[o], ref.recon(at_mu, x)), 1e-5) << i;
    std::vector<float> mean(static_cast<size_t>(D));
    double sq = 0, ll_sum = 0;
    for (int d = 0; d < D; ++d) {
      const double m =
          lik == Likelihood::Bernoulli ? 1 / (1 + std::exp(-at_mu.out[d])) : at_mu.out[d];
      mean[static_cast<size_t>(d)] = static_cast<float>(m);
      sq += (x[d] - m) * (x[d] - m);
      ll_sum += out.pixel_loglik[o * D + static_cast<size_t>(d)];
    }
    EXPECT_LT(rel(out.sq_error_mu[o], sq), 1e-5) << i;
    EXPECT_LT(rel(ll_sum, -ref.recon(at_mu, x)), 1e-5) << i;
    // One feature by its formula.
    const double l = at_mu.out[7];
    const double lv7 =
        learned && lik == Likelihood::Gaussian ? at_mu.out_logvar[7] : std::log(0.7 * 0.7);
    const double ll7 = lik == Likelihood::Bernoulli
                           ? x[7] * l - (std::max(l, 0.0) + std::log1p(std::exp(-std::abs(l))))
                           : -0.5 * ((x[7] - l) * (x[7] - l) * std::exp(-lv7) + lv7 +
                                     std::log(2 * std::numbers::pi));
    EXPECT_NEAR(out.pixel_loglik[o * D + 7], ll7, 1e-5 * std::max(1.0, std::abs(ll7)));
    EXPECT_NEAR(out.psnr[o], psnr(x, mean.data(), 1, 8, 8, 1.0), 1e-4);
    EXPECT_NEAR(out.ssim[o], ssim(x, mean.data(), 1, 8, 8, 1.0), 1e-5);

    // log w of each importance sample from the row's second stream, in double.
    Rng iw(Rng::derive_seed(42, kScoreIwStream, row));
    std::vector<double> log_w;
    for (int s = 0; s < set.iw_samples; ++s) {
      iw.fill_normal(eps.data(), eps.size());
      const auto smp_s = ref.forward(p, x, eps.data(), 0);
      double log_p = 0, log_q = 0;
      for (int j = 0; j < L; ++j) {
        const double z = smp_s.z[j], m = smp_s.mu[j], lv = smp_s.logvar[j];
        log_p += -0.5 * (z * z + std::log(2 * std::numbers::pi));
        log_q += -0.5 * ((z - m) * (z - m) / std::exp(lv) + lv + std::log(2 * std::numbers::pi));
      }
      log_w.push_back(-ref.recon(smp_s, x) + log_p - log_q);
    }
    const double mx = *std::max_element(log_w.begin(), log_w.end());
    double acc = 0;
    for (double v : log_w) acc += std::exp(v - mx);
    EXPECT_LT(rel(out.iw_nll[o], -(mx + std::log(acc / set.iw_samples))), 1e-5) << i;
  }
}

TEST(AnomalyScores, BernoulliRowsMatchTheDoublePrecisionReference) {
  check_scores(Likelihood::Bernoulli);
}

TEST(AnomalyScores, LearnedGaussianRowsMatchTheDoublePrecisionReference) {
  check_scores(Likelihood::Gaussian);
}

TEST(AnomalyScores, FixedSigmaGaussianRowsMatchTheDoublePrecisionReference) {
  check_scores(Likelihood::Gaussian, false);
}

TEST(AnomalyScores, ARowsScoresDoNotDependOnItsPlaceInTheBatch) {
  // Rows 3..5 of a data set scored in one batch of 6 (starting at row 0), and again in a batch
  // of 6 starting at row 3 whose other rows are padding: the noise follows the row.
  VaeFixture f(image_mlp(Likelihood::Bernoulli), 6);
  ScoreSettings set;
  set.iw_samples = 3;
  RowScores a, b;
  a.resize(3, 64, set);
  b.resize(3, 64, set);
  score_batch(f.ctx, *f.vae, 6, f.x.data(), f.labels.data(), 0, 3, 6, set, nullptr, a, 0);
  std::vector<float> shifted(f.x.size(), 0.0f);
  std::copy_n(f.x.data() + 3 * 64, 3 * 64, shifted.data());
  score_batch(f.ctx, *f.vae, 6, shifted.data(), f.labels.data(), 3, 0, 3, set, nullptr, b, 0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.neg_elbo[i], b.neg_elbo[i], 1e-4 * std::abs(a.neg_elbo[i])) << i;
    EXPECT_NEAR(a.iw_nll[i], b.iw_nll[i], 1e-4 * std::abs(a.iw_nll[i])) << i;
  }
  // Another seed moves the noisy scores, not the ones through z = mu.
  set.seed = 1;
  score_batch(f.ctx, *f.vae, 6, f.x.data(), f.labels.data(), 0, 3, 6, set, nullptr, b, 0);
  EXPECT_NE(a.neg_elbo[0], b.neg_elbo[0]);
  EXPECT_EQ(a.recon_nll_mu[0], b.recon_nll_mu[0]);
}

// Probabilistic PCA with the exact posterior as encoder: p(x | z) = N(W z + b, s^2 I) with
// orthogonal columns of W, so q(z | x) = N(M^-1 W^T (x - b), s^2 M^-1) with M = W^T W + s^2 I
// diagonal. Then every importance weight p(x, z) / q(z | x) equals p(x), and -log p(x) is
// closed-form: x ~ N(b, W W^T + s^2 I), whose inverse and determinant follow from Woodbury.
TEST(AnomalyScores, TheExactPosteriorsImportanceWeightsAreAllTheClosedFormLikelihood) {
  const int D = 6, L = 2;
  const double s2 = 0.25;
  ModelConfig cfg = ModelConfig::mlp(D, {}, L);
  cfg.likelihood = Likelihood::Gaussian;
  cfg.gaussian_sigma = 0.5f;
  VaeFixture f(cfg, 4);
  const double W[D][L] = {{0.8, 0}, {0.8, 0}, {0, 1.2}, {0, -1.2}, {0, 0}, {0, 0}};
  const double b[D] = {0.1, -0.2, 0.3, 0.05, -0.1, 0.2};
  double m[L] = {s2, s2};
  for (int j = 0; j < L; ++j)
    for (int i = 0; i < D; ++i) m[j] += W[i][j] * W[i][j];
  const auto param = [&](const char* name) { return f.store.param(f.store.index_of(name)); };
  float *dw = param("decoder.out.weight"), *db = param("decoder.out.bias");  // [D, L], [D]
  float *mw = param("encoder.mu.weight"), *mb = param("encoder.mu.bias");    // [L, D], [L]
  float *lw = param("encoder.logvar.weight"), *lb = param("encoder.logvar.bias");
  for (int i = 0; i < D; ++i) {
    db[i] = static_cast<float>(b[i]);
    for (int j = 0; j < L; ++j) dw[i * L + j] = static_cast<float>(W[i][j]);
  }
  for (int j = 0; j < L; ++j) {
    double bias = 0;
    for (int i = 0; i < D; ++i) {
      mw[j * D + i] = static_cast<float>(W[i][j] / m[j]);
      bias -= W[i][j] / m[j] * b[i];
      lw[j * D + i] = 0.0f;
    }
    mb[j] = static_cast<float>(bias);
    lb[j] = static_cast<float>(std::log(s2 / m[j]));
  }
  for (int k : {1, 7}) {
    ScoreSettings set;
    set.iw_samples = k;
    RowScores out;
    out.resize(f.B, D, set);
    score_batch(f.ctx, *f.vae, f.B, f.x.data(), f.labels.data(), 0, 0, f.B, set, nullptr, out, 0);
    for (int r = 0; r < f.B; ++r) {
      // (x-b)^T C^-1 (x-b) = (|e|^2 - sum_j (w_j . e)^2 / m_j) / s^2, log det C = (D - L) log s^2
      // + sum_j log m_j.
      double e2 = 0, quad = 0, logdet = (D - L) * std::log(s2);
      double we[L] = {0, 0};
      for (int i = 0; i < D; ++i) {
        const double e = f.x[static_cast<size_t>(r) * D + i] - b[i];
        e2 += e * e;
        for (int j = 0; j < L; ++j) we[j] += W[i][j] * e;
      }
      quad = e2;
      for (int j = 0; j < L; ++j) {
        quad -= we[j] * we[j] / m[j];
        logdet += std::log(m[j]);
      }
      quad /= s2;
      const double nll = 0.5 * (quad + logdet + D * std::log(2 * std::numbers::pi));
      EXPECT_NEAR(out.iw_nll[r], nll, 1e-5 * std::abs(nll) + 1e-5) << "row " << r << ", k " << k;
    }
  }
}

}  // namespace
}  // namespace vd
