// PSNR and SSIM on hand-computed cases: identical images (SSIM 1, PSNR infinite), constant
// images (SSIM's luminance term alone), one 7 x 7 window computed directly from its means and
// sample (co)variances, the mean over RGB channels. With VD_SCORE_REFERENCE=FILE.h5 it writes
// image pairs with their PSNR and SSIM for tests/reference/anomaly_reference.py, which
// recomputes them with scikit-image.
#include "vae/image_quality.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"

namespace vd {
namespace {

std::vector<float> random_image(Rng& rng, size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform());
  return v;
}

TEST(ImageQuality, IdenticalImagesGiveSsimOneAndInfinitePsnr) {
  Rng rng(1);
  const auto x = random_image(rng, 3 * 9 * 11);
  EXPECT_EQ(ssim(x.data(), x.data(), 3, 9, 11, 1.0), 1.0);
  EXPECT_TRUE(std::isinf(psnr(x.data(), x.data(), 3, 9, 11, 1.0)));
  const std::vector<float> flat(49, 0.25f);  // no variance at all: still 1
  EXPECT_EQ(ssim(flat.data(), flat.data(), 1, 7, 7, 1.0), 1.0);
}

TEST(ImageQuality, PsnrOfAConstantError) {
  std::vector<float> x(64, 0.5f), y(64, 0.5f);
  for (float& v : y) v += 0.125f;  // MSE 1/64: 10 log10(64) dB at range 1
  EXPECT_NEAR(psnr(x.data(), y.data(), 1, 8, 8, 1.0), 10 * std::log10(64.0), 1e-12);
  EXPECT_NEAR(psnr(x.data(), y.data(), 1, 8, 8, 2.0), 10 * std::log10(256.0), 1e-12);
}

TEST(ImageQuality, ConstantImagesKeepTheLuminanceTermOnly) {
  // No variance: the structure term is C2 / C2 = 1, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
  const double a = 0.25, b = 0.75, c1 = 0.01 * 0.01;
  const std::vector<float> x(10 * 8, static_cast<float>(a)), y(10 * 8, static_cast<float>(b));
  EXPECT_NEAR(ssim(x.data(), y.data(), 1, 10, 8, 1.0), (2 * a * b + c1) / (a * a + b * b + c1),
              1e-12);
}

TEST(ImageQuality, OneWindowFromItsMeansAndSampleCovariance) {
  Rng rng(2);
  const auto x = random_image(rng, 49), y = random_image(rng, 49);
  double mx = 0, my = 0;
  for (int i = 0; i < 49; ++i) mx += x[i] / 49.0, my += y[i] / 49.0;
  double vx = 0, vy = 0, cxy = 0;
  for (int i = 0; i < 49; ++i) {
    vx += (x[i] - mx) * (x[i] - mx) / 48;
    vy += (y[i] - my) * (y[i] - my) / 48;
    cxy += (x[i] - mx) * (y[i] - my) / 48;
  }
  const double R = 2.0, c1 = (0.01 * R) * (0.01 * R), c2 = (0.03 * R) * (0.03 * R);
  const double want =
      (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
  EXPECT_NEAR(ssim(x.data(), y.data(), 1, 7, 7, R), want, 1e-12);
}

TEST(ImageQuality, RgbIsTheMeanOverChannels) {
  Rng rng(3);
  const size_t plane = 8 * 8;
  auto x = random_image(rng, 3 * plane), y = random_image(rng, 3 * plane);
  std::copy_n(x.begin(), plane, y.begin());  // channel 0 identical
  double mean = 1.0;
  for (int c = 1; c < 3; ++c) mean += ssim(x.data() + c * plane, y.data() + c * plane, 1, 8, 8, 1);
  EXPECT_NEAR(ssim(x.data(), y.data(), 3, 8, 8, 1.0), mean / 3, 1e-12);
}

TEST(ImageQuality, ImagesBelowTheWindowAreRefused) {
  const std::vector<float> x(6 * 9, 0.5f);
  EXPECT_THROW(ssim(x.data(), x.data(), 1, 6, 9, 1.0), ShapeError);
}

// Pairs for scikit-image: a reference image and a noisy, blurred or shifted copy, in gray
// 28 x 28, RGB 16 x 12 and gray 7 x 9, at data ranges 1 and 2.
TEST(ImageQualityReference, WritesPairsForScikitImage) {
  const char* out = std::getenv("VD_SCORE_REFERENCE_IMAGES");
  if (out == nullptr) GTEST_SKIP() << "set VD_SCORE_REFERENCE_IMAGES=FILE.h5 to write the pairs";
  h5::File f = h5::create_file(out);
  Rng rng(11);
  struct Size {
    int c, h, w;
  };
  int index = 0;
  for (const Size s : {Size{1, 28, 28}, Size{3, 16, 12}, Size{1, 7, 9}})
    for (double range : {1.0, 2.0}) {
      const size_t n = static_cast<size_t>(s.c) * s.h * s.w;
      std::vector<float> x(n), y(n);
      for (size_t i = 0; i < n; ++i) {
        const size_t j = i % (static_cast<size_t>(s.h) * s.w);
        const double smooth = 0.5 + 0.4 * std::sin(0.3 * static_cast<double>(j % s.w)) *
                                        std::cos(0.2 * static_cast<double>(j / s.w));
        x[i] = static_cast<float>(range * smooth);
        y[i] = static_cast<float>(range * (smooth + 0.1 * rng.normal()));
      }
      const std::string p = "pair" + std::to_string(index++) + "_";
      const int64_t dims[3] = {s.c, s.h, s.w}, two[1] = {2}, one[1] = {1};
      h5::write_dataset<float>(f, p + "x", x, dims);
      h5::write_dataset<float>(f, p + "y", y, dims);
      const std::vector<double> r = {psnr(x.data(), y.data(), s.c, s.h, s.w, range),
                                     ssim(x.data(), y.data(), s.c, s.h, s.w, range)};
      h5::write_dataset<double>(f, p + "psnr_ssim", r, two);
      h5::write_dataset<double>(f, p + "data_range", std::vector<double>{range}, one);
    }
}

}  // namespace
}  // namespace vd
