// Disentanglement metrics (MIG, SAP, DCI, beta-VAE and FactorVAE scores) and their classifiers:
// a 1-D LinearSVC, the lasso and multinomial logistic regression, each solved to a tight
// tolerance so the answer is the problem's optimum, not a solver's stopping point.
#include "vae/disentanglement.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "core/error.hpp"
#include "io/metrics_log.hpp"

namespace vd {

namespace {

// Sorted distinct values of y[i * sy], i < n, and each point's index among them.
std::vector<int32_t> distinct(const int32_t* y, int64_t sy, int64_t n,
                              std::vector<int32_t>* index) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = y[i * sy];
  std::vector<int32_t> u = v;
  std::sort(u.begin(), u.end());
  u.erase(std::unique(u.begin(), u.end()), u.end());
  if (index) {
    index->resize(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      (*index)[i] = static_cast<int32_t>(std::lower_bound(u.begin(), u.end(), v[i]) - u.begin());
  }
  return u;
}

// Solves the symmetric positive definite system A x = g in place (A [m, m] row-major) by
// Cholesky; tiny pivots are raised, so a nearly singular direction gets a finite step.
void cholesky_solve(std::vector<double>& A, std::vector<double>& g, int m) {
  double scale = 0;
  for (int i = 0; i < m; ++i) scale = std::max(scale, A[static_cast<size_t>(i) * m + i]);
  const double floor = std::max(scale, 1.0) * 1e-14;
  for (int j = 0; j < m; ++j) {
    double d = A[static_cast<size_t>(j) * m + j];
    for (int k = 0; k < j; ++k)
      d -= A[static_cast<size_t>(j) * m + k] * A[static_cast<size_t>(j) * m + k];
    d = std::sqrt(std::max(d, floor));
    A[static_cast<size_t>(j) * m + j] = d;
    for (int i = j + 1; i < m; ++i) {
      double s = A[static_cast<size_t>(i) * m + j];
      for (int k = 0; k < j; ++k)
        s -= A[static_cast<size_t>(i) * m + k] * A[static_cast<size_t>(j) * m + k];
      A[static_cast<size_t>(i) * m + j] = s / d;
    }
  }
  for (int i = 0; i < m; ++i) {
    double s = g[static_cast<size_t>(i)];
    for (int k = 0; k < i; ++k) s -= A[static_cast<size_t>(i) * m + k] * g[static_cast<size_t>(k)];
    g[static_cast<size_t>(i)] = s / A[static_cast<size_t>(i) * m + i];
  }
  for (int i = m - 1; i >= 0; --i) {
    double s = g[static_cast<size_t>(i)];
    for (int k = i + 1; k < m; ++k)
      s -= A[static_cast<size_t>(k) * m + i] * g[static_cast<size_t>(k)];
    g[static_cast<size_t>(i)] = s / A[static_cast<size_t>(i) * m + i];
  }
}

// One binary problem of the 1-D LinearSVC: min 0.5 (w^2 + b^2) + sum_i c_i max(0, 1 - t_i (w x_i
// + b))^2. Piecewise quadratic and strictly convex: Newton's method with the generalised
// Hessian and a backtracking line search reaches the optimum in a few steps.
void svc_binary(const double* x, int64_t sx, const std::vector<double>& t,
                const std::vector<double>& c, int64_t n, double& w, double& b) {
  auto objective = [&](double ww, double bb) {
    double f = 0.5 * (ww * ww + bb * bb);
    for (int64_t i = 0; i < n; ++i) {
      const double m = 1.0 - t[static_cast<size_t>(i)] * (ww * x[i * sx] + bb);
      if (m > 0) f += c[static_cast<size_t>(i)] * m * m;
    }
    return f;
  };
  w = 0;
  b = 0;
  double f = objective(w, b), g0 = -1;
  for (int iter = 0; iter < 200; ++iter) {
    double gw = w, gb = b, hww = 1, hwb = 0, hbb = 1;
    for (int64_t i = 0; i < n; ++i) {
      const double xi = x[i * sx], ti = t[static_cast<size_t>(i)];
      const double m = 1.0 - ti * (w * xi + b);
      if (m <= 0) continue;
      const double ci = c[static_cast<size_t>(i)];
      gw -= 2 * ci * m * ti * xi;
      gb -= 2 * ci * m * ti;
      hww += 2 * ci * xi * xi;
      hwb += 2 * ci * xi;
      hbb += 2 * ci;
    }
    const double gmax = std::max(std::abs(gw), std::abs(gb));
    if (g0 < 0) g0 = std::max(gmax, 1.0);
    if (gmax <= 1e-12 * g0) break;
    const double det = hww * hbb - hwb * hwb;
    const double dw = -(hbb * gw - hwb * gb) / det, db = -(hww * gb - hwb * gw) / det;
    const double slope = gw * dw + gb * db;
    double step = 1;
    bool moved = false;
    for (int k = 0; k < 60; ++k, step *= 0.5) {
      const double fn = objective(w + step * dw, b + step * db);
      if (fn <= f + 1e-4 * step * slope + 1e-15 * std::abs(f)) {
        w += step * dw;
        b += step * db;
        f = fn;
        moved = true;
        break;
      }
    }
    if (!moved) break;  // no representable progress left: at the optimum to rounding
  }
}

double soft_threshold(double v, double a) {
  return v > a ? v - a : (v < -a ? v + a : 0.0);
}

// 1 - the entropy (base 'base') of v + 1e-11, normalised: scipy.stats.entropy as
// disentanglement_lib calls it.
double one_minus_entropy(const std::vector<double>& v, int base) {
  double s = 0;
  for (double x : v) s += x + 1e-11;
  double h = 0;
  for (double x : v) {
    const double p = (x + 1e-11) / s;
    if (p > 0) h -= p * std::log(p);
  }
  return 1.0 - h / std::log(static_cast<double>(base));
}

// Rows drawn uniformly with replacement from the data, as a FactorSample.
FactorSample sample_rows(const EncodedFactors& d, int64_t count, Rng& rng) {
  FactorSample s;
  s.n = count;
  s.L = d.L;
  s.F = d.F;
  s.codes.resize(static_cast<size_t>(count) * d.L);
  s.factors.resize(static_cast<size_t>(count) * d.F);
  for (int64_t i = 0; i < count; ++i) {
    const auto r = static_cast<size_t>(rng.below(static_cast<uint64_t>(d.n)));
    for (int j = 0; j < d.L; ++j) s.codes[static_cast<size_t>(i) * d.L + j] = d.codes[r * d.L + j];
    for (int k = 0; k < d.F; ++k)
      s.factors[static_cast<size_t>(i) * d.F + k] = d.factors[r * d.F + k];
  }
  return s;
}

// Mean and standard deviation (ddof 0) of column j of X [n, d].
void column_moments(const std::vector<double>& X, int64_t n, int d, int j, double& mean,
                    double& sd) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += X[static_cast<size_t>(i) * d + j];
  mean = s / static_cast<double>(n);
  double q = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = X[static_cast<size_t>(i) * d + j] - mean;
    q += e * e;
  }
  sd = std::sqrt(q / static_cast<double>(n));
}

}  // namespace

