// The per-row anomaly scores, from the Vae's evaluation pass (its per-sample terms and decoder
// output) and the loss pieces of vae/loss.hpp.
#include "vae/anomaly.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "vae/image_quality.hpp"
#include "vae/loss.hpp"

namespace vd {

void RowScores::resize(int64_t rows, int features, const ScoreSettings& set) {
  n = rows;
  D = features;
  const size_t r = static_cast<size_t>(rows);
  for (auto* v : {&neg_elbo, &recon, &kl, &recon_nll_mu, &sq_error_mu}) v->assign(r, 0.0);
  iw_nll.assign(set.iw_samples > 0 ? r : 0, 0.0);
  psnr.assign(set.image_quality ? r : 0, 0.0);
  ssim.assign(set.image_quality ? r : 0, 0.0);
  pixel_loglik.assign(set.per_pixel ? r * static_cast<size_t>(features) : 0, 0.0f);
}

std::vector<std::pair<std::string, const std::vector<double>*>> RowScores::columns() const {
  std::vector<std::pair<std::string, const std::vector<double>*>> c = {
      {"neg_elbo", &neg_elbo}, {"recon", &recon}, {"kl", &kl}};
  if (!iw_nll.empty()) c.push_back({"iw_nll", &iw_nll});
  c.push_back({"recon_nll_mu", &recon_nll_mu});
  c.push_back({"sq_error_mu", &sq_error_mu});
  if (!psnr.empty()) c.push_back({"psnr", &psnr});
  if (!ssim.empty()) c.push_back({"ssim", &ssim});
  return c;
}

void feature_log_likelihood(const ModelConfig& config, const std::vector<float>& output_logvar,
                            int D, const float* out, const float* x, double* ll) {
  const double half_log_2pi = 0.5 * std::log(2.0 * std::numbers::pi);
  if (config.likelihood == Likelihood::Bernoulli) {
    for (int d = 0; d < D; ++d) {
      const double l = out[d];
      const double softplus = std::max(l, 0.0) + std::log1p(std::exp(-std::abs(l)));
      ll[d] = x[d] * l - softplus;
    }
  } else if (output_logvar.empty()) {
    const double sigma = config.gaussian_sigma;
    for (int d = 0; d < D; ++d) {
      const double e = (static_cast<double>(x[d]) - out[d]) / sigma;
      ll[d] = -(0.5 * e * e + std::log(sigma) + half_log_2pi);
    }
  } else {
    for (int d = 0; d < D; ++d) {
      const double s = output_logvar[output_logvar.size() > 1 ? static_cast<size_t>(d) : 0];
      const double e = static_cast<double>(x[d]) - out[d];
      ll[d] = -0.5 * (e * e * std::exp(-s) + s) - half_log_2pi;
    }
  }
}

void score_batch(Context& ctx, LatentModel& vae, int B, const float* x, const int32_t* labels,
                 int64_t first_row, int lo, int hi, const ScoreSettings& set,
                 const FeatureScaling* scaling, RowScores& out, int64_t out_offset) {
  VD_CHECK(0 <= lo && lo <= hi && hi <= B, ShapeError, "score_batch: rows outside the batch");
  if (lo == hi) return;
  const ModelConfig& config = vae.config();
  const int L = config.latent_dim;
  const int D = static_cast<int>(config.data.size());
  const size_t BL = static_cast<size_t>(B) * L, BD = static_cast<size_t>(B) * D;
  const auto dst = [&](int i) { return static_cast<size_t>(out_offset + i - lo); };
  std::vector<double> recon(static_cast<size_t>(B)), kl(recon.size());
  std::vector<float> eps(BL, 0.0f);
  Batch batch{B, x, labels, eps.data()};

  // The negative ELBO with one z per row, from the row's own stream (padding rows: eps = 0).
  for (int i = lo; i < hi; ++i)
    Rng(Rng::derive_seed(set.seed, kScoreEpsStream, static_cast<uint64_t>(first_row + i)))
        .fill_normal(eps.data() + static_cast<size_t>(i) * L, static_cast<size_t>(L));
  EvalOutputs terms{recon.data(), kl.data(), nullptr};
  vae.evaluate(ctx, batch, 1.0f, nullptr, &terms);
  for (int i = lo; i < hi; ++i) {
    out.recon[dst(i)] = recon[i];
    out.kl[dst(i)] = kl[i];
    out.neg_elbo[dst(i)] = recon[i] + kl[i];
  }

  // Through z = mu: eps = 0 makes evaluate's z = mu + exp(logvar / 2) * 0 = mu exactly.
  std::fill(eps.begin(), eps.end(), 0.0f);
  std::vector<float> dec(BD);
  terms = EvalOutputs{recon.data(), nullptr, dec.data()};
  vae.evaluate(ctx, batch, 1.0f, nullptr, &terms);
  const std::vector<float> out_logvar = vae.output_logvar();
  std::vector<float> mean(dec.size()), xd(x, x + BD);
  for (size_t j = 0; j < BD; ++j)  // the decoder's mean, as Vae::decode_mean computes it
    mean[j] =
        config.likelihood == Likelihood::Bernoulli ? 1.0f / (1.0f + std::exp(-dec[j])) : dec[j];
  if (scaling != nullptr && !scaling->empty()) {
    scaling->invert(mean.data(), B);
    scaling->invert(xd.data(), B);
  }
  std::vector<double> ll(static_cast<size_t>(D));
  const int c = config.data.c, h = config.data.h, w = config.data.w;
  for (int i = lo; i < hi; ++i) {
    const size_t at = static_cast<size_t>(i) * D;
    out.recon_nll_mu[dst(i)] = recon[i];
    double sq = 0;
    for (int d = 0; d < D; ++d) {
      const double e = static_cast<double>(xd[at + d]) - mean[at + d];
      sq += e * e;
    }
    out.sq_error_mu[dst(i)] = sq;
    if (set.per_pixel) {
      feature_log_likelihood(config, out_logvar, D, dec.data() + at, x + at, ll.data());
      float* p = out.pixel_loglik.data() + dst(i) * static_cast<size_t>(D);
      for (int d = 0; d < D; ++d) p[d] = static_cast<float>(ll[d]);
    }
    if (set.image_quality) {
      out.psnr[dst(i)] = psnr(xd.data() + at, mean.data() + at, c, h, w, set.data_range);
      out.ssim[dst(i)] = ssim(xd.data() + at, mean.data() + at, c, h, w, set.data_range);
    }
  }

  // The importance-weighted bound: k evaluations, one importance sample per row each, with
  // log w = -recon + log p(z) - log q(z | x) at z = mu + sigma eps (Burda et al. 2016).
  const int k = set.iw_samples;
  if (k <= 0) return;
  std::vector<float> mu(BL), logvar(BL), z(BL);
  vae.encode(ctx, batch, mu.data(), logvar.data());
  std::vector<Rng> streams;
  for (int i = lo; i < hi; ++i)
    streams.emplace_back(
        Rng::derive_seed(set.seed, kScoreIwStream, static_cast<uint64_t>(first_row + i)));
  std::vector<double> log_w(static_cast<size_t>(B) * k);
  terms = EvalOutputs{recon.data(), nullptr, nullptr};
  for (int s = 0; s < k; ++s) {
    for (int i = lo; i < hi; ++i)
      streams[static_cast<size_t>(i - lo)].fill_normal(eps.data() + static_cast<size_t>(i) * L,
                                                       static_cast<size_t>(L));
    vae.evaluate(ctx, batch, 1.0f, nullptr, &terms);
    reparameterize(B, L, mu.data(), logvar.data(), eps.data(), z.data());
    for (int i = lo; i < hi; ++i) {
      const size_t r = static_cast<size_t>(i) * L;
      log_w[static_cast<size_t>(i) * k + s] =
          -recon[i] + log_standard_normal(L, z.data() + r) -
          log_normal_diag(L, z.data() + r, mu.data() + r, logvar.data() + r);
    }
  }
  for (int i = lo; i < hi; ++i)
    out.iw_nll[dst(i)] = -log_mean_exp(log_w.data() + static_cast<size_t>(i) * k, k);
}

}  // namespace vd
