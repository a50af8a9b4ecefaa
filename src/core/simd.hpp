// Full-width SIMD under the project's generic x86-64 flags: function clones for AVX-512,
// AVX2+FMA and baseline x86-64, picked at load time, and the vector scans built on them.
#pragma once
#include <cstddef>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VD_SIMD_CLONES [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define VD_SIMD_CLONES
#endif
#define VD_INLINE [[gnu::always_inline]] inline

namespace vd {

// True when any of the n floats is an infinity or NaN; by the bits, so it holds under any
// floating-point flags (flush-to-zero included).
bool any_non_finite(const float* x, size_t n);

// The sum of x[i]^2 in double, in 16 interleaved partial sums added in a fixed order: the
// same bits from every clone (AVX-512, AVX2, baseline), so ranks on unlike CPUs agree on it.
// Non-finite when any x[i] is.
double sum_of_squares(const float* x, size_t n);

}  // namespace vd
