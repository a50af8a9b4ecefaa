// A resume's decisions and notes (train/resume.hpp).
#include "train/resume.hpp"

#include <algorithm>
#include <optional>

#include "core/error.hpp"

namespace vd {

std::string resume_refusal(const CheckpointMeta& meta, const std::string& path, const Options& opt,
                           const std::vector<int64_t>& steps_in_out) {
  if (!steps_in_out.empty() && steps_in_out.back() > meta.step)
    return "--out " + opt.out + " holds checkpoints written after step " +
           std::to_string(meta.step) + " of " + path + " (the newest is step " +
           std::to_string(steps_in_out.back()) +
           ") by the run that went on from it; resume into a new directory (e.g. --out " + opt.out +
           "_from_step" + std::to_string(meta.step) + ") or move those checkpoints away";
  // The model was fitted to its likelihood: a resume under the other one would go on training
  // it to another objective.
  std::optional<Options> writer;
  try {
    writer = parse_config_text(meta.config_ini, path);
  } catch (const ConfigError&) {
    // A configuration of another version's options: nothing to compare.
  }
  if (writer && writer->model != opt.model)
    return "the checkpoint " + path + " holds a --model " + writer->model +
           " model, and this run asks for --model " + opt.model + "; resume with --model " +
           writer->model + ", or train a new model in another run directory";
  if (writer && writer->likelihood != opt.likelihood)
    return "the checkpoint " + path + " was trained with --likelihood " +
           likelihood_name(writer->likelihood) + ", and this run asks for --likelihood " +
           likelihood_name(opt.likelihood) + "; resume with --likelihood " +
           likelihood_name(writer->likelihood) +
           ", or start a new run from its weights with --init-weights " + path;
  return "";
}

namespace {
std::string order_of(const EpochCursor& at) {
  return at.shuffle_block_rows == 0
             ? "in memory, a full shuffle"
             : "streamed, blocks of " + std::to_string(at.shuffle_block_rows) +
                   " rows in windows of " + std::to_string(at.shuffle_window_blocks);
}
}  // namespace

ResumePoint resume_point(const CheckpointMeta& meta, const std::string& path, const EpochPlan& plan,
                         int ranks, int batch) {
  ResumePoint r;
  // Whether the writer was at an epoch end is a question about the writer's epochs: another
  // world size has another number of steps per epoch.
  const EpochCursor& at = meta.cursor;
  r.writer_steps_per_epoch =
      at.steps_per_epoch > 0
          ? at.steps_per_epoch
          : EpochPlan(plan.global_rows(), 0, meta.world_size, batch).steps_per_epoch();
  const bool epoch_done = at.step_in_epoch >= r.writer_steps_per_epoch;
  if (meta.world_size == ranks && plan.same_order(at) && !epoch_done) {
    // Same world and row order: continue mid-epoch exactly where the run stopped.
    r.start_epoch = at.epoch;
    r.start_step_in_epoch = at.step_in_epoch;
    r.mid_epoch = true;
    return r;
  }
  // Another world size shards the data differently, and another residency or window orders
  // them differently: the rest of a partial epoch cannot be replayed, so training goes on
  // with the next epoch.
  r.start_epoch = at.epoch + 1;
  if (epoch_done) return r;
  const std::string next = std::to_string(r.start_epoch);
  if (meta.world_size != ranks) {
    r.note = "note: " + path + " was written mid-epoch by " + std::to_string(meta.world_size) +
             " rank(s); with " + std::to_string(ranks) +
             " rank(s) training continues at the start of epoch " + next;
    return r;
  }
  const std::optional<BlockShuffle>& mine = plan.block_shuffle();
  r.note = "note: " + path + " was written mid-epoch by a run that ordered its rows otherwise (" +
           order_of(at) + "); this run's data are " +
           (mine ? "streamed, blocks of " + std::to_string(mine->block_rows) +
                       " rows in windows of " + std::to_string(mine->window_blocks)
                 : std::string("in memory")) +
           ", so training continues at the start of epoch " + next +
           " (keep --data-memory-mb and --stream-window-mb to resume mid-epoch)";
  return r;
}

std::string resumed_plan_notes(const ResumedPlan& p, const Options& opt) {
  std::string out;
  if (p.writer_steps_per_epoch != p.steps_per_epoch && p.start_epoch <= opt.epochs)
    out += "note: the checkpoint's run took " + std::to_string(p.writer_steps_per_epoch) +
           " steps per epoch; this one takes " + std::to_string(p.steps_per_epoch) + " (" +
           std::to_string(p.ranks) + " rank(s) x batch " + std::to_string(opt.batch_size) +
           " over " + std::to_string(p.rows) + " rows), so epochs " +
           std::to_string(p.start_epoch) + ".." + std::to_string(opt.epochs) + " end at step " +
           std::to_string(p.planned) + "\n";
  if (p.last_step <= p.step) {
    const bool epochs = p.start_epoch > opt.epochs;
    out += "note: nothing left to train: the checkpoint is at step " + std::to_string(p.step) +
           ", " +
           (epochs ? "after epoch " + std::to_string(p.start_epoch - 1) + " of --epochs " +
                         std::to_string(opt.epochs)
                   : "at --max-steps " + std::to_string(opt.max_steps)) +
           "; raise " + (epochs ? "--epochs" : "--max-steps") + " to train on\n";
  }
  return out;
}

StepRanges add_step_range(StepRanges ranges, int64_t first, int64_t last) {
  ranges.emplace_back(first, last);
  std::sort(ranges.begin(), ranges.end());
  StepRanges merged;
  for (const auto& r : ranges)
    if (!merged.empty() && r.first <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  return merged;
}

StepRanges merge_step_ranges(const StepRanges& a, const StepRanges& b) {
  StepRanges out = a;
  for (const auto& [first, last] : b) out = add_step_range(std::move(out), first, last);
  return out;
}

bool in_step_ranges(const StepRanges& ranges, int64_t step) {
  for (const auto& [first, last] : ranges)
    if (step >= first && step <= last) return true;
  return false;
}

}  // namespace vd
