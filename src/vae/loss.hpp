// VAE objective pieces on row-major float batches: decoder likelihoods, the KL term, the
// reparameterisation trick and the log densities of the importance-weighted bound.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vd {

// Conventions shared by every function below.
// * Arrays are row-major float, one row per sample: B = batch, D = data dim, L = latent dim.
// * Per-sample results are double (summed in double); per_sample may be nullptr to skip them.
// * Gradient outputs may be nullptr (skipped). Each one says whether it OVERWRITES or
//   ACCUMULATES (+=); loss gradients are multiplied by `scale` (the trainer passes
//   1/global_batch, and beta * that for the KL term).
// * Outputs must not overlap inputs or each other.
// * Accuracy against an exact double computation: bernoulli_nll (float exp/log1p kernels)
//   within ~3e-7 relative per element (terms below ~1e-37 flush to zero); the Gaussian, KL,
//   reparameterisation and log-density terms use double inside and round once.
// * Bad sizes or null required pointers throw vd::ShapeError.

// Bernoulli decoder on logits l: per_sample[b] = sum_d softplus(l) - x*l (binary cross-entropy
// from logits, stable form; inputs must be finite). per_sample is OVERWRITTEN.
// diff_logits [B,D] is OVERWRITTEN with scale * (sigmoid(l) - x).
void bernoulli_nll(int B, int D, const float* logits /*[B,D]*/, const float* x /*[B,D]*/,
                   double* per_sample /*[B]*/, float* diff_logits /*[B,D] or null*/, float scale);

// Gaussian decoder with fixed sigma > 0: per_sample[b] = sum_d 0.5*((x-m)/sigma)^2 + log(sigma)
// + 0.5*log(2*pi) (OVERWRITTEN). diff_mean [B,D] is OVERWRITTEN with scale * (m - x) / sigma^2.
// Gaussian decoder with a learned log-variance s, one per output ([D], per_output) or one for
// all ([1]): per_sample[b] = sum_d 0.5*((x-m)^2*exp(-s_d) + s_d + log(2*pi)) (OVERWRITTEN, in
// double). When diff_mean != nullptr: diff_mean [B,D] is OVERWRITTEN with
// scale*(m-x)*exp(-s_d), and diff_logvar ([D] or [1]) with scale*sum_b 0.5*(1-(x-m)^2*exp(-s_d)).
void gaussian_nll_learned(int B, int D, const float* mean /*[B,D]*/, const float* x /*[B,D]*/,
                          const float* logvar, bool per_output, double* per_sample,
                          float* diff_mean, float* diff_logvar, float scale);
void gaussian_nll(int B, int D, const float* mean /*[B,D]*/, const float* x /*[B,D]*/, float sigma,
                  double* per_sample /*[B]*/, float* diff_mean /*[B,D] or null*/, float scale);

// KL(N(mu, exp(logvar)) || N(0, I)) per sample = -0.5 * sum_j (1 + logvar - mu^2 - exp(logvar))
// (per_sample OVERWRITTEN). Gradients ACCUMULATE (+=) because the buffers already hold the
// reconstruction path's gradient: diff_mu += scale * mu, diff_logvar += scale * 0.5 *
// (exp(logvar) - 1).
void kl_standard_normal(int B, int L, const float* mu /*[B,L]*/, const float* logvar /*[B,L]*/,
                        double* per_sample /*[B]*/, float* diff_mu /*[B,L] or null*/,
                        float* diff_logvar /*[B,L] or null*/, float scale);

// Free bits (Kingma et al. 2016, IAF paper, section on free bits, with groups of one latent
// dimension each): the KL term of a batch of B samples is sum_j max(lambda, KLbar_j), where
// KLbar_j = (1/B) sum_b KL_bj is the batch mean of dimension j's KL,
// KL_bj = 0.5 * (mu_bj^2 + exp(logvar_bj) - 1 - logvar_bj).
// kl_per_dim_sums: sums [L] = sum_b KL_bj (OVERWRITTEN), summed in double in row order.
void kl_per_dim_sums(int B, int L, const float* mu /*[B,L]*/, const float* logvar /*[B,L]*/,
                     double* sums /*[L]*/);
// sum_j max(lambda, mean_kl[j]) over L dimensions; active [L] (OVERWRITTEN) is 1 where
// mean_kl[j] > lambda (the dimension's gradient flows) and 0 where it is at or under the floor.
double free_bits_kl(int L, const double* mean_kl /*[L]*/, double lambda, uint8_t* active /*[L]*/);
// The gradient of the floored term: as kl_standard_normal's, but only for the active
// dimensions (the floor is constant in the others, so they get none). ACCUMULATES:
// diff_mu += scale * active_j * mu, diff_logvar += scale * active_j * 0.5 * (exp(logvar) - 1).
void kl_free_bits_backward(int B, int L, const float* mu, const float* logvar,
                           const uint8_t* active /*[L]*/, float* diff_mu, float* diff_logvar,
                           float scale);

// Logvar clamp: out = min(max(raw, lo), hi) element-wise over n values (NaN stays NaN), and
// its backward: diff is zeroed where raw lies outside [lo, hi] (the gradient is exact inside,
// bounds included, as torch.clamp's, and zero outside).
void clamp_forward(size_t n, const float* raw, float lo, float hi, float* out);
void clamp_backward(size_t n, const float* raw, float lo, float hi, float* diff /*in place*/);

// z = mu + exp(0.5*logvar) * eps, all [B,L]; z is OVERWRITTEN.
void reparameterize(int B, int L, const float* mu, const float* logvar, const float* eps, float* z);

// Backward of reparameterize given diff_z [B,L]: diff_mu = diff_z and diff_logvar = diff_z * eps
// * 0.5*exp(0.5*logvar), both OVERWRITTEN (call this first, then kl_standard_normal adds the
// KL gradient into the same buffers). Either output may be nullptr.
void reparameterize_backward(int B, int L, const float* logvar, const float* eps,
                             const float* diff_z, float* diff_mu, float* diff_logvar);

// log N(z; mu, diag(exp(logvar))) summed over the L coordinates of one sample.
double log_normal_diag(int L, const float* z /*[L]*/, const float* mu /*[L]*/,
                       const float* logvar /*[L]*/);
// log N(z; 0, I) summed over the L coordinates of one sample.
double log_standard_normal(int L, const float* z /*[L]*/);
// log((1/k) * sum_i exp(v[i])), stable for large |v| (k >= 1). -inf entries are allowed.
double log_mean_exp(const double* v /*[k]*/, int k);

}  // namespace vd
