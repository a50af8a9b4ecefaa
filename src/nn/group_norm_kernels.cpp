// GroupNorm kernels: per work unit (a sample's whole groups over whole channel blocks) one pass
// sums shifted statistics in double, then one pass writes dst or diff_src; OpenMP over the units.
#include "nn/group_norm_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/simd.hpp"

// The unit kernels are compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked at load
// time (as in optim/adam.cpp), so the project's generic flags still give full-width SIMD. The
// clones may differ in the last bit (FMA contraction); every clone sums in the same order.

namespace vd {

namespace {

// How the work is cut. A unit is (sample n, chunk k): channels [c0, c1) with c1 - c0 =
// lcm(D, B) (the last chunk of a sample may be shorter), so a unit holds whole groups AND whole
// channel blocks and units never share memory. Plain layout (B = 1): a unit is one group.
struct Plan {
  GroupNormDims d;
  int64_t per_group;  // D
  int64_t chunk;      // channels per unit: lcm(D, B), at most C
  int64_t chunks;     // units per sample

  explicit Plan(const GroupNormDims& dims)
      : d(dims),
        per_group(dims.c / dims.groups),
        chunk(std::min(std::lcm(per_group, dims.block), dims.c)),
        chunks((dims.c + chunk - 1) / chunk) {}
  int64_t units() const { return d.n * chunks; }
  int64_t blocks() const { return d.padded_channels() / d.block; }  // Cb
};

// The channels, groups and blocks of unit u.
struct Unit {
  int64_t n, c0, c1, g0, g1, cb0, cb1;
  Unit(const Plan& p, int64_t u)
      : n(u / p.chunks),
        c0(u % p.chunks * p.chunk),
        c1(std::min(c0 + p.chunk, p.d.c)),
        g0(c0 / p.per_group),
        g1(c1 / p.per_group),
        cb0(c0 / p.d.block),
        cb1((c1 + p.d.block - 1) / p.d.block) {}
};

// Buffers of one call, as the public functions received them.
struct FwdArgs {
  float eps;
  const float* src;
  const float* gamma;
  const float* beta;
  float* dst;
  float* mean;
  float* rstd;
};
struct BwdArgs {
  const float* src;
  const float* mean;
  const float* rstd;
  const float* gamma;
  const float* diff_dst;
  float* diff_src;  // nullptr: not computed
  bool accumulate;
  double* part_gamma;  // [N, C]: sum over S of diff_dst * xhat, per sample
  double* part_beta;   // [N, C]: sum over S of diff_dst, per sample
};

// ---- Statistics: shifted sums in double ----
// With k a value of the same row, sum(x - k) and sum((x - k)^2) lose nothing to cancellation
// as long as |k - mean| is a few standard deviations; float inputs square exactly in double.
// Returns the row's mean and M2 = sum((x - mean)^2).

// x [m] contiguous.
VD_INLINE void row_moments(const float* __restrict x, int64_t m, double& mean, double& m2) {
  const double k = x[0];
  double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t i = 0; i < m; ++i) {
    const double v = static_cast<double>(x[i]) - k;
    s1 += v;
    s2 += v * v;
  }
  mean = k + s1 / static_cast<double>(m);
  m2 = std::max(0.0, s2 - s1 * s1 / static_cast<double>(m));
}

// x [S, B]: one channel block; the moments of each of its B lanes (channels) over S.
template <int B>
VD_INLINE void block_moments(const float* __restrict x, int64_t S, double* __restrict mean,
                             double* __restrict m2) {
  double k[B], s1[B] = {}, s2[B] = {};
  for (int l = 0; l < B; ++l) k[l] = x[l];
  for (int64_t s = 0; s < S; ++s) {
    const float* __restrict xs = x + s * B;
#pragma omp simd
    for (int l = 0; l < B; ++l) {
      const double v = static_cast<double>(xs[l]) - k[l];
      s1[l] += v;
      s2[l] += v * v;
    }
  }
  for (int l = 0; l < B; ++l) {
    mean[l] = k[l] + s1[l] / static_cast<double>(S);
    m2[l] = std::max(0.0, s2[l] - s1[l] * s1[l] / static_cast<double>(S));
  }
}

// The (mean, rstd) of a group from its M2 over m values, as torch: 1 / sqrt(max(var, 0) + eps).
VD_INLINE void store_stats(double mean, double m2, int64_t m, float eps, float* mean_out,
                           float* rstd_out) {
  *mean_out = static_cast<float>(mean);
  *rstd_out = static_cast<float>(1.0 / std::sqrt(m2 / static_cast<double>(m) + eps));
}

// ---- Elementwise passes ----

// y [m] = (x - mean) * scale + shift, x [m].
VD_INLINE void row_affine(const float* __restrict x, int64_t m, float mean, float scale,
                          float shift, float* __restrict y) {
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) y[i] = (x[i] - mean) * scale + shift;
}

