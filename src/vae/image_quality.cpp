// PSNR and SSIM. SSIM sums each 7 x 7 window through summed-area tables of x, y, x^2, y^2 and
// xy in double; skimage's uniform_filter gives the same window means (its border handling
// only touches the positions that its crop removes).
#include "vae/image_quality.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vd {

double psnr(const float* x, const float* y, int c, int h, int w, double data_range) {
  const size_t n = static_cast<size_t>(c) * h * w;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(x[i]) - y[i];
    sum += e * e;
  }
  const double mse = sum / static_cast<double>(n);
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(data_range * data_range / mse);
}

double ssim(const float* x, const float* y, int c, int h, int w, double data_range) {
  constexpr int K = kSsimWindow;
  VD_CHECK(h >= K && w >= K, ShapeError,
           "SSIM's " + std::to_string(K) + "x" + std::to_string(K) +
               " window needs images of at "
               "least that size, not " +
               std::to_string(h) + "x" + std::to_string(w));
  const double c1 = (0.01 * data_range) * (0.01 * data_range);
  const double c2 = (0.03 * data_range) * (0.03 * data_range);
  constexpr double np = K * K, cov_norm = np / (np - 1);
  const size_t W1 = static_cast<size_t>(w) + 1;
  // Summed-area tables [(h + 1) x (w + 1)] of the five images.
  std::vector<double> tab(5 * (static_cast<size_t>(h) + 1) * W1);
  const auto at = [&](int t, int i, int j) -> double& {
    return tab[(static_cast<size_t>(t) * (h + 1) + i) * W1 + j];
  };
  double total = 0;
  for (int ch = 0; ch < c; ++ch) {
    const float* xc = x + static_cast<size_t>(ch) * h * w;
    const float* yc = y + static_cast<size_t>(ch) * h * w;
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        const double a = xc[static_cast<size_t>(i) * w + j], b = yc[static_cast<size_t>(i) * w + j];
        const double v[5] = {a, b, a * a, b * b, a * b};
        for (int t = 0; t < 5; ++t)
          at(t, i + 1, j + 1) = v[t] + at(t, i, j + 1) + at(t, i + 1, j) - at(t, i, j);
      }
    double sum = 0;
    for (int i = 0; i + K <= h; ++i)
      for (int j = 0; j + K <= w; ++j) {
        double m[5];
        for (int t = 0; t < 5; ++t)
          m[t] = (at(t, i + K, j + K) - at(t, i, j + K) - at(t, i + K, j) + at(t, i, j)) / np;
        const double ux = m[0], uy = m[1];
        const double vx = cov_norm * (m[2] - ux * ux), vy = cov_norm * (m[3] - uy * uy);
        const double vxy = cov_norm * (m[4] - ux * uy);
        sum += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
      }
    total += sum / (static_cast<double>(h - K + 1) * (w - K + 1));
  }
  return total / c;
}

}  // namespace vd
