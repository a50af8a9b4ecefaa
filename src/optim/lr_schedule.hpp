// Learning-rate schedules on the global optimizer step: an optional linear warm-up, then
// constant, step, cosine or plateau, each the closed form of a PyTorch scheduler (named below).
// Pure arithmetic, no I/O; the plateau's state round-trips through checkpoints.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

namespace vd {

enum class LrScheduleKind { Constant, Step, Cosine, Plateau };
const char* lr_schedule_name(LrScheduleKind kind);  // "constant" | "step" | "cosine" | "plateau"
// How the rate follows the global batch of P ranks relative to one rank's batch (--lr-scale-
// with-ranks): none 1, linear P, sqrt sqrt(P).
enum class RankScaling { None, Linear, Sqrt };
const char* rank_scaling_name(RankScaling scaling);  // "none" | "linear" | "sqrt"

struct LrScheduleConfig {
  LrScheduleKind kind = LrScheduleKind::Constant;
  double base_lr = 1e-3;     // the peak rate (already scaled with the ranks)
  int64_t warmup_steps = 0;  // W: steps t < W use base_lr * (t + 1) / W (times the plateau's)
  // step: base_lr * gamma^floor(s / step_size), s = t - W
  int64_t step_size = 1000;
  double gamma = 0.1;
  // cosine: from base_lr down to min_lr over the total_steps - W steps after the warm-up
  int64_t total_steps = 0;
  double min_lr = 0;  // cosine's end and the plateau's floor
  // plateau (torch.optim.lr_scheduler.ReduceLROnPlateau, mode 'min', threshold_mode 'rel')
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  int64_t cooldown = 0;
};

// What ReduceLROnPlateau remembers between evaluations.
struct PlateauState {
  double scale = 1.0;  // product of the reductions so far: the rate is base_lr * scale
  double best = std::numeric_limits<double>::infinity();
  int64_t bad_evaluations = 0;  // torch's num_bad_epochs
  int64_t cooldown_left = 0;    // torch's cooldown_counter
  friend bool operator==(const PlateauState&, const PlateauState&) = default;
};

// lr(t) = warm(t) * main(max(0, t - W)), where t is the 0-based index of the optimizer step
// (the number of steps already taken) and warm(t) = min(1, (t + 1) / W) (1 without warm-up):
// - warm-up: torch LinearLR(start_factor=1/W, end_factor=1, total_iters=W-1), followed by the
//   main schedule as in SequentialLR(milestones=[W]);
// - constant: base_lr, returned as is (no arithmetic), so a run without a schedule is
//   bitwise the run before schedules existed;
// - step: StepLR(step_size, gamma): base_lr * gamma^floor(s / step_size);
// - cosine: CosineAnnealingLR(T_max = total_steps - W, eta_min = min_lr):
//   min_lr + (base_lr - min_lr) * (1 + cos(pi * s / T_max)) / 2, s clamped to T_max;
// - plateau: base_lr * scale, scale lowered by observe() (ReduceLROnPlateau(factor, patience,
//   threshold, cooldown, min_lr, eps=1e-8)).
class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleConfig& config);

  double lr(int64_t step) const;
  // One evaluation of the monitored loss (plateau only; other kinds ignore it). Returns true
  // when it lowered the rate.
  bool observe(double loss);

  const LrScheduleConfig& config() const { return config_; }
  const PlateauState& plateau() const { return plateau_; }
  void set_plateau(const PlateauState& state) { plateau_ = state; }

 private:
  LrScheduleConfig config_;
  PlateauState plateau_;
};

// The factor of `scaling` for the global batch of `ranks` ranks.
double lr_rank_scale(RankScaling scaling, int ranks);

}  // namespace vd
