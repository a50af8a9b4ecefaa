// Tests of vd::Vae against an independent double-precision reference of the whole model:
// loss values, every parameter's gradient by central finite differences (eps held fixed),
// evaluation, the empty batch, and the importance-weighted bound.
#include "vae/model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "support/gradcheck.hpp"

namespace {

using vd::Likelihood;

// The VAE in double precision, reading weights by name from a flat double copy of the
// store, so it shares no code with the oneDNN path.
struct Reference {
  const vd::ParamStore& store;
  vd::VaeConfig cfg;

  std::vector<double> linear(const std::vector<double>& p, const std::string& name,
                             const std::vector<double>& in, bool relu) const {
    const auto& w = store.find(name + ".weight");
    const auto& b = store.find(name + ".bias");
    const size_t O = static_cast<size_t>(w.shape[0]), I = static_cast<size_t>(w.shape[1]);
    std::vector<double> out(O);
    for (size_t o = 0; o < O; ++o) {
      double acc = p[b.offset + o];
      for (size_t i = 0; i < I; ++i) acc += p[w.offset + o * I + i] * in[i];
      out[o] = relu ? std::max(acc, 0.0) : acc;
    }
    return out;
  }

  struct Sample {
    std::vector<double> mu, logvar, z, out;
  };
  Sample forward(const std::vector<double>& p, const float* x, const float* eps) const {
    Sample s;
    std::vector<double> h(x, x + cfg.data_dim);
    for (size_t i = 0; i < cfg.hidden.size(); ++i)
      h = linear(p, "encoder.fc" + std::to_string(i + 1), h, true);
    s.mu = linear(p, "encoder.mu", h, false);
    s.logvar = linear(p, "encoder.logvar", h, false);
    s.z.resize(s.mu.size());
    for (size_t j = 0; j < s.z.size(); ++j) s.z[j] = s.mu[j] + std::exp(0.5 * s.logvar[j]) * eps[j];
    h = s.z;
    for (size_t i = 0; i < cfg.hidden.size(); ++i)
      h = linear(p, "decoder.fc" + std::to_string(i + 1), h, true);
    s.out = linear(p, "decoder.out", h, false);
    return s;
  }
  double recon(const Sample& s, const float* x) const {
    double r = 0;
    for (int d = 0; d < cfg.data_dim; ++d) {
      const double l = s.out[d];
      if (cfg.likelihood == Likelihood::Bernoulli) {
        r += std::max(l, 0.0) + std::log1p(std::exp(-std::abs(l))) - x[d] * l;
      } else {
        const double sg = cfg.gaussian_sigma, e = (x[d] - l) / sg;
        r += 0.5 * e * e + std::log(sg) + 0.5 * std::log(2 * std::numbers::pi);
      }
    }
    return r;
  }
  static double kl(const Sample& s) {
    double k = 0;
    for (size_t j = 0; j < s.mu.size(); ++j)
      k += -0.5 * (1 + s.logvar[j] - s.mu[j] * s.mu[j] - std::exp(s.logvar[j]));
    return k;
  }
  // Mean over the batch of recon + beta * kl.
  double loss(const std::vector<double>& p, int B, const float* x, const float* eps,
              double beta) const {
    double total = 0;
    for (int b = 0; b < B; ++b) {
      const float* xb = x + static_cast<size_t>(b) * cfg.data_dim;
      const Sample s = forward(p, xb, eps + static_cast<size_t>(b) * cfg.latent_dim);
      total += recon(s, xb) + beta * kl(s);
    }
    return total / B;
  }
};

struct Fixture {
  vd::VaeConfig cfg;
  vd::ParamStore store;
  std::unique_ptr<vd::Vae> vae;
  vd::Context ctx;
  std::vector<float> x, eps;
  int B;

