// The project's random number generator: std::mt19937_64 plus distributions written out
// here, so a stream of numbers depends only on the seed (not on the standard library's
// distribution code) and the whole state round-trips through a checkpoint as text.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

namespace vd {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}

  // Seed for an independent stream named by (seed, a, b, c), e.g. (seed, epoch, rank).
  static uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

  uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection sampling).
  uint64_t below(uint64_t n);
  // Standard normal by Box-Muller; uses two uniforms per call and keeps no cache, so the
  // state is exactly the engine's.
  double normal();
  // Fills dst[0..n) with N(0, 1) samples, two per Box-Muller draw.
  void fill_normal(float* dst, size_t n);

  std::string state() const;                // text form of the engine state
  void set_state(const std::string& text);  // throws vd::Error on malformed text

 private:
  std::mt19937_64 engine_;
};

}  // namespace vd
