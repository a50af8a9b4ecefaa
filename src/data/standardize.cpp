// FeatureScaling: exact-as-double per-feature moments over the ranks, and the scaling itself.
#include "data/standardize.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"

namespace vd {

void FeatureScaling::apply(float* x, int64_t n) const {
  const size_t D = mean.size();
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + static_cast<size_t>(r) * D;
    for (size_t d = 0; d < D; ++d)
      row[d] = static_cast<float>((static_cast<double>(row[d]) - mean[d]) / std[d]);
  }
}

void FeatureScaling::invert(float* x, int64_t n) const {
  const size_t D = mean.size();
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + static_cast<size_t>(r) * D;
    for (size_t d = 0; d < D; ++d)
      row[d] = static_cast<float>(static_cast<double>(row[d]) * std[d] + mean[d]);
  }
}

FeatureScaling feature_scaling(const Shard& shard, const SumOverRanks& sum_over_ranks) {
  if (shard.stored_as_uint8())
    throw ConfigError("--standardize needs float data, but '" + shard.file() + "' " +
                      shard.dataset() +
                      " is uint8 (images, scaled to [0, 1] already); drop --standardize or "
                      "store the data as float32");
  const size_t D = static_cast<size_t>(shard.sample_size());
  const int64_t rows = shard.rows();
  // A streamed shard is read in runs of about 16 MB, twice.
  const int64_t run = std::max<int64_t>(1, (int64_t{16} << 20) / shard.row_bytes());
  // Sweep 1: sums of x per feature, and the row count, over every rank.
  std::vector<double> sums(D + 1, 0.0);
  shard.for_each_float_run(run, [&](const float* x, int64_t n) {
    for (int64_t r = 0; r < n; ++r) {
      const float* row = x + static_cast<size_t>(r) * D;
      for (size_t d = 0; d < D; ++d) sums[d] += row[d];
    }
  });
  sums[D] = static_cast<double>(rows);
  sum_over_ranks(sums);
  const double N = sums[D];
  FeatureScaling s;
  s.mean.resize(D);
  for (size_t d = 0; d < D; ++d) s.mean[d] = sums[d] / N;
  // Sweep 2: sums of squared deviations from the global mean.
  std::vector<double> m2(D, 0.0);
  shard.for_each_float_run(run, [&](const float* x, int64_t n) {
    for (int64_t r = 0; r < n; ++r) {
      const float* row = x + static_cast<size_t>(r) * D;
      for (size_t d = 0; d < D; ++d) {
        const double e = row[d] - s.mean[d];
        m2[d] += e * e;
      }
    }
  });
  sum_over_ranks(m2);
  s.std.resize(D);
  for (size_t d = 0; d < D; ++d) {
    const double sd = std::sqrt(m2[d] / N);
    s.std[d] = sd > 0 ? sd : 1.0;  // a constant feature: (x - mean) / 1 = 0
  }
  return s;
}

void standardize(Shard& shard, const FeatureScaling& scaling) {
  if (scaling.empty()) return;
  if (static_cast<int64_t>(scaling.mean.size()) != shard.sample_size() ||
      scaling.std.size() != scaling.mean.size())
    throw ShapeError("standardize: statistics of " + std::to_string(scaling.mean.size()) +
                     " features for data of " + std::to_string(shard.sample_size()) +
                     " values per sample");
  if (shard.stored_as_uint8())
    throw ConfigError("standardised statistics apply to float data, but '" + shard.file() +
                      "' is uint8; give the float data the model was trained on");
  shard.standardize(scaling);
}

}  // namespace vd
