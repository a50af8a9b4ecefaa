// Tests of the physical FMA peak loops: the arithmetic they do is the flop count they claim.
#include "nn/fma_peak.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/error.hpp"

namespace {

// bf16 has 8 significand bits: 1e-9 rounds to the nearest bf16 before vdpbf16ps multiplies.
double bf16_round(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
  float r;
  std::memcpy(&r, &bits, 4);
  return r;
}

TEST(FmaPeak, LoopsDoTheFlopsTheyCount) {
  constexpr long trips = 1000;
  for (vd::Precision p : {vd::Precision::F32, vd::Precision::BF16}) {
    const vd::FmaPeak peak = vd::measure_fma_peak(p, 0.02);
    if (peak.flops_per_op == 0) {
      EXPECT_EQ(peak.gflops, 0.0);
      EXPECT_EQ(vd::fma_loop_sum(p, trips), 0.0);
      continue;
    }
    EXPECT_TRUE(std::isfinite(peak.gflops) && peak.gflops > 0) << peak.instruction;
    // flops_per_op / 2 products per instruction, each adding 1 x addend.
    const double addend = p == vd::Precision::BF16 ? bf16_round(1e-9f) * bf16_round(1.0f) : 1e-9;
    const double want = trips * peak.accumulators * (peak.flops_per_op / 2) * addend;
    EXPECT_NEAR(vd::fma_loop_sum(p, trips), want, 1e-4 * want) << peak.instruction;
  }
  EXPECT_THROW(vd::measure_fma_peak(vd::Precision::F32, 0.0), vd::ShapeError);
}

}  // namespace
