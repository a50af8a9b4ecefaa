// The progress bar and its plain-line fallback.
#include "core/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace vd {

namespace {

std::string clock_text(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(seconds, 0.0)));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

}  // namespace

Progress::Progress(std::string what, std::string unit, int64_t total, std::FILE* out,
                   double plain_every_s)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      out_(out),
      tty_(isatty(fileno(out)) != 0),
      plain_every_s_(plain_every_s),
      t0_(Clock::now()),
      last_(t0_) {}

std::string Progress::line(const std::string& what, const std::string& unit, int64_t done,
                           int64_t total, double seconds, int bar_width) {
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int fill = static_cast<int>(frac * bar_width);
  std::string bar = what + " [" + std::string(static_cast<size_t>(fill), '#') +
                    std::string(static_cast<size_t>(bar_width - fill), '-') + "]";
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  char buf[160];
  std::snprintf(buf, sizeof buf, " %lld/%lld %3d%%  %.0f %s/s", static_cast<long long>(done),
                static_cast<long long>(total), static_cast<int>(frac * 100), rate, unit.c_str());
  bar += buf;
  if (done < total)
    bar += "  ETA " + (rate > 0 ? clock_text(static_cast<double>(total - done) / rate) : "?");
  else
    bar += "  in " + clock_text(seconds);
  return bar;
}

void Progress::update(int64_t done) {
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.1 : plain_every_s_)) return;
  last_ = now;
  const double seconds = std::chrono::duration<double>(now - t0_).count();
  const std::string text = line(what_, unit_, done, total_, seconds, tty_ ? 30 : 20);
  // \r and a clear-to-end-of-line redraw in place; a log gets one line per update.
  std::fprintf(out_, tty_ ? "\r%s\x1b[K" : "%s\n", text.c_str());
  std::fflush(out_);
}

void Progress::finish(int64_t done) {
  if (!tty_) return;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
  std::fprintf(out_, "\r%s\x1b[K\n", line(what_, unit_, done, total_, seconds, 30).c_str());
  std::fflush(out_);
}

}  // namespace vd
