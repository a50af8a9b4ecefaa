// Tests of the latent-space arithmetic (vae/latent) against hand-computed values and direct
// loops, and of the pictures (vae/latent_images) against the model's own encode and decode:
// interpolation end points decode to the end points' reconstructions, class samples at zero
// spread decode the class mean, transfer at alpha = 1 decodes mu + delta.
#include "vae/latent.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/context.hpp"
#include "vae/latent_images.hpp"
#include "vae/model.hpp"

namespace {

TEST(Interpolate, EndPointsAreExactAndLinearMidpointIsTheMean) {
  const std::vector<float> a = {1.0f, -2.0f, 0.3f}, b = {0.1f, 4.0f, -1.7f};
  for (bool spherical : {false, true}) {
    std::vector<float> z(5 * 3);
    vd::interpolate(a.data(), b.data(), 3, 5, spherical, z.data());
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(z[j], a[j]);
      EXPECT_EQ(z[4 * 3 + j], b[j]);
      if (!spherical) {
        EXPECT_FLOAT_EQ(z[2 * 3 + j], 0.5f * (a[j] + b[j]));
      }
    }
  }
}

TEST(Interpolate, SphericalFollowsTheGreatCircle) {
  // a and b of norm 2 at 90 degrees: the midpoint has norm 2 and lies at 45 degrees.
  const std::vector<float> a = {2.0f, 0.0f}, b = {0.0f, 2.0f};
  std::vector<float> z(3 * 2);
  vd::interpolate(a.data(), b.data(), 2, 3, true, z.data());
  EXPECT_NEAR(z[2], std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(z[3], std::sqrt(2.0), 1e-6);
  // Parallel codes have no great circle: the line is used.
  const std::vector<float> c = {1.0f, 1.0f}, d = {3.0f, 3.0f};
  vd::interpolate(c.data(), d.data(), 2, 3, true, z.data());
  EXPECT_FLOAT_EQ(z[2], 2.0f);
  EXPECT_THROW(vd::interpolate(c.data(), d.data(), 2, 1, false, z.data()), vd::ShapeError);
}

TEST(ClassSums, MeansAndSpreadsAreThoseOfTheRowsOfEachClass) {
  const int n = 50, L = 3, K = 4;
  std::vector<float> mu(n * L);
  std::vector<int32_t> labels(n);
  vd::Rng rng(5);
  rng.fill_normal(mu.data(), mu.size());
  for (int i = 0; i < n; ++i) labels[i] = static_cast<int32_t>((i * 7) % 3);  // class 3 empty
  vd::ClassSums sums(K, L);
  sums.add(20, mu.data(), labels.data());  // two calls, as batches come
  sums.add(n - 20, mu.data() + 20 * L, labels.data() + 20);
  const std::vector<float> means = sums.means(), sds = sums.spreads();
  for (int k = 0; k < 3; ++k) {
    for (int j = 0; j < L; ++j) {
      double s = 0, s2 = 0;
      int c = 0;
      for (int i = 0; i < n; ++i)
        if (labels[i] == k) s += mu[i * L + j], ++c;
      const double mean = s / c;
      for (int i = 0; i < n; ++i)
        if (labels[i] == k) s2 += (mu[i * L + j] - mean) * (mu[i * L + j] - mean);
      EXPECT_NEAR(means[k * L + j], mean, 1e-6);
      EXPECT_NEAR(sds[k * L + j], std::sqrt(s2 / c), 1e-6);
      EXPECT_EQ(sums.count(k), c);
    }
  }
  EXPECT_EQ(sums.count(3), 0);
  EXPECT_TRUE(std::isnan(means[3 * L]));
  const int32_t bad = 4;
  EXPECT_THROW(sums.add(1, mu.data(), &bad), vd::DataError);
}

TEST(PosteriorStats, ActiveUnitsAndKlPerDimensionMatchAHandComputedCase) {
  // Three encodings of L = 2: dimension 0 varies (Var = 2/3), dimension 1 hardly
  // (Var = 1/600 < 0.01). KL_j = -1/2 (1 + logvar - mu^2 - exp(logvar)), averaged by hand.
  const float ln2 = static_cast<float>(std::log(2.0));
  const std::vector<float> mu = {1, 0, 2, 0.05f, 3, -0.05f};
  const std::vector<float> logvar = {0, -1, 0, 0, ln2, 1};
  vd::PosteriorStats stats(2);
  stats.add(3, mu.data(), logvar.data());
  EXPECT_EQ(stats.count(), 3);
  const auto var = stats.mu_variance();
  EXPECT_NEAR(var[0], 0.666666666666667, 1e-7);
  EXPECT_NEAR(var[1], 0.001666666666666667, 1e-7);
  EXPECT_EQ(stats.active_units(), 1);
  const auto kl = stats.kl_per_dim();
  EXPECT_NEAR(kl[0], 2.384475469906676, 1e-6);
  EXPECT_NEAR(kl[1], 0.18186021160508123, 1e-6);
}

TEST(NormalQuantile, MatchesKnownValues) {
  EXPECT_NEAR(vd::normal_quantile(0.5), 0.0, 1e-15);
  EXPECT_NEAR(vd::normal_quantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_NEAR(vd::normal_quantile(0.001), -3.090232306167813, 1e-12);
  EXPECT_NEAR(vd::normal_quantile(0.8413447460685429), 1.0, 1e-12);
  const auto axis = vd::manifold_axis(20);
  EXPECT_NEAR(axis.front(), -1.959963984540054, 1e-12);  // (0 + 0.5) / 20 = 0.025
  EXPECT_NEAR(axis[0] + axis[19], 0.0, 1e-12);
  EXPECT_THROW(vd::normal_quantile(1.0), vd::ShapeError);
}

// A small initialised MLP VAE on 16-value data (conditional with classes > 0).
struct Model {
  vd::ParamStore store;
  std::unique_ptr<vd::Vae> vae;
  vd::Context ctx;
  explicit Model(int latent_dim, int classes = 0) {
    vd::ModelConfig c = vd::ModelConfig::mlp(16, {12}, latent_dim);
    c.classes = classes;
    vae = std::make_unique<vd::Vae>(c, store);
    store.finalize();
    vd::Rng rng(3);
    vae->init(rng);
  }
  std::vector<float> mu(const float* x, int32_t label) {
    std::vector<float> m(static_cast<size_t>(vae->config().latent_dim));
    vae->encode(ctx, vd::Batch{1, x, &label, nullptr}, m.data(), nullptr);
    return m;
  }
  std::vector<float> decode(const std::vector<float>& z, int32_t label) {
    std::vector<float> out(16);
    vae->decode_mean(ctx, 1, z.data(), &label, out.data());
    return out;
  }
};

std::vector<float> images(int n, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(n) * 16);
  vd::Rng rng(seed);
  for (float& v : x) v = static_cast<float>(rng.below(1000)) / 1000.0f;
  return x;
}

void expect_row(const std::vector<float>& got, int row, const std::vector<float>& want) {
  for (int d = 0; d < 16; ++d) EXPECT_NEAR(got[row * 16 + d], want[d], 1e-6) << row << " " << d;
}

TEST(LatentImages, InterpolationEndPointsDecodeToTheEndPointsReconstructions) {
  for (int classes : {0, 3}) {
    Model m(4, classes);
    const auto x = images(2, 9);
    for (bool spherical : {false, true}) {
      const auto row =
          vd::interpolation_row(m.ctx, *m.vae, x.data(), x.data() + 16, 1, 1, 6, spherical);
      ASSERT_EQ(row.size(), 8u * 16);
      expect_row(row, 0, std::vector<float>(x.begin(), x.begin() + 16));
      expect_row(row, 1, m.decode(m.mu(x.data(), 1), 1));
      expect_row(row, 6, m.decode(m.mu(x.data() + 16, 1), 1));
      expect_row(row, 7, std::vector<float>(x.begin() + 16, x.end()));
    }
  }
}

TEST(LatentImages, ClassSamplesTransferSimilarAndManifoldDecodeTheirCodes) {
  Model m(2);
  const auto x = images(1, 4);
  vd::Rng rng(1);
  // Zero spread: every class sample is the decoded class mean.
  const std::vector<float> mean = {0.5f, -1.0f}, sd = {2.0f, 3.0f};
  const auto samples = vd::class_samples(m.ctx, *m.vae, mean.data(), sd.data(), 0, 3, 0.0f, rng);
  for (int i = 0; i < 3; ++i) expect_row(samples, i, m.decode(mean, 0));
  // Transfer: the last step is mu + delta, the first the reconstruction.
  const std::vector<float> delta = {1.5f, -0.5f};
  const auto t = vd::transfer_row(m.ctx, *m.vae, x.data(), 0, 1, delta.data(), 4);
  ASSERT_EQ(t.size(), 5u * 16);
  const auto mu = m.mu(x.data(), 0);
  expect_row(t, 1, m.decode(mu, 0));
  expect_row(t, 4, m.decode({mu[0] + delta[0], mu[1] + delta[1]}, 0));
  // Similar at zero spread: every sample is the reconstruction.
  const auto s = vd::similar_row(m.ctx, *m.vae, x.data(), 0, 2, 0.0f, rng);
  for (int i = 1; i < 4; ++i) expect_row(s, i, m.decode(mu, 0));
  // Manifold: the top-left tile is z = (axis[0], axis[n-1]).
  const auto grid = vd::manifold_images(m.ctx, *m.vae, 5, 0);
  const auto axis = vd::manifold_axis(5);
  expect_row(grid, 0, m.decode({static_cast<float>(axis[0]), static_cast<float>(axis[4])}, 0));
  Model wide(3);
  EXPECT_THROW(vd::manifold_images(wide.ctx, *wide.vae, 5, 0), vd::ConfigError);
}

TEST(LatentImages, ConditionalClassSamplesAndTransferDecodeWithTheLabel) {
  Model m(2, 3);
  const auto x = images(1, 6);
  vd::Rng rng(1);
  const auto samples = vd::class_samples(m.ctx, *m.vae, nullptr, nullptr, 2, 2, 0.0f, rng);
  expect_row(samples, 1, m.decode({0.0f, 0.0f}, 2));  // the prior's centre, label 2
  const auto t = vd::transfer_row(m.ctx, *m.vae, x.data(), 0, 2, nullptr, 4);
  ASSERT_EQ(t.size(), 3u * 16);
  const auto mu = m.mu(x.data(), 0);
  expect_row(t, 1, m.decode(mu, 0));
  expect_row(t, 2, m.decode(mu, 2));
}

TEST(LatentImages, EvaluateFeedsTheStatisticsWhoseKlSumsToTheKlTerm) {
  Model m(4);
  const int n = 7;
  const auto x = images(n, 2);
  std::vector<float> eps(static_cast<size_t>(n) * 4);
  vd::Rng rng(8);
  rng.fill_normal(eps.data(), eps.size());
  vd::PosteriorStats stats(4);
  const vd::LossSums sums =
      m.vae->evaluate(m.ctx, vd::Batch{n, x.data(), nullptr, eps.data()}, 1.0f, &stats);
  double total = 0;
  for (double v : stats.kl_per_dim()) total += v;
  EXPECT_NEAR(total * n, sums.term[vd::Vae::kKl], 1e-4 * std::max(1.0, sums.term[vd::Vae::kKl]));
  EXPECT_EQ(stats.count(), n);
}

}  // namespace

namespace {

// A picture whose decoded values hold a NaN or an infinity is refused (vae_latent wrote a grey
// PNG with exit 0), naming the picture, the image and the value; a finite one passes.
TEST(CheckFiniteImages, ANonFiniteDecodedValueIsRefusedNamingTheImage) {
  std::vector<float> images(3 * 4, 0.5f);
  EXPECT_NO_THROW(vd::check_finite_images(images, 3, "'grid.png'"));
  for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    images[2 * 4 + 1] = bad;
    try {
      vd::check_finite_images(images, 3, "'grid.png'");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const vd::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'grid.png': image 2 of 3 decodes to"), std::string::npos) << what;
      EXPECT_NE(what.find("at value 1, so no picture is written"), std::string::npos) << what;
      EXPECT_NE(what.find("lower --temperature or --spread"), std::string::npos) << what;
    }
  }
}

}  // namespace
