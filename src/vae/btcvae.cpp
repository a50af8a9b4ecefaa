// beta-TCVAE: the minibatch-weighted sampling estimator over the global batch and the step that
// exchanges every rank's mu and logvar for it (vae/btcvae.hpp).
#include "vae/btcvae.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/error.hpp"
#include "vae/loss.hpp"

namespace vd {

TcTerms tc_estimate(int n, int L, const float* zs, const double* stats, int64_t M,
                    const int64_t* own, int64_t dataset_rows, double beta, double weight, float* dz,
                    double* dstats, std::vector<TcTerms>* per_sample) {
  VD_CHECK(dataset_rows > 0 && M > 0, ShapeError,
           "beta-TCVAE's estimator needs the training set's row count and a non-empty batch");
  const size_t Ls = static_cast<size_t>(L), L2 = 2 * Ls, Ms = static_cast<size_t>(M);
  const double log_nm = std::log(static_cast<double>(dataset_rows) * static_cast<double>(M));
  const double c2pi = std::log(2 * std::numbers::pi);
  // The latent loss alpha mi + beta tc + gamma dwkl (alpha = gamma = 1) is
  //   log q(z|x) + (beta - 1) log q(z) + (1 - beta) sum_d log q(z_d) - log p(z).
  const double ca = 1.0, cb = beta - 1.0, cc = 1.0 - beta;
  std::vector<double> inv_var(Ms * Ls), l(Ms * Ls), S(Ms), lse_d(Ls), dz_acc(Ls);
  for (size_t j = 0; j < Ms; ++j)
    for (size_t d = 0; d < Ls; ++d) inv_var[j * Ls + d] = std::exp(-stats[j * L2 + Ls + d]);
  TcTerms total;
  if (per_sample) per_sample->assign(static_cast<size_t>(n), TcTerms{});
  for (int i = 0; i < n; ++i) {
    const float* z = zs + static_cast<size_t>(i) * Ls;
    // l_ijd and S_ij = sum_d l_ijd.
    double s_max = -std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < Ms; ++j) {
      double s = 0;
      for (size_t d = 0; d < Ls; ++d) {
        const double e = double{z[d]} - stats[j * L2 + d];
        const double v = -0.5 * (c2pi + stats[j * L2 + Ls + d] + e * e * inv_var[j * Ls + d]);
        l[j * Ls + d] = v;
        s += v;
      }
      S[j] = s;
      s_max = std::max(s_max, s);
    }
    // The softmax weights are kept from the sums (exp once per term): S becomes softmax_j S_ij,
    // l becomes softmax_j l_ijd after the sums are taken.
    const double log_qzx = S[static_cast<size_t>(own[i])];
    double s_sum = 0;
    for (size_t j = 0; j < Ms; ++j) s_sum += (S[j] = std::exp(S[j] - s_max));
    const double lse_s = s_max + std::log(s_sum);
    for (size_t j = 0; j < Ms; ++j) S[j] /= s_sum;
    double log_prod = 0;
    for (size_t d = 0; d < Ls; ++d) {
      double m = -std::numeric_limits<double>::infinity();
      for (size_t j = 0; j < Ms; ++j) m = std::max(m, l[j * Ls + d]);
      double sum = 0;
      for (size_t j = 0; j < Ms; ++j) sum += (l[j * Ls + d] = std::exp(l[j * Ls + d] - m));
      lse_d[d] = m + std::log(sum);
      for (size_t j = 0; j < Ms; ++j) l[j * Ls + d] /= sum;
      log_prod += lse_d[d] - log_nm;
    }
    const double log_qz = lse_s - log_nm;
    double log_pz = 0;
    for (size_t d = 0; d < Ls; ++d) log_pz += -0.5 * (c2pi + double{z[d]} * z[d]);
    const TcTerms t{log_qzx - log_qz, log_qz - log_prod, log_prod - log_pz};
    total.mi += t.mi, total.tc += t.tc, total.dwkl += t.dwkl;
    if (per_sample) (*per_sample)[static_cast<size_t>(i)] = t;
    if (weight == 0) continue;
    // d/dl_ijd of the latent loss: ca [j = own] + cb softmax_j(S_ij) + cc softmax_j(l_ijd).
    std::fill(dz_acc.begin(), dz_acc.end(), 0.0);
    for (size_t j = 0; j < Ms; ++j) {
      const double wj = S[j];
      const double self = static_cast<int64_t>(j) == own[i] ? ca : 0.0;
      for (size_t d = 0; d < Ls; ++d) {
        const double vjd = l[j * Ls + d];
        const double C = weight * (self + cb * wj + cc * vjd);
        const double e = double{z[d]} - stats[j * L2 + d];
        const double t_e = e * inv_var[j * Ls + d];  // -dl/dz = dl/dmu
        dz_acc[d] -= C * t_e;
        dstats[j * L2 + d] += C * t_e;
        dstats[j * L2 + Ls + d] += C * 0.5 * (t_e * e - 1.0);  // dl/dlogvar
      }
    }
    // -log p(z) adds z to dz.
    for (size_t d = 0; d < Ls; ++d)
      dz[static_cast<size_t>(i) * Ls + d] += static_cast<float>(dz_acc[d] + weight * z[d]);
  }
  return total;
}

