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

}  // namespace vd
