// Latent-space arithmetic: interpolation, class sums, posterior-collapse statistics and
// normal quantiles, in double precision where sums are taken.
#include "vae/latent.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.hpp"

namespace vd {

void interpolate(const float* a, const float* b, int L, int steps, bool spherical, float* out) {
  VD_CHECK(L >= 1 && steps >= 2, ShapeError, "interpolate needs L >= 1 and at least 2 steps");
  double na = 0, nb = 0, dot = 0;
  for (int j = 0; j < L; ++j) {
    na += static_cast<double>(a[j]) * a[j];
    nb += static_cast<double>(b[j]) * b[j];
    dot += static_cast<double>(a[j]) * b[j];
  }
  na = std::sqrt(na);
  nb = std::sqrt(nb);
  const double cos_omega = na > 0 && nb > 0 ? std::clamp(dot / (na * nb), -1.0, 1.0) : 1.0;
  const double omega = std::acos(cos_omega);
  // Parallel or antiparallel directions have no unique great circle: fall back to a line.
  const bool slerp = spherical && std::sin(omega) > 1e-6;
  for (int i = 0; i < steps; ++i) {
    float* z = out + static_cast<size_t>(i) * L;
    if (i == 0 || i == steps - 1) {  // exact end points, whatever the rounding inside
      const float* src = i == 0 ? a : b;
      for (int j = 0; j < L; ++j) z[j] = src[j];
      continue;
    }
    const double t = static_cast<double>(i) / (steps - 1);
    if (!slerp) {
      for (int j = 0; j < L; ++j) z[j] = static_cast<float>((1 - t) * a[j] + t * b[j]);
      continue;
    }
    // Unit directions along the great circle, scaled by the linearly interpolated norm.
    const double s = std::sin(omega);
    const double wa = std::sin((1 - t) * omega) / s / na, wb = std::sin(t * omega) / s / nb;
    const double norm = (1 - t) * na + t * nb;
    for (int j = 0; j < L; ++j) z[j] = static_cast<float>(norm * (wa * a[j] + wb * b[j]));
  }
}

ClassSums::ClassSums(int classes, int latent_dim)
    : K_(classes),
      L_(latent_dim),
      v_(static_cast<size_t>(classes) * (2 * static_cast<size_t>(latent_dim) + 1), 0.0) {
  VD_CHECK(classes >= 1 && latent_dim >= 1, ShapeError, "class sums need K >= 1 and L >= 1");
}

void ClassSums::add(int64_t n, const float* mu, const int32_t* labels) {
  const size_t KL = static_cast<size_t>(K_) * L_;
  double* counts = v_.data() + 2 * KL;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t k = labels[i];
    if (k < 0 || k >= K_)
      throw DataError("label " + std::to_string(k) + " is outside the model's classes 0.." +
                      std::to_string(K_ - 1));
    double* sum = v_.data() + static_cast<size_t>(k) * L_;
    double* sq = sum + KL;
    const float* row = mu + static_cast<size_t>(i) * L_;
    for (int j = 0; j < L_; ++j) {
      sum[j] += row[j];
      sq[j] += static_cast<double>(row[j]) * row[j];
    }
    counts[k] += 1;
  }
}

int64_t ClassSums::count(int k) const {
  return static_cast<int64_t>(v_[2 * static_cast<size_t>(K_) * L_ + static_cast<size_t>(k)]);
}

std::vector<float> ClassSums::spreads() const {
  const size_t KL = static_cast<size_t>(K_) * L_;
  std::vector<float> s(KL);
  for (int k = 0; k < K_; ++k) {
    const double c = static_cast<double>(count(k));
    for (int j = 0; j < L_; ++j) {
      const size_t i = static_cast<size_t>(k) * L_ + j;
      const double mean = v_[i] / c;
      s[i] = c > 0 ? static_cast<float>(std::sqrt(std::max(0.0, v_[KL + i] / c - mean * mean)))
                   : std::numeric_limits<float>::quiet_NaN();
    }
  }
  return s;
}

