// Arithmetic in the latent space of a trained VAE, on host buffers of encodings mu, logvar
// [N, L]: interpolation (linear or spherical), per-class sums and means, posterior-collapse
// statistics (KL per dimension, active units) and the normal quantiles of a manifold grid.
// Partial sums are plain double buffers, so one allreduce combines the ranks' shards exactly.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace vd {

// z(t_i) for t_i = i / (steps - 1), i = 0..steps-1, between a and b [L], into out [steps, L].
// Linear: (1 - t) a + t b. Spherical (slerp): along the great circle through a and b, with the
// norms interpolated linearly, as for codes from a Gaussian prior (White 2016); linear when
// a and b are (anti)parallel or zero. Row 0 is a and row steps-1 is b exactly. steps >= 2.
void interpolate(const float* a, const float* b, int L, int steps, bool spherical, float* out);

// Sums of mu and mu^2 per class over data rows with labels in 0..K-1: what class means and
// spreads are made of.
class ClassSums {
 public:
  ClassSums(int classes, int latent_dim);
  // Adds n rows of mu [n, L] with their labels [n]; throws vd::DataError for a label
  // outside 0..K-1.
  void add(int64_t n, const float* mu, const int32_t* labels);
  // [K * L sums, K * L sums of squares, then K counts], for an in-place allreduce.
  std::span<double> data() { return v_; }
  int classes() const { return K_; }
  int64_t count(int k) const;
  // Class means [K, L] (NaN for a class without rows).
  std::vector<float> means() const;
  // Per-dimension standard deviations of mu within each class [K, L] (population; NaN for a
  // class without rows).
  std::vector<float> spreads() const;

 private:
  int K_, L_;
  std::vector<double> v_;
};

// Posterior-collapse statistics over a data set, per latent dimension j: the mean over x of
// KL_j(x) = -1/2 (1 + logvar_j - mu_j^2 - exp(logvar_j)) (they sum to the KL term), and
// Cov_x(E_q[z_j]) = Var_x(mu_j), whose units above 0.01 are active (Burda et al. 2016).
class PosteriorStats {
 public:
  explicit PosteriorStats(int latent_dim);
  void add(int64_t n, const float* mu, const float* logvar);
  // [sum mu (L), sum mu^2 (L), sum KL (L), count], for an in-place allreduce across ranks.
  std::span<double> data() { return v_; }
  int latent_dim() const { return L_; }
  int64_t count() const;
  std::vector<double> kl_per_dim() const;   // mean KL_j, nats
  std::vector<double> mu_variance() const;  // Var_x(mu_j), the population variance
  int active_units(double threshold = kActiveUnitThreshold) const;
  // A spatial latent of C channels (each L / C consecutive values, PyTorch's order): the KL of
  // each channel (the sum over its positions), and the channels whose mean Var_x(mu_j) over
  // their positions is above the threshold.
  std::vector<double> kl_per_channel(int channels) const;
  int active_channels(int channels, double threshold = kActiveUnitThreshold) const;

  static constexpr double kActiveUnitThreshold = 0.01;

 private:
  int L_;
  std::vector<double> v_;
};

// The inverse of the standard normal CDF at p in (0, 1); throws vd::ShapeError outside.
double normal_quantile(double p);
// A manifold axis of n points: normal_quantile((i + 0.5) / n), i = 0..n-1, so the grid covers
// equal prior mass per cell (n = 20 spans -1.96..1.96).
std::vector<double> manifold_axis(int n);

}  // namespace vd
