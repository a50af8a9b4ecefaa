// ROC-AUC, average precision and the threshold at a false-positive rate on hand-computed cases
// (sklearn's documented example, ties, a perfect and a reversed ranking) and the errors for one
// class or NaN scores. With VD_SCORE_REFERENCE=FILE.h5 it writes random and tied cases with the
// results for tests/reference/anomaly_reference.py, which recomputes them with scikit-learn.
#include "vae/detection_metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"

namespace vd {
namespace {

TEST(DetectionMetrics, SklearnsDocumentedExample) {
  // sklearn's docs: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75 and
  // average_precision_score of the same = 0.8333...
  const std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
  const std::vector<uint8_t> y = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, y), 0.75);
  // Thresholds 0.8 (R 1/2, P 1), 0.4 (R 1/2), 0.35 (R 1, P 2/3): 1/2 + 1/2 * 2/3.
  EXPECT_DOUBLE_EQ(average_precision(s, y), 0.5 + 0.5 * 2.0 / 3.0);
}

TEST(DetectionMetrics, TiesCountHalf) {
  // Sorted: 3 (+), 2 (-, +), 1 (-). Pairs (positive, negative): 3>2, 3>1, 2=2 (1/2), 2>1.
  const std::vector<double> s = {3, 2, 2, 1};
  const std::vector<uint8_t> y = {1, 0, 1, 0};
  EXPECT_DOUBLE_EQ(roc_auc(s, y), 3.5 / 4);
  // Thresholds 3 (R 1/2, P 1), 2 (R 1, P 2/3), 1 (R unchanged).
  EXPECT_DOUBLE_EQ(average_precision(s, y), 0.5 + 0.5 * 2.0 / 3.0);
  // All tied: one point, the diagonal; precision is the positives' share.
  const std::vector<double> same = {5, 5, 5, 5};
  const std::vector<uint8_t> y3 = {1, 0, 0, 0};
  EXPECT_DOUBLE_EQ(roc_auc(same, y3), 0.5);
  EXPECT_DOUBLE_EQ(average_precision(same, y3), 0.25);
}

TEST(DetectionMetrics, PerfectAndReversedRankings) {
  const std::vector<double> s = {1, 2, 3, 4, 5};
  const std::vector<uint8_t> up = {0, 0, 0, 1, 1}, down = {1, 1, 0, 0, 0};
  EXPECT_DOUBLE_EQ(roc_auc(s, up), 1.0);
  EXPECT_DOUBLE_EQ(average_precision(s, up), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(s, down), 0.0);
  // Positives at ranks 4 and 5 from the top: 1/2 * 1/4 + 1/2 * 2/5.
  EXPECT_DOUBLE_EQ(average_precision(s, down), 0.5 / 4 + 0.5 * 2 / 5);
}

TEST(DetectionMetrics, OneClassOrNanIsRefused) {
  const std::vector<double> s = {1, 2};
  const std::vector<uint8_t> none = {0, 0}, all = {1, 1}, y = {0, 1};
  EXPECT_THROW(roc_auc(s, none), DataError);
  EXPECT_THROW(average_precision(s, all), DataError);
  try {
    roc_auc(s, none);
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("needs both normal and anomalous rows"), std::string::npos)
        << e.what();
  }
  const std::vector<double> nan = {1, std::nan("")};
  EXPECT_THROW(roc_auc(nan, y), DataError);
}

TEST(DetectionMetrics, ThresholdAtFalsePositiveRate) {
  std::vector<double> normal;
  for (int i = 100; i >= 1; --i) normal.push_back(i);  // unsorted order is fine
  // 5 of 100 above 95; 29 above 71 (0.29 * 100 is 28.999999999999996 in double).
  EXPECT_EQ(threshold_at_fpr(normal, 0.05), 95.0);
  EXPECT_EQ(threshold_at_fpr(normal, 0.29), 71.0);
  EXPECT_EQ(threshold_at_fpr(normal, 0.001), 100.0);  // none may lie above: the largest
  // Ties: every score equal, none lies above it.
  EXPECT_EQ(threshold_at_fpr(std::vector<double>{2, 2, 2, 2}, 0.5), 2.0);
  // The realised rate on the held-out rows is at most fpr.
  const std::vector<uint8_t> zeros(normal.size(), 0);
  EXPECT_DOUBLE_EQ(rate_above(normal, zeros, 0, threshold_at_fpr(normal, 0.05)), 0.05);
  EXPECT_THROW(threshold_at_fpr(std::vector<double>{}, 0.05), DataError);
  const std::vector<double> s = {1, 2, 3, 4};
  const std::vector<uint8_t> y = {0, 1, 0, 1};
  EXPECT_DOUBLE_EQ(rate_above(s, y, 1, 2.5), 0.5);  // TPR: 4 of {2, 4}
  EXPECT_DOUBLE_EQ(rate_above(s, y, 0, 0.5), 1.0);  // FPR: both of {1, 3}
}

// Cases for the scikit-learn reference: continuous scores, scores rounded into heavy ties, and
// a rare positive class.
TEST(DetectionMetricsReference, WritesCasesForScikitLearn) {
  const char* out = std::getenv("VD_SCORE_REFERENCE");
  if (out == nullptr) GTEST_SKIP() << "set VD_SCORE_REFERENCE=FILE.h5 to write the case";
  h5::File f = h5::create_file(out);
  Rng rng(7);
  for (int c = 0; c < 3; ++c) {
    const int n = c == 2 ? 2000 : 500;
    std::vector<double> s(n);
    std::vector<uint8_t> y(n);
    for (int i = 0; i < n; ++i) {
      y[i] = rng.uniform() < (c == 2 ? 0.02 : 0.4) ? 1 : 0;
      s[i] = rng.normal() + (y[i] ? 0.8 : 0.0);
      if (c == 1) s[i] = std::round(s[i] * 2) / 2;  // a handful of distinct values
    }
    const std::string p = "case" + std::to_string(c) + "_";
    const int64_t dims[1] = {n}, one[1] = {1};
    h5::write_dataset<double>(f, p + "scores", s, dims);
    h5::write_dataset<uint8_t>(f, p + "labels", y, dims);
    const std::vector<double> r = {roc_auc(s, y), average_precision(s, y)};
    const int64_t two[1] = {2};
    h5::write_dataset<double>(f, p + "auc_ap", r, two);
    std::vector<double> normal;
    for (int i = 0; i < n; ++i)
      if (!y[i]) normal.push_back(s[i]);
    const std::vector<double> t = {threshold_at_fpr(normal, 0.05)};
    h5::write_dataset<double>(f, p + "threshold_at_0.05", t, one);
  }
}

}  // namespace
}  // namespace vd
