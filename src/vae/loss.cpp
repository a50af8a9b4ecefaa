// VAE loss pieces: vectorisable float exp/log1p kernels for the Bernoulli decoder, a double
// exp for the latent terms, and argument checks that turn misuse into vd::ShapeError.
#include "vae/loss.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/simd.hpp"

// Hot kernels are compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked at load time,
// so the project's generic compile flags still give full-width SIMD on the training machines.
// Sums run in a fixed order; the FMA clones may differ from the baseline one in the last bit
// (GCC contracts a*b+c in C++), well inside the error bounds below. The AVX-512 clone
// vectorises as is (masked ops); the AVX2 and baseline clones also need -fno-trapping-math
// (set for this file by the build) before GCC will if-convert the selects; it changes no value.

namespace vd {

namespace {

// exp(-a) for a >= 0, in float, branch-free so loops over it vectorise. Cody-Waite reduction
// -a = n*ln2 + r with |r| <= ln2/2 (n*kLn2Hi is exact: kLn2Hi has 9 significant bits, |n| <=
// 126), degree-7 Taylor polynomial (truncation < 1e-8 relative) and 2^n built in the exponent
// bits. Max relative error about 2 ulp. Arguments above 87 are clamped (so 2^n stays normal)
// and the caller zeroes those results; NaN propagates.
VD_INLINE float exp_neg_f(float a) {
  constexpr float kMagic = 0x1.8p23f;  // adding it rounds a float of |x| < 2^22 to an integer
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  const float y = -(a < 87.0f ? a : 87.0f);
  const float kf = y * kLog2e + kMagic;
  const int32_t n = std::bit_cast<int32_t>(kf) - std::bit_cast<int32_t>(kMagic);  // [-126, 0]
  const float nf = kf - kMagic;
  float r = y - nf * kLn2Hi;
  r = r - nf * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((n + 127) << 23);
}

// log1p(t) for t in [0, 1], in float, branch-free: log1p(t) = 2 atanh(s) with s = t/(2+t) in
// [0, 1/3], and 2 atanh(s) = 2s (1 + s^2/3 + s^4/5 + ... + s^14/15) to within (1/9)^8/17 =
// 1.4e-9 relative. s comes straight from t (no 1+t rounding to undo), so the error is s's two
// roundings plus the evaluation: about 2e-7 relative.
VD_INLINE float log1p_unit_f(float t) {
  const float s = t / (2.0f + t);
  const float s2 = s * s;
  float q = 1.0f / 15.0f;
  q = q * s2 + 1.0f / 13.0f;
  q = q * s2 + 1.0f / 11.0f;
  q = q * s2 + 1.0f / 9.0f;
  q = q * s2 + 1.0f / 7.0f;
  q = q * s2 + 1.0f / 5.0f;
  q = q * s2 + 1.0f / 3.0f;
  q = q * s2;
  const float two_s = s + s;
  return two_s + two_s * q;
}

// exp(y) in double, branch-free, for the latent-space terms where e^y - 1 - y cancels and
// float would not do. Same scheme as exp_neg_f: fdlibm's split ln2 (n * kLn2Hi exact for
// |n| < 2^20), degree-13 Taylor (truncation < 1e-17), clamped to |y| <= 708 so 2^n is normal.
// Max relative error about 2 ulp.
VD_INLINE double exp_d(double y) {
  constexpr double kMagic = 0x1.8p52;
  constexpr double kLog2e = 1.4426950408889634074;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  y = y > -708.0 ? y : -708.0;
  y = y < 708.0 ? y : 708.0;
  const double kd = y * kLog2e + kMagic;
  const int64_t n = std::bit_cast<int64_t>(kd) - std::bit_cast<int64_t>(kMagic);
  const double nd = kd - kMagic;
  double r = y - nd * kLn2Hi;
  r = r - nd * kLn2Lo;
  // 1/k! for k = 13 down to 2.
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * std::bit_cast<double>((n + 1023) << 52);
}

// Terms are first written to a small stack buffer and then summed with a fixed set of lanes:
// the loops stay free of floating-point reductions (which GCC would not reorder), they
// vectorise in every clone, and the sum order (hence the bits) is the same on every machine.
constexpr int kChunk = 256;
constexpr int kLanes = 8;

template <typename T>
VD_INLINE double sum_lanes(const T* __restrict buf, int n) {
  double acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(buf[i + j]);
  for (; i < n; ++i) acc[0] += static_cast<double>(buf[i]);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// One Bernoulli element: returns softplus(l) - x*l and sets grad = sigmoid(l) - x.
// With t = exp(-|l|) and h = [l >= 0] - x:  softplus(l) - x*l = h*l + log1p(t), both parts
// >= 0 for x in [0, 1] (so no cancellation), and sigmoid(l) - x = h - r for l >= 0, h + r
// otherwise, with r = t/(1+t) = sigmoid(-|l|) (exact 0 gradient at x = 1, l -> +inf).
VD_INLINE float bernoulli_element(float l, float x, float& grad) {
  const float a = std::fabs(l);
  float t = exp_neg_f(a);
  t = a <= 87.0f ? t : 0.0f;  // e^-87 < 1.7e-38: the rest of the term is below float's range
  const float log1p_t = log1p_unit_f(t);
  const float r = t / (1.0f + t);
  const bool pos = l >= 0.0f;
  const float h = (pos ? 1.0f : 0.0f) - x;
  const float g_pos = h - r;  // both arms computed, then selected (vectorises without masks)
  const float g_neg = h + r;
  grad = pos ? g_pos : g_neg;
  return h * l + log1p_t;
}

template <bool kGrad>
VD_INLINE void bernoulli_rows(int B, int D, const float* __restrict logits,
                              const float* __restrict x, double* __restrict per_sample,
                              float* __restrict diff, float scale) {
  float terms[kChunk];
  for (int b = 0; b < B; ++b) {
    double acc = 0.0;
    for (int d0 = 0; d0 < D; d0 += kChunk) {
      const int n = std::min(kChunk, D - d0);
      const size_t off = static_cast<size_t>(b) * static_cast<size_t>(D) + d0;
      const float* __restrict lr = logits + off;  // [n]
      const float* __restrict xr = x + off;       // [n]
      for (int d = 0; d < n; ++d) {
        float g;
        terms[d] = bernoulli_element(lr[d], xr[d], g);
        if constexpr (kGrad) diff[off + d] = g * scale;
      }
      acc += sum_lanes(terms, n);
    }
    if (per_sample) per_sample[b] = acc;
  }
}

VD_SIMD_CLONES void bernoulli_kernel(int B, int D, const float* logits, const float* x,
                                     double* per_sample, float* diff, float scale) {
  if (diff)
    bernoulli_rows<true>(B, D, logits, x, per_sample, diff, scale);
  else
    bernoulli_rows<false>(B, D, logits, x, per_sample, nullptr, scale);
}

// Sum of 0.5*(x-m)^2 per row and the scaled gradient; the difference is taken in double
// (exact for floats of similar size) so only the final sum rounds.
template <bool kGrad>
VD_INLINE void gaussian_rows(int B, int D, const float* __restrict mean, const float* __restrict x,
                             double* __restrict sq_sum, float* __restrict diff, float gscale) {
  double terms[kChunk];
  for (int b = 0; b < B; ++b) {
    double acc = 0.0;
    for (int d0 = 0; d0 < D; d0 += kChunk) {
      const int n = std::min(kChunk, D - d0);
      const size_t off = static_cast<size_t>(b) * static_cast<size_t>(D) + d0;
      const float* __restrict mr = mean + off;  // [n]
      const float* __restrict xr = x + off;     // [n]
      for (int d = 0; d < n; ++d) {
        const double e = static_cast<double>(mr[d]) - static_cast<double>(xr[d]);
        if constexpr (kGrad) diff[off + d] = static_cast<float>(e) * gscale;
        terms[d] = e * e;
      }
      acc += sum_lanes(terms, n);
    }
    sq_sum[b] = acc;
  }
}

VD_SIMD_CLONES void gaussian_kernel(int B, int D, const float* mean, const float* x, double* sq_sum,
                                    float* diff, float gscale) {
  if (diff)
    gaussian_rows<true>(B, D, mean, x, sq_sum, diff, gscale);
  else
    gaussian_rows<false>(B, D, mean, x, sq_sum, nullptr, gscale);
}

// KL per row as 0.5 * sum(mu^2 + (e - 1) - logvar) with e = exp(logvar) in double: e - 1 is
// exact near logvar = 0 (Sterbenz), so small KLs keep their relative accuracy.
template <bool kMu, bool kLv>
VD_INLINE void kl_rows(int B, int L, const float* __restrict mu, const float* __restrict logvar,
                       double* __restrict per_sample, float* __restrict diff_mu,
                       float* __restrict diff_logvar, float scale) {
  const double half_scale = 0.5 * static_cast<double>(scale);
  double terms[kChunk];
  for (int b = 0; b < B; ++b) {
    double acc = 0.0;
    for (int j0 = 0; j0 < L; j0 += kChunk) {
      const int n = std::min(kChunk, L - j0);
      const size_t off = static_cast<size_t>(b) * static_cast<size_t>(L) + j0;
      const float* __restrict mr = mu + off;      // [n]
      const float* __restrict lr = logvar + off;  // [n]
      for (int j = 0; j < n; ++j) {
        const double m = mr[j];
        const double lv = lr[j];
        const double em1 = exp_d(lv) - 1.0;
        if constexpr (kMu) diff_mu[off + j] += mr[j] * scale;
        if constexpr (kLv) diff_logvar[off + j] += static_cast<float>(half_scale * em1);
        terms[j] = m * m + (em1 - lv);
      }
      acc += sum_lanes(terms, n);
    }
    if (per_sample) per_sample[b] = 0.5 * acc;
  }
}

VD_SIMD_CLONES void kl_kernel(int B, int L, const float* mu, const float* logvar,
                              double* per_sample, float* diff_mu, float* diff_logvar, float scale) {
  // One instantiation per combination keeps the inner loop free of per-element branches.
  if (diff_mu && diff_logvar)
    kl_rows<true, true>(B, L, mu, logvar, per_sample, diff_mu, diff_logvar, scale);
  else if (diff_mu)
    kl_rows<true, false>(B, L, mu, logvar, per_sample, diff_mu, nullptr, scale);
  else if (diff_logvar)
    kl_rows<false, true>(B, L, mu, logvar, per_sample, nullptr, diff_logvar, scale);
  else
    kl_rows<false, false>(B, L, mu, logvar, per_sample, nullptr, nullptr, scale);
}

VD_SIMD_CLONES void reparameterize_kernel(size_t n, const float* __restrict mu,
                                          const float* __restrict logvar,
                                          const float* __restrict eps, float* __restrict z) {
  for (size_t i = 0; i < n; ++i) {
    const double sd = exp_d(0.5 * static_cast<double>(logvar[i]));
    z[i] = static_cast<float>(static_cast<double>(mu[i]) + sd * static_cast<double>(eps[i]));
  }
}

VD_SIMD_CLONES void reparameterize_backward_kernel(size_t n, const float* __restrict logvar,
                                                   const float* __restrict eps,
                                                   const float* __restrict diff_z,
                                                   float* __restrict diff_mu,
                                                   float* __restrict diff_logvar) {
  if (diff_mu) std::copy(diff_z, diff_z + n, diff_mu);
  if (!diff_logvar) return;
  for (size_t i = 0; i < n; ++i) {
    const double sd = exp_d(0.5 * static_cast<double>(logvar[i]));
    diff_logvar[i] =
        static_cast<float>(static_cast<double>(diff_z[i]) * static_cast<double>(eps[i]) * 0.5 * sd);
  }
}

VD_SIMD_CLONES double log_normal_diag_kernel(int L, const float* __restrict z,
                                             const float* __restrict mu,
                                             const float* __restrict logvar) {
  double terms[kChunk];  // logvar + (z - mu)^2 / exp(logvar)
  double acc = 0.0;
  for (int j0 = 0; j0 < L; j0 += kChunk) {
    const int n = std::min(kChunk, L - j0);
    for (int j = 0; j < n; ++j) {
      const double lv = logvar[j0 + j];
      const double e = static_cast<double>(z[j0 + j]) - static_cast<double>(mu[j0 + j]);
      terms[j] = lv + e * e * exp_d(-lv);
    }
    acc += sum_lanes(terms, n);
  }
  return acc;
}

VD_SIMD_CLONES double sum_squares_kernel(int L, const float* __restrict z) {
  double terms[kChunk];
  double acc = 0.0;
  for (int j0 = 0; j0 < L; j0 += kChunk) {
    const int n = std::min(kChunk, L - j0);
    for (int j = 0; j < n; ++j) terms[j] = static_cast<double>(z[j0 + j]) * z[j0 + j];
    acc += sum_lanes(terms, n);
  }
  return acc;
}

constexpr double kLog2Pi = 1.8378770664093454836;  // log(2*pi)

void check_sizes(const char* fn, int rows, int cols, const char* rows_name, const char* cols_name) {
  if (rows < 0 || cols < 0) {
    throw ShapeError(std::string(fn) + ": sizes must be non-negative, got " + rows_name + " = " +
                     std::to_string(rows) + " and " + cols_name + " = " + std::to_string(cols) +
                     ".");
  }
}

void check_ptr(const char* fn, const void* p, const char* name, bool needed) {
  if (needed && p == nullptr) {
    throw ShapeError(std::string(fn) + ": the array '" + name +
                     "' is null but the sizes are non-zero.");
  }
}

}  // namespace

void bernoulli_nll(int B, int D, const float* logits, const float* x, double* per_sample,
                   float* diff_logits, float scale) {
  check_sizes("bernoulli_nll", B, D, "B", "D");
  const bool any = B > 0 && D > 0;
  check_ptr("bernoulli_nll", logits, "logits", any);
  check_ptr("bernoulli_nll", x, "x", any);
  if (B == 0) return;
  if (D == 0) {
    if (per_sample) std::fill(per_sample, per_sample + B, 0.0);
    return;
  }
  bernoulli_kernel(B, D, logits, x, per_sample, diff_logits, scale);
}

void gaussian_nll(int B, int D, const float* mean, const float* x, float sigma, double* per_sample,
                  float* diff_mean, float scale) {
  check_sizes("gaussian_nll", B, D, "B", "D");
  if (!(sigma > 0.0f) || !std::isfinite(sigma)) {
    throw ShapeError("gaussian_nll: sigma must be positive and finite, got " +
                     std::to_string(sigma) + ".");
  }
  const bool any = B > 0 && D > 0;
  check_ptr("gaussian_nll", mean, "mean", any);
  check_ptr("gaussian_nll", x, "x", any);
  if (B == 0) return;
  const double s = sigma;
  const double inv_var = 1.0 / (s * s);
  const double per_dim_const = std::log(s) + 0.5 * kLog2Pi;
  // The kernel writes the squared-error sums into per_sample; without one it needs a place to
  // put them, so work through a small stack buffer in blocks of rows.
  constexpr int kBlock = 64;
  double tmp[kBlock];
  const float gscale = static_cast<float>(static_cast<double>(scale) * inv_var);
  for (int b0 = 0; b0 < B; b0 += kBlock) {
    const int nb = std::min(kBlock, B - b0);
    const size_t off = static_cast<size_t>(b0) * static_cast<size_t>(D);
    double* sums = per_sample ? per_sample + b0 : tmp;
    if (D > 0) {
      gaussian_kernel(nb, D, mean + off, x + off, sums, diff_mean ? diff_mean + off : nullptr,
                      gscale);
    } else {
      std::fill(sums, sums + nb, 0.0);
    }
    for (int b = 0; b < nb; ++b) sums[b] = 0.5 * sums[b] * inv_var + D * per_dim_const;
  }
}

void gaussian_nll_learned(int B, int D, const float* mean, const float* x, const float* logvar,
                          bool per_output, double* per_sample, float* diff_mean, float* diff_logvar,
                          float scale) {
  check_sizes("gaussian_nll_learned", B, D, "B", "D");
  const bool any = B > 0 && D > 0;
  check_ptr("gaussian_nll_learned", mean, "mean", any);
  check_ptr("gaussian_nll_learned", x, "x", any);
  check_ptr("gaussian_nll_learned", logvar, "logvar", D > 0);
  const size_t S = per_output ? static_cast<size_t>(D) : 1;
  // exp(-s) per output, and the squared errors' sums per variance for its gradient.
  std::vector<double> inv_var(S), sq(S, 0.0);
  double log_var_sum = 0;  // sum_d s_d
  for (size_t j = 0; j < S; ++j) inv_var[j] = std::exp(-static_cast<double>(logvar[j]));
  for (int d = 0; d < D; ++d) log_var_sum += logvar[per_output ? d : 0];
  const double constant = 0.5 * (log_var_sum + D * kLog2Pi);
  for (int b = 0; b < B; ++b) {
    const size_t off = static_cast<size_t>(b) * static_cast<size_t>(D);
    double acc = 0;
    for (int d = 0; d < D; ++d) {
      const size_t j = per_output ? static_cast<size_t>(d) : 0;
      const double r = static_cast<double>(mean[off + d]) - x[off + d];
      const double e = r * r;
      acc += e * inv_var[j];
      sq[j] += e;
      if (diff_mean) diff_mean[off + d] = static_cast<float>(scale * r * inv_var[j]);
    }
    if (per_sample) per_sample[b] = 0.5 * acc + constant;
  }
  if (diff_mean && diff_logvar) {
    const double per = per_output ? 1.0 : static_cast<double>(D);  // outputs per variance
    for (size_t j = 0; j < S; ++j)
      diff_logvar[j] = static_cast<float>(scale * 0.5 * (B * per - sq[j] * inv_var[j]));
  }
}

void kl_standard_normal(int B, int L, const float* mu, const float* logvar, double* per_sample,
                        float* diff_mu, float* diff_logvar, float scale) {
  check_sizes("kl_standard_normal", B, L, "B", "L");
  const bool any = B > 0 && L > 0;
  check_ptr("kl_standard_normal", mu, "mu", any);
  check_ptr("kl_standard_normal", logvar, "logvar", any);
  if (B == 0) return;
  if (L == 0) {
    if (per_sample) std::fill(per_sample, per_sample + B, 0.0);
    return;
  }
  kl_kernel(B, L, mu, logvar, per_sample, diff_mu, diff_logvar, scale);
}

void kl_per_dim_sums(int B, int L, const float* mu, const float* logvar, double* sums) {
  check_sizes("kl_per_dim_sums", B, L, "B", "L");
  const bool any = B > 0 && L > 0;
  check_ptr("kl_per_dim_sums", mu, "mu", any);
  check_ptr("kl_per_dim_sums", logvar, "logvar", any);
  check_ptr("kl_per_dim_sums", sums, "sums", L > 0);
  std::fill(sums, sums + L, 0.0);
  for (int b = 0; b < B; ++b) {
    const size_t off = static_cast<size_t>(b) * static_cast<size_t>(L);
    for (int j = 0; j < L; ++j) {
      const double m = mu[off + j], lv = logvar[off + j];
      sums[j] += 0.5 * (m * m + ((exp_d(lv) - 1.0) - lv));
    }
  }
}

double free_bits_kl(int L, const double* mean_kl, double lambda, uint8_t* active) {
  check_sizes("free_bits_kl", 1, L, "rows", "L");
  check_ptr("free_bits_kl", mean_kl, "mean_kl", L > 0);
  check_ptr("free_bits_kl", active, "active", L > 0);
  double total = 0;
  for (int j = 0; j < L; ++j) {
    active[j] = mean_kl[j] > lambda ? 1 : 0;
    total += active[j] ? mean_kl[j] : lambda;
  }
  return total;
}

void kl_free_bits_backward(int B, int L, const float* mu, const float* logvar,
                           const uint8_t* active, float* diff_mu, float* diff_logvar, float scale) {
  check_sizes("kl_free_bits_backward", B, L, "B", "L");
  const bool any = B > 0 && L > 0;
  check_ptr("kl_free_bits_backward", mu, "mu", any);
  check_ptr("kl_free_bits_backward", logvar, "logvar", any);
  check_ptr("kl_free_bits_backward", active, "active", any);
  // kl_rows' arithmetic: with every dimension active the gradients equal kl_standard_normal's
  // up to the last bit (its SIMD clones may fuse the multiply-add). Not a hot loop: B x L.
  const double half_scale = 0.5 * static_cast<double>(scale);
  for (int b = 0; b < B; ++b) {
    const size_t off = static_cast<size_t>(b) * static_cast<size_t>(L);
    for (int j = 0; j < L; ++j) {
      if (!active[j]) continue;
      if (diff_mu) diff_mu[off + j] += mu[off + j] * scale;
      if (diff_logvar)
        diff_logvar[off + j] += static_cast<float>(half_scale * (exp_d(logvar[off + j]) - 1.0));
    }
  }
}

void clamp_forward(size_t n, const float* raw, float lo, float hi, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const float v = raw[i];
    out[i] = v < lo ? lo : (hi < v ? hi : v);
  }
}

void clamp_backward(size_t n, const float* raw, float lo, float hi, float* diff) {
  for (size_t i = 0; i < n; ++i)
    if (!(raw[i] >= lo && raw[i] <= hi)) diff[i] = 0.0f;
}

void reparameterize(int B, int L, const float* mu, const float* logvar, const float* eps,
                    float* z) {
  check_sizes("reparameterize", B, L, "B", "L");
  const bool any = B > 0 && L > 0;
  check_ptr("reparameterize", mu, "mu", any);
  check_ptr("reparameterize", logvar, "logvar", any);
  check_ptr("reparameterize", eps, "eps", any);
  check_ptr("reparameterize", z, "z", any);
  if (!any) return;
  reparameterize_kernel(static_cast<size_t>(B) * static_cast<size_t>(L), mu, logvar, eps, z);
}

void reparameterize_backward(int B, int L, const float* logvar, const float* eps,
                             const float* diff_z, float* diff_mu, float* diff_logvar) {
  check_sizes("reparameterize_backward", B, L, "B", "L");
  const bool any = B > 0 && L > 0;
  check_ptr("reparameterize_backward", diff_z, "diff_z", any);
  check_ptr("reparameterize_backward", logvar, "logvar", any && diff_logvar);
  check_ptr("reparameterize_backward", eps, "eps", any && diff_logvar);
  if (!any) return;
  reparameterize_backward_kernel(static_cast<size_t>(B) * static_cast<size_t>(L), logvar, eps,
                                 diff_z, diff_mu, diff_logvar);
}

double log_normal_diag(int L, const float* z, const float* mu, const float* logvar) {
  check_sizes("log_normal_diag", 1, L, "rows", "L");
  check_ptr("log_normal_diag", z, "z", L > 0);
  check_ptr("log_normal_diag", mu, "mu", L > 0);
  check_ptr("log_normal_diag", logvar, "logvar", L > 0);
  if (L == 0) return 0.0;
  return -0.5 * (L * kLog2Pi + log_normal_diag_kernel(L, z, mu, logvar));
}

double log_standard_normal(int L, const float* z) {
  check_sizes("log_standard_normal", 1, L, "rows", "L");
  check_ptr("log_standard_normal", z, "z", L > 0);
  if (L == 0) return 0.0;
  return -0.5 * (L * kLog2Pi + sum_squares_kernel(L, z));
}

double log_mean_exp(const double* v, int k) {
  if (k < 1) {
    throw ShapeError("log_mean_exp: needs at least one value, got k = " + std::to_string(k) + ".");
  }
  check_ptr("log_mean_exp", v, "v", true);
  double mx = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < k; ++i) {
    if (std::isnan(v[i])) return v[i];
    mx = std::max(mx, v[i]);
  }
  // All -inf: the mean is 0. A +inf entry makes the mean +inf (and v - mx would be NaN).
  if (std::isinf(mx)) return mx;
  double sum = 0.0;  // >= 1: the maximum contributes exp(0)
  for (int i = 0; i < k; ++i) sum += std::exp(v[i] - mx);
  return mx + (std::log(sum) - std::log(static_cast<double>(k)));
}

}  // namespace vd
