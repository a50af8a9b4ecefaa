// The cost model's formulas against hand-computed values: the ring allreduce, the link fit and
// the serial and overlapped step projections.
#include "parallel/cost_model.hpp"

#include <gtest/gtest.h>

namespace {

TEST(CostModel, RingAllreduceIsTwoPMinusOneStepsOfAPthOfTheData) {
  const vd::Link link{10e-6, 1e9};  // 10 us, 1 GB/s
  EXPECT_EQ(vd::ring_allreduce_seconds(1, 4e6, link), 0.0);
  // p = 2: 2 * 1/2 * 4 MB / 1 GB/s = 4 ms, plus 2 * 10 us.
  EXPECT_NEAR(vd::ring_allreduce_seconds(2, 4e6, link), 4e-3 + 20e-6, 1e-12);
  // p = 8: 14/8 * 4 ms = 7 ms, plus 14 * 10 us.
  EXPECT_NEAR(vd::ring_allreduce_seconds(8, 4e6, link), 7e-3 + 140e-6, 1e-12);
}

TEST(CostModel, LinkFitTakesLatencyFromTheSmallMessage) {
  // 4 MiB in 2.01 ms with 10 us latency: 4 MiB / 2 ms.
  const vd::Link link = vd::fit_link(10e-6, 4u << 20, 2.01e-3);
  EXPECT_DOUBLE_EQ(link.latency_s, 10e-6);
  EXPECT_NEAR(link.bandwidth_bytes_per_s, (4u << 20) / 2e-3, 1e-3);
}

TEST(CostModel, ProjectionSerialAndOverlapped) {
  const vd::Link link{0.0, 1e9};
  // p = 2: comm = 2.6 MB / 1 GB/s = 2.6 ms. Compute 4 ms of which 1.5 ms forward.
  const auto pr = vd::project({2}, 2.6e6, 4e-3, 1.5e-3, link);
  ASSERT_EQ(pr.size(), 1u);
  EXPECT_NEAR(pr[0].comm_s, 2.6e-3, 1e-12);
  EXPECT_NEAR(pr[0].step_serial_s, 6.6e-3, 1e-12);
  EXPECT_NEAR(pr[0].efficiency_serial, 4.0 / 6.6, 1e-12);
  EXPECT_NEAR(pr[0].step_overlap_s, 4.1e-3, 1e-12);  // forward + comm > compute
  EXPECT_NEAR(pr[0].efficiency_overlap, 4.0 / 4.1, 1e-12);
  // A fast link hides entirely: the step is the compute.
  const auto fast = vd::project({2}, 2.6e6, 4e-3, 1.5e-3, vd::Link{0.0, 1e12});
  EXPECT_NEAR(fast[0].step_overlap_s, 4e-3, 1e-12);
}

}  // namespace
