// Finite-difference gradient checking for tests: a double-precision central-difference
// gradient of a scalar function, the same at sampled indices of a parameter entry, and a
// comparison that GoogleTest can assert on.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <span>
#include <sstream>
#include <vector>

#include "core/rng.hpp"
#include "nn/param_store.hpp"

namespace vd::testing {

using ScalarFn = std::function<double(const std::vector<double>&)>;

// Central difference (f(x + h e_i) - f(x - h e_i)) / 2h with h = rel_step * max(1, |x_i|):
// truncation error O(h^2) and rounding error ~1e-16 |f| / h, both far below float noise.
inline std::vector<double> numeric_gradient(const ScalarFn& f, std::vector<double> x,
                                            double rel_step = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    const double h = rel_step * std::max(1.0, std::abs(xi));
    x[i] = xi + h;
    const double fp = f(x);
    x[i] = xi - h;
    const double fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// Passes when |analytic_i - numeric_i| <= tol * max(1, |numeric_i|) for every i; the
// message names the worst index, the max absolute error and the max relative error
// |a - n| / max(|a|, |n|). (NaN anywhere fails.)
inline ::testing::AssertionResult gradients_close(const std::vector<double>& analytic,
                                                  const std::vector<double>& numeric,
                                                  double tol = 1e-4) {
  if (analytic.size() != numeric.size())
    return ::testing::AssertionFailure() << "gradient sizes differ: analytic " << analytic.size()
                                         << ", numeric " << numeric.size();
  double max_abs = 0, max_rel = 0, worst_ratio = 0;
  size_t worst = 0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double err = std::abs(analytic[i] - numeric[i]);
    const double scale = std::max(1.0, std::abs(numeric[i]));
    max_abs = std::max(max_abs, err);
    const double denom = std::max(std::abs(analytic[i]), std::abs(numeric[i]));
    if (denom > 0) max_rel = std::max(max_rel, err / denom);  // in [0, 2]; 0/0 counts as exact
    if (!(err <= tol * scale) && (err / scale > worst_ratio || std::isnan(err))) {
      worst_ratio = std::isnan(err) ? INFINITY : err / scale;
      worst = i;
    }
  }
  std::ostringstream msg;
  msg << "max abs err " << max_abs << ", max rel err " << max_rel << " over " << analytic.size()
      << " components";
  if (worst_ratio > 0)
    return ::testing::AssertionFailure()
           << msg.str() << "; worst index " << worst << ": analytic " << analytic[worst]
           << " vs numeric " << numeric[worst] << " (tolerance " << tol << " * max(1, |g|))";
  return ::testing::AssertionSuccess() << msg.str();
}

// The central difference of loss(p) at `count` indices of entry e drawn by `pick` (with the
// step of numeric_gradient), appended to numeric beside store.grads() at the same indices in
// analytic. p holds the parameters in double in the store's layout; it is left as it was.
template <class Loss>
void sample_entry_gradient(const ParamStore& store, const ParamStore::Entry& e,
                           std::vector<double>& p, Loss&& loss, Rng& pick, int count,
                           std::vector<double>& analytic, std::vector<double>& numeric) {
  for (int t = 0; t < count; ++t) {
    const size_t i = e.offset + pick.below(e.size);
    const double h = 1e-6 * std::max(1.0, std::abs(p[i])), keep = p[i];
    p[i] = keep + h;
    const double fp = loss(p);
    p[i] = keep - h;
    const double fm = loss(p);
    p[i] = keep;
    analytic.push_back(store.grads()[i]);
    numeric.push_back((fp - fm) / (2 * h));
  }
}

// One-line check: EXPECT_TRUE(check_gradient(f, x, analytic_grad_at_x)).
inline ::testing::AssertionResult check_gradient(const ScalarFn& f, const std::vector<double>& x,
                                                 const std::vector<double>& analytic,
                                                 double tol = 1e-4, double rel_step = 1e-6) {
  return gradients_close(analytic, numeric_gradient(f, x, rel_step), tol);
}

// P ranks' summed gradient `got` against one process's `want` on the union batch: each within
// 1e-5 relative plus 1e-6 of the largest |want| (the sums are taken in another order), and
// the gradient must not be trivially small. Reports the first five misses.
inline void expect_union_gradient(std::span<const float> got, std::span<const float> want,
                                  int ranks) {
  double gmax = 0;
  for (float g : want) gmax = std::max(gmax, static_cast<double>(std::abs(g)));
  ASSERT_GT(gmax, 1e-3);
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (std::abs(got[i] - want[i]) > 1e-5 * std::abs(want[i]) + 1e-6 * gmax && bad++ < 5)
      ADD_FAILURE() << "gradient " << i << ": " << ranks << " ranks " << got[i] << ", union "
                    << want[i];
  EXPECT_EQ(bad, 0u);
}

}  // namespace vd::testing