const std::vector<std::string>& BtcVae::term_names() const {
  static const std::vector<std::string> names = {"recon", "kl", "mi", "tc", "dwkl"};
  return names;
}

LossSums BtcVae::train_step(Context& ctx, const Batch& batch, float beta, float grad_scale) {
  LossSums sums;
  const int n = batch.n, L = config_.latent_dim;
  const size_t Ls = static_cast<size_t>(L), L2 = 2 * Ls, ns = static_cast<size_t>(n);
  if (n > 0) {
    ensure_workspace(n);
    set_condition(n, batch.labels);
    encoder_forward(ctx, n, batch.x);
  }
  // Every rank's mu and logvar: the estimator of each sample runs over the global batch.
  stats_.resize(ns * L2);
  for (size_t b = 0; b < ns; ++b)
    for (size_t d = 0; d < Ls; ++d) {
      stats_[b * L2 + d] = mu_[b * Ls + d];
      stats_[b * L2 + Ls + d] = logvar_[b * Ls + d];
    }
  size_t offset = 0;
  if (ctx.batch_reducer) {
    ctx.batch_reducer->gather(stats_, all_stats_, offset);
  } else {
    all_stats_ = stats_;
  }
  const int64_t M = static_cast<int64_t>(all_stats_.size() / L2);
  dstats_.assign(all_stats_.size(), 0.0);
  if (n > 0) {
    reparameterize(n, L, mu_, logvar_, batch.eps, z_.data());
    decoder_step(ctx, n, batch.x, grad_scale);
    own_.resize(ns);
    for (size_t b = 0; b < ns; ++b) own_[b] = static_cast<int64_t>(offset / L2 + b);
    const TcTerms t =
        tc_estimate(n, L, z_.data(), all_stats_.data(), M, own_.data(), config_.dataset_rows, beta,
                    grad_scale, diff_z_.data(), dstats_.data());
    sums.term[kMi] = t.mi;
    sums.term[kTc] = t.tc;
    sums.term[kDwkl] = t.dwkl;
  }
  // The gradient of each rank's mu and logvar has parts from every rank's samples.
  if (ctx.batch_reducer) {
    ctx.batch_reducer->start(dstats_);
    ctx.batch_reducer->finish();
  }
  if (n == 0) {
    store_.zero_grads();
    return sums;
  }
  reparameterize_backward(n, L, logvar_, batch.eps, diff_z_.data(), diff_mu_.data(),
                          diff_logvar_.data());
  const double* mine = dstats_.data() + offset;
  for (size_t b = 0; b < ns; ++b)
    for (size_t d = 0; d < Ls; ++d) {
      diff_mu_[b * Ls + d] += static_cast<float>(mine[b * L2 + d]);
      diff_logvar_[b * Ls + d] += static_cast<float>(mine[b * L2 + Ls + d]);
    }
  kl_standard_normal(n, L, mu_, logvar_, kl_ws_.data(), nullptr, nullptr, 0.0f);
  for (size_t b = 0; b < ns; ++b) {
    sums.term[kRecon] += recon_ws_[b];
    sums.term[kKl] += kl_ws_[b];
  }
  sums.loss = sums.term[kRecon] + sums.term[kMi] + beta * sums.term[kTc] + sums.term[kDwkl];
  sums.count = n;
  if (clamps_logvar())
    clamp_backward(ns * Ls, logvar_raw_, config_.logvar_min, config_.logvar_max,
                   diff_logvar_.data());
  encoder_backward(ctx, n, batch.x);
  return sums;
}

LossSums BtcVae::evaluate(Context& ctx, const Batch& batch, float /*beta*/, PosteriorStats* stats,
                          const EvalOutputs* per_sample) {
  LossSums s = Vae::evaluate(ctx, batch, 1.0f, stats, per_sample);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.term[kMi] = s.term[kTc] = s.term[kDwkl] = nan;
  return s;
}

}  // namespace vd
