// Tests of the KL weight schedules against their formulas: the linear warm-up (the expression
// the trainer used before, bit for bit) and the cyclical schedule of Fu et al. (2019), hand
// values and the formula tau = (t mod ceil(T/M)) / (T/M), beta_t = beta * min(1, tau / R).
#include "train/kl_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "config/options.hpp"
#include "core/error.hpp"

namespace {

vd::Options options(const char* kind, double beta, int epochs) {
  vd::Options o;
  o.kl_schedule =
      std::string(kind) == "cyclical" ? vd::KlScheduleKind::Cyclical : vd::KlScheduleKind::Linear;
  o.beta = beta;
  o.epochs = epochs;
  return o;
}

TEST(KlSchedule, LinearWarmupIsTheFormerExpressionBitForBit) {
  vd::Options o = options("linear", 0.7, 10);
  o.kl_warmup_epochs = 2.5;
  const int64_t spe = 469;
  const vd::KlSchedule s = vd::kl_schedule_of(o, spe);
  for (int64_t t = 0; t < 10 * spe; t += 7) {
    const double ramp = o.kl_warmup_epochs * static_cast<double>(spe);
    const float want = static_cast<float>(o.beta * std::min(1.0, static_cast<double>(t) / ramp));
    ASSERT_EQ(s.at(t), want) << "step " << t;
  }
  o.kl_warmup_epochs = 0;
  EXPECT_EQ(vd::kl_schedule_of(o, spe).at(0), 0.7f);
}

TEST(KlSchedule, CyclicalMatchesHandValues) {
  // T = 10 epochs x 10 steps = 100, M = 4 cycles of 25 steps, R = 0.5: ramps over 12.5 steps.
  vd::Options o = options("cyclical", 2.0, 10);
  o.kl_cycles = 4;
  o.kl_cycle_ratio = 0.5;
  const vd::KlSchedule s = vd::kl_schedule_of(o, 10);
  EXPECT_EQ(s.at(0), 0.0f);
  EXPECT_FLOAT_EQ(s.at(5), 2.0f * (5.0 / 25.0) / 0.5);  // 0.8
  EXPECT_FLOAT_EQ(s.at(12), 2.0f * (12.0 / 25.0) / 0.5);
  EXPECT_EQ(s.at(13), 2.0f);  // past R: holds beta
  EXPECT_EQ(s.at(24), 2.0f);
  EXPECT_EQ(s.at(25), 0.0f);  // the next cycle starts again at 0
  EXPECT_FLOAT_EQ(s.at(30), 0.8f);
  EXPECT_EQ(s.at(99), 2.0f);
}

TEST(KlSchedule, CyclicalMatchesFuEtAlFormulaWhenCyclesDoNotDivideTheSteps) {
  // T = 7 x 13 = 91 steps, M = 3: T/M = 30.33.., ceil = 31; R = 0.3.
  vd::Options o = options("cyclical", 1.0, 7);
  o.kl_cycles = 3;
  o.kl_cycle_ratio = 0.3;
  const vd::KlSchedule s = vd::kl_schedule_of(o, 13);
  const double T = 91, M = 3, R = 0.3;
  int zeros = 0;
  for (int64_t t = 0; t < 91; ++t) {
    const double tau = static_cast<double>(t % static_cast<int64_t>(std::ceil(T / M))) / (T / M);
    const double want = tau <= R ? tau / R : 1.0;
    ASSERT_NEAR(s.at(t), want, 1e-7) << "step " << t;
    zeros += s.at(t) == 0.0f;
  }
  EXPECT_EQ(zeros, 3);  // one start per cycle: steps 0, 31, 62
  // A pure function of the step: a resumed run continues the same sequence.
  const vd::KlSchedule again = vd::kl_schedule_of(o, 13);
  for (int64_t t = 40; t < 91; ++t) ASSERT_EQ(again.at(t), s.at(t));
}

TEST(KlSchedule, RatioOneRampsOverTheWholeCycle) {
  vd::Options o = options("cyclical", 1.0, 1);
  o.kl_cycles = 1;
  o.kl_cycle_ratio = 1.0;
  const vd::KlSchedule s = vd::kl_schedule_of(o, 100);
  for (int64_t t = 0; t < 100; ++t) ASSERT_NEAR(s.at(t), t / 100.0, 1e-7);
}

TEST(KlSchedule, MoreCyclesThanStepsAllowIsAConfigError) {
  vd::Options o = options("cyclical", 1.0, 1);
  o.kl_cycles = 6;
  try {
    vd::kl_schedule_of(o, 10);
    FAIL() << "expected a ConfigError";
  } catch (const vd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--kl-cycles 6"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(vd::kl_schedule_of(o, 12));
}

}  // namespace
