// ROC-AUC, average precision and the threshold at a false-positive rate, after sklearn's
// _binary_clf_curve: rows sorted by score, one curve point per distinct score.
#include "vae/detection_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace vd {

namespace {

// Cumulative counts at each distinct score, from the highest score down: (fp, tp) after
// flagging every row with score >= that value.
struct CurvePoint {
  double fp = 0, tp = 0;
};
std::vector<CurvePoint> curve(std::span<const double> scores, std::span<const uint8_t> anomalous,
                              const char* what) {
  if (scores.size() != anomalous.size())
    throw ShapeError(std::string(what) + ": " + std::to_string(scores.size()) + " scores but " +
                     std::to_string(anomalous.size()) + " labels");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  for (double s : scores)
    if (std::isnan(s))
      throw DataError(std::string(what) +
                      ": a score is NaN; the model gives no finite score for "
                      "some row");
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<CurvePoint> points;
  CurvePoint c;
  for (size_t i = 0; i < order.size(); ++i) {
    (anomalous[order[i]] ? c.tp : c.fp) += 1;
    if (i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]]) points.push_back(c);
  }
  if (c.tp == 0 || c.fp == 0)
    throw DataError(std::string(what) + " needs both normal and anomalous rows, but all " +
                    std::to_string(scores.size()) + " rows are " +
                    (c.tp == 0 ? "normal" : "anomalous"));
  return points;
}

}  // namespace

double roc_auc(std::span<const double> scores, std::span<const uint8_t> anomalous) {
  const std::vector<CurvePoint> points = curve(scores, anomalous, "ROC-AUC");
  const CurvePoint& all = points.back();
  // Trapezoids in counts (exact integers in double), scaled once at the end.
  double area = 0;
  CurvePoint prev;
  for (const CurvePoint& p : points) {
    area += (p.fp - prev.fp) * (p.tp + prev.tp) / 2;
    prev = p;
  }
  return area / (all.fp * all.tp);
}

double average_precision(std::span<const double> scores, std::span<const uint8_t> anomalous) {
  const std::vector<CurvePoint> points = curve(scores, anomalous, "average precision");
  const double positives = points.back().tp;
  double ap = 0, prev_tp = 0;
  for (const CurvePoint& p : points) {
    ap += (p.tp - prev_tp) / positives * (p.tp / (p.tp + p.fp));
    prev_tp = p.tp;
  }
  return ap;
}

double threshold_at_fpr(std::span<const double> normal_scores, double fpr) {
  VD_CHECK(fpr > 0 && fpr < 1, ShapeError, "the false-positive rate must lie in (0, 1)");
  const size_t m = normal_scores.size();
  if (m == 0)
    throw DataError(
        "the threshold at a false-positive rate needs held-out normal rows, and "
        "there are none");
  std::vector<double> sorted(normal_scores.begin(), normal_scores.end());
  std::sort(sorted.begin(), sorted.end());
  // floor(fpr * m), guarded against products such as 0.29 * 100 = 28.999999999999996.
  const auto above = static_cast<size_t>(std::floor(fpr * static_cast<double>(m) + 1e-9));
  return sorted[m - 1 - std::min(above, m - 1)];
}

double rate_above(std::span<const double> scores, std::span<const uint8_t> anomalous, uint8_t which,
                  double t) {
  double n = 0, hit = 0;
  for (size_t i = 0; i < scores.size(); ++i)
    if (anomalous[i] == which) {
      n += 1;
      hit += scores[i] > t ? 1 : 0;
    }
  return n > 0 ? hit / n : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace vd