std::vector<float> ClassSums::means() const {
  std::vector<float> m(static_cast<size_t>(K_) * L_);
  for (int k = 0; k < K_; ++k) {
    const double c = static_cast<double>(count(k));
    for (int j = 0; j < L_; ++j) {
      const size_t i = static_cast<size_t>(k) * L_ + j;
      m[i] = c > 0 ? static_cast<float>(v_[i] / c) : std::numeric_limits<float>::quiet_NaN();
    }
  }
  return m;
}

PosteriorStats::PosteriorStats(int latent_dim)
    : L_(latent_dim), v_(3 * static_cast<size_t>(latent_dim) + 1, 0.0) {
  VD_CHECK(latent_dim >= 1, ShapeError, "posterior statistics need L >= 1");
}

void PosteriorStats::add(int64_t n, const float* mu, const float* logvar) {
  double* s1 = v_.data();
  double* s2 = s1 + L_;
  double* kl = s2 + L_;
  for (int64_t i = 0; i < n; ++i) {
    const float* m = mu + static_cast<size_t>(i) * L_;
    const float* lv = logvar + static_cast<size_t>(i) * L_;
    for (int j = 0; j < L_; ++j) {
      const double u = m[j], l = lv[j];
      s1[j] += u;
      s2[j] += u * u;
      kl[j] += -0.5 * (1.0 + l - u * u - std::exp(l));
    }
  }
  v_.back() += static_cast<double>(n);
}

int64_t PosteriorStats::count() const {
  return static_cast<int64_t>(v_.back());
}

std::vector<double> PosteriorStats::kl_per_dim() const {
  const double n = std::max(1.0, v_.back());
  std::vector<double> out(static_cast<size_t>(L_));
  for (int j = 0; j < L_; ++j) out[j] = v_[2 * static_cast<size_t>(L_) + j] / n;
  return out;
}

std::vector<double> PosteriorStats::mu_variance() const {
  const double n = std::max(1.0, v_.back());
  std::vector<double> out(static_cast<size_t>(L_));
  for (int j = 0; j < L_; ++j) {
    const double mean = v_[j] / n;
    out[j] = std::max(0.0, v_[static_cast<size_t>(L_) + j] / n - mean * mean);
  }
  return out;
}

int PosteriorStats::active_units(double threshold) const {
  int active = 0;
  for (double v : mu_variance()) active += v > threshold ? 1 : 0;
  return active;
}

std::vector<double> PosteriorStats::kl_per_channel(int channels) const {
  VD_CHECK(channels >= 1 && L_ % channels == 0, ShapeError,
           std::to_string(channels) + " channels do not divide " + std::to_string(L_) + " latents");
  const std::vector<double> kl = kl_per_dim();
  const size_t per = static_cast<size_t>(L_ / channels);
  std::vector<double> out(static_cast<size_t>(channels), 0.0);
  for (size_t j = 0; j < kl.size(); ++j) out[j / per] += kl[j];
  return out;
}

int PosteriorStats::active_channels(int channels, double threshold) const {
  VD_CHECK(channels >= 1 && L_ % channels == 0, ShapeError,
           std::to_string(channels) + " channels do not divide " + std::to_string(L_) + " latents");
  const std::vector<double> var = mu_variance();
  const size_t per = static_cast<size_t>(L_ / channels);
  int active = 0;
  for (size_t c = 0; c < static_cast<size_t>(channels); ++c) {
    double mean = 0;
    for (size_t j = c * per; j < (c + 1) * per; ++j) mean += var[j];
    active += mean / static_cast<double>(per) > threshold ? 1 : 0;
  }
  return active;
}

double normal_quantile(double p) {
  VD_CHECK(p > 0 && p < 1, ShapeError, "normal_quantile needs p in (0, 1)");
  // Symmetry keeps the lower tail, where Phi(x) = erfc(-x / sqrt 2) / 2 is accurate.
  if (p > 0.5) return -normal_quantile(1 - p);
  // Bisection on Phi(x) = p over [-40, 0]: monotone, so it cannot diverge; 200 halvings
  // reach the spacing of doubles.
  double lo = -40, hi = 0;
  for (int it = 0; it < 200 && hi - lo > 0; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

std::vector<double> manifold_axis(int n) {
  VD_CHECK(n >= 1, ShapeError, "a manifold axis needs at least one point");
  std::vector<double> axis(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) axis[i] = normal_quantile((i + 0.5) / n);
  return axis;
}

}  // namespace vd
