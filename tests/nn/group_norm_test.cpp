// Tests of the GroupNorm kernels (nn/group_norm_kernels.hpp): a hand-computed case (torch prints
// the same, tests/reference/group_norm_ref.py), a double-precision direct reference on random data
// in the plain and blocked layouts, gradients against central finite differences of that
// reference, the accumulate mode, blocked == plain with zero padding, thread-count independence,
// errors; and a disabled timing print (GroupNormBench).
#include "nn/group_norm_kernels.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "support/gradcheck.hpp"

namespace {

using vd::GradWrite;
using vd::GroupNormDims;

// Legend as in the header: N samples, C channels, S spatial size, G groups, B channel block.
struct Case {
  int64_t n, c, s, g;
};

GroupNormDims dims_of(const Case& k, int64_t block = 1) {
  GroupNormDims d;
  d.n = k.n;
  d.c = k.c;
  d.s = k.s;
  d.groups = k.g;
  d.block = block;
  return d;
}

size_t plain_size(const Case& k) {
  return static_cast<size_t>(k.n * k.c * k.s);
}

// Uniform in [offset - spread, offset + spread).
std::vector<float> random_floats(size_t n, uint64_t seed, double spread = 1.0,
                                 double offset = 0.0) {
  vd::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(offset + rng.uniform(-spread, spread));
  return v;
}

// Index of element (n, c, s) in layout d (plain when d.block == 1).
size_t at(const GroupNormDims& d, int64_t n, int64_t c, int64_t s) {
  const int64_t B = d.block, cb = d.padded_channels() / B;
  return static_cast<size_t>(((n * cb + c / B) * d.s + s) * B + c % B);
}

// plain [N, C, S] -> [N, Cb, S, B] with zero padding (d.block = B), written out by hand.
std::vector<float> to_blocked(const std::vector<float>& plain, const GroupNormDims& d) {
  std::vector<float> out(d.elements(), 0.0f);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t s = 0; s < d.s; ++s)
        out[at(d, n, c, s)] = plain[static_cast<size_t>((n * d.c + c) * d.s + s)];
  return out;
}

// [N, Cb, S, B] -> plain [N, C, S].
std::vector<float> to_plain(const std::vector<float>& blocked, const GroupNormDims& d) {
  std::vector<float> out(static_cast<size_t>(d.n * d.c * d.s));
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t s = 0; s < d.s; ++s)
        out[static_cast<size_t>((n * d.c + c) * d.s + s)] = blocked[at(d, n, c, s)];
  return out;
}

// Counts the padding channels C..Cp-1 of a blocked tensor that are not +0 or -0.
int nonzero_padding(const std::vector<float>& blocked, const GroupNormDims& d) {
  int bad = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = d.c; c < d.padded_channels(); ++c)
      for (int64_t s = 0; s < d.s; ++s) bad += blocked[at(d, n, c, s)] != 0.0f;
  return bad;
}

// Double-precision GroupNorm written directly from the definition (two passes per group), on
// plain x [N, C, S]: y [N, C, S], mean [N, G], rstd [N, G].
struct Reference {
  std::vector<double> y, mean, rstd;
};
Reference reference_forward(const Case& k, double eps, const std::vector<double>& x,
                            const std::vector<double>& gamma, const std::vector<double>& beta) {
  Reference r;
  r.y.resize(x.size());
  const int64_t D = k.c / k.g, m = D * k.s;
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t g = 0; g < k.g; ++g) {
      const size_t base = static_cast<size_t>((n * k.c + g * D) * k.s);
      double mu = 0, var = 0;
      for (int64_t i = 0; i < m; ++i) mu += x[base + i];
      mu /= static_cast<double>(m);
      for (int64_t i = 0; i < m; ++i) var += (x[base + i] - mu) * (x[base + i] - mu);
      var /= static_cast<double>(m);
      const double rstd = 1.0 / std::sqrt(var + eps);
      r.mean.push_back(mu);
      r.rstd.push_back(rstd);
      for (int64_t i = 0; i < m; ++i) {
        const int64_t c = g * D + i / k.s;
        r.y[base + i] = (x[base + i] - mu) * rstd * gamma[c] + beta[c];
      }
    }
  return r;
}

