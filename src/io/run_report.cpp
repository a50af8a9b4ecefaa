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
                     int64_t first_step, int64_t last_step, std::vector<std::string> term_names)
    : term_names_(std::move(term_names)),
      log_(metrics_csv, resuming, term_names_),
      tty_(tty),
      epochs_(epochs),
      first_step_(first_step),
      last_step_(last_step),
      start_(std::chrono::steady_clock::now()) {}

std::string RunReport::terms_text(const ReportSums& sums, double n, int digits) const {
  std::string s;
  char buf[64];
  for (size_t i = 0; i < term_names_.size(); ++i) {
    const double v = i < sums.terms.size() ? sums.terms[i] / n : 0.0;
    if (std::isnan(v)) continue;  // a term this evaluation does not estimate
    std::snprintf(buf, sizeof buf, "  %s %.*f", term_names_[i].c_str(), digits, v);
    s += buf;
  }
  return s;
}

std::vector<double> RunReport::means(const ReportSums& sums, double n) const {
  std::vector<double> m(term_names_.size(), 0.0);
  for (size_t i = 0; i < m.size() && i < sums.terms.size(); ++i) m[i] = sums.terms[i] / n;
  return m;
}

void RunReport::train(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums,
                      double lr, double interval_seconds) {
  const double n = std::max<double>(1.0, static_cast<double>(sums.count));
  const double ips = static_cast<double>(sums.count) / std::max(1e-9, interval_seconds);
  log_.write(
      {"train", static_cast<int>(epoch), step, samples, sums.loss / n, means(sums, n), lr, ips});
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(step - first_step_);
  const double eta = static_cast<double>(last_step_ - step) * elapsed / std::max(1.0, done);
  std::printf("%sepoch %lld/%d  step %lld/%lld  loss %.3f%s  %.0f img/s  ETA %s%s",
              tty_ ? "\r" : "", static_cast<long long>(epoch), epochs_,
              static_cast<long long>(step), static_cast<long long>(last_step_), sums.loss / n,
              terms_text(sums, n, 3).c_str(), ips, format_duration(eta).c_str(),
              tty_ ? "   " : "\n");
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
  log_.write({split, static_cast<int>(epoch), step, samples, sums.loss / n, means(sums, n), lr, 0.0,
              sums.active_units, sums.kl_per_dim});
  std::string units;
  if (sums.active_units >= 0)
    units = std::string(sums.per_channel ? "  active channels " : "  active units ") +
            std::to_string(sums.active_units) + "/" + std::to_string(sums.kl_per_dim.size());
  std::printf("epoch %lld/%d  %s loss %.4f%s%s  (%lld images%s)\n", static_cast<long long>(epoch),
              epochs_, split, sums.loss / n, terms_text(sums, n, 4).c_str(), units.c_str(),
              static_cast<long long>(sums.count),
              weights_note_.empty() ? "" : (", " + weights_note_).c_str());
  std::fflush(stdout);
}

void RunReport::importance_weighted(int epoch, int64_t step, int64_t samples, int k, double nll,
                                    double lr) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  log_.write({"test_iw", epoch, step, samples, nll, std::vector<double>(term_names_.size(), nan),
              lr, 0.0});
  std::printf("test -log p(x) (importance-weighted, k=%d%s): %.4f nats\n", k,
              weights_note_.empty() ? "" : (", " + weights_note_).c_str(), nll);
  std::fflush(stdout);
}

}  // namespace vd
