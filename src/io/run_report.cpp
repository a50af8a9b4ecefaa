// RunReport: formatting of the progress lines and the metrics rows.
#include "io/run_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace vd {

std::string format_duration(double s) {
  const long t = std::lround(std::max(0.0, s));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

RunReport::RunReport(const std::string& metrics_csv, bool resuming, bool tty, int epochs,
                     int64_t first_step, int64_t last_step)
    : log_(metrics_csv, resuming),
      tty_(tty),
      epochs_(epochs),
      first_step_(first_step),
      last_step_(last_step),
      start_(std::chrono::steady_clock::now()) {}

void RunReport::train(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums,
                      double lr, double interval_seconds) {
  const double n = std::max<double>(1.0, static_cast<double>(sums.count));
  const double ips = static_cast<double>(sums.count) / std::max(1e-9, interval_seconds);
  log_.write({"train", static_cast<int>(epoch), step, samples, sums.loss / n, sums.recon / n,
              sums.kl / n, lr, ips});
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(step - first_step_);
  const double eta = static_cast<double>(last_step_ - step) * elapsed / std::max(1.0, done);
  std::printf(
      "%sepoch %lld/%d  step %lld/%lld  loss %.3f  recon %.3f  kl %.3f  %.0f img/s  ETA %s%s",
      tty_ ? "\r" : "", static_cast<long long>(epoch), epochs_, static_cast<long long>(step),
      static_cast<long long>(last_step_), sums.loss / n, sums.recon / n, sums.kl / n, ips,
      format_duration(eta).c_str(), tty_ ? "   " : "\n");
  std::fflush(stdout);
}

void RunReport::end_of_epoch() {
  if (tty_) std::printf("\n");
}

void RunReport::test(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums,
                     double lr) {
  evaluation("test", epoch, step, samples, sums, lr);
}

void RunReport::validation(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums,
                           double lr) {
  evaluation("val", epoch, step, samples, sums, lr);
}

void RunReport::evaluation(const char* split, int64_t epoch, int64_t step, int64_t samples,
                           const ReportSums& sums, double lr) {
  const double n = static_cast<double>(sums.count);
  log_.write({split, static_cast<int>(epoch), step, samples, sums.loss / n, sums.recon / n,
              sums.kl / n, lr, 0.0, sums.active_units, sums.kl_per_dim});
  std::string units;
  if (sums.active_units >= 0)
    units = std::string(sums.per_channel ? "  active channels " : "  active units ") +
            std::to_string(sums.active_units) + "/" + std::to_string(sums.kl_per_dim.size());
  std::printf("epoch %lld/%d  %s loss %.4f  recon %.4f  kl %.4f%s  (%lld images%s)\n",
              static_cast<long long>(epoch), epochs_, split, sums.loss / n, sums.recon / n,
              sums.kl / n, units.c_str(), static_cast<long long>(sums.count),
              weights_note_.empty() ? "" : (", " + weights_note_).c_str());
  std::fflush(stdout);
}

void RunReport::importance_weighted(int epoch, int64_t step, int64_t samples, int k, double nll,
                                    double lr) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  log_.write({"test_iw", epoch, step, samples, nll, nan, nan, lr, 0.0});
  std::printf("test -log p(x) (importance-weighted, k=%d%s): %.4f nats\n", k,
              weights_note_.empty() ? "" : (", " + weights_note_).c_str(), nll);
  std::fflush(stdout);
}

}  // namespace vd
