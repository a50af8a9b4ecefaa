// Anomaly scores of a trained VAE per data row (vae_latent score): the negative ELBO, the
// importance-weighted -log p(x), the reconstruction error through z = mu, the per-feature
// log-likelihood, and PSNR / SSIM for images. Every row's noise comes from a stream of its own
// (the seed and the row), so a row's scores do not depend on which rank or batch holds it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/feature_scaling.hpp"
#include "nn/context.hpp"
#include "vae/latent_model.hpp"

namespace vd {

struct ScoreSettings {
  int iw_samples = 0;          // k of the importance-weighted bound; 0 = not computed
  bool per_pixel = false;      // the per-feature log-likelihood [N, D]
  bool image_quality = false;  // PSNR and SSIM (2-D images of at least 7 x 7)
  double data_range = 1.0;     // PSNR's and SSIM's data_range, in the data's units
  uint64_t seed = 0;
};

// The noise streams: row r's ELBO sample is Rng(derive_seed(seed, kScoreEpsStream, r))'s first
// L normals; its importance samples come from Rng(derive_seed(seed, kScoreIwStream, r)), one
// fill_normal of L values per sample, in order.
inline constexpr uint64_t kScoreEpsStream = 0x5c0e0000, kScoreIwStream = 0x5c0e0001;

// Per-row scores of n rows, each [n] (pixel_loglik [n, D]); the optional ones are empty when
// not asked for.
struct RowScores {
  int64_t n = 0;
  int D = 0;
  std::vector<double> neg_elbo, recon, kl;  // one z sample: recon + kl, nats
  std::vector<double> iw_nll;               // -log (1/k) sum_i p(x, z_i) / q(z_i | x)
  std::vector<double> recon_nll_mu;         // -log p(x | z = mu)
  std::vector<double> sq_error_mu;          // sum_d (x_d - E[x_d | z = mu])^2, data units
  std::vector<double> psnr, ssim;           // x against E[x | z = mu], data units
  std::vector<float> pixel_loglik;          // log p(x_d | z = mu) [n, D]

  void resize(int64_t rows, int features, const ScoreSettings& set);
  // The [n] score columns that are present, by their data set names, in a fixed order.
  std::vector<std::pair<std::string, const std::vector<double>*>> columns() const;
};

// Scores a batch of B rows x [B, D] (the model's units; labels [B] for a conditional model)
// whose row i is the data set's row first_row + i; only rows [lo, hi) are real (the others
// pad the batch to its full size and are ignored). Row i's scores go to out's row
// out_offset + i - lo. `scaling` (may be null or empty) maps the model's units back to the
// data's, for the squared error, PSNR and SSIM.
void score_batch(Context& ctx, LatentModel& vae, int B, const float* x, const int32_t* labels,
                 int64_t first_row, int lo, int hi, const ScoreSettings& set,
                 const FeatureScaling* scaling, RowScores& out, int64_t out_offset);

// log p(x_d | decoder output o_d) per feature of one sample, in double: Bernoulli on logits,
// x l - softplus(l); Gaussian with a fixed sigma or a learned log-variance (one value, or one
// per feature). out [D]; they sum to minus the likelihood's NLL.
void feature_log_likelihood(const ModelConfig& config, const std::vector<float>& output_logvar,
                            int D, const float* out, const float* x, double* ll);

}  // namespace vd
