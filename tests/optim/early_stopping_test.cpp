// EarlyStopping on scripted validation-loss sequences: the evaluation it stops at, the best it
// keeps, and a restored state that continues the count.
#include "optim/early_stopping.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace vd {
namespace {

// The 1-based evaluation at which the sequence stops (0 = never).
int stops_at(int64_t patience, const std::vector<double>& losses) {
  EarlyStopping e(patience);
  for (size_t i = 0; i < losses.size(); ++i)
    if (e.observe(losses[i], static_cast<int64_t>(i)).stop) return static_cast<int>(i + 1);
  return 0;
}

TEST(EarlyStopping, StopsAfterPatienceEvaluationsWithoutANewBest) {
  // Best 3.0 at evaluation 3; evaluations 4, 5, 6 do not beat it (equal is no improvement).
  const std::vector<double> losses = {5.0, 4.0, 3.0, 3.5, 3.0, 3.2, 2.0};
  EXPECT_EQ(stops_at(3, losses), 6);
  EXPECT_EQ(stops_at(1, losses), 4);
  EXPECT_EQ(stops_at(4, losses), 0);  // evaluation 7 improves in time
  EXPECT_EQ(stops_at(0, losses), 0);  // 0 = off
}

TEST(EarlyStopping, TracksTheBestAndItsStep) {
  EarlyStopping e(2);
  EXPECT_TRUE(e.observe(5.0, 10).improved);
  EXPECT_TRUE(e.observe(4.0, 20).improved);
  const auto v = e.observe(4.5, 30);
  EXPECT_FALSE(v.improved);
  EXPECT_FALSE(v.stop);
  EXPECT_EQ(e.state().best, 4.0);
  EXPECT_EQ(e.state().best_step, 20);
  EXPECT_EQ(e.state().bad_evaluations, 1);
}

TEST(EarlyStopping, NonFiniteLossesNeverImprove) {
  EarlyStopping e(2);
  EXPECT_FALSE(e.observe(std::nan(""), 1).improved);
  EXPECT_FALSE(e.observe(INFINITY, 2).improved);
  EXPECT_EQ(e.state().best_step, -1);
  EXPECT_TRUE(e.observe(-INFINITY, 3).stop);  // -inf is not finite either
  EXPECT_EQ(e.state().bad_evaluations, 3);
}

TEST(EarlyStopping, ARestoredStateContinuesTheCount) {
  const std::vector<double> losses = {5.0, 4.0, 4.5, 4.6, 4.7};
  EarlyStopping whole(3);
  int whole_stop = 0;
  for (size_t i = 0; i < losses.size() && !whole_stop; ++i)
    if (whole.observe(losses[i], static_cast<int64_t>(i)).stop) whole_stop = static_cast<int>(i);
  EarlyStopping first(3);
  for (size_t i = 0; i < 3; ++i) first.observe(losses[i], static_cast<int64_t>(i));
  EarlyStopping second(3);
  second.set_state(first.state());
  EXPECT_FALSE(second.observe(losses[3], 3).stop);
  EXPECT_TRUE(second.observe(losses[4], 4).stop);
  EXPECT_EQ(whole_stop, 4);
  EXPECT_EQ(second.state(), whole.state());
}

}  // namespace
}  // namespace vd
