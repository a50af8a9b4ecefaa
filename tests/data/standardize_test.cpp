// Tests of --standardize's statistics: over P = 1, 2, 3 simulated ranks (each a shard of the
// same file) they equal a straightforward double loop over the whole file, also for a feature
// whose offset dwarfs its spread and for a constant feature (std floored to 1); the scaling
// and its inverse; uint8 data is refused. (tests/data/standardize_numpy_test.py compares the
// checkpoint's statistics with numpy's on a file from `vae_data synth --features`.)
#include "data/standardize.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "data/dataset_file.hpp"
#include "support/temp_dir.hpp"

namespace {

constexpr int64_t kRows = 257, kFeatures = 5;

// Feature 0: offset 1e4, std 1e-2 (float32 keeps ~3 digits of the spread); 1: plain N(0,1)
// values; 2: constant; 3: tiny (1e-6 scale); 4: large (1e3 scale, offset -5e3).
std::vector<float> make_data() {
  vd::Rng rng(17);
  std::vector<float> x(kRows * kFeatures);
  for (int64_t r = 0; r < kRows; ++r) {
    float* row = x.data() + r * kFeatures;
    row[0] = static_cast<float>(1e4 + 1e-2 * rng.uniform(-1.7, 1.7));
    row[1] = static_cast<float>(rng.uniform(-1.7, 1.7));
    row[2] = 3.25f;
    row[3] = static_cast<float>(1e-6 * rng.uniform(-1.0, 1.0));
    row[4] = static_cast<float>(-5e3 + 1e3 * rng.uniform(-1.0, 1.0));
  }
  return x;
}

std::string write_file(const vd::testing::TempDir& dir, const std::vector<float>& x) {
  const std::string path = dir.file("features.h5");
  vd::h5::File f = vd::h5::create_file(path);
  const int64_t dims[2] = {kRows, kFeatures};
  vd::h5::write_dataset<float>(f, "/images", x, dims);
  return path;
}

TEST(Standardize, StatisticsOverAnyNumberOfRanksEqualADoubleLoopOverTheFile) {
  vd::testing::TempDir dir;
  const std::vector<float> x = make_data();
  const std::string file = write_file(dir, x);
  // The reference: mean, then the mean squared deviation, long double sums over every row.
  std::vector<double> mean(kFeatures), sd(kFeatures);
  for (int64_t d = 0; d < kFeatures; ++d) {
    long double s = 0;
    for (int64_t r = 0; r < kRows; ++r) s += x[r * kFeatures + d];
    const long double m = s / kRows;
    long double q = 0;
    for (int64_t r = 0; r < kRows; ++r)
      q += (x[r * kFeatures + d] - m) * (x[r * kFeatures + d] - m);
    mean[d] = static_cast<double>(m);
    sd[d] = static_cast<double>(std::sqrt(q / kRows));
  }
  ASSERT_EQ(sd[2], 0.0);
  for (int P : {1, 2, 3}) {
    SCOPED_TRACE("ranks: " + std::to_string(P));
    std::vector<vd::Shard> shards;
    for (int r = 0; r < P; ++r)
      shards.push_back(vd::Shard::read(file, "/images", r, P, vd::ValueCheck::None));
    // feature_scaling makes two collective calls (sums, then squared deviations from the
    // global mean). Simulated ranks: every rank's buffer of a call, summed, is the answer to
    // that call; a call's buffer depends only on the answers before it.
    std::vector<std::vector<double>> answers;
    const auto answer_calls = [&](int r, size_t record) {
      std::vector<double> recorded;
      size_t call = 0;
      vd::FeatureScaling s = vd::feature_scaling(shards[r], [&](std::span<double> v) {
        if (call == record) recorded.assign(v.begin(), v.end());
        if (call < answers.size()) std::copy(answers[call].begin(), answers[call].end(), v.begin());
        ++call;
      });
      return std::pair{recorded, s};
    };
    for (size_t call = 0; call < 2; ++call) {
      std::vector<double> sum;
      for (int r = 0; r < P; ++r) {
        const std::vector<double> buf = answer_calls(r, call).first;
        if (sum.empty()) sum.assign(buf.size(), 0.0);
        for (size_t i = 0; i < buf.size(); ++i) sum[i] += buf[i];
      }
      answers.push_back(sum);
    }
    const vd::FeatureScaling got = answer_calls(0, 99).second;
    ASSERT_EQ(got.mean.size(), static_cast<size_t>(kFeatures));
    for (int64_t d = 0; d < kFeatures; ++d) {
      EXPECT_NEAR(got.mean[d], mean[d], 1e-14 * std::abs(mean[d]) + 1e-300) << "feature " << d;
      if (d == 2)
        EXPECT_EQ(got.std[d], 1.0);  // constant: std floored to 1
      else
        EXPECT_NEAR(got.std[d], sd[d], 1e-9 * sd[d]) << "feature " << d;
    }
  }
}

TEST(Standardize, ScalingAndItsInverse) {
  vd::testing::TempDir dir;
  const std::vector<float> x = make_data();
  vd::Shard shard = vd::Shard::read(write_file(dir, x), "/images", 0, 1, vd::ValueCheck::None);
  const vd::FeatureScaling s = vd::feature_scaling(shard, [](std::span<double>) {});
  vd::standardize(shard, s);
  const auto z = shard.float_values();
  for (int64_t d = 0; d < kFeatures; ++d) {
    double m = 0, q = 0;
    for (int64_t r = 0; r < kRows; ++r) m += z[r * kFeatures + d];
    m /= kRows;
    for (int64_t r = 0; r < kRows; ++r)
      q += (z[r * kFeatures + d] - m) * (z[r * kFeatures + d] - m);
    EXPECT_NEAR(m, 0.0, 1e-6) << "feature " << d;
    EXPECT_NEAR(std::sqrt(q / kRows), d == 2 ? 0.0 : 1.0, 1e-5) << "feature " << d;
  }
  std::vector<float> back(z.begin(), z.end());
  s.invert(back.data(), kRows);
  for (size_t i = 0; i < back.size(); ++i)
    ASSERT_NEAR(back[i], x[i], 2e-7 * std::abs(x[i]) + 1e-12) << "value " << i;
}

TEST(Standardize, Uint8DataIsRefusedWithAClearError) {
  vd::testing::TempDir dir;
  const std::string file = dir.file("u8.h5");
  vd::write_synthetic(file, 10, 1, 4, 4, 1, vd::SynthDType::UInt8, 2);
  const vd::Shard shard = vd::Shard::read(file, "/images", 0, 1, vd::ValueCheck::UnitInterval);
  try {
    vd::feature_scaling(shard, [](std::span<double>) {});
    FAIL() << "expected a ConfigError";
  } catch (const vd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--standardize needs float data"), std::string::npos)
        << e.what();
  }
}

TEST(SynthFeatures, FeaturesSpanScalesAndOffsets) {
  vd::testing::TempDir dir;
  const std::string file = dir.file("sci.h5");
  vd::write_synthetic_features(file, 500, 8, 3, 4);
  const vd::Shard shard = vd::Shard::read(file, "/images", 0, 1, vd::ValueCheck::None);
  ASSERT_EQ(shard.sample_shape(), (std::vector<int64_t>{8}));
  ASSERT_TRUE(shard.has_labels());
  const vd::FeatureScaling s = vd::feature_scaling(shard, [](std::span<double>) {});
  EXPECT_NEAR(s.mean[0], 1e4, 1.0);  // offset 1e4, scale 1e-3
  EXPECT_LT(s.std[0], 1e-2);
  EXPECT_GT(s.std[7], 1e2);  // scale 1e3
  EXPECT_GT(s.std[7] / s.std[0], 1e5);
  // Deterministic per seed.
  const std::string again = dir.file("sci2.h5");
  vd::write_synthetic_features(again, 500, 8, 3, 4);
  const vd::Shard b = vd::Shard::read(again, "/images", 0, 1, vd::ValueCheck::None);
  EXPECT_TRUE(std::equal(shard.float_values().begin(), shard.float_values().end(),
                         b.float_values().begin()));
}

}  // namespace
