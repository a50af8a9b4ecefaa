// The vector scans of core/simd.hpp.
#include "core/simd.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>

namespace vd {

VD_SIMD_CLONES bool any_non_finite(const float* x, size_t n) {
  // The largest exponent field is all ones only for an infinity or NaN. A max reduction of
  // integers vectorises; a bool OR reduction ran scalar.
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t top = 0;
#pragma omp simd reduction(max : top)
  for (size_t i = 0; i < n; ++i) top = std::max(top, std::bit_cast<uint32_t>(x[i]) & kExponent);
  return top == kExponent;
}

VD_SIMD_CLONES double sum_of_squares(const float* x, size_t n) {
  constexpr size_t kLanes = 16;
  double part[kLanes] = {};
  const size_t whole = n / kLanes * kLanes;
  for (size_t i = 0; i < whole; i += kLanes)
#pragma omp simd
    for (size_t j = 0; j < kLanes; ++j) {
      const double v = x[i + j];
      part[j] += v * v;
    }
  for (size_t i = whole; i < n; ++i) {
    const double v = x[i];
    part[i - whole] += v * v;
  }
  // Pairwise, always in this order.
  for (size_t w = kLanes / 2; w > 0; w /= 2)
    for (size_t j = 0; j < w; ++j) part[j] += part[j + w];
  return part[0];
}

}  // namespace vd
