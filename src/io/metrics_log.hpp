// MetricsLog: one CSV row (and a JSON-lines twin) per logged step or evaluation, flushed
// at once so a killed run keeps everything it logged.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace vd {

struct MetricsRow {
  std::string split;  // "train", "test", ...: written as is (CSV-quoted if needed)
  int epoch = 0;
  int64_t step = 0;
  int64_t samples = 0;
  double loss = 0;
  std::vector<double> terms = {};  // the model's loss terms, in the log's column order
  double lr = 0, images_per_s = 0;
  // Posterior-collapse diagnostics of a test row (empty cells elsewhere): latent units with
  // Var_x(mu_j) > 0.01, and the mean KL of each latent dimension (space-separated in the CSV,
  // an array in the JSON).
  int active_units = -1;
  std::vector<double> kl_per_dim = {};  // "= {}": omitted in aggregates without a warning
};

// s as a JSON string literal: quoted, with '"', '\\' and control characters escaped.
std::string json_string(const std::string& s);

// The VAE's loss terms, the columns after loss in its metrics files.
inline const std::vector<std::string> kVaeTerms = {"recon", "kl"};

// The CSV header, written once per file: split,epoch,step,samples,loss, then the model's
// terms, then lr,images_per_s,active_units,kl_per_dim. The VAE's:
// "split,epoch,step,samples,loss,recon,kl,lr,images_per_s,active_units,kl_per_dim".
std::string metrics_header(const std::vector<std::string>& terms);
// The header before the diagnostics columns (without active_units,kl_per_dim); a run resumed
// into such a file keeps its columns.
std::string metrics_header_v1(const std::vector<std::string>& terms);

class MetricsLog {
 public:
  // Opens path (CSV) and its twin: path with the extension replaced by .jsonl, for a model
  // whose loss has `terms` (kVaeTerms). append=false truncates both. append=true keeps existing
  // rows; the header is written only when the CSV is new or empty. An existing file with
  // metrics_header_v1 keeps those columns (the JSON lines still get every field); any other
  // header is a vd::IoError.
  MetricsLog(const std::string& path, bool append, std::vector<std::string> terms = kVaeTerms);
  // Reals are written with %.9g (round-trips a float); non-finite values are nan/inf in the
  // CSV and null in the JSON. Throws vd::IoError when a write fails.
  void write(const MetricsRow& row);

  const std::string& path() const { return path_; }
  const std::string& jsonl_path() const { return jsonl_path_; }

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::string jsonl_path_;
  std::vector<std::string> terms_;
  bool legacy_columns_ = false;  // appending to a file with metrics_header_v1
  std::unique_ptr<std::FILE, FileCloser> csv_;
  std::unique_ptr<std::FILE, FileCloser> jsonl_;
};

// Path of the JSON-lines twin of a CSV path ("runs/x/metrics.csv" -> "runs/x/metrics.jsonl").
std::string metrics_jsonl_path(const std::string& csv_path);

}  // namespace vd
