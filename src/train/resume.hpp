// The decisions of a resume, as pure functions of the checkpoint's metadata and this run's
// plan: whether the checkpoint may be resumed here, where training goes on, and the notes rank
// 0 prints about it. The Trainer reads the file and applies them.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/options.hpp"
#include "data/epoch_plan.hpp"
#include "io/checkpoint.hpp"

namespace vd {

// Why `meta` (read from `path`) may not be resumed by a run with `opt` into --out `out` whose
// checkpoints are at `steps_in_out` (ascending), "" when it may: checkpoints written after it
// by the run that went on from it (the runs would mix, and pruning would delete the new ones
// first), or another --likelihood than the one the model was fitted to.
std::string resume_refusal(const CheckpointMeta& meta, const std::string& path, const Options& opt,
                           const std::vector<int64_t>& steps_in_out);

// Where a resumed run goes on.
struct ResumePoint {
  int64_t start_epoch = 1, start_step_in_epoch = 0;
  int64_t writer_steps_per_epoch = 0;  // of the run that wrote the checkpoint
  // Inside the writer's epoch, where it stopped: this rank's noise stream and the epoch's
  // reported loss continue from the checkpoint's.
  bool mid_epoch = false;
  std::string note;  // why a partial epoch cannot be replayed ("" when it can, or is whole)
};
// `plan` is this run's (rank, ranks); `batch` its --batch-size (files without the writer's
// steps per epoch are read as written with it).
ResumePoint resume_point(const CheckpointMeta& meta, const std::string& path, const EpochPlan& plan,
                         int ranks, int batch);

// The notes on a resumed run's end: another number of steps per epoch than the writer's (so
// the epochs end at other steps), and nothing left to train. "" when there is nothing to say.
struct ResumedPlan {
  int64_t writer_steps_per_epoch = 0, steps_per_epoch = 0;
  int64_t step = 0;         // the checkpoint's
  int64_t start_epoch = 1;  // where this run goes on
  int64_t planned = 0;      // the step epoch --epochs ends at
  int64_t last_step = 0;    // with --max-steps
  int64_t rows = 0;
  int ranks = 1;
};
std::string resumed_plan_notes(const ResumedPlan& p, const Options& opt);

// --rollback-skip-steps: inclusive global-step ranges [first, last], ascending and disjoint.
using StepRanges = std::vector<std::pair<int64_t, int64_t>>;
// `ranges` with [first, last] added (first <= last), overlapping or adjacent ranges merged.
StepRanges add_step_range(StepRanges ranges, int64_t first, int64_t last);
// The union of two lists of ranges.
StepRanges merge_step_ranges(const StepRanges& a, const StepRanges& b);
bool in_step_ranges(const StepRanges& ranges, int64_t step);

}  // namespace vd