// ---- Pieces -----------------------------------------------------------------------------------

std::vector<int32_t> histogram_bins(const double* x, int64_t n, int64_t stride, int bins) {
  VD_CHECK(n > 0 && bins > 0, ShapeError, "histogram_bins needs points and bins");
  double lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i * stride]);
    hi = std::max(hi, x[i * stride]);
  }
  if (lo == hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const double step = (hi - lo) / bins;
  std::vector<double> edges(static_cast<size_t>(bins));
  for (int i = 0; i < bins; ++i) edges[static_cast<size_t>(i)] = static_cast<double>(i) * step + lo;
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<int32_t>(
        std::upper_bound(edges.begin(), edges.end(), x[i * stride]) - edges.begin());
  return out;
}

double mutual_information(const int32_t* a, int64_t sa, const int32_t* b, int64_t sb, int64_t n) {
  std::vector<int32_t> ia, ib;
  const size_t ka = distinct(a, sa, n, &ia).size(), kb = distinct(b, sb, n, &ib).size();
  std::vector<int64_t> joint(ka * kb, 0), na(ka, 0), nb(kb, 0);
  for (int64_t i = 0; i < n; ++i) {
    const auto u = static_cast<size_t>(ia[static_cast<size_t>(i)]),
               v = static_cast<size_t>(ib[static_cast<size_t>(i)]);
    ++joint[u * kb + v];
    ++na[u];
    ++nb[v];
  }
  const double N = static_cast<double>(n), logN = std::log(N);
  double mi = 0;
  for (size_t u = 0; u < ka; ++u)
    for (size_t v = 0; v < kb; ++v) {
      const int64_t c = joint[u * kb + v];
      if (c == 0) continue;
      mi += static_cast<double>(c) / N *
            (std::log(static_cast<double>(c)) + logN - std::log(static_cast<double>(na[u])) -
             std::log(static_cast<double>(nb[v])));
    }
  return std::max(mi, 0.0);
}

int32_t LinearSvc1d::predict(double x) const {
  if (classes.size() == 2) return w[0] * x + b[0] > 0 ? classes[1] : classes[0];
  size_t best = 0;
  for (size_t k = 1; k < classes.size(); ++k)
    if (w[k] * x + b[k] > w[best] * x + b[best]) best = k;
  return classes[best];
}

LinearSvc1d fit_linear_svc_1d(const double* x, int64_t sx, const int32_t* y, int64_t sy, int64_t n,
                              double C) {
  LinearSvc1d m;
  std::vector<int32_t> idx;
  m.classes = distinct(y, sy, n, &idx);
  const size_t K = m.classes.size();
  VD_CHECK(K >= 2, DataError, "a classifier needs at least two classes among its labels");
  std::vector<int64_t> count(K, 0);
  for (int32_t k : idx) ++count[static_cast<size_t>(k)];
  // class_weight="balanced": n / (K n_k).
  std::vector<double> weight(K);
  for (size_t k = 0; k < K; ++k)
    weight[k] = static_cast<double>(n) / (static_cast<double>(K) * static_cast<double>(count[k]));
  std::vector<double> t(static_cast<size_t>(n)), c(static_cast<size_t>(n));
  const size_t problems = K == 2 ? 1 : K;
  for (size_t k = 0; k < problems; ++k) {
    const size_t positive = K == 2 ? 1 : k;
    for (int64_t i = 0; i < n; ++i) {
      const auto own = static_cast<size_t>(idx[static_cast<size_t>(i)]);
      t[static_cast<size_t>(i)] = own == positive ? 1.0 : -1.0;
      c[static_cast<size_t>(i)] = (K == 2 || own == positive) ? C * weight[own] : C;
    }
    double w = 0, b = 0;
    svc_binary(x, sx, t, c, n, w, b);
    m.w.push_back(w);
    m.b.push_back(b);
  }
  return m;
}

