// LrSchedule against its closed forms and against values printed by PyTorch 1.13's schedulers
// (SGD lr read before each optimizer step; the scripts' settings are given in each test).
#include "optim/lr_schedule.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.hpp"

namespace vd {
namespace {

// torch's recursive updates and our closed forms differ in the last bits only.
void expect_rates(const LrSchedule& s, const std::vector<double>& want) {
  for (size_t t = 0; t < want.size(); ++t)
    EXPECT_NEAR(s.lr(static_cast<int64_t>(t)), want[t], 1e-12 * want[t]) << "step " << t;
}

TEST(LrSchedule, ConstantIsTheBaseRateExactly) {
  LrScheduleConfig c;
  c.base_lr = 0.1 + 0.2;  // not exactly 0.3: any arithmetic would show
  const LrSchedule s(c);
  for (int64_t t : {0, 1, 1000, 1000000000}) EXPECT_EQ(s.lr(t), c.base_lr);
}

TEST(LrSchedule, WarmupRampsLinearlyToTheBaseRate) {
  LrScheduleConfig c;
  c.base_lr = 3e-3;
  c.warmup_steps = 4;
  const LrSchedule s(c);
  EXPECT_DOUBLE_EQ(s.lr(0), 3e-3 / 4);
  EXPECT_DOUBLE_EQ(s.lr(1), 3e-3 * 2 / 4);
  EXPECT_DOUBLE_EQ(s.lr(2), 3e-3 * 3 / 4);
  EXPECT_EQ(s.lr(3), 3e-3);  // the W-th step has the full rate
  EXPECT_EQ(s.lr(4), 3e-3);
  EXPECT_EQ(s.lr(100), 3e-3);
}

// torch: SequentialLR(opt, [LinearLR(opt, start_factor=1/5, total_iters=4),
//                           StepLR(opt, step_size=7, gamma=0.5)], milestones=[5]), lr 1e-3.
TEST(LrSchedule, WarmupThenStepMatchesTorchSequentialLR) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Step;
  c.base_lr = 1e-3;
  c.warmup_steps = 5;
  c.step_size = 7;
  c.gamma = 0.5;
  const std::vector<double> torch = {0.0002,   0.0004,   0.0006000000000000001,
                                     0.0008,   0.001,    0.001,
                                     0.001,    0.001,    0.001,
                                     0.001,    0.001,    0.001,
                                     0.0005,   0.0005,   0.0005,
                                     0.0005,   0.0005,   0.0005,
                                     0.0005,   0.00025,  0.00025,
                                     0.00025,  0.00025,  0.00025,
                                     0.00025,  0.00025,  0.000125,
                                     0.000125, 0.000125, 0.000125};
  expect_rates(LrSchedule(c), torch);
}

// torch: StepLR(opt, step_size=3, gamma=0.1), lr 1e-3; and the formula at step boundaries.
TEST(LrSchedule, StepMatchesTorchStepLRAndItsClosedForm) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Step;
  c.step_size = 3;
  c.gamma = 0.1;
  const LrSchedule s(c);
  expect_rates(s, {0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 1e-05, 1e-05, 1e-05,
                   1.0000000000000002e-06});
  for (int64_t t : {299, 300, 301, 3000})
    EXPECT_DOUBLE_EQ(s.lr(t), 1e-3 * std::pow(0.1, static_cast<double>(t / 3)));
}

// torch: CosineAnnealingLR(opt, T_max=20, eta_min=1e-4), lr 2e-3.
TEST(LrSchedule, CosineMatchesTorchCosineAnnealingLR) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Cosine;
  c.base_lr = 2e-3;
  c.min_lr = 1e-4;
  c.total_steps = 20;
  const LrSchedule s(c);
  expect_rates(s, {0.002,
                   0.0019883039235653807,
                   0.0019535036904803956,
                   0.0018964561979789491,
                   0.0018185661446562,
                   0.00172175144212722,
                   0.0016083959896778493,
                   0.0014812909747525694,
                   0.0013435661446562,
                   0.0011986127417882193,
                   0.00105,
                   0.0009013872582117809,
                   0.0007564338553438,
                   0.0006187090252474305,
                   0.0004916040103221506,
                   0.00037824855787277985,
                   0.0002814338553438,
                   0.0002035438020210506,
                   0.00014649630951960415,
                   0.00011169607643461924,
                   0.0001});
  // The end: exactly min_lr at total_steps, and it stays there.
  EXPECT_EQ(s.lr(20), 1e-4);
  EXPECT_EQ(s.lr(21), 1e-4);
  EXPECT_EQ(s.lr(1000), 1e-4);
}

