// Ranking metrics of anomaly scores against known labels (higher score = more anomalous):
// ROC-AUC and average precision as scikit-learn defines them, and a threshold picked at a
// false-positive rate on held-out normal scores. Pure functions on host arrays.
#pragma once
#include <cstdint>
#include <span>

namespace vd {

// The area under the ROC curve of `scores` [n] for `anomalous` [n] (1 = positive): the
// trapezoid over the curve's points at the distinct score values, from (0, 0) to (1, 1), as
// sklearn's roc_auc_score (tied scores make one point, so a tie between a positive and a
// negative counts 1/2). Throws vd::DataError unless both classes occur; NaN scores are refused.
double roc_auc(std::span<const double> scores, std::span<const uint8_t> anomalous);

// Average precision, sklearn's average_precision_score: sum over the distinct score values t,
// from the highest down, of (R(t) - R(t_prev)) P(t), with P and R the precision and recall of
// flagging score >= t and R = 0 before the first. The same errors as roc_auc.
double average_precision(std::span<const double> scores, std::span<const uint8_t> anomalous);

// The threshold t at false-positive rate `fpr` on held-out normal scores [m]: the smallest of
// them with at most floor(fpr * m) scores above it (a row is flagged when score > t), i.e.
// the (m - floor(fpr m))-th smallest. fpr in (0, 1); throws vd::DataError for m = 0.
double threshold_at_fpr(std::span<const double> normal_scores, double fpr);

// The share of `scores` [n] above t, among the rows whose `anomalous` flag equals `which`
// (TPR for which = 1, FPR for which = 0); NaN when there are none.
double rate_above(std::span<const double> scores, std::span<const uint8_t> anomalous, uint8_t which,
                  double t);

}  // namespace vd
