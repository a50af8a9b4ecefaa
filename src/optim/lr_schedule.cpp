// LrSchedule: the closed forms of the warm-up and the four schedules, and the plateau's
// bookkeeping in the order torch's ReduceLROnPlateau.step does it.
#include "optim/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace vd {

const char* lr_schedule_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::Step:
      return "step";
    case LrScheduleKind::Cosine:
      return "cosine";
    case LrScheduleKind::Plateau:
      return "plateau";
    case LrScheduleKind::Constant:
      break;
  }
  return "constant";
}

const char* rank_scaling_name(RankScaling scaling) {
  switch (scaling) {
    case RankScaling::Linear:
      return "linear";
    case RankScaling::Sqrt:
      return "sqrt";
    case RankScaling::None:
      break;
  }
  return "none";
}

LrSchedule::LrSchedule(const LrScheduleConfig& config) : config_(config) {
  VD_CHECK(config.base_lr > 0 && config.warmup_steps >= 0 && config.step_size >= 1 &&
               config.gamma > 0 && config.min_lr >= 0 && config.factor > 0 && config.factor < 1 &&
               config.patience >= 0 && config.threshold >= 0 && config.cooldown >= 0,
           ConfigError, "learning-rate schedule parameters out of range");
}

double LrSchedule::lr(int64_t step) const {
  const LrScheduleConfig& c = config_;
  const int64_t W = c.warmup_steps;
  const int64_t s = std::max<int64_t>(0, step - W);
  double main = c.base_lr;
  switch (c.kind) {
    case LrScheduleKind::Constant:
      break;
    case LrScheduleKind::Step:
      main = c.base_lr * std::pow(c.gamma, static_cast<double>(s / c.step_size));
      break;
    case LrScheduleKind::Cosine: {
      const int64_t t_max = c.total_steps - W;
      if (t_max > 0) {
        const double x = static_cast<double>(std::min(s, t_max)) / static_cast<double>(t_max);
        main = c.min_lr + (c.base_lr - c.min_lr) * (1 + std::cos(std::numbers::pi * x)) / 2;
      }
      break;
    }
    case LrScheduleKind::Plateau:
      if (plateau_.scale != 1.0) main = c.base_lr * plateau_.scale;
      break;
  }
  if (step >= W) return main;
  return main * static_cast<double>(step + 1) / static_cast<double>(W);
}

bool LrSchedule::observe(double loss) {
  if (config_.kind != LrScheduleKind::Plateau) return false;
  const LrScheduleConfig& c = config_;
  PlateauState& p = plateau_;
  // torch: is_better (mode 'min', 'rel'): a < best * (1 - threshold); NaN is never better.
  if (loss < p.best * (1 - c.threshold)) {
    p.best = loss;
    p.bad_evaluations = 0;
  } else {
    ++p.bad_evaluations;
  }
  if (p.cooldown_left > 0) {
    --p.cooldown_left;
    p.bad_evaluations = 0;  // ignore bad evaluations in cooldown
  }
  if (p.bad_evaluations <= c.patience) return false;
  p.cooldown_left = c.cooldown;
  p.bad_evaluations = 0;
  // torch: new_lr = max(old_lr * factor, min_lr), applied only if old_lr - new_lr > eps.
  const double old_lr = c.base_lr * p.scale;
  const double new_lr = std::max(old_lr * c.factor, c.min_lr);
  if (!(old_lr - new_lr > 1e-8)) return false;
  p.scale = new_lr == c.min_lr ? c.min_lr / c.base_lr : p.scale * c.factor;
  return true;
}

double lr_rank_scale(RankScaling scaling, int ranks) {
  switch (scaling) {
    case RankScaling::Linear:
      return static_cast<double>(ranks);
    case RankScaling::Sqrt:
      return std::sqrt(static_cast<double>(ranks));
    case RankScaling::None:
      break;
  }
  return 1.0;
}

}  // namespace vd