// torch: SequentialLR([LinearLR(start_factor=1/5, total_iters=4),
//                      CosineAnnealingLR(T_max=35, eta_min=1e-5)], milestones=[5]), lr 1e-3:
// the cosine spans the 35 steps after the warm-up and reaches eta_min at the run's step 40.
TEST(LrSchedule, WarmupThenCosineMatchesTorchAndEndsAtMinLr) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Cosine;
  c.base_lr = 1e-3;
  c.min_lr = 1e-5;
  c.warmup_steps = 5;
  c.total_steps = 40;
  const LrSchedule s(c);
  const std::vector<double> torch = {0.0002,
                                     0.0004,
                                     0.0006000000000000001,
                                     0.0008,
                                     0.001,
                                     0.001,
                                     0.0009980072755276434,
                                     0.0009920451463563218,
                                     0.0009821616160444475,
                                     0.0009684362609666701,
                                     0.0009509795896116976,
                                     0.0009299321528329238,
                                     0.000905463412215599,
                                     0.0008777703756717876,
                                     0.0008470760112484981,
                                     0.0008136274519200732,
                                     0.0007776940058187909,
                                     0.0007395649879241345,
                                     0.0006995473906686924,
                                     0.0006579634122155991,
                                     0.0006151478623083758,
                                     0.0005714454665797396,
                                     0.0005272080910235051,
                                     0.0004827919089764953,
                                     0.0004385545334202607,
                                     0.00039485213769162455,
                                     0.0003520365877844012,
                                     0.0003104526093313081,
                                     0.00027043501207586583,
                                     0.0002323059941812094,
                                     0.000196372548079927,
                                     0.00016292398875150207,
                                     0.0001322296243282127,
                                     0.00010453658778440112,
                                     8.006784716707632e-05,
                                     5.9020410388302606e-05,
                                     4.15637390333301e-05,
                                     2.7838383955552655e-05,
                                     1.795485364367832e-05,
                                     1.1992724472356663e-05,
                                     1e-05};
  expect_rates(s, torch);
  // The closed form at a middle step: s = 20 - 5 of T_max = 35.
  EXPECT_DOUBLE_EQ(s.lr(20), 1e-5 + (1e-3 - 1e-5) * (1 + std::cos(std::numbers::pi * 15 / 35)) / 2);
}

