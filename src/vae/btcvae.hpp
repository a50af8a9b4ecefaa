// beta-TCVAE (Chen et al. 2018): the VAE's networks, trained with the KL term decomposed into
// index-code mutual information, total correlation and dimension-wise KL, each estimated by
// minibatch-weighted sampling over the GLOBAL batch, with beta on the total correlation.
#pragma once
#include <string>
#include <vector>

#include "vae/model.hpp"

namespace vd {

// The estimator of one global batch: for sample i with z_i [L] and every sample j's
// q(z|x_j) = N(mu_j, diag exp(lv_j)), with l_ijd = log N(z_id; mu_jd, exp(lv_jd)), M samples and
// N training rows:
//   log q(z_i)         ~ logsumexp_j sum_d l_ijd - log(N M)
//   sum_d log q(z_id)  ~ sum_d (logsumexp_j l_ijd - log(N M))
//   mi_i   = log q(z_i|x_i) - log q(z_i)
//   tc_i   = log q(z_i) - sum_d log q(z_id)
//   dwkl_i = sum_d log q(z_id) - log p(z_i)
// and the latent part of the loss is alpha mi_i + beta tc_i + gamma dwkl_i (alpha = gamma = 1).
struct TcTerms {
  double mi = 0, tc = 0, dwkl = 0;
};

// The estimator and its gradient for the samples `mine` of a global batch. zs [n, L]: the
// samples' z; stats [M, 2L]: every sample's mu then logvar, in global order; own[i] is sample
// i's index in it. With weight != 0, adds weight * d(latent loss)/dz into dz [n, L] and
// weight * d/dmu, d/dlogvar into dstats [M, 2L] (double).
TcTerms tc_estimate(int n, int L, const float* zs, const double* stats, int64_t M,
                    const int64_t* own, int64_t dataset_rows, double beta, double weight, float* dz,
                    double* dstats, std::vector<TcTerms>* per_sample = nullptr);

class BtcVae : public Vae {
 public:
  // Indices of its terms in LossSums::term, after the VAE's recon and kl.
  static constexpr int kMi = 2, kTc = 3, kDwkl = 4;

  BtcVae(const ModelConfig& config, ParamStore& store) : Vae(config, store) {}

  // {"recon", "kl", "mi", "tc", "dwkl"}: kl is the analytic KL, logged for comparison; the
  // loss is recon + mi + beta * tc + dwkl over the global batch.
  const std::vector<std::string>& term_names() const override;
  // Every rank joins ctx.batch_reducer's gather and sum, also with n = 0.
  LossSums train_step(Context& ctx, const Batch& batch, float beta, float grad_scale) override;
  // The negative ELBO (recon + kl, whatever beta: the estimator needs the global batch, which
  // an evaluation does not form); mi, tc and dwkl are NaN.
  LossSums evaluate(Context& ctx, const Batch& batch, float beta, PosteriorStats* stats = nullptr,
                    const EvalOutputs* per_sample = nullptr) override;

 private:
  std::vector<double> stats_, all_stats_, dstats_;
  std::vector<int64_t> own_;
};

}  // namespace vd