std::vector<double> fit_lasso(const std::vector<double>& X, const std::vector<double>& y, int64_t n,
                              int d, double alpha) {
  const auto D = static_cast<size_t>(d);
  std::vector<double> G(D * D, 0.0), c(D, 0.0), w(D, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = &X[static_cast<size_t>(i) * D];
    for (size_t j = 0; j < D; ++j) {
      c[j] += xi[j] * y[static_cast<size_t>(i)];
      for (size_t k = 0; k < D; ++k) G[j * D + k] += xi[j] * xi[k];
    }
  }
  for (double& v : G) v /= static_cast<double>(n);
  for (double& v : c) v /= static_cast<double>(n);
  for (int sweep = 0; sweep < 1000000; ++sweep) {
    double moved = 0;
    for (size_t j = 0; j < D; ++j) {
      if (G[j * D + j] <= 0) continue;  // a constant column keeps weight 0
      double r = c[j];
      for (size_t k = 0; k < D; ++k)
        if (k != j) r -= G[j * D + k] * w[k];
      const double v = soft_threshold(r, alpha) / G[j * D + j];
      moved = std::max(moved, std::abs(v - w[j]));
      w[j] = v;
    }
    if (moved <= 1e-13) break;
  }
  return w;
}

std::vector<double> LogisticRegression::probabilities(const double* x) const {
  const size_t K = classes.size();
  std::vector<double> z(K);
  double top = -std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < K; ++k) {
    double s = b[k];
    for (int j = 0; j < d; ++j) s += W[k * static_cast<size_t>(d) + j] * x[j];
    z[k] = s;
    top = std::max(top, s);
  }
  double sum = 0;
  for (double& v : z) sum += (v = std::exp(v - top));
  for (double& v : z) v /= sum;
  return z;
}

int32_t LogisticRegression::predict(const double* x) const {
  const std::vector<double> p = probabilities(x);
  return classes[static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin())];
}

double LogisticRegression::accuracy(const std::vector<double>& X,
                                    const std::vector<int32_t>& y) const {
  int64_t right = 0;
  for (size_t i = 0; i < y.size(); ++i) right += predict(&X[i * static_cast<size_t>(d)]) == y[i];
  return static_cast<double>(right) / static_cast<double>(y.size());
}

LogisticRegression fit_logistic_regression(const std::vector<double>& X,
                                           const std::vector<int32_t>& y, int d, double C) {
  LogisticRegression m;
  m.d = d;
  const auto n = static_cast<int64_t>(y.size());
  std::vector<int32_t> idx;
  m.classes = distinct(y.data(), 1, n, &idx);
  const auto K = static_cast<int>(m.classes.size());
  VD_CHECK(K >= 2, DataError, "logistic regression needs at least two classes among its labels");
  // The binary model's penalty on its one w equals the 2-class multinomial's with C / 2.
  const double lambda = (K == 2 ? 2.0 : 1.0) / (C * static_cast<double>(n));
  const int D1 = d + 1, P = K * D1;  // theta: per class, its d weights then its intercept
  std::vector<double> theta(static_cast<size_t>(P), 0.0);

  // Objective / n and, on request, its gradient and Hessian.
  auto evaluate = [&](const std::vector<double>& th, std::vector<double>* g,
                      std::vector<double>* H) {
    double f = 0;
    if (g) g->assign(static_cast<size_t>(P), 0.0);
    if (H) H->assign(static_cast<size_t>(P) * P, 0.0);
    std::vector<double> z(static_cast<size_t>(K)), xt(static_cast<size_t>(D1)),
        outer(static_cast<size_t>(D1) * D1);
    for (int64_t i = 0; i < n; ++i) {
      const double* xi = &X[static_cast<size_t>(i) * d];
      for (int j = 0; j < d; ++j) xt[static_cast<size_t>(j)] = xi[j];
      xt[static_cast<size_t>(d)] = 1.0;
      double top = -std::numeric_limits<double>::infinity();
      for (int k = 0; k < K; ++k) {
        double s = 0;
        for (int j = 0; j < D1; ++j)
          s += th[static_cast<size_t>(k) * D1 + j] * xt[static_cast<size_t>(j)];
        z[static_cast<size_t>(k)] = s;
        top = std::max(top, s);
      }
      double sum = 0;
      for (int k = 0; k < K; ++k) sum += std::exp(z[static_cast<size_t>(k)] - top);
      const auto yi = static_cast<size_t>(idx[static_cast<size_t>(i)]);
      f += top + std::log(sum) - z[yi];
      if (!g) continue;
      for (int k = 0; k < K; ++k)
        z[static_cast<size_t>(k)] = std::exp(z[static_cast<size_t>(k)] - top) / sum;
      for (int k = 0; k < K; ++k) {
        const double r = z[static_cast<size_t>(k)] - (static_cast<size_t>(k) == yi ? 1.0 : 0.0);
        for (int j = 0; j < D1; ++j)
          (*g)[static_cast<size_t>(k) * D1 + j] += r * xt[static_cast<size_t>(j)];
      }
      if (!H) continue;
      for (int a = 0; a < D1; ++a)
        for (int c = a; c < D1; ++c)
          outer[static_cast<size_t>(a) * D1 + c] =
              xt[static_cast<size_t>(a)] * xt[static_cast<size_t>(c)];
      for (int k = 0; k < K; ++k)
        for (int l = k; l < K; ++l) {
          const double pk = z[static_cast<size_t>(k)], pl = z[static_cast<size_t>(l)];
          const double s = (k == l ? pk : 0.0) - pk * pl;
          double* block = &(*H)[(static_cast<size_t>(k) * D1) * P + static_cast<size_t>(l) * D1];
          for (int a = 0; a < D1; ++a)
            for (int c = a; c < D1; ++c)
              block[static_cast<size_t>(a) * P + c] += s * outer[static_cast<size_t>(a) * D1 + c];
        }
    }
    const double inv = 1.0 / static_cast<double>(n);
    f *= inv;
    double pen = 0;
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) {
        const double v = th[static_cast<size_t>(k) * D1 + j];
        pen += v * v;
      }
    f += 0.5 * lambda * pen;
    if (g)
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < D1; ++j) {
          double& e = (*g)[static_cast<size_t>(k) * D1 + j];
          e = e * inv + (j < d ? lambda * th[static_cast<size_t>(k) * D1 + j] : 0.0);
        }
    if (H) {
      // Each class pair's block was filled on and above its diagonal; mirror into the whole
      // matrix, scale, add the penalty.
      for (int k = 0; k < K; ++k)
        for (int l = k; l < K; ++l)
          for (int a = 0; a < D1; ++a)
            for (int c = a; c < D1; ++c) {
              const size_t r = static_cast<size_t>(k) * D1 + a, s = static_cast<size_t>(l) * D1 + c;
              const double v = (*H)[r * P + s] * inv;
              const size_t r2 = static_cast<size_t>(k) * D1 + c,
                           s2 = static_cast<size_t>(l) * D1 + a;
              (*H)[r * P + s] = v;
              (*H)[s * P + r] = v;
              (*H)[r2 * P + s2] = v;
              (*H)[s2 * P + r2] = v;
            }
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < d; ++j) {
          const size_t r = static_cast<size_t>(k) * D1 + j;
          (*H)[r * P + r] += lambda;
        }
    }
    return f;
  };

  // Newton on all parameters but the last class's intercept, which stays 0 (the gauge).
  const int free = P - 1;
  std::vector<double> g, H, step(static_cast<size_t>(free)), A(static_cast<size_t>(free) * free);
  double f = evaluate(theta, &g, &H);
  for (int iter = 0; iter < 200; ++iter) {
    double gmax = 0;
    for (int r = 0; r < free; ++r) gmax = std::max(gmax, std::abs(g[static_cast<size_t>(r)]));
    m.gradient = gmax;
    m.iterations = iter;
    if (gmax < 1e-10) break;
    for (int r = 0; r < free; ++r) {
      step[static_cast<size_t>(r)] = -g[static_cast<size_t>(r)];
      for (int c = 0; c < free; ++c)
        A[static_cast<size_t>(r) * free + c] = H[static_cast<size_t>(r) * P + c];
    }
    cholesky_solve(A, step, free);
    double slope = 0;
    for (int r = 0; r < free; ++r)
      slope += g[static_cast<size_t>(r)] * step[static_cast<size_t>(r)];
    double t = 1;
    bool moved = false;
    std::vector<double> trial = theta;
    for (int k = 0; k < 60; ++k, t *= 0.5) {
      for (int r = 0; r < free; ++r)
        trial[static_cast<size_t>(r)] =
            theta[static_cast<size_t>(r)] + t * step[static_cast<size_t>(r)];
      const double fn = evaluate(trial, nullptr, nullptr);
      if (fn <= f + 1e-4 * t * slope + 1e-15 * std::abs(f)) {
        theta = trial;
        moved = true;
        break;
      }
    }
    if (!moved) break;  // no representable progress left
    f = evaluate(theta, &g, &H);
  }
  m.W.assign(static_cast<size_t>(K) * d, 0.0);
  m.b.assign(static_cast<size_t>(K), 0.0);
  double bmean = 0;
  for (int k = 0; k < K; ++k) {
    for (int j = 0; j < d; ++j)
      m.W[static_cast<size_t>(k) * d + j] = theta[static_cast<size_t>(k) * D1 + j];
    bmean += theta[static_cast<size_t>(k) * D1 + d] / K;
  }
  for (int k = 0; k < K; ++k)
    m.b[static_cast<size_t>(k)] = theta[static_cast<size_t>(k) * D1 + d] - bmean;
  return m;
}