// torch: ReduceLROnPlateau(opt, mode='min', factor=0.5, patience=2, threshold=0.01,
// cooldown=1, min_lr=1e-3), lr 1e-2, stepped with the losses below; after each step:
// (lr, best, num_bad_epochs, cooldown_counter).
TEST(LrSchedule, PlateauMatchesTorchReduceLROnPlateauOnAScriptedLossSequence) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Plateau;
  c.base_lr = 1e-2;
  c.factor = 0.5;
  c.patience = 2;
  c.threshold = 0.01;
  c.cooldown = 1;
  c.min_lr = 1e-3;
  LrSchedule s(c);
  struct After {
    double loss, lr, best;
    int64_t bad, cooldown;
  };
  const std::vector<After> torch = {
      {10, 0.01, 10.0, 0, 0},    {9, 0.01, 9.0, 0, 0},      {8.95, 0.01, 9.0, 1, 0},
      {8.99, 0.01, 9.0, 2, 0},   {9.5, 0.005, 9.0, 0, 1},   {8.0, 0.005, 8.0, 0, 0},
      {7.99, 0.005, 8.0, 1, 0},  {7.98, 0.005, 8.0, 2, 0},  {7.97, 0.0025, 8.0, 0, 1},
      {7.96, 0.0025, 8.0, 0, 0}, {7.95, 0.0025, 8.0, 1, 0}, {7.0, 0.0025, 7.0, 0, 0},
      {7.0, 0.0025, 7.0, 1, 0},  {7.0, 0.0025, 7.0, 2, 0},  {7.0, 0.00125, 7.0, 0, 1},
      {7.0, 0.00125, 7.0, 0, 0}, {7.0, 0.00125, 7.0, 1, 0}, {7.0, 0.00125, 7.0, 2, 0},
      {7.0, 0.001, 7.0, 0, 1},   {7.0, 0.001, 7.0, 0, 0},   {7.0, 0.001, 7.0, 1, 0},
      {7.0, 0.001, 7.0, 2, 0}};
  for (size_t i = 0; i < torch.size(); ++i) {
    SCOPED_TRACE("evaluation " + std::to_string(i + 1));
    const double before = s.lr(0);
    const bool reduced = s.observe(torch[i].loss);
    EXPECT_EQ(reduced, s.lr(0) < before);
    EXPECT_NEAR(s.lr(0), torch[i].lr, 1e-15);
    EXPECT_EQ(s.plateau().best, torch[i].best);
    EXPECT_EQ(s.plateau().bad_evaluations, torch[i].bad);
    EXPECT_EQ(s.plateau().cooldown_left, torch[i].cooldown);
  }
  // At min_lr no further reduction: torch applies one only if old - new > 1e-8.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(s.observe(8.0));
  EXPECT_NEAR(s.lr(0), 1e-3, 1e-18);
}

TEST(LrSchedule, PlateauScalesTheWarmupAndRestoresItsState) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Plateau;
  c.base_lr = 1e-3;
  c.warmup_steps = 10;
  c.patience = 0;
  c.factor = 0.5;
  LrSchedule s(c);
  EXPECT_FALSE(s.observe(5.0));  // the first value is always an improvement
  EXPECT_TRUE(s.observe(5.0));   // patience 0: one bad evaluation reduces
  EXPECT_DOUBLE_EQ(s.lr(4), 1e-3 * 0.5 * 5 / 10);
  EXPECT_DOUBLE_EQ(s.lr(50), 1e-3 * 0.5);
  // A NaN loss is never an improvement.
  EXPECT_TRUE(s.observe(std::nan("")));
  EXPECT_DOUBLE_EQ(s.lr(50), 1e-3 * 0.25);

  LrSchedule restored(c);
  restored.set_plateau(s.plateau());
  EXPECT_EQ(restored.lr(50), s.lr(50));
  EXPECT_EQ(restored.observe(4.0), s.observe(4.0));
  EXPECT_EQ(restored.plateau(), s.plateau());
}

TEST(LrSchedule, OtherKindsIgnoreTheMonitoredLoss) {
  LrScheduleConfig c;
  c.kind = LrScheduleKind::Step;
  LrSchedule s(c);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(s.observe(1.0));
  EXPECT_EQ(s.lr(0), c.base_lr);
}

TEST(LrSchedule, RankScalingAndNames) {
  EXPECT_EQ(lr_rank_scale(RankScaling::None, 8), 1.0);
  EXPECT_EQ(lr_rank_scale(RankScaling::Linear, 8), 8.0);
  EXPECT_DOUBLE_EQ(lr_rank_scale(RankScaling::Sqrt, 8), std::sqrt(8.0));
  EXPECT_EQ(lr_rank_scale(RankScaling::Sqrt, 1), 1.0);
  EXPECT_STREQ(rank_scaling_name(RankScaling::Sqrt), "sqrt");
  EXPECT_STREQ(lr_schedule_name(LrScheduleKind::Cosine), "cosine");
  EXPECT_STREQ(lr_schedule_name(LrScheduleKind::Constant), "constant");
}

}  // namespace
}  // namespace vd