// y [S, B] = (x - mean[l]) * scale[l] + shift[l], x [S, B], per lane l.
template <int B>
VD_INLINE void block_affine(const float* __restrict x, int64_t S, const float* __restrict mean,
                            const float* __restrict scale, const float* __restrict shift,
                            float* __restrict y) {
  for (int64_t s = 0; s < S; ++s) {
#pragma omp simd
    for (int l = 0; l < B; ++l) y[s * B + l] = (x[s * B + l] - mean[l]) * scale[l] + shift[l];
  }
}

// Sums over a row of dy and of dy * (x - mean), in double: x, dy [m].
VD_INLINE void row_grad_sums(const float* __restrict x, const float* __restrict dy, int64_t m,
                             double mean, double& sum_dy, double& sum_dy_xc) {
  double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
  for (int64_t i = 0; i < m; ++i) {
    const double g = dy[i];
    a += g;
    b += g * (static_cast<double>(x[i]) - mean);
  }
  sum_dy = a;
  sum_dy_xc = b;
}

// The same per lane of a channel block: x, dy [S, B], mean [B] -> sum_dy, sum_dy_xc [B].
template <int B>
VD_INLINE void block_grad_sums(const float* __restrict x, const float* __restrict dy, int64_t S,
                               const double* __restrict mean, double* __restrict sum_dy,
                               double* __restrict sum_dy_xc) {
  double a[B] = {}, b[B] = {};
  for (int64_t s = 0; s < S; ++s) {
#pragma omp simd
    for (int l = 0; l < B; ++l) {
      const double g = dy[s * B + l];
      a[l] += g;
      b[l] += g * (static_cast<double>(x[s * B + l]) - mean[l]);
    }
  }
  for (int l = 0; l < B; ++l) {
    sum_dy[l] = a[l];
    sum_dy_xc[l] = b[l];
  }
}

// dx [m] (=, or += when kAcc) a * dy + b * (x - mean) + c; x, dy [m].
template <bool kAcc>
VD_INLINE void row_grad_write(const float* __restrict x, const float* __restrict dy, int64_t m,
                              float mean, float a, float b, float c, float* __restrict dx) {
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) {
    const float v = a * dy[i] + (b * (x[i] - mean) + c);
    dx[i] = kAcc ? dx[i] + v : v;
  }
}

// The same per lane of a channel block: x, dy, dx [S, B]; mean, a, b, c [B].
template <int B, bool kAcc>
VD_INLINE void block_grad_write(const float* __restrict x, const float* __restrict dy, int64_t S,
                                const float* __restrict mean, const float* __restrict a,
                                const float* __restrict b, const float* __restrict c,
                                float* __restrict dx) {
  for (int64_t s = 0; s < S; ++s) {
#pragma omp simd
    for (int l = 0; l < B; ++l) {
      const int64_t i = s * B + l;
      const float v = a[l] * dy[i] + (b[l] * (x[i] - mean[l]) + c[l]);
      dx[i] = kAcc ? dx[i] + v : v;
    }
  }
}

// The per-group factors of diff_src = a[c] * dy + b * (x - mean) + c with a[c] = rstd * gamma[c]:
// from sum_dy[j], sum_dy_xc[j] of the group's D channels (gamma [D] of the same channels),
// b = -rstd^3 * mean_g(gamma * dy * (x - mean)), c = -rstd * mean_g(gamma * dy).
VD_INLINE void grad_factors(const double* sum_dy, const double* sum_dy_xc, const float* gamma,
                            int64_t D, int64_t S, double rstd, float& b, float& c) {
  double sg = 0, sgx = 0;
  for (int64_t j = 0; j < D; ++j) {
    sg += gamma[j] * sum_dy[j];
    sgx += gamma[j] * sum_dy_xc[j];
  }
  const double m = static_cast<double>(D) * static_cast<double>(S);
  b = static_cast<float>(-rstd * rstd * rstd * sgx / m);
  c = static_cast<float>(-rstd * sg / m);
}

// ---- Work units ----

