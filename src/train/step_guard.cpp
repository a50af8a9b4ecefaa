// The trainer's update guard: the gate, the trace and rank 0's lines (train/step_guard.hpp).
#include "train/step_guard.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"
#include "train/run_messages.hpp"

namespace vd {

namespace {
UpdateGuardConfig guard_config(const Options& opt, int ranks) {
  UpdateGuardConfig gc;
  gc.threshold = opt.spike_threshold;
  gc.window = opt.spike_window;
  gc.max_skips = opt.max_skips;
  gc.full_batch = static_cast<int64_t>(opt.batch_size) * ranks;
  return gc;
}
}  // namespace

StepGuard::StepGuard(const Options& opt, int ranks, bool root)
    : guard_(guard_config(opt, ranks)), max_skips_(opt.max_skips) {
  const char* path = std::getenv("VAE_DIST_GUARD_TRACE");
  if (!root || path == nullptr || *path == '\0') return;
  trace_ = std::fopen(path, "w");
  if (trace_ == nullptr)
    throw IoError("cannot write VAE_DIST_GUARD_TRACE file " + std::string(path) + ": " +
                  std::strerror(errno));
  std::fprintf(trace_, "step,loss,grad_norm,loss_score,norm_score,skipped\n");
}

StepGuard::~StepGuard() {
  if (trace_ != nullptr) std::fclose(trace_);
}

void StepGuard::arm(GradientSync& sync) {
  if (!guard_.enabled() && trace_ == nullptr) return;
  sync.set_gate([this](const GradientSync::Figures& f) {
    if (f.non_finite > 0) return false;
    const StepFigures sf{step_, f.loss_sum / static_cast<double>(count_), f.grad_norm, count_};
    verdict_ = guard_.judge(sf);
    if (trace_ != nullptr)
      std::fprintf(trace_, "%lld,%.9g,%.9g,%.6g,%.6g,%d\n", static_cast<long long>(sf.step),
                   sf.loss, sf.grad_norm, verdict_.loss_score, verdict_.norm_score,
                   verdict_.skip ? 1 : 0);
    return !verdict_.skip;
  });
}

void StepGuard::restart() {
  UpdateGuardState fresh;
  fresh.skipped = guard_.state().skipped;
  guard_.set_state(fresh);
}

std::string StepGuard::skip_line() const {
  return "step " + std::to_string(step_) + ": update skipped (" +
         std::to_string(guard_.state().consecutive) + " in a row, --max-skips " +
         std::to_string(max_skips_) + "): " + verdict_.reason;
}

std::string StepGuard::withheld_checkpoint(int64_t step) const {
  const UpdateGuardState& s = guard_.state();
  if (s.consecutive == 0) return "";
  return "step " + std::to_string(step) +
         ": no checkpoint written: the update guard is skipping updates (" +
         std::to_string(s.consecutive) + " in a row since step " + std::to_string(s.first_flagged) +
         ")";
}

std::string StepGuard::summary_line() const {
  if (!guard_.enabled()) return "";
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "update guard: %lld update(s) skipped; the healthy steps' largest scores: loss "
                "%.3g, gradient norm %.3g (--spike-threshold %s)",
                static_cast<long long>(guard_.state().skipped), guard_.max_loss_score(),
                guard_.max_norm_score(), number_text(guard_.config().threshold).c_str());
  return buf;
}

}  // namespace vd