std::vector<double> widen(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// Passes when |got - want| <= tol * max(1, |want|) everywhere; names the worst index.
::testing::AssertionResult close(const std::vector<float>& got, const std::vector<double>& want,
                                 double tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i]));
    if (!(e <= worst)) {  // NaN counts as worst
      worst = e;
      wi = i;
    }
  }
  if (!(worst <= tol))
    return ::testing::AssertionFailure()
           << "index " << wi << ": " << got[wi] << " vs " << want[wi] << " (scaled error " << worst
           << ", tolerance " << tol << ")";
  return ::testing::AssertionSuccess();
}

// One problem's inputs, plain: x, dy (= w of the loss sum(w * y)) [N, C, S], gamma, beta [C].
struct Problem {
  Case k;
  float eps = 1e-5f;
  std::vector<float> x, dy, gamma, beta;
  explicit Problem(const Case& kk, uint64_t seed, double offset = 0.0)
      : k(kk),
        x(random_floats(plain_size(kk), seed, 1.0, offset)),
        dy(random_floats(plain_size(kk), seed + 1)),
        gamma(random_floats(static_cast<size_t>(kk.c), seed + 2, 0.5, 1.0)),
        beta(random_floats(static_cast<size_t>(kk.c), seed + 3)) {}
};

// The kernels' outputs for a problem in layout `block`, converted back to plain.
struct Outputs {
  std::vector<float> y, mean, rstd, dx, dgamma, dbeta;
};
Outputs run(const Problem& p, int64_t block) {
  const GroupNormDims d = dims_of(p.k, block);
  const bool blocked = block > 1;
  const std::vector<float> x = blocked ? to_blocked(p.x, d) : p.x;
  const std::vector<float> dy = blocked ? to_blocked(p.dy, d) : p.dy;
  std::vector<float> y(d.elements()), dx(d.elements());
  Outputs o;
  o.mean.resize(static_cast<size_t>(p.k.n * p.k.g));
  o.rstd.resize(o.mean.size());
  o.dgamma.resize(static_cast<size_t>(p.k.c));
  o.dbeta.resize(o.dgamma.size());
  vd::group_norm_forward(d, p.eps, x.data(), p.gamma.data(), p.beta.data(), y.data(), o.mean.data(),
                         o.rstd.data());
  vd::group_norm_backward(d, x.data(), o.mean.data(), o.rstd.data(), p.gamma.data(), dy.data(),
                          dx.data(), o.dgamma.data(), o.dbeta.data());
  o.y = blocked ? to_plain(y, d) : y;
  o.dx = blocked ? to_plain(dx, d) : dx;
  return o;
}

// Shapes for the random-data tests: G = 1 (LayerNorm-like), G = C (InstanceNorm-like), C not a
// multiple of 8 or 16, groups that straddle a 16-channel block (D = 3, 6), S = 1 (flat).
const std::vector<Case> kCases = {
    {2, 6, 5, 3},  {3, 32, 7, 1},  {2, 12, 9, 12}, {2, 64, 49, 32}, {1, 24, 10, 8},
    {2, 40, 6, 5}, {2, 48, 4, 16}, {3, 36, 5, 6},  {4, 20, 1, 4},   {1, 3, 300, 1},
};

std::string case_text(const Case& k) {
  return "N=" + std::to_string(k.n) + " C=" + std::to_string(k.c) + " S=" + std::to_string(k.s) +
         " G=" + std::to_string(k.g);
}

