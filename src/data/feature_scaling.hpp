// FeatureScaling: per-feature mean and standard deviation, and x' = (x - mean) / std. Its own
// header so a Shard can hold one (a streamed shard scales rows as it reads them).
#pragma once
#include <cstdint>
#include <vector>

namespace vd {

struct FeatureScaling {
  std::vector<double> mean, std;  // [D] each; empty = no scaling

  bool empty() const { return mean.empty(); }
  // x [n, D] in place: (x - mean) / std, in double, rounded once to float.
  void apply(float* x, int64_t n) const;
  // x [n, D] in place: x * std + mean (the inverse of apply, up to float rounding).
  void invert(float* x, int64_t n) const;
  friend bool operator==(const FeatureScaling&, const FeatureScaling&) = default;
};

}  // namespace vd
