// MetricsLog: CSV and JSON-lines writers with header checks on append.
#include "io/metrics_log.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"

namespace vd {

namespace {

std::string real(double v, bool json) {
  if (!std::isfinite(v)) {
    if (json) return "null";  // JSON has no NaN or infinity
    return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::FILE* open_or_throw(const std::string& path, const char* mode) {
  std::FILE* f = std::fopen(path.c_str(), mode);
  if (f == nullptr) {
    throw IoError("cannot open metrics file " + path + " (" + std::strerror(errno) +
                  "); check that the run directory exists and is writable");
  }
  return f;
}

void put(std::FILE* f, const std::string& text, const std::string& path) {
  if (std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fflush(f) != 0) {
    throw IoError("cannot write metrics file " + path + " (" + std::strerror(errno) +
                  "); is the disk full?");
  }
}

}  // namespace

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string metrics_header_v1(const std::vector<std::string>& terms) {
  std::string h = "split,epoch,step,samples,loss";
  for (const std::string& t : terms) h += "," + t;
  return h + ",lr,images_per_s";
}

std::string metrics_header(const std::vector<std::string>& terms) {
  return metrics_header_v1(terms) + ",active_units,kl_per_dim";
}

std::string metrics_jsonl_path(const std::string& csv_path) {
  std::filesystem::path p(csv_path);
  p.replace_extension(".jsonl");
  return p.string();
}

MetricsLog::MetricsLog(const std::string& path, bool append, std::vector<std::string> terms)
    : path_(path), jsonl_path_(metrics_jsonl_path(path)), terms_(std::move(terms)) {
  if (jsonl_path_ == path_) {
    throw IoError("metrics file " + path + " already ends in .jsonl; name the CSV file *.csv");
  }
  bool need_header = true;
  const std::string header = metrics_header(terms_);
  if (append) {
    std::ifstream in(path);
    std::string first;
    if (in && std::getline(in, first)) {
      if (!first.empty() && first.back() == '\r') first.pop_back();
      legacy_columns_ = first == metrics_header_v1(terms_);
      if (first != header && !legacy_columns_) {
        throw IoError("metrics file " + path + " has header '" + first + "', expected '" + header +
                      "'; move the old file away or use a new run directory");
      }
      need_header = false;
    }
  }
  csv_.reset(open_or_throw(path_, append ? "a" : "w"));
  jsonl_.reset(open_or_throw(jsonl_path_, append ? "a" : "w"));
  if (need_header) put(csv_.get(), header + "\n", path_);
}

void MetricsLog::write(const MetricsRow& row) {
  // Built by appending: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.
  // The reals in column order: loss, the terms (a missing one is NaN), lr, images/s.
  std::vector<double> reals{row.loss};
  std::vector<const std::string*> names;
  static const std::string loss = "loss", lr = "lr", ips = "images_per_s";
  names.push_back(&loss);
  for (size_t i = 0; i < terms_.size(); ++i) {
    reals.push_back(i < row.terms.size() ? row.terms[i] : std::nan(""));
    names.push_back(&terms_[i]);
  }
  reals.push_back(row.lr);
  names.push_back(&lr);
  reals.push_back(row.images_per_s);
  names.push_back(&ips);

  std::string csv = csv_field(row.split);
  for (int64_t v : {int64_t{row.epoch}, row.step, row.samples}) {
    csv += ',';
    csv += std::to_string(v);
  }
  for (double v : reals) {
    csv += ',';
    csv += real(v, false);
  }
  if (!legacy_columns_) {
    csv += ',';
    if (row.active_units >= 0) csv += std::to_string(row.active_units);
    csv += ',';
    for (size_t j = 0; j < row.kl_per_dim.size(); ++j) {
      if (j > 0) csv += ' ';
      csv += real(row.kl_per_dim[j], false);
    }
  }
  csv += '\n';
  put(csv_.get(), csv, path_);

  std::string json = "{\"split\":";
  json += json_string(row.split);
  json += ",\"epoch\":";
  json += std::to_string(row.epoch);
  json += ",\"step\":";
  json += std::to_string(row.step);
  json += ",\"samples\":";
  json += std::to_string(row.samples);
  for (size_t i = 0; i < reals.size(); ++i) {
    json += ",\"";
    json += *names[i];
    json += "\":";
    json += real(reals[i], true);
  }
  if (row.active_units >= 0) {
    json += ",\"active_units\":";
    json += std::to_string(row.active_units);
  }
  if (!row.kl_per_dim.empty()) {
    json += ",\"kl_per_dim\":[";
    for (size_t j = 0; j < row.kl_per_dim.size(); ++j) {
      if (j > 0) json += ',';
      json += real(row.kl_per_dim[j], true);
    }
    json += ']';
  }
  json += "}\n";
  put(jsonl_.get(), json, jsonl_path_);
}

}  // namespace vd