TEST(GroupNorm, ForwardMatchesHandComputedValues) {
  // x [1, 2, 2], one group: mean 2.5, var 1.25, rstd = 1 / sqrt(1.25 + 1e-5).
  const GroupNormDims d = dims_of({1, 2, 2, 1});
  const std::vector<float> x = {1, 2, 3, 4}, gamma = {0.5f, 2.0f}, beta = {0.25f, -1.0f};
  std::vector<float> y(4), mean(1), rstd(1);
  vd::group_norm_forward(d, 1e-5f, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                         rstd.data());
  const double r = 0.894423613312618;  // 1 / sqrt(1.25001)
  EXPECT_FLOAT_EQ(mean[0], 2.5f);
  EXPECT_NEAR(rstd[0], r, 1e-7);
  // y = gamma[c] * (x - 2.5) * r + beta[c]; torch prints -0.420817763, 0.0263940692,
  // -0.105576396, 1.68327093.
  const double want[] = {0.5 * -1.5 * r + 0.25, 0.5 * -0.5 * r + 0.25, 2 * 0.5 * r - 1,
                         2 * 1.5 * r - 1};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], want[i], 1e-6) << "y[" << i << "]";
}

TEST(GroupNorm, BackwardMatchesHandComputedValues) {
  // The case above with loss sum(w * y), w = diff_dst = {1, -2, 0.5, 3}: dg = gamma * w =
  // {0.5, -1, 1, 6}, mean(dg) = 1.625, mean(dg * xhat) = 2.3125 r,
  // dx = r * (dg - 1.625 - xhat * 2.3125 r); torch prints the same to 1e-6.
  const GroupNormDims d = dims_of({1, 2, 2, 1});
  const std::vector<float> x = {1, 2, 3, 4}, gamma = {0.5f, 2.0f}, beta = {0.25f, -1.0f};
  const std::vector<float> w = {1, -2, 0.5f, 3};
  std::vector<float> y(4), mean(1), rstd(1), dx(4), dgamma(2), dbeta(2);
  vd::group_norm_forward(d, 1e-5f, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                         rstd.data());
  vd::group_norm_backward(d, x.data(), mean.data(), rstd.data(), gamma.data(), w.data(), dx.data(),
                          dgamma.data(), dbeta.data());
  const double want_dx[] = {1.47577911, -1.52052676, -1.38634998, 1.43109764};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(dx[i], want_dx[i], 2e-6) << "dx[" << i << "]";
  // dgamma = sum w * xhat per channel: -0.5 r and 4.75 r; dbeta = sum w: -1 and 3.5.
  EXPECT_NEAR(dgamma[0], -0.447211807, 1e-6);
  EXPECT_NEAR(dgamma[1], 4.248512163, 4e-6);
  EXPECT_FLOAT_EQ(dbeta[0], -1.0f);
  EXPECT_FLOAT_EQ(dbeta[1], 3.5f);
}

TEST(GroupNorm, ForwardMatchesDoublePrecisionReferenceInEveryLayout) {
  for (const Case& k : kCases)
    for (int64_t block : {1, 8, 16}) {
      SCOPED_TRACE(case_text(k) + " block=" + std::to_string(block));
      const Problem p(k, 11 + static_cast<uint64_t>(k.c), 3.0);  // mean near 3, not 0
      const Reference ref = reference_forward(k, p.eps, widen(p.x), widen(p.gamma), widen(p.beta));
      const Outputs o = run(p, block);
      EXPECT_TRUE(close(o.y, ref.y, 1e-5));
      EXPECT_TRUE(close(o.mean, ref.mean, 1e-6));
      std::vector<double> rel(ref.rstd.size());
      for (size_t i = 0; i < rel.size(); ++i) rel[i] = o.rstd[i] / ref.rstd[i];
      EXPECT_TRUE(close(std::vector<float>(rel.begin(), rel.end()),
                        std::vector<double>(rel.size(), 1.0), 1e-6));
    }
}

