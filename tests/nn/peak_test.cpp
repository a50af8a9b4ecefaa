// Tests of the inner-product peak measurement: finite positive results for every pass.
#include "nn/peak.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"

namespace {

TEST(Peak, ReturnsPositiveFiniteGflopsForEveryPass) {
  vd::Context ctx;
  for (auto pass : {vd::InnerProductPass::Forward, vd::InnerProductPass::BackwardData,
                    vd::InnerProductPass::BackwardWeights, vd::InnerProductPass::All}) {
    const double g = vd::measure_inner_product_gflops(ctx, 16, 64, 32, pass, 0.02);
    EXPECT_TRUE(std::isfinite(g) && g > 0.0) << g;
  }
  const double g = vd::measure_inner_product_peak_gflops(ctx, 32, 128, 64, 0.02);
  EXPECT_TRUE(std::isfinite(g) && g > 0.0) << g;
  EXPECT_THROW(vd::measure_inner_product_peak_gflops(ctx, 8, 8, 8, 0.0), vd::ShapeError);
  EXPECT_THROW(vd::measure_inner_product_peak_gflops(ctx, 0, 8, 8, 0.01), vd::ShapeError);
}

}  // namespace
