// Tests of the vector scans in core/simd.hpp: any_non_finite at every position of vectors and
// their tails, for every kind of non-finite value, and no false alarm on extreme finite ones.
#include "core/simd.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace {

TEST(AnyNonFinite, FindsNaNAndInfinityAtEveryPosition) {
  using L = std::numeric_limits<float>;
  for (size_t n : {size_t{1}, size_t{7}, size_t{16}, size_t{33}, size_t{100}}) {
    // The largest, smallest, denormal and signed-zero values are all finite.
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
      const float extreme[] = {L::max(), -L::max(), L::min(), L::denorm_min(), -0.0f, 1.0f};
      x[i] = extreme[i % 6];
    }
    EXPECT_FALSE(vd::any_non_finite(x.data(), n)) << n;
    for (float bad : {L::quiet_NaN(), -L::quiet_NaN(), L::infinity(), -L::infinity()})
      for (size_t i = 0; i < n; ++i) {
        std::vector<float> y = x;
        y[i] = bad;
        EXPECT_TRUE(vd::any_non_finite(y.data(), n)) << "n " << n << " position " << i;
      }
  }
  EXPECT_FALSE(vd::any_non_finite(nullptr, 0));
}

}  // namespace
