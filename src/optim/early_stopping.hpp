// EarlyStopping: the best validation loss so far, and when to stop because it has not
// improved for `patience` evaluations. Pure logic; its state round-trips through checkpoints.
#pragma once
#include <cstdint>
#include <limits>

namespace vd {

struct EarlyStopState {
  double best = std::numeric_limits<double>::infinity();  // lowest validation loss so far
  int64_t best_step = -1;       // the optimizer step it was measured at (-1 = none yet)
  int64_t bad_evaluations = 0;  // evaluations since the best one
  friend bool operator==(const EarlyStopState&, const EarlyStopState&) = default;
};

class EarlyStopping {
 public:
  // patience 0 = never stop (the best is still tracked, for best.h5).
  explicit EarlyStopping(int64_t patience) : patience_(patience) {}

  struct Verdict {
    bool improved = false;  // a new best: strictly lower than every earlier loss, and finite
    bool stop = false;      // patience > 0 evaluations in a row without a new best
  };
  // One validation loss, measured after `step` optimizer steps. NaN or infinity never improves.
  Verdict observe(double loss, int64_t step);

  int64_t patience() const { return patience_; }
  const EarlyStopState& state() const { return state_; }
  void set_state(const EarlyStopState& state) { state_ = state; }

 private:
  int64_t patience_;
  EarlyStopState state_;
};

}  // namespace vd