// ---- Metrics on samples ---------------------------------------------------------------------

MigResult mig(const FactorSample& s, int bins) {
  VD_CHECK(s.L >= 2, DataError,
           "MIG needs codes of at least 2 dimensions (the gap between the "
           "two most informative ones)");
  MigResult r;
  const auto L = static_cast<size_t>(s.L), F = static_cast<size_t>(s.F);
  r.mi.assign(L * F, 0.0);
  std::vector<std::vector<int32_t>> binned(L);
  for (size_t j = 0; j < L; ++j) binned[j] = histogram_bins(&s.codes[j], s.n, s.L, bins);
  for (size_t k = 0; k < F; ++k) {
    const int32_t* y = &s.factors[k];
    const double h = mutual_information(y, s.F, y, s.F, s.n);
    if (!(h > 0))
      throw DataError("factor " + std::to_string(k) + " takes a single value in MIG's " +
                      std::to_string(s.n) + " points, so its entropy is 0; every factor must vary");
    r.entropy.push_back(h);
    std::vector<double> col;
    for (size_t j = 0; j < L; ++j) {
      r.mi[j * F + k] = mutual_information(binned[j].data(), 1, y, s.F, s.n);
      col.push_back(r.mi[j * F + k]);
    }
    std::sort(col.rbegin(), col.rend());
    r.gap.push_back((col[0] - col[1]) / h);
  }
  r.mig = std::accumulate(r.gap.begin(), r.gap.end(), 0.0) / static_cast<double>(F);
  return r;
}

SapResult sap(const FactorSample& train, const FactorSample& test, double C) {
  VD_CHECK(train.L >= 2, DataError, "SAP needs codes of at least 2 dimensions");
  SapResult r;
  const auto L = static_cast<size_t>(train.L), F = static_cast<size_t>(train.F);
  r.score.assign(L * F, 0.0);
  double sum = 0;
  for (size_t k = 0; k < F; ++k) {
    std::vector<double> col;
    for (size_t j = 0; j < L; ++j) {
      const LinearSvc1d m =
          fit_linear_svc_1d(&train.codes[j], train.L, &train.factors[k], train.F, train.n, C);
      int64_t right = 0;
      for (int64_t i = 0; i < test.n; ++i)
        right +=
            m.predict(test.code(i, static_cast<int>(j))) == test.factor(i, static_cast<int>(k));
      r.score[j * F + k] = static_cast<double>(right) / static_cast<double>(test.n);
      col.push_back(r.score[j * F + k]);
    }
    std::sort(col.rbegin(), col.rend());
    sum += col[0] - col[1];
  }
  r.sap = sum / static_cast<double>(F);
  return r;
}