  Fixture(Likelihood lik, int batch, std::vector<int> hidden) : B(batch) {
    cfg.data_dim = 12;
    cfg.hidden = std::move(hidden);
    cfg.latent_dim = 3;
    cfg.likelihood = lik;
    cfg.gaussian_sigma = 0.7f;
    vae = std::make_unique<vd::Vae>(cfg, store);
    store.finalize();
    vd::Rng rng(5);
    vae->init(rng);
    x.resize(static_cast<size_t>(B) * cfg.data_dim);
    for (auto& v : x) v = static_cast<float>(rng.uniform());
    eps.resize(static_cast<size_t>(B) * cfg.latent_dim);
    rng.fill_normal(eps.data(), eps.size());
  }
  std::vector<double> params_double() const {
    auto p = store.params();
    return std::vector<double>(p.begin(), p.end());
  }
};

void check_gradients(Likelihood lik, std::vector<int> hidden) {
  Fixture f(lik, 5, std::move(hidden));
  const double beta = 0.7;
  const vd::LossSums sums =
      f.vae->train_step(f.ctx, f.B, f.x.data(), f.eps.data(), beta, 1.0f / f.B);
  Reference ref{f.store, f.cfg};
  std::vector<double> p = f.params_double();
  const double ref_loss = ref.loss(p, f.B, f.x.data(), f.eps.data(), beta);
  EXPECT_NEAR(sums.loss / f.B, ref_loss, 1e-5 * std::abs(ref_loss));
  EXPECT_EQ(sums.count, f.B);
  EXPECT_NEAR(sums.loss, sums.recon + beta * sums.kl, 1e-9 * std::abs(sums.loss));

  const auto grads = f.store.grads();
  const std::vector<double> fd = vd::testing::numeric_gradient(
      [&](const std::vector<double>& q) {
        return ref.loss(q, f.B, f.x.data(), f.eps.data(), beta);
      },
      p);
  double gmax = 0;
  for (double g : fd) gmax = std::max(gmax, std::abs(g));
  ASSERT_GT(gmax, 1e-3);
  size_t bad = 0;
  for (const auto& e : f.store.entries()) {
    for (size_t k = 0; k < e.size; ++k) {
      const size_t i = e.offset + k;
      const double tol = 2e-3 * std::abs(fd[i]) + 2e-5 * gmax;
      if (std::abs(grads[i] - fd[i]) > tol && bad++ < 10)
        ADD_FAILURE() << e.name << "[" << k << "]: analytic " << grads[i] << " vs finite "
                      << "difference " << fd[i];
    }
  }
  EXPECT_EQ(bad, 0u);
}

TEST(Vae, BernoulliLossGradientMatchesFiniteDifferencesForEveryParameter) {
  check_gradients(Likelihood::Bernoulli, {7});
}

TEST(Vae, GaussianLossGradientMatchesFiniteDifferencesWithTwoHiddenLayers) {
  check_gradients(Likelihood::Gaussian, {9, 6});
}

TEST(Vae, EvaluateEqualsTheTrainingForwardPass) {
  Fixture f(Likelihood::Bernoulli, 6, {8});
  const vd::LossSums e = f.vae->evaluate(f.ctx, f.B, f.x.data(), f.eps.data(), 1.0f);
  const vd::LossSums t = f.vae->train_step(f.ctx, f.B, f.x.data(), f.eps.data(), 1.0f, 1.0f);
  EXPECT_DOUBLE_EQ(e.loss, t.loss);
  EXPECT_DOUBLE_EQ(e.recon, t.recon);
  EXPECT_DOUBLE_EQ(e.kl, t.kl);
}

TEST(Vae, EmptyBatchGivesZeroGradientsAndNoLoss) {
  Fixture f(Likelihood::Bernoulli, 4, {8});
  f.vae->train_step(f.ctx, f.B, f.x.data(), f.eps.data(), 1.0f, 1.0f);
  const vd::LossSums s = f.vae->train_step(f.ctx, 0, f.x.data(), f.eps.data(), 1.0f, 1.0f);
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.loss, 0.0);
  for (float g : f.store.grads()) ASSERT_EQ(g, 0.0f);
}

TEST(Vae, ImportanceWeightedBoundMatchesReferenceAndTightensWithK) {
  Fixture f(Likelihood::Bernoulli, 3, {8});
  Reference ref{f.store, f.cfg};
  const auto p = f.params_double();
  const int k = 4, L = f.cfg.latent_dim, D = f.cfg.data_dim;
  vd::Rng rng(77), replay(77);
  const double got = f.vae->iw_log_likelihood_sum(f.ctx, f.B, f.x.data(), k, rng);

  // The same draws, in the same order: k rounds of [B, L] normals.
  std::vector<std::vector<float>> eps(k, std::vector<float>(static_cast<size_t>(f.B) * L));
  for (auto& e : eps) replay.fill_normal(e.data(), e.size());
  double expected = 0;
  for (int b = 0; b < f.B; ++b) {
    const float* xb = f.x.data() + static_cast<size_t>(b) * D;
    std::vector<double> logw;
    for (int s = 0; s < k; ++s) {
      const auto smp = ref.forward(p, xb, eps[s].data() + static_cast<size_t>(b) * L);
      double log_p_z = 0, log_q = 0;
      for (int j = 0; j < L; ++j) {
        const double z = smp.z[j], m = smp.mu[j], lv = smp.logvar[j];
        log_p_z += -0.5 * (z * z + std::log(2 * std::numbers::pi));
        log_q += -0.5 * ((z - m) * (z - m) / std::exp(lv) + lv + std::log(2 * std::numbers::pi));
      }
      logw.push_back(-ref.recon(smp, xb) + log_p_z - log_q);
    }
    const double mx = *std::max_element(logw.begin(), logw.end());
    double acc = 0;
    for (double w : logw) acc += std::exp(w - mx);
    expected += mx + std::log(acc / k);
  }
  EXPECT_NEAR(got, expected, 1e-4 * std::abs(expected));

  // On average over draws the bound rises with k (Burda et al., Theorem 1).
  vd::Rng r1(1), r50(2);
  double k1 = 0, k50 = 0;
  for (int rep = 0; rep < 20; ++rep) {
    k1 += f.vae->iw_log_likelihood_sum(f.ctx, f.B, f.x.data(), 1, r1);
    k50 += f.vae->iw_log_likelihood_sum(f.ctx, f.B, f.x.data(), 50, r50);
  }
  EXPECT_GT(k50, k1);
}

}  // namespace
