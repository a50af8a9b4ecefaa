// KlSchedule: the linear warm-up and the cyclical annealing of the KL weight.
#include "train/kl_schedule.hpp"

#include <algorithm>
#include <cmath>

#include "config/options.hpp"
#include "core/error.hpp"

namespace vd {

float KlSchedule::at(int64_t step) const {
  if (kind == Kind::Linear) {
    // The same expression as before cyclical schedules existed: the same bits.
    if (warmup_steps <= 0) return static_cast<float>(beta);
    return static_cast<float>(beta * std::min(1.0, static_cast<double>(step) / warmup_steps));
  }
  const double per_cycle = static_cast<double>(total_steps) / cycles;  // T / M
  const int64_t period = static_cast<int64_t>(std::ceil(per_cycle));   // ceil(T / M)
  const double tau = static_cast<double>(step % period) / per_cycle;
  return static_cast<float>(beta * std::min(1.0, tau / ratio));
}

KlSchedule kl_schedule_of(const Options& opt, int64_t steps_per_epoch) {
  KlSchedule s;
  s.beta = opt.beta;
  s.total_steps = std::max<int64_t>(1, steps_per_epoch * opt.epochs);
  if (opt.kl_schedule == KlScheduleKind::Cyclical) {
    s.kind = KlSchedule::Kind::Cyclical;
    s.cycles = opt.kl_cycles;
    s.ratio = opt.kl_cycle_ratio;
    if (s.total_steps < 2 * static_cast<int64_t>(s.cycles))
      throw ConfigError("--kl-cycles " + std::to_string(opt.kl_cycles) + " does not fit in " +
                        std::to_string(s.total_steps) +
                        " planned steps (each cycle needs at least 2 steps); use fewer cycles "
                        "or more epochs");
  } else {
    s.warmup_steps = opt.kl_warmup_epochs * static_cast<double>(steps_per_epoch);
  }
  return s;
}

}  // namespace vd