DciResult dci(const FactorSample& train, const FactorSample& test, double alpha) {
  const int L = train.L, F = train.F;
  VD_CHECK(L >= 2 && F >= 2, DataError,
           "DCI needs codes of at least 2 dimensions and at least 2 factors (its entropies have "
           "those bases)");
  // Standardised codes: the training set's mean and sd (a constant dimension becomes 0).
  std::vector<double> mean(static_cast<size_t>(L)), sd(static_cast<size_t>(L));
  for (int j = 0; j < L; ++j) column_moments(train.codes, train.n, L, j, mean[j], sd[j]);
  auto standardise = [&](const FactorSample& s) {
    std::vector<double> X(s.codes.size());
    for (int64_t i = 0; i < s.n; ++i)
      for (int j = 0; j < L; ++j)
        X[static_cast<size_t>(i) * L + j] = sd[j] > 0 ? (s.code(i, j) - mean[j]) / sd[j] : 0.0;
    return X;
  };
  const std::vector<double> Xtr = standardise(train), Xte = standardise(test);
  DciResult r;
  r.importance.assign(static_cast<size_t>(L) * F, 0.0);
  for (int k = 0; k < F; ++k) {
    std::vector<double> ytr(static_cast<size_t>(train.n)), yte(static_cast<size_t>(test.n));
    for (int64_t i = 0; i < train.n; ++i) ytr[static_cast<size_t>(i)] = train.factor(i, k);
    double ym, ys;
    column_moments(ytr, train.n, 1, 0, ym, ys);
    if (!(ys > 0))
      throw DataError("factor " + std::to_string(k) + " takes a single value in DCI's training " +
                      "points; every factor must vary");
    for (double& v : ytr) v = (v - ym) / ys;
    for (int64_t i = 0; i < test.n; ++i)
      yte[static_cast<size_t>(i)] = (test.factor(i, k) - ym) / ys;
    const std::vector<double> w = fit_lasso(Xtr, ytr, train.n, L, alpha);
    for (int j = 0; j < L; ++j) r.importance[static_cast<size_t>(j) * F + k] = std::abs(w[j]);
    auto rmse = [&](const std::vector<double>& X, const std::vector<double>& y) {
      double q = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        double p = 0;
        for (int j = 0; j < L; ++j) p += X[i * L + j] * w[j];
        q += (y[i] - p) * (y[i] - p);
      }
      return std::sqrt(q / static_cast<double>(y.size()));
    };
    r.error_train += rmse(Xtr, ytr) / F;
    r.error_test += rmse(Xte, yte) / F;
  }
  double total = 0;
  for (double v : r.importance) total += v;
  const bool zero = total == 0;  // then every code and factor weighs alike, as disentanglement_lib
  for (int j = 0; j < L; ++j) {
    std::vector<double> row(r.importance.begin() + static_cast<size_t>(j) * F,
                            r.importance.begin() + static_cast<size_t>(j + 1) * F);
    const double share = zero ? 1.0 / L : std::accumulate(row.begin(), row.end(), 0.0) / total;
    r.disentanglement += one_minus_entropy(row, F) * share;
  }
  for (int k = 0; k < F; ++k) {
    std::vector<double> col;
    for (int j = 0; j < L; ++j) col.push_back(r.importance[static_cast<size_t>(j) * F + k]);
    const double share = zero ? 1.0 / F : std::accumulate(col.begin(), col.end(), 0.0) / total;
    r.completeness += one_minus_entropy(col, L) * share;
  }
  return r;
}

// ---- Batches with one factor fixed ---------------------------------------------------------

FactorLookup::FactorLookup(const std::vector<int32_t>& factors, int64_t n,
                           std::vector<int64_t> sizes, const std::string& what)
    : sizes_(std::move(sizes)), what_(what) {
  const auto F = static_cast<int64_t>(sizes_.size());
  combinations_ = 1;
  for (int64_t s : sizes_) {
    if (s < 1) throw DataError("'" + what + "': a factor has size " + std::to_string(s));
    if (combinations_ > (int64_t{1} << 26) / s)
      throw DataError("'" + what + "' has more than 2^26 factor combinations; the beta-VAE and " +
                      "FactorVAE scores index every combination; use fewer factor values");
    combinations_ *= s;
  }
  std::vector<int64_t> key(static_cast<size_t>(n));
  start_.assign(static_cast<size_t>(combinations_) + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t k = 0;
    for (int64_t f = 0; f < F; ++f) {
      const int32_t v = factors[static_cast<size_t>(i * F + f)];
      if (v < 0 || v >= sizes_[static_cast<size_t>(f)])
        throw DataError("'" + what + "': row " + std::to_string(i) + " has factor " +
                        std::to_string(f) + " = " + std::to_string(v) + ", outside 0.." +
                        std::to_string(sizes_[static_cast<size_t>(f)] - 1) + " (its size)");
      k = k * sizes_[static_cast<size_t>(f)] + v;
    }
    key[static_cast<size_t>(i)] = k;
    ++start_[static_cast<size_t>(k) + 1];
  }
  for (size_t k = 0; k < static_cast<size_t>(combinations_); ++k) {
    present_ += start_[k + 1] > 0;
    start_[k + 1] += start_[k];
  }
  rows_.resize(static_cast<size_t>(n));
  std::vector<int64_t> fill(start_.begin(), start_.end() - 1);
  for (int64_t i = 0; i < n; ++i)
    rows_[static_cast<size_t>(fill[static_cast<size_t>(key[static_cast<size_t>(i)])]++)] = i;
}

