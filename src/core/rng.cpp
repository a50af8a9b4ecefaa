// Rng: distributions over std::mt19937_64 and state serialisation.
#include "core/rng.hpp"

#include <numbers>
#include <sstream>

#include "core/error.hpp"

namespace vd {

namespace {
// SplitMix64 finaliser: a bijective mixer, so distinct inputs give distinct seeds.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t Rng::derive_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return mix(mix(mix(mix(seed) ^ a) ^ b) ^ c);
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) throw Error("Rng::below(0): the range is empty");
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = engine_();
  } while (x >= limit);
  return x % n;
}

double Rng::normal() {
  // 1 - uniform() is in (0, 1], so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void Rng::fill_normal(float* dst, size_t n) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    dst[i] = static_cast<float>(r * std::cos(2.0 * std::numbers::pi * u2));
    dst[i + 1] = static_cast<float>(r * std::sin(2.0 * std::numbers::pi * u2));
  }
  if (i < n) dst[i] = static_cast<float>(normal());
}

std::string Rng::state() const {
  std::ostringstream out;
  out << engine_;
  return out.str();
}

void Rng::set_state(const std::string& text) {
  std::istringstream in(text);
  std::mt19937_64 engine;
  in >> engine;
  if (!in) throw Error("the saved random number generator state is malformed");
  engine_ = engine;
}

}  // namespace vd
