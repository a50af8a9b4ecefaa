// Tests of vd::UpdateGuard: its robust scores against hand-computed medians and MADs, the
// verdicts (skip, streak, divergence), and the state's round trip.
#include "optim/update_guard.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"

namespace vd {
namespace {

UpdateGuardConfig config(double threshold, int window = 8, int max_skips = 2, int min_history = 1,
                         int64_t full_batch = 16) {
  UpdateGuardConfig c;
  c.threshold = threshold;
  c.window = window;
  c.max_skips = max_skips;
  c.min_history = min_history;
  c.full_batch = full_batch;
  return c;
}

TEST(UpdateGuard, ScoreIsTheDistanceFromTheMedianInScaledMads) {
  const UpdateGuard g(config(10));
  // Odd: median 3, deviations {2, 1, 0, 1, 97}, MAD 1.
  EXPECT_DOUBLE_EQ(g.score({1, 2, 3, 4, 100}, 10, 16, false), 7 / 1.4826);
  // Even (numpy's median): median 2.5, deviations {1.5, 0.5, 0.5, 1.5}, MAD 1.
  EXPECT_DOUBLE_EQ(g.score({4, 1, 3, 2}, 6, 16, false), 3.5 / 1.4826);
  // Below the median: negative.
  EXPECT_DOUBLE_EQ(g.score({1, 2, 3, 4, 100}, 0, 16, false), -3 / 1.4826);
  // The scale is at least 5% of the median's size: median 100, MAD 1 -> scale 5.
  EXPECT_DOUBLE_EQ(g.score({99, 100, 101}, 120, 16, false), 20.0 / 5.0);
  EXPECT_DOUBLE_EQ(g.score({-101, -100, -99}, -80, 16, false), 20.0 / 5.0);
  // A quarter of the full batch: the scale doubles.
  EXPECT_DOUBLE_EQ(g.score({1, 2, 3, 4, 100}, 10, 4, false), 7 / (2 * 1.4826));
  // A constant history at 0: any rise is infinitely far.
  EXPECT_TRUE(std::isinf(g.score({0, 0, 0}, 1e-9, 16, false)));
  EXPECT_EQ(g.score({0, 0, 0}, -1, 16, false), 0.0);
}

TEST(UpdateGuard, NormsAreScoredByTheirLogarithms) {
  const UpdateGuard g(config(10));
  // logs {0, 1, 2, 3, 4}: median 2, MAD 1.
  const std::vector<double> h = {1, std::exp(1.0), std::exp(2.0), std::exp(3.0), std::exp(4.0)};
  EXPECT_NEAR(g.score(h, std::exp(9.0), 16, true), 7 / 1.4826, 1e-12);
  // The log scale is at least 0.05: a constant history of norms 2.
  EXPECT_NEAR(g.score({2, 2, 2}, 2 * std::exp(0.5), 16, true), 10.0, 1e-12);
}

TEST(UpdateGuard, ShortHistoriesGetAWiderMargin) {
  const UpdateGuard g(config(10, 8, 2, 4));
  // One step of history where four are enough: the scale (5% of 100) doubles.
  EXPECT_DOUBLE_EQ(g.score({100}, 120, 16, false), 20.0 / 10.0);
  EXPECT_DOUBLE_EQ(g.score({100, 100, 100, 100}, 120, 16, false), 20.0 / 5.0);
}

TEST(UpdateGuard, SkipsSpikesAndDivergesAfterMaxSkipsInARow) {
  UpdateGuard g(config(10, 8, 2, 3));
  int64_t step = 0;
  const auto judge = [&](double loss, double norm) {
    return g.judge(StepFigures{++step, loss, norm, 16});
  };
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(judge(100 + i, 1.0 + 0.01 * i).skip);
  EXPECT_EQ(g.state().losses.size(), 5u);
  // A gradient-norm spike: skipped, not added to the history.
  GuardVerdict v = judge(101, 50);
  EXPECT_TRUE(v.skip);
  EXPECT_FALSE(v.diverged);
  EXPECT_GT(v.norm_score, 10);
  EXPECT_NE(v.reason.find("the gradient norm 50"), std::string::npos) << v.reason;
  EXPECT_EQ(v.reason.find("the loss"), std::string::npos) << v.reason;
  EXPECT_EQ(g.state().losses.size(), 5u);
  EXPECT_EQ(g.state().consecutive, 1);
  EXPECT_EQ(g.state().first_flagged, 6);
  // A healthy step ends the streak.
  EXPECT_FALSE(judge(102, 1.02).skip);
  EXPECT_EQ(g.state().consecutive, 0);
  EXPECT_EQ(g.state().first_flagged, -1);
  // A loss spike, twice: still within --max-skips 2; the third in a row diverges.
  v = judge(1e6, 1.0);
  EXPECT_TRUE(v.skip);
  EXPECT_NE(v.reason.find("the loss 1e+06 lies"), std::string::npos) << v.reason;
  EXPECT_FALSE(judge(1e6, 1.0).diverged);
  v = judge(1e6, 1.0);
  EXPECT_TRUE(v.diverged);
  EXPECT_EQ(g.state().consecutive, 3);
  EXPECT_EQ(g.state().first_flagged, 8);
  EXPECT_EQ(g.state().skipped, 4);
  // The healthy steps' largest scores are kept for the summary; the spikes' are not.
  EXPECT_LT(g.max_loss_score(), 10);
  EXPECT_LT(g.max_norm_score(), 10);
}

TEST(UpdateGuard, TheWindowKeepsTheNewestHealthySteps) {
  UpdateGuard g(config(10, 4));
  for (int i = 1; i <= 6; ++i) g.judge(StepFigures{i, 100.0 + i, 1.0, 16});
  EXPECT_EQ(g.state().losses, (std::vector<double>{103, 104, 105, 106}));
}

TEST(UpdateGuard, OffNeverSkipsAndKeepsNoHistory) {
  UpdateGuard g(config(0));
  EXPECT_FALSE(g.enabled());
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(g.judge(StepFigures{i, 1e30 * i, 1e30, 16}).skip);
  EXPECT_TRUE(g.state().losses.empty());
}

TEST(UpdateGuard, StateRoundTripsAndImpossibleStatesAreRefused) {
  UpdateGuard a(config(10, 8, 5, 1));
  for (int i = 1; i <= 6; ++i) a.judge(StepFigures{i, 100.0 + (i % 3), 1.0 + 0.1 * (i % 2), 16});
  a.judge(StepFigures{7, 1e9, 1.0, 16});
  UpdateGuard b(config(10, 8, 5, 1));
  b.set_state(a.state());
  EXPECT_EQ(b.state(), a.state());
  for (int i = 8; i <= 12; ++i) {
    const StepFigures f{i, i == 10 ? 5e8 : 101.0, 1.05, 16};
    const GuardVerdict va = a.judge(f), vb = b.judge(f);
    EXPECT_EQ(va.skip, vb.skip);
    EXPECT_EQ(va.loss_score, vb.loss_score);
  }
  EXPECT_EQ(b.state(), a.state());
  // A longer stored window than this run's: the newest steps stay.
  UpdateGuard c(config(10, 2));
  c.set_state(a.state());
  EXPECT_EQ(c.state().losses.size(), 2u);
  EXPECT_EQ(c.state().losses.back(), a.state().losses.back());
  UpdateGuardState bad = a.state();
  bad.norms.pop_back();
  EXPECT_THROW(c.set_state(bad), ConfigError);
  bad = a.state();
  bad.losses[0] = NAN;
  EXPECT_THROW(c.set_state(bad), ConfigError);
  bad = a.state();
  bad.consecutive = 1;
  bad.first_flagged = -1;
  EXPECT_THROW(c.set_state(bad), ConfigError);
}

}  // namespace
}  // namespace vd
