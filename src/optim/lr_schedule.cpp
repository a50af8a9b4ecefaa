// LrSchedule: the closed forms of the warm-up and the four schedules, and the plateau's
// bookkeeping in the order torch's ReduceLROnPlateau.step does it.
#include "optim/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace vd {

LrScheduleKind parse_lr_schedule(const std::string& name) {
  if (name == "constant") return LrScheduleKind::Constant;
  if (name == "step") return LrScheduleKind::Step;
  if (name == "cosine") return LrScheduleKind::Cosine;
  if (name == "plateau") return LrScheduleKind::Plateau;
  throw ConfigError("--lr-schedule: '" + name + "' is not one of constant, step, cosine, plateau");
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

double lr_rank_scale(const std::string& mode, int ranks) {
  if (mode == "none") return 1.0;
  if (mode == "linear") return static_cast<double>(ranks);
  if (mode == "sqrt") return std::sqrt(static_cast<double>(ranks));
  throw ConfigError("--lr-scale-with-ranks: '" + mode + "' is not one of none, linear, sqrt");
}

}  // namespace vd