TEST(GroupNorm, StatisticsStayAccurateFarFromZero) {
  // Values 1000 +- 0.01: sums of x^2 in float (or E[x^2] - E[x]^2 unshifted) lose the variance.
  const Case k{2, 32, 64, 4};
  for (int64_t block : {1, 16}) {
    SCOPED_TRACE("block=" + std::to_string(block));
    Problem p(k, 5);
    p.x = random_floats(plain_size(k), 6, 0.01, 1000.0);
    const Reference ref = reference_forward(k, p.eps, widen(p.x), widen(p.gamma), widen(p.beta));
    const Outputs o = run(p, block);
    for (size_t i = 0; i < ref.rstd.size(); ++i)
      EXPECT_NEAR(o.rstd[i] / ref.rstd[i], 1.0, 1e-5) << "group " << i;
  }
}

TEST(GroupNorm, GradientsMatchFiniteDifferencesOfDoubleReference) {
  // loss = sum(w * y) with w = diff_dst; the float kernel's gradients against central
  // differences of the double reference, with respect to x, gamma and beta.
  const std::vector<Case> cases = {
      {2, 6, 5, 3}, {1, 4, 3, 1}, {2, 4, 3, 4}, {1, 3, 1, 1}, {2, 20, 2, 4}};
  for (const Case& k : cases)
    for (int64_t block : {1, 16}) {
      SCOPED_TRACE(case_text(k) + " block=" + std::to_string(block));
      const Problem p(k, 21 + static_cast<uint64_t>(k.c), 0.5);
      const Outputs o = run(p, block);
      const std::vector<double> x = widen(p.x), gamma = widen(p.gamma), beta = widen(p.beta);
      const std::vector<double> w = widen(p.dy);
      auto loss = [&](const std::vector<double>& xv, const std::vector<double>& gv,
                      const std::vector<double>& bv) {
        const Reference r = reference_forward(k, p.eps, xv, gv, bv);
        double l = 0;
        for (size_t i = 0; i < w.size(); ++i) l += w[i] * r.y[i];
        return l;
      };
      EXPECT_TRUE(vd::testing::check_gradient(
          [&](const std::vector<double>& v) { return loss(v, gamma, beta); }, x, widen(o.dx)))
          << "diff_src";
      EXPECT_TRUE(vd::testing::check_gradient(
          [&](const std::vector<double>& v) { return loss(x, v, beta); }, gamma, widen(o.dgamma)))
          << "diff_gamma";
      EXPECT_TRUE(vd::testing::check_gradient(
          [&](const std::vector<double>& v) { return loss(x, gamma, v); }, beta, widen(o.dbeta)))
          << "diff_beta";
    }
}

TEST(GroupNorm, AccumulateModeAddsExactlyToExistingGradient) {
  const Case k{2, 24, 9, 6};
  for (int64_t block : {1, 8, 16}) {
    SCOPED_TRACE("block=" + std::to_string(block));
    const GroupNormDims d = dims_of(k, block);
    const Problem p(k, 31);
    const std::vector<float> x = block > 1 ? to_blocked(p.x, d) : p.x;
    const std::vector<float> dy = block > 1 ? to_blocked(p.dy, d) : p.dy;
    std::vector<float> y(d.elements()), mean(static_cast<size_t>(k.n * k.g)), rstd(mean.size());
    vd::group_norm_forward(d, p.eps, x.data(), p.gamma.data(), p.beta.data(), y.data(), mean.data(),
                           rstd.data());
    std::vector<float> fresh(d.elements()), dgamma(static_cast<size_t>(k.c)), dbeta(dgamma.size());
    vd::group_norm_backward(d, x.data(), mean.data(), rstd.data(), p.gamma.data(), dy.data(),
                            fresh.data(), dgamma.data(), dbeta.data());
    // diff_src already holds another consumer's gradient (zero padding, as oneDNN leaves it).
    const std::vector<float> before = block > 1 ? to_blocked(random_floats(plain_size(k), 32), d)
                                                : random_floats(plain_size(k), 32);
    std::vector<float> acc = before, dgamma2(dgamma.size(), 7.0f), dbeta2(dbeta.size(), 7.0f);
    vd::group_norm_backward(d, x.data(), mean.data(), rstd.data(), p.gamma.data(), dy.data(),
                            acc.data(), dgamma2.data(), dbeta2.data(), GradWrite::Accumulate);
    for (size_t i = 0; i < acc.size(); ++i)
      ASSERT_EQ(acc[i], before[i] + fresh[i]) << "element " << i;
    EXPECT_EQ(dgamma2, dgamma);  // parameter gradients are overwritten in both modes
    EXPECT_EQ(dbeta2, dbeta);
  }
}