void FactorLookup::require_all(const std::string& metric) const {
  if (present_ < combinations_)
    throw DataError(metric + " draws observations for given factor values, so it needs a row " +
                    "for every combination, but '" + what_ + "' has rows for " +
                    std::to_string(present_) + " of the " + std::to_string(combinations_) +
                    " combinations; write the data with 'vae_data shapes --all', or leave the "
                    "score out with --metrics mig,sap,dci");
}

std::vector<int32_t> FactorLookup::draw(Rng& rng) const {
  std::vector<int32_t> f(sizes_.size());
  for (size_t k = 0; k < sizes_.size(); ++k)
    f[k] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(sizes_[k])));
  return f;
}

int64_t FactorLookup::row(const int32_t* factors, Rng& rng) const {
  int64_t k = 0;
  for (size_t f = 0; f < sizes_.size(); ++f) k = k * sizes_[f] + factors[f];
  const int64_t lo = start_[static_cast<size_t>(k)],
                count = start_[static_cast<size_t>(k) + 1] - lo;
  if (count == 0) return -1;
  if (count == 1) return rows_[static_cast<size_t>(lo)];
  return rows_[static_cast<size_t>(lo +
                                   static_cast<int64_t>(rng.below(static_cast<uint64_t>(count))))];
}

namespace {
int64_t row_or_throw(const FactorLookup& lookup, const std::vector<int32_t>& f, Rng& rng) {
  const int64_t r = lookup.row(f.data(), rng);
  if (r < 0) lookup.require_all("a score with a factor fixed");
  return r;
}
}  // namespace

std::vector<BetaVaeDraw> draw_beta_vae(const FactorLookup& lookup, int64_t points, int batch,
                                       Rng& rng) {
  std::vector<BetaVaeDraw> out(static_cast<size_t>(points));
  const auto B = static_cast<size_t>(batch);
  for (BetaVaeDraw& d : out) {
    d.factor = static_cast<int>(rng.below(static_cast<uint64_t>(lookup.F())));
    std::vector<std::vector<int32_t>> f1(B), f2(B);
    for (auto& f : f1) f = lookup.draw(rng);
    for (auto& f : f2) f = lookup.draw(rng);
    for (size_t b = 0; b < B; ++b) {
      f2[b][static_cast<size_t>(d.factor)] = f1[b][static_cast<size_t>(d.factor)];
      d.rows1.push_back(row_or_throw(lookup, f1[b], rng));
    }
    for (size_t b = 0; b < B; ++b) d.rows2.push_back(row_or_throw(lookup, f2[b], rng));
  }
  return out;
}

std::vector<double> beta_vae_features(const std::vector<BetaVaeDraw>& draws,
                                      const std::vector<float>& codes, int L) {
  std::vector<double> X(draws.size() * static_cast<size_t>(L), 0.0);
  for (size_t p = 0; p < draws.size(); ++p) {
    const BetaVaeDraw& d = draws[p];
    for (int j = 0; j < L; ++j) {
      double s = 0;
      for (size_t b = 0; b < d.rows1.size(); ++b)
        s += std::abs(static_cast<double>(codes[static_cast<size_t>(d.rows1[b]) * L + j]) -
                      static_cast<double>(codes[static_cast<size_t>(d.rows2[b]) * L + j]));
      X[p * L + j] = s / static_cast<double>(d.rows1.size());
    }
  }
  return X;
}

std::vector<FactorVaeDraw> draw_factor_vae(const FactorLookup& lookup, int64_t points, int batch,
                                           Rng& rng) {
  std::vector<FactorVaeDraw> out(static_cast<size_t>(points));
  for (FactorVaeDraw& d : out) {
    d.factor = static_cast<int>(rng.below(static_cast<uint64_t>(lookup.F())));
    std::vector<std::vector<int32_t>> f(static_cast<size_t>(batch));
    for (auto& v : f) v = lookup.draw(rng);
    for (auto& v : f) {
      v[static_cast<size_t>(d.factor)] = f[0][static_cast<size_t>(d.factor)];
      d.rows.push_back(row_or_throw(lookup, v, rng));
    }
  }
  return out;
}

namespace {
// Variance (ddof 1) of code dimension j over rows, two-pass as np.var.
double variance(const std::vector<float>& codes, int L, const std::vector<int64_t>& rows, int j) {
  double s = 0;
  for (int64_t r : rows) s += codes[static_cast<size_t>(r) * L + j];
  const double m = s / static_cast<double>(rows.size());
  double q = 0;
  for (int64_t r : rows) {
    const double e = codes[static_cast<size_t>(r) * L + j] - m;
    q += e * e;
  }
  return q / static_cast<double>(rows.size() - 1);
}
}  // namespace

