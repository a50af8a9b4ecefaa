// A progress display for long tool runs (vae_data import-images): a bar with rate and ETA,
// redrawn in place when the stream is a terminal, else a plain line every few seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace vd {

class Progress {
 public:
  // `what` names the work ("decoding"), `unit` what is counted ("images"). On a terminal the
  // bar is redrawn at most 10 times a second; elsewhere (a log, a pipe, a test) a line is
  // written every `plain_every_s` seconds, so a run shorter than that writes nothing.
  Progress(std::string what, std::string unit, int64_t total, std::FILE* out = stderr,
           double plain_every_s = 5.0);
  // Called from one thread, as often as convenient.
  void update(int64_t done);
  // The final state: the full bar and a newline on a terminal, nothing elsewhere.
  void finish(int64_t done);

  // "[######----]  600/1000  60%  <rate> images/s  ETA 0:02", for tests and the plain lines.
  static std::string line(const std::string& what, const std::string& unit, int64_t done,
                          int64_t total, double seconds, int bar_width);

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_, unit_;
  int64_t total_;
  std::FILE* out_;
  bool tty_;
  double plain_every_s_;
  Clock::time_point t0_, last_;
};

}  // namespace vd