TEST(GroupNorm, BlockedLayoutsMatchPlainAndKeepPaddingZero) {
  for (const Case& k : kCases) {
    const Problem p(k, 41 + static_cast<uint64_t>(k.c), 1.0);
    const Outputs plain = run(p, 1);
    for (int64_t block : {8, 16}) {
      SCOPED_TRACE(case_text(k) + " block=" + std::to_string(block));
      const Outputs o = run(p, block);
      EXPECT_TRUE(close(o.y, widen(plain.y), 1e-6));
      EXPECT_TRUE(close(o.mean, widen(plain.mean), 1e-6));
      EXPECT_TRUE(close(o.rstd, widen(plain.rstd), 1e-6));
      EXPECT_TRUE(close(o.dx, widen(plain.dx), 1e-6));
      EXPECT_TRUE(close(o.dgamma, widen(plain.dgamma), 1e-6));
      EXPECT_TRUE(close(o.dbeta, widen(plain.dbeta), 1e-6));
      // Padding: dst and an overwritten diff_src are zero there even where the buffers held
      // garbage before the call.
      const GroupNormDims d = dims_of(k, block);
      const std::vector<float> x = to_blocked(p.x, d), dy = to_blocked(p.dy, d);
      std::vector<float> y(d.elements(), NAN), dx(d.elements(), NAN);
      std::vector<float> mean(static_cast<size_t>(k.n * k.g)), rstd(mean.size());
      std::vector<float> dgamma(static_cast<size_t>(k.c)), dbeta(dgamma.size());
      vd::group_norm_forward(d, p.eps, x.data(), p.gamma.data(), p.beta.data(), y.data(),
                             mean.data(), rstd.data());
      vd::group_norm_backward(d, x.data(), mean.data(), rstd.data(), p.gamma.data(), dy.data(),
                              dx.data(), dgamma.data(), dbeta.data());
      EXPECT_EQ(nonzero_padding(y, d), 0);
      EXPECT_EQ(nonzero_padding(dx, d), 0);
    }
  }
}

TEST(GroupNorm, ResultsDoNotDependOnThreadCount) {
  const int threads = omp_get_max_threads();
  for (int64_t block : {1, 16}) {
    SCOPED_TRACE("block=" + std::to_string(block));
    const Problem p({4, 64, 256, 16}, 51);  // big enough to run on several threads
    omp_set_num_threads(1);
    const Outputs one = run(p, block);
    omp_set_num_threads(2);
    const Outputs two = run(p, block);
    EXPECT_EQ(one.y, two.y);
    EXPECT_EQ(one.mean, two.mean);
    EXPECT_EQ(one.rstd, two.rstd);
    EXPECT_EQ(one.dx, two.dx);
    EXPECT_EQ(one.dgamma, two.dgamma);
    EXPECT_EQ(one.dbeta, two.dbeta);
  }
  omp_set_num_threads(threads);
}

