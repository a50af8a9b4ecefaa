// UpdateGuard: judges each optimizer step by its global loss and gradient norm against the
// recent healthy steps (robust scores: distance above the median in units of the scaled MAD;
// the norm's in log scale),
// so that a spike's update is skipped on every rank alike and a run that keeps spiking counts
// as diverged. Pure logic: every rank feeds it the same figures and reaches the same verdict;
// its state round-trips through checkpoints, so a resumed run judges as the first one would.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vd {

struct UpdateGuardConfig {
  double threshold = 0;  // robust deviations above the median that flag a step; 0 = off
  int window = 200;      // healthy steps the median and MAD are taken over
  int max_skips = 20;    // flagged steps in a row that make the run diverged
  // Healthy steps before the gradient norm is judged (the loss is judged from the first).
  int min_history = 20;
  int64_t full_batch = 1;  // samples in a full global batch: a smaller one is noisier
};

struct UpdateGuardState {
  std::vector<double> losses, norms;  // the window's healthy steps, oldest first
  int64_t consecutive = 0;            // flagged steps in a row, ending with the last one
  int64_t first_flagged = -1;         // the streak's first flagged step (-1: none)
  int64_t skipped = 0;                // updates skipped so far, in this run and those it resumed
  friend bool operator==(const UpdateGuardState&, const UpdateGuardState&) = default;
};

// One step's figures, the same on every rank: the mean loss per sample of the global batch
// (`count` samples) and the L2 norm of the summed gradient, before any clipping.
struct StepFigures {
  int64_t step = 0;  // 1-based global step
  double loss = 0;
  double grad_norm = 0;
  int64_t count = 1;
};

struct GuardVerdict {
  bool skip = false;      // the update is not applied
  bool diverged = false;  // more than max_skips flagged steps in a row
  // Robust scores of the step (0 while its figure is not judged yet).
  double loss_score = 0, norm_score = 0;
  std::string reason;  // why the step was flagged, with its figures ("" when it was not)
};

class UpdateGuard {
 public:
  explicit UpdateGuard(const UpdateGuardConfig& config);
  bool enabled() const { return config_.threshold > 0; }
  const UpdateGuardConfig& config() const { return config_; }

  // Judges a step with finite figures. A flagged step is not added to the history; a healthy
  // one is, and ends a streak of flagged ones.
  GuardVerdict judge(const StepFigures& f);

  // The robust score of x against history: (x - median) / max(1.4826 MAD, 5% of the median's
  // size), of the logarithms with log_scale (then the scale is at least 0.05); the scale is
  // widened by sqrt(full_batch / count) for a smaller batch and by sqrt(min_history / n) for
  // a history of n < min_history steps. +inf above a constant history.
  double score(const std::vector<double>& history, double x, int64_t count, bool log_scale) const;

  const UpdateGuardState& state() const { return state_; }
  // Throws vd::ConfigError for a state that no run can have (a window longer than this
  // run's is cut to its newest steps).
  void set_state(UpdateGuardState state);
  // The largest scores of the steps judged healthy by this process: how close the run came.
  double max_loss_score() const { return max_loss_score_; }
  double max_norm_score() const { return max_norm_score_; }

 private:
  UpdateGuardConfig config_;
  UpdateGuardState state_;
  double max_loss_score_ = 0, max_norm_score_ = 0;
  mutable std::vector<double> scratch_;
  mutable double last_median_ = 0;       // of the latest score()
  double median_ = 0, norm_median_ = 0;  // the medians the latest verdict compared with
};

}  // namespace vd