FactorVaeResult factor_vae_score(const std::vector<float>& codes, int L,
                                 const std::vector<int64_t>& variance_rows,
                                 const std::vector<FactorVaeDraw>& train,
                                 const std::vector<FactorVaeDraw>& eval, int F,
                                 double prune_threshold) {
  FactorVaeResult r;
  VD_CHECK(variance_rows.size() >= 2, ShapeError, "the FactorVAE score needs 2 variance points");
  std::vector<int> active;
  for (int j = 0; j < L; ++j) {
    r.global_variance.push_back(variance(codes, L, variance_rows, j));
    if (std::sqrt(r.global_variance.back()) >= prune_threshold) active.push_back(j);
  }
  r.active_dims = static_cast<int>(active.size());
  r.classifier.assign(static_cast<size_t>(L), 0);
  if (active.empty()) return r;  // disentanglement_lib's score of a collapsed code: 0
  auto votes = [&](const std::vector<FactorVaeDraw>& draws) {
    std::vector<int64_t> v(static_cast<size_t>(F) * L, 0);
    for (const FactorVaeDraw& d : draws) {
      int best = active[0];
      double least = std::numeric_limits<double>::infinity();
      for (int j : active) {
        const double ratio =
            variance(codes, L, d.rows, j) / r.global_variance[static_cast<size_t>(j)];
        if (ratio < least) least = ratio, best = j;
      }
      ++v[static_cast<size_t>(d.factor) * L + best];
    }
    return v;
  };
  r.train_votes = votes(train);
  for (int j = 0; j < L; ++j) {
    int best = 0;
    for (int k = 1; k < F; ++k)
      if (r.train_votes[static_cast<size_t>(k) * L + j] >
          r.train_votes[static_cast<size_t>(best) * L + j])
        best = k;
    r.classifier[static_cast<size_t>(j)] = best;
  }
  auto accuracy = [&](const std::vector<int64_t>& v) {
    int64_t right = 0, total = 0;
    for (int j = 0; j < L; ++j)
      for (int k = 0; k < F; ++k) {
        total += v[static_cast<size_t>(k) * L + j];
        if (k == r.classifier[static_cast<size_t>(j)]) right += v[static_cast<size_t>(k) * L + j];
      }
    return total ? static_cast<double>(right) / static_cast<double>(total) : 0.0;
  };
  r.train_accuracy = accuracy(r.train_votes);
  r.eval_accuracy = accuracy(votes(eval));
  return r;
}

// ---- Everything from a seed -----------------------------------------------------------------

DisentanglementReport evaluate_disentanglement(const EncodedFactors& data,
                                               const DisentanglementSettings& settings,
                                               uint64_t seed) {
  const DisentanglementSettings& s = settings;
  VD_CHECK(data.n > 0 && data.F > 0 && data.L > 0, DataError,
           "'" + data.what + "' has no rows, codes or factors to measure");
  VD_CHECK(data.codes.size() == static_cast<size_t>(data.n) * data.L &&
               data.factors.size() == static_cast<size_t>(data.n) * data.F &&
               data.sizes.size() == static_cast<size_t>(data.F),
           ShapeError, "codes, factors and sizes disagree in size");
  DisentanglementReport r;
  r.settings = s;
  r.seed = seed;
  r.rows = data.n;
  r.L = data.L;
  r.names = data.names;
  auto stream = [&](uint64_t m) { return Rng(Rng::derive_seed(seed, kDisentanglementStream + m)); };
  if (s.mig) {
    Rng rng = stream(0);
    r.mig = mig(sample_rows(data, s.mig_points, rng), s.mig_bins);
  }
  if (s.sap) {
    Rng rng = stream(1);
    const FactorSample train = sample_rows(data, s.sap_train, rng);
    r.sap = sap(train, sample_rows(data, s.sap_test, rng), s.sap_c);
  }
  if (s.dci) {
    Rng rng = stream(2);
    const FactorSample train = sample_rows(data, s.dci_train, rng);
    r.dci = dci(train, sample_rows(data, s.dci_test, rng), s.dci_alpha);
  }
  if (s.beta_vae || s.factor_vae) {
    const FactorLookup lookup(data.factors, data.n, data.sizes, data.what);
    r.combinations = lookup.combinations();
    r.present = lookup.present();
    if (s.beta_vae) {
      lookup.require_all("the beta-VAE score");
      Rng rng = stream(3);
      const auto train = draw_beta_vae(lookup, s.beta_vae_train, s.beta_vae_batch, rng);
      const auto eval = draw_beta_vae(lookup, s.beta_vae_eval, s.beta_vae_batch, rng);
      std::vector<int32_t> ytr, yev;
      for (const auto& d : train) ytr.push_back(d.factor);
      for (const auto& d : eval) yev.push_back(d.factor);
      const auto Xtr = beta_vae_features(train, data.codes, data.L);
      const LogisticRegression m = fit_logistic_regression(Xtr, ytr, data.L, s.beta_vae_c);
      r.beta_vae_train = m.accuracy(Xtr, ytr);
      r.beta_vae_eval = m.accuracy(beta_vae_features(eval, data.codes, data.L), yev);
    }
    if (s.factor_vae) {
      lookup.require_all("the FactorVAE score");
      Rng rng = stream(4);
      std::vector<int64_t> variance_rows;
      for (int64_t i = 0; i < s.factor_vae_variance_points; ++i)
        variance_rows.push_back(row_or_throw(lookup, lookup.draw(rng), rng));
      const auto train = draw_factor_vae(lookup, s.factor_vae_train, s.factor_vae_batch, rng);
      const auto eval = draw_factor_vae(lookup, s.factor_vae_eval, s.factor_vae_batch, rng);
      r.factor_vae = factor_vae_score(data.codes, data.L, variance_rows, train, eval, data.F,
                                      s.factor_vae_prune);
    }
  }
  return r;
}

// ---- JSON and the table ------------------------------------------------------------------------

namespace {
std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
template <class T>
std::string list(const std::vector<T>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + num(static_cast<double>(v[i]));
  return o + "]";
}
// Rows of a [rows, cols] matrix as a list of lists.
std::string matrix(const std::vector<double>& v, size_t cols) {
  std::string o = "[";
  for (size_t i = 0; cols && i < v.size() / cols; ++i)
    o += (i ? ", " : "") +
         list(std::vector<double>(v.begin() + i * cols, v.begin() + (i + 1) * cols));
  return o + "]";
}
}  // namespace