TEST(GroupNorm, BackwardWithoutDiffSrcStillGivesParameterGradients) {
  const Problem p({2, 12, 5, 3}, 61);
  const Outputs full = run(p, 1);
  const GroupNormDims d = dims_of(p.k);
  std::vector<float> y(d.elements()), dgamma(12), dbeta(12);
  std::vector<float> mean(6), rstd(6);
  vd::group_norm_forward(d, p.eps, p.x.data(), p.gamma.data(), p.beta.data(), y.data(), mean.data(),
                         rstd.data());
  vd::group_norm_backward(d, p.x.data(), mean.data(), rstd.data(), p.gamma.data(), p.dy.data(),
                          nullptr, dgamma.data(), dbeta.data());
  EXPECT_EQ(dgamma, full.dgamma);
  EXPECT_EQ(dbeta, full.dbeta);
}

TEST(GroupNorm, RejectsDimsItCannotHandleWithAShapeError) {
  auto message = [](const GroupNormDims& d) -> std::string {
    try {
      vd::check_group_norm_dims(d);
    } catch (const vd::ShapeError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(dims_of({2, 6, 4, 4})).find("C divisible by the number of groups"),
            std::string::npos);
  EXPECT_NE(message(dims_of({2, 8, 4, 2}, 4)).find("blocks of 8 or 16"), std::string::npos);
  EXPECT_NE(message(dims_of({0, 8, 4, 2})).find("at least 1"), std::string::npos);
  EXPECT_EQ(message(dims_of({2, 8, 4, 2}, 16)), "");
  std::vector<float> buf(64), stats(4);
  EXPECT_THROW(vd::group_norm_forward(dims_of({2, 6, 4, 4}), 1e-5f, buf.data(), buf.data(),
                                      buf.data(), buf.data(), stats.data(), stats.data()),
               vd::ShapeError);
}

// Not a test: prints the kernels' bandwidth for the conv VAE's typical GroupNorm (N=16, C=128,
// 32x32, G=32), single thread. Run with --gtest_also_run_disabled_tests
// --gtest_filter=GroupNormBench.*. Bytes counted: forward reads src and writes dst, backward
// reads src and diff_dst and writes diff_src (5 tensors of N*C*S floats).
TEST(GroupNormBench, DISABLED_PrintsForwardBackwardBandwidth) {
  const Case k{16, 128, 32 * 32, 32};
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  for (int64_t block : {1, 16}) {
    const GroupNormDims d = dims_of(k, block);
    const Problem p(k, 71);
    const std::vector<float> x = block > 1 ? to_blocked(p.x, d) : p.x;
    const std::vector<float> dy = block > 1 ? to_blocked(p.dy, d) : p.dy;
    std::vector<float> y(d.elements()), dx(d.elements()), mean(512), rstd(512), dg(128), db(128);
    std::vector<double> fwd, bwd;
    for (int rep = 0; rep < 25; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      vd::group_norm_forward(d, p.eps, x.data(), p.gamma.data(), p.beta.data(), y.data(),
                             mean.data(), rstd.data());
      const auto t1 = std::chrono::steady_clock::now();
      vd::group_norm_backward(d, x.data(), mean.data(), rstd.data(), p.gamma.data(), dy.data(),
                              dx.data(), dg.data(), db.data());
      const auto t2 = std::chrono::steady_clock::now();
      if (rep < 3) continue;  // warm-up
      fwd.push_back(std::chrono::duration<double>(t1 - t0).count());
      bwd.push_back(std::chrono::duration<double>(t2 - t1).count());
    }
    std::sort(fwd.begin(), fwd.end());
    std::sort(bwd.begin(), bwd.end());
    const double f = fwd[fwd.size() / 2], b = bwd[bwd.size() / 2];
    const double tensor = 4.0 * static_cast<double>(plain_size(k));
    std::printf(
        "group_norm block=%lld N=16 C=128 S=1024 G=32: forward %.3f ms (%.1f GB/s), backward "
        "%.3f ms (%.1f GB/s), forward+backward %.1f GB/s\n",
        static_cast<long long>(block), 1e3 * f, 2 * tensor / f * 1e-9, 1e3 * b,
        3 * tensor / b * 1e-9, 5 * tensor / (f + b) * 1e-9);
  }
  omp_set_num_threads(threads);
}

}  // namespace
