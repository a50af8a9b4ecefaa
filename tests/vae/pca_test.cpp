// The linear VAE is probabilistic PCA (Tipping & Bishop 1999; Lucas et al. 2019): a VAE with a
// linear encoder and decoder and a learned global decoder variance, trained on Gaussian data of
// a known spectrum, puts its decoder columns in the top-L principal subspace of the data and
// learns sigma^2 = the mean of the discarded eigenvalues. The eigenvalues and vectors come from
// a Jacobi eigendecomposition of the sample covariance, computed here in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "optim/adam.hpp"
#include "vae/model.hpp"

namespace {

using Matrix = std::vector<std::vector<double>>;  // row-major, [rows][cols]

// Eigenvalues (descending) and eigenvectors (columns of `vectors`) of a symmetric matrix, by
// cyclic Jacobi rotations until the off-diagonal is below 1e-14 of the norm.
void jacobi_eigen(Matrix a, std::vector<double>& values, Matrix& vectors) {
  const size_t n = a.size();
  vectors.assign(n, std::vector<double>(n, 0.0));
  for (size_t i = 0; i < n; ++i) vectors[i][i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, norm = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) (i == j ? norm : off) += a[i][j] * a[i][j];
    if (off <= 1e-28 * norm) break;
    for (size_t p = 0; p < n; ++p)
      for (size_t q = p + 1; q < n; ++q) {
        if (a[p][q] == 0) continue;
        const double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const double t = (theta >= 0 ? 1 : -1) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t k = 0; k < n; ++k) {  // columns p, q of a
          const double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < n; ++k) {  // rows p, q of a
          const double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (size_t k = 0; k < n; ++k) {
          const double vkp = vectors[k][p], vkq = vectors[k][q];
          vectors[k][p] = c * vkp - s * vkq;
          vectors[k][q] = s * vkp + c * vkq;
        }
      }
  }
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return a[i][i] > a[j][j]; });
  values.clear();
  Matrix sorted(n, std::vector<double>(n));
  for (size_t c = 0; c < n; ++c) {
    values.push_back(a[order[c]][order[c]]);
    for (size_t k = 0; k < n; ++k) sorted[k][c] = vectors[k][order[c]];
  }
  vectors = sorted;
}

// The largest principal angle, in degrees, between the spans of the columns of A and of B
// (both [n][2]): arccos of the smaller singular value of Qa^T Qb.
double largest_angle_degrees(Matrix a, const Matrix& b) {
  const size_t n = a.size();
  // Gram-Schmidt on A's two columns.
  const auto dot = [&](const Matrix& m, size_t i, const Matrix& o, size_t j) {
    double s = 0;
    for (size_t k = 0; k < n; ++k) s += m[k][i] * o[k][j];
    return s;
  };
  for (size_t c = 0; c < 2; ++c) {
    for (size_t p = 0; p < c; ++p) {
      const double r = dot(a, p, a, c);
      for (size_t k = 0; k < n; ++k) a[k][c] -= r * a[k][p];
    }
    const double len = std::sqrt(dot(a, c, a, c));
    for (size_t k = 0; k < n; ++k) a[k][c] /= len;
  }
  // M = Qa^T B (2 x 2); singular values from the eigenvalues of M^T M.
  const double m00 = dot(a, 0, b, 0), m01 = dot(a, 0, b, 1), m10 = dot(a, 1, b, 0),
               m11 = dot(a, 1, b, 1);
  const double p = m00 * m00 + m10 * m10, q = m00 * m01 + m10 * m11, r = m01 * m01 + m11 * m11;
  const double mean = 0.5 * (p + r), diff = std::sqrt(0.25 * (p - r) * (p - r) + q * q);
  const double smallest = std::sqrt(std::max(0.0, mean - diff));
  return std::acos(std::min(1.0, smallest)) * 180.0 / std::numbers::pi;
}