std::string disentanglement_json(const DisentanglementReport& r) {
  const DisentanglementSettings& s = r.settings;
  const size_t F = r.names.size();
  std::string o = "{\n";
  for (const auto& [key, value] : r.about)
    o += "  " + json_string(key) + ": " + json_string(value) + ",\n";
  o += "  \"seed\": " + std::to_string(r.seed) + ",\n";
  o += "  \"rows\": " + std::to_string(r.rows) + ",\n";
  o += "  \"latent_dim\": " + std::to_string(r.L) + ",\n";
  o += "  \"factors\": [";
  for (size_t k = 0; k < F; ++k) o += (k ? ", " : "") + json_string(r.names[k]);
  o += "]";
  if (s.mig)
    o += ",\n  \"mig\": {\"score\": " + num(r.mig.mig) +
         ", \"gap_per_factor\": " + list(r.mig.gap) +
         ", \"mutual_information\": " + matrix(r.mig.mi, F) +
         ", \"entropy\": " + list(r.mig.entropy) + ", \"points\": " + std::to_string(s.mig_points) +
         ", \"bins\": " + std::to_string(s.mig_bins) +
         ", \"discretiser\": \"histogram, equal width\"}";
  if (s.sap)
    o += ",\n  \"sap\": {\"score\": " + num(r.sap.sap) +
         ", \"accuracy\": " + matrix(r.sap.score, F) +
         ", \"train_points\": " + std::to_string(s.sap_train) +
         ", \"test_points\": " + std::to_string(s.sap_test) +
         ", \"classifier\": \"LinearSVC (squared hinge, L2, balanced class weights)\", \"C\": " +
         num(s.sap_c) + "}";
  if (s.dci)
    o += ",\n  \"dci\": {\"disentanglement\": " + num(r.dci.disentanglement) +
         ", \"completeness\": " + num(r.dci.completeness) +
         ", \"informativeness_train_rmse\": " + num(r.dci.error_train) +
         ", \"informativeness_test_rmse\": " + num(r.dci.error_test) +
         ", \"importance\": " + matrix(r.dci.importance, F) +
         ", \"train_points\": " + std::to_string(s.dci_train) +
         ", \"test_points\": " + std::to_string(s.dci_test) +
         ", \"regressor\": \"lasso on standardised codes and factors\", \"alpha\": " +
         num(s.dci_alpha) + "}";
  if (s.beta_vae || s.factor_vae)
    o += ",\n  \"combinations\": " + std::to_string(r.combinations) +
         ",\n  \"combinations_present\": " + std::to_string(r.present);
  if (s.beta_vae)
    o +=
        ",\n  \"beta_vae\": {\"train_accuracy\": " + num(r.beta_vae_train) +
        ", \"eval_accuracy\": " + num(r.beta_vae_eval) +
        ", \"batch_size\": " + std::to_string(s.beta_vae_batch) +
        ", \"train_points\": " + std::to_string(s.beta_vae_train) +
        ", \"eval_points\": " + std::to_string(s.beta_vae_eval) +
        ", \"classifier\": \"logistic regression (multinomial, L2)\", \"C\": " + num(s.beta_vae_c) +
        "}";
  if (s.factor_vae)
    o += ",\n  \"factor_vae\": {\"train_accuracy\": " + num(r.factor_vae.train_accuracy) +
         ", \"eval_accuracy\": " + num(r.factor_vae.eval_accuracy) +
         ", \"active_dims\": " + std::to_string(r.factor_vae.active_dims) +
         ", \"global_variance\": " + list(r.factor_vae.global_variance) +
         ", \"batch_size\": " + std::to_string(s.factor_vae_batch) +
         ", \"train_points\": " + std::to_string(s.factor_vae_train) +
         ", \"eval_points\": " + std::to_string(s.factor_vae_eval) +
         ", \"variance_points\": " + std::to_string(s.factor_vae_variance_points) +
         ", \"prune_threshold\": " + num(s.factor_vae_prune) +
         ", \"classifier\": \"majority vote\"}";
  return o + "\n}\n";
}

std::string disentanglement_table(const DisentanglementReport& r) {
  const DisentanglementSettings& s = r.settings;
  std::string o;
  char line[200];
  auto row = [&](const char* name, double v, const std::string& how) {
    std::snprintf(line, sizeof line, "  %-32s %8.4f  %s\n", name, v, how.c_str());
    o += line;
  };
  o += "  metric                              score  how\n";
  if (s.beta_vae)
    row("beta-VAE score (eval accuracy)", r.beta_vae_eval,
        "logistic regression, " + std::to_string(s.beta_vae_train) + " / " +
            std::to_string(s.beta_vae_eval) + " points of batch " +
            std::to_string(s.beta_vae_batch));
  if (s.factor_vae)
    row("FactorVAE score (eval accuracy)", r.factor_vae.eval_accuracy,
        "majority vote, " + std::to_string(r.factor_vae.active_dims) + " active dims, " +
            std::to_string(s.factor_vae_train) + " / " + std::to_string(s.factor_vae_eval) +
            " points of batch " + std::to_string(s.factor_vae_batch));
  if (s.mig)
    row("MIG", r.mig.mig,
        std::to_string(s.mig_bins) + " bins, " + std::to_string(s.mig_points) + " points");
  if (s.sap)
    row("SAP", r.sap.sap,
        "LinearSVC C=" + num(s.sap_c) + ", " + std::to_string(s.sap_train) + " / " +
            std::to_string(s.sap_test) + " points");
  if (s.dci) {
    const std::string how = "lasso alpha=" + num(s.dci_alpha) + ", " + std::to_string(s.dci_train) +
                            " / " + std::to_string(s.dci_test) + " points";
    row("DCI disentanglement", r.dci.disentanglement, how);
    row("DCI completeness", r.dci.completeness, how);
    row("DCI informativeness (test RMSE)", r.dci.error_test, "0 is perfect, 1 is the mean");
  }
  return o;
}

}  // namespace vd
