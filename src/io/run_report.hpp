// RunReport: what rank 0 tells the user while training runs: the progress lines on stdout and
// the rows of metrics.csv/.jsonl (train intervals, validation and test evaluations, the IWAE
// estimate).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/metrics_log.hpp"

namespace vd {

// Sums over the samples of an interval or evaluation, in nats: the loss and the model's terms
// (the VAE's: recon, kl; loss = recon + beta * kl).
struct ReportSums {
  double loss = 0;
  std::vector<double> terms = {};  // in the order of the report's term names
  int64_t count = 0;
  // A test evaluation's posterior-collapse diagnostics (see vae/latent.hpp): active latent
  // units (-1 = not measured) and the mean KL of each latent dimension.
  int active_units = -1;
  std::vector<double> kl_per_dim = {};  // "= {}": omitted in aggregates without a warning
  // A spatial latent's diagnostics are per channel: active channels, the KL of each channel.
  bool per_channel = false;
};

class RunReport {
 public:
  // metrics_csv is appended to when resuming. With tty the train line rewrites itself (\r).
  // epochs and last_step set the "epoch e/E  step s/S" counters and the ETA. term_names: the
  // model's loss terms, as columns and in the lines.
  RunReport(const std::string& metrics_csv, bool resuming, bool tty, int epochs, int64_t first_step,
            int64_t last_step, std::vector<std::string> term_names);

  // A train row (means over the interval) and the progress line with images/s and ETA.
  void train(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums, double lr,
             double interval_seconds);
  void end_of_epoch();  // ends a rewriting tty line
  void test(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums, double lr);
  // The same for the validation rows: a "val" row and an "epoch e/E  val loss ..." line.
  void validation(int64_t epoch, int64_t step, int64_t samples, const ReportSums& sums, double lr);
  void importance_weighted(int epoch, int64_t step, int64_t samples, int k, double nll, double lr);
  // Said at the end of every evaluation line (test, val, importance-weighted), e.g. "ema
  // weights" when the run evaluates the moving average; "" = nothing.
  void set_weights_note(std::string note) { weights_note_ = std::move(note); }

 private:
  void evaluation(const char* split, int64_t epoch, int64_t step, int64_t samples,
                  const ReportSums& sums, double lr);
  // "  recon 1.234  kl 5.678": the terms' means with `digits` decimals.
  std::string terms_text(const ReportSums& sums, double n, int digits) const;
  std::vector<double> means(const ReportSums& sums, double n) const;  // the terms' means
  std::vector<std::string> term_names_;
  MetricsLog log_;
  bool tty_;
  int epochs_;
  int64_t first_step_, last_step_;
  std::string weights_note_;
  std::chrono::steady_clock::time_point start_;
};

// "1:02:03" for seconds (clamped at 0).
std::string format_duration(double seconds);

}  // namespace vd