// A thread's buffers, sized for one unit: per-channel sums and per-group factors.
struct Scratch {
  std::vector<double> sums;    // [2, chunk]
  std::vector<float> factors;  // [2, chunk] (a unit has at most chunk groups)
  explicit Scratch(const Plan& p)
      : sums(static_cast<size_t>(2 * p.chunk)), factors(static_cast<size_t>(2 * p.chunk)) {}
};

// Plain layout: the unit is group g0 of sample n; its D * S values are contiguous.
VD_INLINE void forward_unit_plain(const Plan& p, int64_t u, const FwdArgs& a) {
  const Unit t(p, u);
  const int64_t S = p.d.s, D = p.per_group, m = D * S;
  const int64_t ng = t.n * p.d.groups + t.g0;
  const float* x = a.src + (t.n * p.d.c + t.c0) * S;
  float* y = a.dst + (t.n * p.d.c + t.c0) * S;
  double mu, m2;
  row_moments(x, m, mu, m2);
  store_stats(mu, m2, m, a.eps, a.mean + ng, a.rstd + ng);
  const float mean = a.mean[ng], rstd = a.rstd[ng];
  for (int64_t j = 0; j < D; ++j) {
    const int64_t c = t.c0 + j;
    row_affine(x + j * S, S, mean, rstd * a.gamma[c], a.beta[c], y + j * S);
  }
}

// Blocked layout: the unit's blocks [cb0, cb1) hold groups [g0, g1) of sample n.
template <int B>
VD_INLINE void forward_unit_blocked(const Plan& p, int64_t u, const FwdArgs& a, Scratch& scratch) {
  const Unit t(p, u);
  const int64_t S = p.d.s, D = p.per_group, C = p.d.c, G = p.d.groups;
  const int64_t cb_stride = S * B;
  const float* x = a.src + (t.n * p.blocks()) * cb_stride;
  float* y = a.dst + (t.n * p.blocks()) * cb_stride;
  double* ch_mean = scratch.sums.data();          // [c1 - c0]
  double* ch_m2 = scratch.sums.data() + p.chunk;  // [c1 - c0]
  // Pass 1: the moments of every channel of the unit.
  for (int64_t cb = t.cb0; cb < t.cb1; ++cb) {
    double lm[B], lm2[B];
    block_moments<B>(x + cb * cb_stride, S, lm, lm2);
    for (int l = 0; l < B && cb * B + l < C; ++l) {
      ch_mean[cb * B + l - t.c0] = lm[l];
      ch_m2[cb * B + l - t.c0] = lm2[l];
    }
  }
  // Each group from its D channels of S values each (Chan et al.'s combination of moments).
  for (int64_t g = t.g0; g < t.g1; ++g) {
    const double* cm = ch_mean + (g * D - t.c0);
    const double* cm2 = ch_m2 + (g * D - t.c0);
    double mu = 0;
    for (int64_t j = 0; j < D; ++j) mu += cm[j];
    mu /= static_cast<double>(D);
    double m2 = 0;
    for (int64_t j = 0; j < D; ++j)
      m2 += cm2[j] + static_cast<double>(S) * (cm[j] - mu) * (cm[j] - mu);
    store_stats(mu, m2, D * S, a.eps, a.mean + t.n * G + g, a.rstd + t.n * G + g);
  }
  // Pass 2: dst per block; padding lanes get mean = scale = shift = 0, so dst = 0 there.
  for (int64_t cb = t.cb0; cb < t.cb1; ++cb) {
    float mean[B], scale[B], shift[B];
    for (int l = 0; l < B; ++l) {
      const int64_t c = cb * B + l;
      const int64_t ng = t.n * G + std::min(c, C - 1) / D;
      const bool real = c < C;
      mean[l] = real ? a.mean[ng] : 0.0f;
      scale[l] = real ? a.rstd[ng] * a.gamma[c] : 0.0f;
      shift[l] = real ? a.beta[c] : 0.0f;
    }
    block_affine<B>(x + cb * cb_stride, S, mean, scale, shift, y + cb * cb_stride);
  }
}

