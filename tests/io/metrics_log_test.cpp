// Tests of vd::MetricsLog: CSV header and rows, append rules, the JSON-lines twin.
#include "io/metrics_log.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "support/temp_dir.hpp"

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

vd::MetricsRow row(int epoch, int64_t step, double loss) {
  vd::MetricsRow r;
  r.split = "train";
  r.epoch = epoch;
  r.step = step;
  r.samples = step * 256;
  r.loss = loss;
  r.terms = {loss - 10, 10};
  r.lr = 1e-3;
  r.images_per_s = 12345.5;
  return r;
}

const char* kHeader =
    "split,epoch,step,samples,loss,recon,kl,lr,images_per_s,active_units,kl_per_dim";

TEST(MetricsLog, WritesHeaderAndRowsFlushedImmediately) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  vd::MetricsLog log(path, false);
  log.write(row(0, 100, 250.123456789));
  // Read while the log is still open: the row must already be on disk.
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], kHeader);
  EXPECT_EQ(lines[1], "train,0,100,25600,250.123457,240.123457,10,0.001,12345.5,,");
}

TEST(MetricsLog, LossesRoundTripAsFloats) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  const float loss = 123.456789f;
  {
    vd::MetricsLog log(path, false);
    log.write(row(1, 5, loss));
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  std::stringstream fields(lines[1]);
  std::string field;
  for (int i = 0; i < 5; ++i) std::getline(fields, field, ',');
  EXPECT_EQ(static_cast<float>(std::strtod(field.c_str(), nullptr)), loss) << field;
}

TEST(MetricsLog, TruncatesWithoutAppend) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  { vd::MetricsLog(path, false).write(row(0, 1, 1)); }
  { vd::MetricsLog(path, false).write(row(0, 2, 2)); }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].rfind("train,0,2,", 0), 0u);
  EXPECT_EQ(lines_of(dir.file("metrics.jsonl")).size(), 1u);
}

TEST(MetricsLog, AppendKeepsRowsAndWritesHeaderOnce) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  { vd::MetricsLog(path, true).write(row(0, 1, 1)); }  // new file: header written
  { vd::MetricsLog(path, true).write(row(1, 2, 2)); }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], kHeader);
  EXPECT_EQ(lines[1].rfind("train,0,1,", 0), 0u);
  EXPECT_EQ(lines[2].rfind("train,1,2,", 0), 0u);
  EXPECT_EQ(lines_of(dir.file("metrics.jsonl")).size(), 2u);
}

TEST(MetricsLog, AppendToADifferentHeaderIsAnError) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  std::ofstream(path) << "step,loss\n1,2\n";
  try {
    vd::MetricsLog log(path, true);
    FAIL() << "no vd::IoError";
  } catch (const vd::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("header"), std::string::npos) << e.what();
  }
  EXPECT_EQ(lines_of(path).size(), 2u);  // the old file is untouched
}

// Another model's terms are its columns, in the CSV and the JSON lines; a file of the VAE's
// columns is not appended to by it.
TEST(MetricsLog, TheColumnsAreTheModelsTerms) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  const std::vector<std::string> terms = {"recon", "commit", "perplexity"};
  {
    vd::MetricsLog log(path, false, terms);
    vd::MetricsRow r = row(1, 10, 5.5);
    r.terms = {4.5, 0.25};  // the third is missing: NaN, null
    log.write(r);
  }
  const std::vector<std::string> lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "split,epoch,step,samples,loss,recon,commit,perplexity,lr,images_per_s,active_units,"
            "kl_per_dim");
  EXPECT_EQ(lines[1], "train,1,10,2560,5.5,4.5,0.25,nan,0.001,12345.5,,");
  const std::vector<std::string> json = lines_of(dir.file("metrics.jsonl"));
  ASSERT_EQ(json.size(), 1u);
  EXPECT_NE(json[0].find("\"loss\":5.5,\"recon\":4.5,\"commit\":0.25,\"perplexity\":null,"
                         "\"lr\":0.001"),
            std::string::npos)
      << json[0];
  EXPECT_THROW(vd::MetricsLog(path, true), vd::IoError);  // the VAE's columns differ
  EXPECT_NO_THROW(vd::MetricsLog(path, true, terms));
}

TEST(MetricsLog, TestRowsCarryActiveUnitsAndKlPerDimension) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  vd::MetricsLog log(path, false);
  auto r = row(1, 10, 100);
  r.split = "test";
  r.active_units = 2;
  r.kl_per_dim = {3.5, 0.25, 1e-5};
  log.write(r);
  EXPECT_EQ(lines_of(path)[1], "test,1,10,2560,100,90,10,0.001,12345.5,2,3.5 0.25 1e-05");
  EXPECT_NE(lines_of(dir.file("metrics.jsonl"))[0].find(
                ",\"active_units\":2,\"kl_per_dim\":[3.5,0.25,1e-05]}"),
            std::string::npos);
}

TEST(MetricsLog, AppendToAFileOfTheOlderHeaderKeepsItsColumns) {
  // A run started before the diagnostics columns existed resumes into its own metrics.csv.
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  const std::string old_header = "split,epoch,step,samples,loss,recon,kl,lr,images_per_s";
  std::ofstream(path) << old_header << "\ntrain,0,1,256,1,-9,10,0.001,12345.5\n";
  {
    vd::MetricsLog log(path, true);
    auto r = row(1, 2, 2);
    r.split = "test";
    r.active_units = 4;
    r.kl_per_dim = {1, 2};
    log.write(r);
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], old_header);
  EXPECT_EQ(lines[2], "test,1,2,512,2,-8,10,0.001,12345.5");
  EXPECT_NE(lines_of(dir.file("metrics.jsonl"))[0].find("\"active_units\":4"), std::string::npos);
}

TEST(MetricsLog, JsonLinesTwinHasTheSameFields) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  EXPECT_EQ(vd::metrics_jsonl_path(path), dir.file("metrics.jsonl"));
  vd::MetricsLog log(path, false);
  EXPECT_EQ(log.jsonl_path(), dir.file("metrics.jsonl"));
  auto r = row(2, 300, 99.5);
  r.split = "test";
  log.write(r);
  r.loss = std::numeric_limits<double>::quiet_NaN();
  log.write(r);
  const auto lines = lines_of(dir.file("metrics.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "{\"split\":\"test\",\"epoch\":2,\"step\":300,\"samples\":76800,\"loss\":99.5,"
            "\"recon\":89.5,\"kl\":10,\"lr\":0.001,\"images_per_s\":12345.5}");
  EXPECT_NE(lines[1].find("\"loss\":null"), std::string::npos) << lines[1];
  EXPECT_NE(lines_of(path)[2].find(",nan,"), std::string::npos);
}

TEST(MetricsLog, SplitNamesAreEscaped) {
  vd::testing::TempDir dir;
  const std::string path = dir.file("metrics.csv");
  vd::MetricsLog log(path, false);
  auto r = row(0, 1, 1);
  r.split = "a,\"b\"";
  log.write(r);
  EXPECT_EQ(lines_of(path)[1].rfind("\"a,\"\"b\"\"\",0,1,", 0), 0u);
  EXPECT_EQ(lines_of(dir.file("metrics.jsonl"))[0].rfind("{\"split\":\"a,\\\"b\\\"\",", 0), 0u);
}

TEST(MetricsLog, UnwritableDirectoryIsIoError) {
  vd::testing::TempDir dir;
  EXPECT_THROW(vd::MetricsLog(dir.file("no/such/metrics.csv"), false), vd::IoError);
}

}  // namespace
