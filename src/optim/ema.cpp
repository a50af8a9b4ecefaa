// Ema: the moving average of the parameters as one vectorisable loop, torch's roundings.
#include "optim/ema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "core/simd.hpp"

// The build compiles this file with -ffp-contract=off: a*b + c*d must stay two rounded
// products and a rounded sum, as torch's three tensor operations give, never an FMA.

namespace vd {

namespace {

VD_SIMD_CLONES void ema_kernel(size_t n, float* __restrict avg, const float* __restrict p,
                               float decay, float one_minus_decay) {
  for (size_t i = 0; i < n; ++i) avg[i] = decay * avg[i] + one_minus_decay * p[i];
}

void check_decay(double decay) {
  if (!(decay > 0.0 && decay < 1.0))
    throw ConfigError("the EMA decay must lie in (0, 1), got " + std::to_string(decay) +
                      "; 0.999 or 0.9999 are usual");
}

}  // namespace

const char* weights_name(Weights w) {
  return w == Weights::Ema ? "ema" : "raw";
}

void Ema::Free::operator()(float* p) const {
  std::free(p);
}

Ema::Ema(size_t n, double decay, bool warmup) : n_(n), decay_(decay), warmup_(warmup) {
  check_decay(decay);
  // aligned_alloc needs a multiple of the alignment.
  const size_t bytes = std::max<size_t>(64, (n * sizeof(float) + 63) / 64 * 64);
  own_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!own_)
    throw Error("out of memory for the moving average of " + std::to_string(n) + " weights");
  std::fill_n(own_.get(), n, 0.0f);
}

void Ema::set_decay(double decay) {
  check_decay(decay);
  decay_ = decay;
}

double Ema::decay_at(int64_t u) const {
  if (!warmup_) return decay_;
  const double t = static_cast<double>(u);
  return std::min(decay_, t / (t + 9.0));
}

void Ema::set_updates(int64_t updates) {
  if (updates < 0)
    throw ConfigError("the EMA's update count must be non-negative, got " +
                      std::to_string(updates));
  updates_ = updates;
}

void Ema::reset(std::span<const float> params, int64_t updates) {
  if (params.size() != n_)
    throw ShapeError("Ema::reset: expected " + std::to_string(n_) + " parameters, got " +
                     std::to_string(params.size()));
  set_updates(updates);
  std::copy(params.begin(), params.end(), ptr());
}

void Ema::apply(std::span<const float> params, size_t begin, size_t end) {
  if (params.size() != n_ || begin > end || end > n_)
    throw ShapeError("Ema::apply: [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") of " + std::to_string(params.size()) + " parameters does not fit the " +
                     std::to_string(n_) + " averaged ones");
  if (updates_ == 0) throw Error("Ema::apply before begin_update()");
  float* avg = ptr() + begin;
  if (updates_ == 1) {
    std::copy(params.begin() + static_cast<std::ptrdiff_t>(begin),
              params.begin() + static_cast<std::ptrdiff_t>(end), avg);
    return;
  }
  const double d = decay_at(updates_);
  ema_kernel(end - begin, avg, params.data() + begin, static_cast<float>(d),
             static_cast<float>(1.0 - d));
}

void Ema::use_external(float* values, bool copy) {
  if (values != nullptr) {
    if (copy) std::copy_n(own_.get(), n_, values);
  } else if (external_ != nullptr) {
    std::copy_n(external_, n_, own_.get());
  }
  external_ = values;
}

}  // namespace vd