// Plain layout backward of group g0 of sample n.
VD_INLINE void backward_unit_plain(const Plan& p, int64_t u, const BwdArgs& a, Scratch& scratch) {
  const Unit t(p, u);
  const int64_t S = p.d.s, D = p.per_group, C = p.d.c;
  const int64_t ng = t.n * p.d.groups + t.g0;
  const size_t off = static_cast<size_t>((t.n * C + t.c0) * S);
  const float* x = a.src + off;
  const float* dy = a.diff_dst + off;
  const float mean = a.mean[ng];
  const double rstd = a.rstd[ng];
  double* sum_dy = scratch.sums.data();               // [D]
  double* sum_dy_xc = scratch.sums.data() + p.chunk;  // [D]
  for (int64_t j = 0; j < D; ++j) {
    row_grad_sums(x + j * S, dy + j * S, S, mean, sum_dy[j], sum_dy_xc[j]);
    a.part_beta[t.n * C + t.c0 + j] = sum_dy[j];
    a.part_gamma[t.n * C + t.c0 + j] = rstd * sum_dy_xc[j];
  }
  if (!a.diff_src) return;
  float b, c;
  grad_factors(sum_dy, sum_dy_xc, a.gamma + t.c0, D, S, rstd, b, c);
  float* dx = a.diff_src + off;
  for (int64_t j = 0; j < D; ++j) {
    const float aj = static_cast<float>(rstd) * a.gamma[t.c0 + j];
    if (a.accumulate)
      row_grad_write<true>(x + j * S, dy + j * S, S, mean, aj, b, c, dx + j * S);
    else
      row_grad_write<false>(x + j * S, dy + j * S, S, mean, aj, b, c, dx + j * S);
  }
}

// Blocked layout backward of the unit's blocks [cb0, cb1), groups [g0, g1).
template <int B>
VD_INLINE void backward_unit_blocked(const Plan& p, int64_t u, const BwdArgs& a, Scratch& scratch) {
  const Unit t(p, u);
  const int64_t S = p.d.s, D = p.per_group, C = p.d.c, G = p.d.groups;
  const int64_t cb_stride = S * B;
  const size_t off = static_cast<size_t>(t.n * p.blocks() * cb_stride);
  const float* x = a.src + off;
  const float* dy = a.diff_dst + off;
  double* sum_dy = scratch.sums.data();               // [c1 - c0]
  double* sum_dy_xc = scratch.sums.data() + p.chunk;  // [c1 - c0]
  float* fb = scratch.factors.data();                 // [g1 - g0]
  float* fc = scratch.factors.data() + p.chunk;       // [g1 - g0]
  // Pass 1: per-channel sums of dy and dy * (x - mean).
  for (int64_t cb = t.cb0; cb < t.cb1; ++cb) {
    double mean[B], la[B], lb[B];
    for (int l = 0; l < B; ++l) {
      const int64_t c = cb * B + l;
      mean[l] = c < C ? a.mean[t.n * G + c / D] : 0.0;
    }
    block_grad_sums<B>(x + cb * cb_stride, dy + cb * cb_stride, S, mean, la, lb);
    for (int l = 0; l < B && cb * B + l < C; ++l) {
      const int64_t c = cb * B + l;
      sum_dy[c - t.c0] = la[l];
      sum_dy_xc[c - t.c0] = lb[l];
      a.part_beta[t.n * C + c] = la[l];
      a.part_gamma[t.n * C + c] = static_cast<double>(a.rstd[t.n * G + c / D]) * lb[l];
    }
  }
  if (!a.diff_src) return;
  for (int64_t g = t.g0; g < t.g1; ++g) {
    const int64_t j = g * D - t.c0;
    grad_factors(sum_dy + j, sum_dy_xc + j, a.gamma + g * D, D, S, a.rstd[t.n * G + g],
                 fb[g - t.g0], fc[g - t.g0]);
  }
  // Pass 2: diff_src per block; padding lanes get all factors 0, so diff_src = 0 (or + 0) there.
  float* dx = a.diff_src + off;
  for (int64_t cb = t.cb0; cb < t.cb1; ++cb) {
    float mean[B], fa[B], lb[B], lc[B];
    for (int l = 0; l < B; ++l) {
      const int64_t c = cb * B + l;
      const bool real = c < C;
      const int64_t g = std::min(c, C - 1) / D;
      mean[l] = real ? a.mean[t.n * G + g] : 0.0f;
      fa[l] = real ? a.rstd[t.n * G + g] * a.gamma[c] : 0.0f;
      lb[l] = real ? fb[g - t.g0] : 0.0f;
      lc[l] = real ? fc[g - t.g0] : 0.0f;
    }
    const size_t o = static_cast<size_t>(cb * cb_stride);
    if (a.accumulate)
      block_grad_write<B, true>(x + o, dy + o, S, mean, fa, lb, lc, dx + o);
    else
      block_grad_write<B, false>(x + o, dy + o, S, mean, fa, lb, lc, dx + o);
  }
}

