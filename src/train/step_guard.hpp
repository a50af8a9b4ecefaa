// StepGuard: the trainer's side of the update guard (optim/update_guard.hpp). It judges each
// step through the gradient exchange's gate (the same figures, so the same verdict, on every
// rank), writes the figures to VAE_DIST_GUARD_TRACE on rank 0, and words rank 0's lines.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "config/options.hpp"
#include "optim/update_guard.hpp"
#include "parallel/grad_sync.hpp"

namespace vd {

class StepGuard {
 public:
  // The guard of --spike-threshold, --spike-window and --max-skips over a global batch of
  // batch x ranks. Rank 0 (`root`) opens the trace file; throws vd::IoError when it cannot.
  StepGuard(const Options& opt, int ranks, bool root);
  ~StepGuard();
  StepGuard(const StepGuard&) = delete;
  StepGuard& operator=(const StepGuard&) = delete;

  // Installs the gate on `sync`, when the guard is on or traced (else the exchange is as it
  // was without a guard). A non-finite step is never applied: the trainer stops the run.
  void arm(GradientSync& sync);
  // Before each update: the 1-based global step about to be judged and its global batch.
  void expect(int64_t step, int64_t count) {
    step_ = step;
    count_ = count;
  }
  const GuardVerdict& verdict() const { return verdict_; }
  const UpdateGuard& guard() const { return guard_; }
  const UpdateGuardState& state() const { return guard_.state(); }
  void set_state(UpdateGuardState state) { guard_.set_state(std::move(state)); }
  // A fresh window and streak; the count of skipped updates stays (it counts the lineage).
  void restart();

  // "step N: update skipped (K in a row, --max-skips M): <reason>".
  std::string skip_line() const;
  // Why the checkpoint due after `step` is not written, "" when it may be.
  std::string withheld_checkpoint(int64_t step) const;
  // The run's closing line: skips and the healthy steps' largest scores ("" when off).
  std::string summary_line() const;

 private:
  UpdateGuard guard_;
  int max_skips_;
  GuardVerdict verdict_;
  int64_t step_ = 0, count_ = 1;
  FILE* trace_ = nullptr;
};

}  // namespace vd
