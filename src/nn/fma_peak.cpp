// Timing loops of vfmadd231ps, vdpbf16ps and AMX tdpbf16ps on independent accumulators (the
// physical peak).
#include "nn/fma_peak.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <dnnl.hpp>
#include <vector>

#include "core/error.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#endif

namespace vd {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kAcc = 16;       // independent accumulators: latency 4 x 2 ports, with slack
constexpr int kAccYmm = 12;    // AVX2 has 16 registers: 12 accumulators and the two operands
constexpr long kInner = 1024;  // loop trips between clock reads

#if defined(__x86_64__)
// (GCC 12's _mm512_reduce_add_ps warns of an uninitialised temporary; a store does the same.)
__attribute__((target("avx512f"))) float lanes_sum(__m512 v) {
  float out[16];
  _mm512_storeu_ps(out, v);
  float sum = 0;
  for (float x : out) sum += x;
  return sum;
}

// Each trip issues one FMA per accumulator, on registers only. The multiplicands are 1 and the
// accumulators start at 0, so no value grows, underflows or turns denormal however long it runs.
__attribute__((target("avx512f"))) float loop_zmm_f32(long trips) {
  __m512 acc[kAcc];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-9f);
  for (long t = 0; t < trips; ++t) {
    for (auto& a : acc) a = _mm512_fmadd_ps(x, y, a);
    // Keep the compiler from folding trips together: x and y may change as far as it knows.
    asm volatile("" : "+v"(x), "+v"(y));
  }
  __m512 s = acc[0];
  for (int k = 1; k < kAcc; ++k) s = _mm512_add_ps(s, acc[k]);
  return lanes_sum(s);
}

__attribute__((target("avx2,fma"))) float loop_ymm_f32(long trips) {
  __m256 acc[kAccYmm];
  for (auto& a : acc) a = _mm256_setzero_ps();
  __m256 x = _mm256_set1_ps(1.0f), y = _mm256_set1_ps(1e-9f);
  for (long t = 0; t < trips; ++t) {
    for (auto& a : acc) a = _mm256_fmadd_ps(x, y, a);
    asm volatile("" : "+x"(x), "+x"(y));
  }
  __m256 s = acc[0];
  for (int k = 1; k < kAccYmm; ++k) s = _mm256_add_ps(s, acc[k]);
  float out[8];
  _mm256_storeu_ps(out, s);
  float sum = 0;
  for (float v : out) sum += v;
  return sum;
}

__attribute__((target("avx512f,avx512bf16"))) float loop_zmm_bf16(long trips) {
  __m512 acc[kAcc];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
  __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-9f), _mm512_set1_ps(1e-9f));
  for (long t = 0; t < trips; ++t) {
    for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    asm volatile("" : "+v"(x), "+v"(y));
  }
  __m512 s = acc[0];
  for (int k = 1; k < kAcc; ++k) s = _mm512_add_ps(s, acc[k]);
  return lanes_sum(s);
}

// AMX: tile registers need the kernel's permission (arch_prctl ARCH_REQ_XCOMP_PERM for
// XTILEDATA), which oneDNN asks for too before its AMX kernels run.
bool amx_permitted() {
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

constexpr int kAmxAcc = 6;  // tmm0-5 accumulate tmm6 x tmm7: latency over 16-cycle issue

// Full tiles: each tdpbf16ps is a 16x32 by 32x16 bf16 product into 16x16 f32, 16384 flop.
__attribute__((target("amx-tile,amx-bf16"))) float loop_amx_bf16(long trips) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.bytes_per_row[t] = 64;
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t a[16 * 32], b[16 * 32];
  const uint16_t one = 0x3f80, addend = 0x3089;  // bf16 1.0 and 1e-9 (rounded)
  for (int k = 0; k < 16 * 32; ++k) a[k] = one, b[k] = addend;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  _tile_loadd(6, a, 64);
  _tile_loadd(7, b, 64);
  for (long t = 0; t < trips; ++t) {
    _tile_dpbf16ps(0, 6, 7);
    _tile_dpbf16ps(1, 6, 7);
    _tile_dpbf16ps(2, 6, 7);
    _tile_dpbf16ps(3, 6, 7);
    _tile_dpbf16ps(4, 6, 7);
    _tile_dpbf16ps(5, 6, 7);
  }
  alignas(64) float c[kAmxAcc][16 * 16];
  _tile_stored(0, c[0], 64);
  _tile_stored(1, c[1], 64);
  _tile_stored(2, c[2], 64);
  _tile_stored(3, c[3], 64);
  _tile_stored(4, c[4], 64);
  _tile_stored(5, c[5], 64);
  _tile_release();
  float sum = 0;
  for (const auto& tile : c)
    for (float v : tile) sum += v;
  return sum;
}
#endif

bool isa_has(dnnl::cpu_isa want) {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & static_cast<unsigned>(want)) == static_cast<unsigned>(want);
}

// The loop for `precision` on this CPU (null if none) and its description.
using Loop = float (*)(long);
Loop pick_loop(Precision precision, FmaPeak& peak) {
  Loop loop = nullptr;
#if defined(__x86_64__)
  if (precision == Precision::BF16) {
    // oneDNN runs bf16 on AMX tiles where it may, else on vdpbf16ps.
    if (cpu_has_amx_bf16() && amx_permitted()) {
      loop = loop_amx_bf16;
      peak = {0, 16384, kAmxAcc, "tdpbf16ps (AMX tiles)"};
    } else if (cpu_has_bf16()) {
      loop = loop_zmm_bf16;
      peak = {0, 64, kAcc, "vdpbf16ps zmm"};  // 16 lanes x 2 products and 2 sums
    }
  } else if (isa_has(dnnl::cpu_isa::avx512_core)) {
    loop = loop_zmm_f32;
    peak = {0, 32, kAcc, "vfmadd231ps zmm"};
  } else if (isa_has(dnnl::cpu_isa::avx2)) {
    loop = loop_ymm_f32;
    peak = {0, 16, kAccYmm, "vfmadd231ps ymm"};
  }
#else
  (void)precision;
#endif
  return loop;
}

}  // namespace

double fma_loop_sum(Precision precision, long trips) {
  FmaPeak peak;
  const Loop loop = pick_loop(precision, peak);
  return loop ? static_cast<double>(loop(trips)) : 0.0;
}

FmaPeak measure_fma_peak(Precision precision, double seconds) {
  VD_CHECK(seconds > 0 && std::isfinite(seconds), ShapeError,
           "The FMA peak measurement needs a positive duration in seconds.");
  FmaPeak peak;
  const Loop loop = pick_loop(precision, peak);
  if (!loop) return peak;
  volatile float sink = loop(4 * kInner);  // warm-up: the core reaches its vector clock
  const auto t_probe = Clock::now();
  sink = sink + loop(kInner);
  const double per_trip =
      std::max(std::chrono::duration<double>(Clock::now() - t_probe).count() / kInner, 1e-10);
  const long trips = std::max(kInner, static_cast<long>(5e-3 / per_trip));
  std::vector<double> gflops;
  const auto t_start = Clock::now();
  while (gflops.size() < 5 ||
         std::chrono::duration<double>(Clock::now() - t_start).count() < seconds) {
    const auto t0 = Clock::now();
    sink = sink + loop(trips);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    gflops.push_back(static_cast<double>(trips) * peak.accumulators * peak.flops_per_op / dt *
                     1e-9);
  }
  std::nth_element(gflops.begin(), gflops.begin() + gflops.size() / 2, gflops.end());
  peak.gflops = gflops[gflops.size() / 2];
  return peak;
}

}  // namespace vd
