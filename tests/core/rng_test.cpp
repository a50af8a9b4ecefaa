// Tests of vd::Rng: determinism, distribution moments, state round trip.
#include "core/rng.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"

namespace {

TEST(Rng, SameSeedGivesSameStream) {
  vd::Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    EXPECT_NE(x, c.next_u64());
  }
}

TEST(Rng, DerivedSeedsDifferPerComponent) {
  const uint64_t s = vd::Rng::derive_seed(1, 2, 3, 4);
  EXPECT_NE(s, vd::Rng::derive_seed(1, 2, 3, 5));
  EXPECT_NE(s, vd::Rng::derive_seed(1, 3, 2, 4));
  EXPECT_NE(s, vd::Rng::derive_seed(2, 2, 3, 4));
  EXPECT_EQ(s, vd::Rng::derive_seed(1, 2, 3, 4));
}

TEST(Rng, NormalSamplesHaveUnitMomentsWithinSamplingError) {
  vd::Rng rng(7);
  const size_t n = 200000;
  std::vector<float> x(n);
  rng.fill_normal(x.data(), n);
  double sum = 0, sq = 0, fourth = 0;
  for (float v : x) {
    sum += v;
    sq += double(v) * v;
    fourth += double(v) * v * v * v;
  }
  const double mean = sum / n, var = sq / n - mean * mean;
  // Standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032; allow 5 sigma.
  EXPECT_NEAR(mean, 0.0, 0.011);
  EXPECT_NEAR(var, 1.0, 0.016);
  EXPECT_NEAR(fourth / n, 3.0, 0.1);  // kurtosis of a Gaussian
}

TEST(Rng, UniformIsInUnitIntervalAndBelowIsInRange) {
  vd::Rng rng(3);
  for (int i = 0; i < 10000; ++i) {
    const double u = rng.uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    EXPECT_LT(rng.below(7), 7u);
  }
  EXPECT_THROW(rng.below(0), vd::Error);
}

TEST(Rng, StateRoundTripContinuesTheSameStream) {
  vd::Rng a(11);
  for (int i = 0; i < 10; ++i) a.next_u64();
  vd::Rng b(999);
  b.set_state(a.state());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.normal(), b.normal());
  EXPECT_THROW(b.set_state("not a state"), vd::Error);
}

}  // namespace
