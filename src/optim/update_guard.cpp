// The update guard's robust scores and verdicts (optim/update_guard.hpp).
#include "optim/update_guard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.hpp"

namespace vd {

namespace {

// numpy.median: the middle value, or the mean of the two middle ones. Reorders v.
double median_of(std::vector<double>& v) {
  const size_t n = v.size();
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (n % 2 == 1) return *mid;
  const double below = *std::max_element(v.begin(), mid);
  return 0.5 * (below + *mid);
}

std::string figure(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

void push_window(std::vector<double>& v, double x, size_t window) {
  if (v.size() == window) v.erase(v.begin());
  v.push_back(x);
}

}  // namespace

UpdateGuard::UpdateGuard(const UpdateGuardConfig& config) : config_(config) {
  config_.window = std::max(config_.window, 1);
  config_.full_batch = std::max<int64_t>(config_.full_batch, 1);
}

double UpdateGuard::score(const std::vector<double>& history, double x, int64_t count,
                          bool log_scale) const {
  // Gradient norms are positive and heavy-tailed: they are compared by their logarithms,
  // where a healthy run's bursts stay well inside the threshold while a blow-up stays far out.
  const auto value = [log_scale](double v) {
    return log_scale ? std::log(std::max(v, 1e-300)) : v;
  };
  scratch_.resize(history.size());
  std::transform(history.begin(), history.end(), scratch_.begin(), value);
  const double median = median_of(scratch_);
  last_median_ = log_scale ? std::exp(median) : median;
  for (double& v : scratch_) v = std::abs(v - median);
  const double mad = median_of(scratch_);
  double scale = std::max(1.4826 * mad, log_scale ? 0.05 : 0.05 * std::abs(median));
  if (count < config_.full_batch)
    scale *= std::sqrt(static_cast<double>(config_.full_batch) / static_cast<double>(count));
  // A short history says little about the spread: early steps get a wider margin.
  const size_t enough = static_cast<size_t>(std::max(config_.min_history, 1));
  if (history.size() < enough)
    scale *= std::sqrt(static_cast<double>(enough) / static_cast<double>(history.size()));
  const double d = value(x) - median;
  if (scale <= std::numeric_limits<double>::min())
    return d > 0 ? std::numeric_limits<double>::infinity() : 0.0;
  return d / scale;
}

GuardVerdict UpdateGuard::judge(const StepFigures& f) {
  GuardVerdict v;
  if (!enabled()) return v;
  const int64_t count = std::max<int64_t>(f.count, 1);
  if (!state_.losses.empty()) {
    v.loss_score = score(state_.losses, f.loss, count, false);
    median_ = last_median_;
  }
  if (static_cast<int>(state_.norms.size()) >= std::min(config_.min_history, config_.window)) {
    v.norm_score = score(state_.norms, f.grad_norm, count, true);
    norm_median_ = last_median_;
  }
  const double z = config_.threshold;
  if (v.loss_score > z || v.norm_score > z) {
    v.skip = true;
    const std::string of = " robust deviations above the median ";
    const std::string last =
        " of the last " + std::to_string(state_.losses.size()) + " healthy steps";
    std::string why;
    if (v.loss_score > z)
      why = "the loss " + figure(f.loss) + " lies " + figure(v.loss_score) + of + figure(median_) +
            last;
    if (v.norm_score > z)
      why += (why.empty() ? "the gradient norm " : "; the gradient norm ") + figure(f.grad_norm) +
             " (" + figure(f.grad_norm / norm_median_) + "x the median " + figure(norm_median_) +
             last + ") lies " + figure(v.norm_score) + " robust deviations above it in log scale";
    v.reason = why + " (--spike-threshold " + figure(z) + ")";
    if (state_.consecutive == 0) state_.first_flagged = f.step;
    ++state_.consecutive;
    ++state_.skipped;
    v.diverged = state_.consecutive > config_.max_skips;
    return v;
  }
  state_.consecutive = 0;
  state_.first_flagged = -1;
  max_loss_score_ = std::max(max_loss_score_, v.loss_score);
  max_norm_score_ = std::max(max_norm_score_, v.norm_score);
  const size_t window = static_cast<size_t>(config_.window);
  push_window(state_.losses, f.loss, window);
  push_window(state_.norms, f.grad_norm, window);
  return v;
}

void UpdateGuard::set_state(UpdateGuardState state) {
  const auto finite = [](const std::vector<double>& v) {
    return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
  };
  if (state.losses.size() != state.norms.size() || !finite(state.losses) || !finite(state.norms) ||
      state.consecutive < 0 || state.skipped < state.consecutive ||
      (state.consecutive > 0) != (state.first_flagged >= 0))
    throw ConfigError(
        "the update guard's stored state is impossible (windows of unequal length, a "
        "non-finite figure or negative counts); the checkpoint is damaged");
  const size_t window = static_cast<size_t>(config_.window);
  for (auto* v : {&state.losses, &state.norms})
    if (v->size() > window)
      v->erase(v->begin(), v->begin() + static_cast<std::ptrdiff_t>(v->size() - window));
  state_ = std::move(state);
}

}  // namespace vd
