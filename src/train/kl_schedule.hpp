// The KL weight beta_t of each optimizer step: constant, the linear warm-up of
// --kl-warmup-epochs, or the cyclical schedule of Fu et al. (2019). A pure function of the
// global step, so a resumed run continues the schedule exactly.
#pragma once
#include <cstdint>
#include <string>

namespace vd {

struct KlSchedule {
  enum class Kind { Linear, Cyclical };
  Kind kind = Kind::Linear;
  double beta = 1.0;          // the target weight
  double warmup_steps = 0.0;  // linear: steps of the ramp; 0 = beta from the first step
  int64_t total_steps = 1;    // cyclical: T, the planned steps (epochs x steps per epoch)
  int cycles = 4;             // cyclical: M
  double ratio = 0.5;         // cyclical: R in (0, 1]

  // Linear: beta * min(1, t / warmup_steps).
  // Cyclical (Fu et al. 2019, with their t - 1 = our 0-based step t):
  //   tau = (t mod ceil(T / M)) / (T / M),  beta_t = beta * min(1, tau / R),
  // i.e. each of the M cycles ramps linearly from 0 over the share R of it, then holds beta.
  float at(int64_t step) const;
};

// The schedule of a run's options (kl_schedule, beta, kl_warmup_epochs, kl_cycles,
// kl_cycle_ratio) for its steps per epoch and epochs. Throws vd::ConfigError when a cycle
// would be shorter than 2 steps.
struct Options;
KlSchedule kl_schedule_of(const Options& opt, int64_t steps_per_epoch);

}  // namespace vd
