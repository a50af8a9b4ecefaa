// The messages a run prints about itself that are more than a line of figures: the learning
// rate and its schedule at start-up, and what to do after a divergence.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "optim/lr_schedule.hpp"

namespace vd {

// v as "%g" prints it: for messages.
std::string number_text(double v);

// The start-up line on the learning rate: the peak rate and how it follows the ranks, the
// schedule, and the rate of the next step (the first, or the resumed one).
std::string describe_lr(const Options& opt, const LrScheduleConfig& lc, int ranks, double next);

// The divergence error: what each rank found at `step` (1-based; "" = nothing, by rank),
// that no checkpoint was written after it, and how to go on (from `last_checkpoint`, the
// newest good one, "" when the run has none) with a lower rate than `lr`.
std::string divergence_message(int64_t step, const std::vector<std::string>& found,
                               const std::string& last_checkpoint, const std::string& out,
                               double lr);
// The same when the update guard skipped more than max_skips updates in a row, from step
// first_flagged to step; `reason` is the guard's account of the last of them.
std::string spike_divergence_message(int64_t step, int64_t first_flagged, const std::string& reason,
                                     const std::string& last_checkpoint, const std::string& out,
                                     double lr, int max_skips);

}  // namespace vd
