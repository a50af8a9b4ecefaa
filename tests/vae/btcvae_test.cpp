// Tests of beta-TCVAE (vae/btcvae.hpp) against a double-precision reference written here from
// Chen et al. 2018's minibatch-weighted sampling formulas, over the reference VAE's networks
// (tests/support/reference_vae.hpp): the estimated terms, the loss, and every parameter's
// gradient by central finite differences (eps held fixed); beta = 1 leaves the Monte Carlo KL.
#include "vae/btcvae.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"

namespace {

using vd::testing::ReferenceVae;

struct TcSetup {
  vd::ModelConfig cfg;
  vd::ParamStore store;
  std::unique_ptr<vd::BtcVae> model;
  vd::Context ctx;
  std::vector<float> x, eps;
  int B;
  TcSetup(vd::ModelConfig c, int batch) : cfg(std::move(c)), B(batch) {
    model = std::make_unique<vd::BtcVae>(cfg, store);
    store.finalize();
    vd::Rng rng(5);
    model->init(rng);
    x.resize(static_cast<size_t>(B) * cfg.data.size());
    for (auto& v : x) v = static_cast<float>(rng.uniform());
    eps.resize(static_cast<size_t>(B) * cfg.latent_dim);
    rng.fill_normal(eps.data(), eps.size());
  }
};

double log_sum_exp(const std::vector<double>& v) {
  double m = v[0];
  for (double a : v) m = std::max(m, a);
  double s = 0;
  for (double a : v) s += std::exp(a - m);
  return m + std::log(s);
}

struct Reference {
  double loss = 0, recon = 0, mi = 0, tc = 0, dwkl = 0;  // means over the batch
};

// The whole batch in double: mi, tc and dwkl of every sample by the formulas of the paper's
// estimator, written with the batch's M samples and N training rows.
Reference reference(const ReferenceVae& ref, const std::vector<double>& p, const TcSetup& s,
                    double beta, double N) {
  const size_t D = static_cast<size_t>(s.cfg.data.size()),
               L = static_cast<size_t>(s.cfg.latent_dim);
  const int M = s.B;
  std::vector<ReferenceVae::Sample> smp;
  for (int b = 0; b < M; ++b)
    smp.push_back(ref.forward(p, s.x.data() + b * D, s.eps.data() + b * L, 0));
  const double c = std::log(2 * std::numbers::pi);
  const auto log_q = [&](int i, int j, size_t d) {  // log q(z_id | x_j)
    const double e = smp[i].z[d] - smp[j].mu[d];
    return -0.5 * (c + smp[j].logvar[d] + e * e / std::exp(smp[j].logvar[d]));
  };
  Reference r;
  for (int i = 0; i < M; ++i) {
    std::vector<double> joint(M, 0.0);
    for (int j = 0; j < M; ++j)
      for (size_t d = 0; d < L; ++d) joint[j] += log_q(i, j, d);
    const double log_qz = log_sum_exp(joint) - std::log(N * M);
    double log_prod = 0, log_pz = 0;
    for (size_t d = 0; d < L; ++d) {
      std::vector<double> m(M);
      for (int j = 0; j < M; ++j) m[j] = log_q(i, j, d);
      log_prod += log_sum_exp(m) - std::log(N * M);
      log_pz += -0.5 * (c + smp[i].z[d] * smp[i].z[d]);
    }
    const double mi = joint[i] - log_qz, tc = log_qz - log_prod, dw = log_prod - log_pz;
    const double rec = ref.recon(smp[i], s.x.data() + i * D);
    r.recon += rec / M;
    r.mi += mi / M;
    r.tc += tc / M;
    r.dwkl += dw / M;
    r.loss += (rec + mi + beta * tc + dw) / M;
  }
  return r;
}

void check(vd::ModelConfig cfg, double beta) {
  cfg.model = "btcvae";
  cfg.dataset_rows = 50;
  TcSetup s(std::move(cfg), 6);
  const vd::LossSums sums =
      s.model->train_step(s.ctx, {s.B, s.x.data(), nullptr, s.eps.data()}, static_cast<float>(beta),
                          1.0f / static_cast<float>(s.B));
  const ReferenceVae ref{*s.model, s.store};
  std::vector<double> p(s.store.params().begin(), s.store.params().end());
  const Reference want = reference(ref, p, s, beta, 50);
  const double B = s.B;
  EXPECT_NEAR(sums.loss / B, want.loss, 1e-5 * std::abs(want.loss));
  EXPECT_NEAR(sums.term[vd::Vae::kRecon] / B, want.recon, 1e-5 * std::abs(want.recon));
  EXPECT_NEAR(sums.term[vd::BtcVae::kMi] / B, want.mi, 1e-4 * std::abs(want.mi) + 1e-6);
  EXPECT_NEAR(sums.term[vd::BtcVae::kTc] / B, want.tc, 1e-4 * std::abs(want.tc) + 1e-6);
  EXPECT_NEAR(sums.term[vd::BtcVae::kDwkl] / B, want.dwkl, 1e-4 * std::abs(want.dwkl) + 1e-6);
  ASSERT_GT(std::abs(want.tc), 1e-3) << "the test needs a total correlation to weigh";

  const std::vector<double> fd = vd::testing::numeric_gradient(
      [&](const std::vector<double>& q) { return reference(ref, q, s, beta, 50).loss; }, p);
  const auto grads = s.store.grads();
  double gmax = 0;
  for (double g : fd) gmax = std::max(gmax, std::abs(g));
  ASSERT_GT(gmax, 1e-3);
  size_t bad = 0;
  for (const auto& e : s.store.entries()) {
    double emax = 0;
    for (size_t k = 0; k < e.size; ++k) {
      const size_t i = e.offset + k;
      emax = std::max(emax, std::abs(fd[i]));
      if (std::abs(grads[i] - fd[i]) > 2e-3 * std::abs(fd[i]) + 2e-5 * gmax && bad++ < 10)
        ADD_FAILURE() << e.name << "[" << k << "]: analytic " << grads[i] << " vs finite "
                      << "difference " << fd[i];
    }
    EXPECT_GT(emax, 0.0) << e.name << " gets no gradient at all";
  }
  EXPECT_EQ(bad, 0u);
}

TEST(BtcVae, TermsLossAndGradientsMatchTheDoublePrecisionEstimator) {
  check(vd::ModelConfig::mlp(10, {8}, 3), 6.0);
}

TEST(BtcVae, GaussianConditionalFreeAndBetaOneAlsoMatch) {
  vd::ModelConfig g = vd::ModelConfig::mlp(10, {8}, 4);
  g.likelihood = vd::Likelihood::Gaussian;
  g.gaussian_sigma = 0.5f;
  check(g, 1.0);
  check(g, 0.0);
}

// mi + tc + dwkl = log q(z|x) - log p(z) for every sample, whatever the estimator of log q(z):
// at beta = 1 the loss is recon plus the Monte Carlo KL of one sample.
TEST(BtcVae, AtBetaOneTheLatentTermIsTheMonteCarloKl) {
  vd::ModelConfig cfg = vd::ModelConfig::mlp(10, {8}, 3);
  cfg.dataset_rows = 1000;
  TcSetup s(cfg, 7);
  const vd::LossSums sums =
      s.model->train_step(s.ctx, {s.B, s.x.data(), nullptr, s.eps.data()}, 1.0f, 1.0f);
  const ReferenceVae ref{*s.model, s.store};
  std::vector<double> p(s.store.params().begin(), s.store.params().end());
  const size_t D = 10, L = 3;
  double mc = 0;
  for (int b = 0; b < s.B; ++b) {
    const auto smp = ref.forward(p, s.x.data() + b * D, s.eps.data() + b * L, 0);
    for (size_t d = 0; d < L; ++d) {
      const double e = smp.z[d] - smp.mu[d];
      mc += -0.5 * (smp.logvar[d] + e * e / std::exp(smp.logvar[d])) + 0.5 * smp.z[d] * smp.z[d];
    }
  }
  EXPECT_NEAR(sums.loss - sums.term[vd::Vae::kRecon], mc, 1e-5 * std::abs(mc) + 1e-5);
  // The evaluation is the ELBO's: recon + the analytic KL, the estimator's terms not given.
  const vd::LossSums ev = s.model->evaluate(s.ctx, {s.B, s.x.data(), nullptr, s.eps.data()}, 6.0f);
  EXPECT_DOUBLE_EQ(ev.loss, ev.term[vd::Vae::kRecon] + ev.term[vd::Vae::kKl]);
  EXPECT_TRUE(std::isnan(ev.term[vd::BtcVae::kTc]));
}

}  // namespace