TEST(LinearVae, IsProbabilisticPcaOnGaussianDataOfAKnownSpectrum) {
  constexpr int D = 8, L = 2, N = 2000;
  // x = R diag(sqrt(lambda)) g with a random rotation R: two strong directions over an
  // isotropic noise floor of variance 0.5.
  const double lambda[D] = {9.0, 4.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  vd::Rng rng(11);
  Matrix rot(D, std::vector<double>(D));
  {
    Matrix g(D, std::vector<double>(D));
    for (auto& row : g)
      for (double& v : row) v = rng.normal();
    std::vector<double> unused;
    Matrix sym(D, std::vector<double>(D, 0.0));
    for (int i = 0; i < D; ++i)
      for (int j = 0; j < D; ++j)
        for (int k = 0; k < D; ++k) sym[i][j] += g[i][k] * g[j][k];
    jacobi_eigen(sym, unused, rot);  // the eigenvectors of a random SPD matrix: a rotation
  }
  std::vector<float> x(static_cast<size_t>(N) * D);
  for (int n = 0; n < N; ++n) {
    double g[D];
    for (double& v : g) v = rng.normal();
    for (int i = 0; i < D; ++i) {
      double v = 0;
      for (int k = 0; k < D; ++k) v += rot[i][k] * std::sqrt(lambda[k]) * g[k];
      x[static_cast<size_t>(n) * D + i] = static_cast<float>(v);
    }
  }
  // The sample covariance (centred, divided by N: the maximum-likelihood estimate).
  std::vector<double> mean(D, 0.0);
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < D; ++i) mean[i] += x[static_cast<size_t>(n) * D + i] / N;
  Matrix cov(D, std::vector<double>(D, 0.0));
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < D; ++i)
      for (int j = 0; j < D; ++j)
        cov[i][j] += (x[static_cast<size_t>(n) * D + i] - mean[i]) *
                     (x[static_cast<size_t>(n) * D + j] - mean[j]) / N;
  std::vector<double> eig;
  Matrix vec;
  jacobi_eigen(cov, eig, vec);
  double discarded = 0;
  for (int i = L; i < D; ++i) discarded += eig[i] / (D - L);

  // The linear VAE: fc heads straight from x, one fc decoder, a learned global variance.
  vd::ModelConfig cfg = vd::ModelConfig::mlp(D, {}, L);
  cfg.likelihood = vd::Likelihood::Gaussian;
  cfg.output_variance = vd::ModelConfig::OutputVariance::Learned;
  vd::ParamStore store;
  vd::Vae vae(cfg, store);
  store.finalize();
  vd::Rng init(3);
  vae.init(init);
  vd::AdamConfig ac;
  vd::Adam adam(store.size(), ac);
  vd::Context ctx;
  std::vector<float> eps(static_cast<size_t>(N) * L);
  vd::Rng noise(5);
  // Full-batch steps; the rate decays from 1e-2 to 1e-4 so the noise of eps averages out.
  Matrix top(D, std::vector<double>(L));
  for (int i = 0; i < D; ++i)
    for (int j = 0; j < L; ++j) top[i][j] = vec[i][j];
  const auto decoder_columns = [&] {
    const float* w = store.param(store.index_of("decoder.out.weight"));  // [D, L]
    Matrix decoder(D, std::vector<double>(L));
    for (int i = 0; i < D; ++i)
      for (int j = 0; j < L; ++j) decoder[i][j] = w[i * L + j];
    return decoder;
  };
  const auto decoder_angle = [&] { return largest_angle_degrees(decoder_columns(), top); };
  const auto learned_sigma2 = [&] {
    return std::exp(double{store.param(store.index_of("decoder.out_logvar"))[0]});
  };
  // VD_PCA_TRACE=file.json: the spectrum and the training's course, for launch/pca_figure.py.
  const char* trace_path = std::getenv("VD_PCA_TRACE");
  std::string trace;
  const int steps = 3000;
  for (int t = 0; t < steps; ++t) {
    noise.fill_normal(eps.data(), eps.size());
    vae.train_step(ctx, vd::Batch{N, x.data(), nullptr, eps.data()}, 1.0f, 1.0f / N);
    const double lr = 1e-2 * std::pow(1e-2, static_cast<double>(t) / steps);
    adam.step(store.params(), store.grads(), lr);
    if (trace_path && (t + 1) % 25 == 0) {
      char row[96];
      std::snprintf(row, sizeof row, "%s[%d, %.6f, %.6f]", trace.empty() ? "" : ", ", t + 1,
                    decoder_angle(), learned_sigma2());
      trace += row;
    }
  }

  const double angle = decoder_angle();
  const double sigma2 = learned_sigma2();
  if (trace_path) {
    std::FILE* f = std::fopen(trace_path, "w");
    ASSERT_NE(f, nullptr) << trace_path;
    std::fprintf(f, "{\"eigenvalues\": [");
    for (int i = 0; i < D; ++i) std::fprintf(f, "%s%.6f", i ? ", " : "", eig[i]);
    std::fprintf(f, "], \"kept\": %d, \"discarded_mean\": %.6f, \"sigma2\": %.6f, ", L, discarded,
                 sigma2);
    std::fprintf(f, "\"angle_degrees\": %.6f, \"trace\": [%s]}\n", angle, trace.c_str());
    std::fclose(f);
  }
  EXPECT_LT(angle, 1.0) << "decoder columns vs the top-" << L << " principal subspace";
  EXPECT_NEAR(sigma2, discarded, 0.02 * discarded)
      << "learned sigma^2 vs the mean of the discarded eigenvalues " << discarded;
  // And the spectrum is what was built: two strong directions, then the floor.
  EXPECT_GT(eig[1], 3.0);
  EXPECT_LT(eig[L], 0.7);
  // Not the subspace of the weakest directions (the test can tell them apart).
  Matrix bottom(D, std::vector<double>(L));
  for (int i = 0; i < D; ++i)
    for (int j = 0; j < L; ++j) bottom[i][j] = vec[i][D - 1 - j];
  EXPECT_GT(largest_angle_degrees(decoder_columns(), bottom), 60.0);
  std::printf("linear VAE: largest principal angle %.3f degrees; sigma^2 %.5f vs %.5f (%+.2f%%)\n",
              angle, sigma2, discarded, 100 * (sigma2 / discarded - 1));
}

}  // namespace