// One entry per layout, each compiled for several instruction sets (templates cannot be).
VD_SIMD_CLONES void forward_unit(const Plan& p, int64_t u, const FwdArgs& a, Scratch& scratch) {
  switch (p.d.block) {
    case 8:
      forward_unit_blocked<8>(p, u, a, scratch);
      break;
    case 16:
      forward_unit_blocked<16>(p, u, a, scratch);
      break;
    default:
      forward_unit_plain(p, u, a);
  }
}

VD_SIMD_CLONES void backward_unit(const Plan& p, int64_t u, const BwdArgs& a, Scratch& scratch) {
  switch (p.d.block) {
    case 8:
      backward_unit_blocked<8>(p, u, a, scratch);
      break;
    case 16:
      backward_unit_blocked<16>(p, u, a, scratch);
      break;
    default:
      backward_unit_plain(p, u, a, scratch);
  }
}

// OpenMP only when the caller allows more than one thread, there is more than one unit and
// the tensor is big enough to pay for waking the threads (a few microseconds, far more when the
// cores are shared).
constexpr size_t kMinParallelElements = size_t{1} << 15;
bool run_parallel(const Plan& p) {
  return p.units() > 1 && p.d.elements() >= kMinParallelElements && omp_get_max_threads() > 1;
}

std::string dims_text(const GroupNormDims& d) {
  return "N=" + std::to_string(d.n) + ", C=" + std::to_string(d.c) + ", S=" + std::to_string(d.s) +
         ", G=" + std::to_string(d.groups) + ", block=" + std::to_string(d.block);
}

}  // namespace

void check_group_norm_dims(const GroupNormDims& d) {
  VD_CHECK(d.n >= 1 && d.c >= 1 && d.s >= 1 && d.groups >= 1, ShapeError,
           "group norm needs N, C, S and G of at least 1; got " + dims_text(d));
  VD_CHECK(d.c % d.groups == 0, ShapeError,
           "group norm needs C divisible by the number of groups G; got " + dims_text(d));
  VD_CHECK(d.block == 1 || d.block == 8 || d.block == 16, ShapeError,
           "group norm supports the plain layout (block 1) and channel blocks of 8 or 16; got " +
               dims_text(d));
}

void group_norm_forward(const GroupNormDims& dims, float eps, const float* src, const float* gamma,
                        const float* beta, float* dst, float* mean, float* rstd) {
  check_group_norm_dims(dims);
  VD_CHECK(src && gamma && beta && dst && mean && rstd, ShapeError,
           "group_norm_forward needs every buffer (src, gamma, beta, dst, mean, rstd)");
  const Plan p(dims);
  const FwdArgs args{eps, src, gamma, beta, dst, mean, rstd};
#pragma omp parallel if (run_parallel(p))
  {
    Scratch scratch(p);
#pragma omp for schedule(static)
    for (int64_t u = 0; u < p.units(); ++u) forward_unit(p, u, args, scratch);
  }
}

void group_norm_backward(const GroupNormDims& dims, const float* src, const float* mean,
                         const float* rstd, const float* gamma, const float* diff_dst,
                         float* diff_src, float* diff_gamma, float* diff_beta,
                         GradWrite diff_src_write) {
  check_group_norm_dims(dims);
  VD_CHECK(src && mean && rstd && gamma && diff_dst && diff_gamma && diff_beta, ShapeError,
           "group_norm_backward needs src, mean, rstd, gamma, diff_dst, diff_gamma and "
           "diff_beta (only diff_src may be nullptr)");
  const Plan p(dims);
  const size_t nc = static_cast<size_t>(dims.n * dims.c);
  std::vector<double> part(2 * nc);  // [2, N, C]: per-sample diff_gamma, diff_beta
  const BwdArgs args{src,
                     mean,
                     rstd,
                     gamma,
                     diff_dst,
                     diff_src,
                     diff_src_write == GradWrite::Accumulate,
                     part.data(),
                     part.data() + nc};
#pragma omp parallel if (run_parallel(p))
  {
    Scratch scratch(p);
#pragma omp for schedule(static)
    for (int64_t u = 0; u < p.units(); ++u) backward_unit(p, u, args, scratch);
  }
  // The sums over N, in sample order (so independent of the thread count).
  for (int64_t c = 0; c < dims.c; ++c) {
    double dg = 0, db = 0;
    for (int64_t n = 0; n < dims.n; ++n) {
      dg += args.part_gamma[n * dims.c + c];
      db += args.part_beta[n * dims.c + c];
    }
    diff_gamma[c] = static_cast<float>(dg);
    diff_beta[c] = static_cast<float>(db);
  }
}

}  // namespace vd
