// The learning-rate line of the start-up and the divergence message.
#include "train/run_messages.hpp"

#include <cstdio>
#include <filesystem>

namespace vd {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The start-up line on the learning rate: the peak rate and how it follows the ranks, the
// schedule, and the rate of the next step (the first, or the resumed one).
std::string describe_lr(const Options& opt, const LrScheduleConfig& lc, int ranks, double next) {
  std::string text = "learning rate " + number_text(lc.base_lr);
  if (opt.lr_scale_with_ranks != RankScaling::None)
    text +=
        " (--lr " + number_text(opt.lr) + " x " +
        (opt.lr_scale_with_ranks == RankScaling::Linear ? std::to_string(ranks)
                                                        : "sqrt(" + std::to_string(ranks) + ")") +
        " for the global batch of " + std::to_string(ranks) + " rank(s), " +
        rank_scaling_name(opt.lr_scale_with_ranks) + " scaling)";
  text += "; schedule " + std::string(lr_schedule_name(opt.lr_schedule));
  const bool validation = opt.val_fraction > 0 || !opt.val_data.empty();
  switch (lc.kind) {
    case LrScheduleKind::Constant:
      break;
    case LrScheduleKind::Step:
      text += " (x " + number_text(lc.gamma) + " every " + std::to_string(lc.step_size) + " steps)";
      break;
    case LrScheduleKind::Cosine:
      text += " (to " + number_text(lc.min_lr) + " at step " + std::to_string(lc.total_steps) + ")";
      break;
    case LrScheduleKind::Plateau:
      text += " (x " + number_text(lc.factor) + " after " + std::to_string(lc.patience + 1) +
              " epoch ends without improvement of the " +
              (validation              ? "validation"
               : opt.test_data.empty() ? "training"
                                       : "test") +
              " loss)";
      break;
  }
  if (lc.warmup_steps > 0)
    text += "; linear warm-up over " + std::to_string(lc.warmup_steps) + " steps";
  return text + "; next step's rate " + number_text(next);
}

namespace {
// What to do next: go on from the newest good checkpoint (or start again) with a lower rate.
std::string how_to_go_on(const std::string& last_checkpoint, const std::string& out, double lr) {
  const std::string lower = number_text(lr / 10);
  return last_checkpoint.empty()
             ? " (the run has none yet); start again with a lower --lr (e.g. " + lower +
                   ") or --grad-clip 1"
             : "; the last good one is " + last_checkpoint +
                   "; go on from it with a lower learning rate or clipping: vae_dist --config " +
                   (std::filesystem::path(out) / "config.ini").string() + " --resume latest --lr " +
                   lower + " (or --grad-clip 1)";
}
}  // namespace

std::string divergence_message(int64_t step, const std::vector<std::string>& found,
                               const std::string& last_checkpoint, const std::string& out,
                               double lr) {
  std::string message = "training diverged at step " + std::to_string(step) + ":";
  for (size_t r = 0; r < found.size(); ++r)
    if (!found[r].empty()) message += " rank " + std::to_string(r) + ": " + found[r] + ";";
  return message + " no checkpoint was written after it" + how_to_go_on(last_checkpoint, out, lr);
}

std::string spike_divergence_message(int64_t step, int64_t first_flagged, const std::string& reason,
                                     const std::string& last_checkpoint, const std::string& out,
                                     double lr, int max_skips) {
  return "training diverged at step " + std::to_string(step) + ": the update guard skipped " +
         std::to_string(step - first_flagged + 1) + " updates in a row (steps " +
         std::to_string(first_flagged) + ".." + std::to_string(step) + ", more than --max-skips " +
         std::to_string(max_skips) + "); at the last, " + reason +
         ". No checkpoint was written after step " + std::to_string(first_flagged - 1) +
         how_to_go_on(last_checkpoint, out, lr) +
         "; --on-divergence rollback does that by itself. If such figures are normal for this "
         "model, raise --spike-threshold or --max-skips";
}

}  // namespace vd
