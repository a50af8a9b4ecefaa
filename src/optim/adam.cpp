// Adam: the torch-identical update as one vectorisable loop over the flat parameter buffer.
#include "optim/adam.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "core/simd.hpp"

// The loop is compiled for AVX-512, AVX2+FMA and baseline x86-64 and chosen at load time.
// std::fma is exact in every clone (hardware FMA, or glibc's correctly rounded fma() in the
// baseline one), so all clones give identical bits; only speed differs.

namespace vd {

namespace {

// Float scalars of one step, each rounded from the double torch computes in Python.
struct StepScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, eps;
  float bc2_sqrt;       // sqrt(1 - beta2^t)
  float neg_step_size;  // -lr / (1 - beta1^t)
};

// Every operation below is written out in torch's order. Nothing may be fused beyond the
// explicit std::fma calls or the bits drift from torch's: GCC contracts a*b+c in C++ by
// default, but here every product feeds an fma or a division, so there is nothing to fuse
// (and the build adds -ffp-contract=off for this file to keep it so).
template <bool kDecay>
[[gnu::always_inline]] inline void adam_loop(size_t n, float* __restrict p,
                                             const float* __restrict grad, float* __restrict m,
                                             float* __restrict v, const StepScalars& s) {
  const StepScalars c = s;  // local copy: no aliasing doubts for the vectoriser
  for (size_t i = 0; i < n; ++i) {
    float g = grad[i];
    if constexpr (kDecay) g = std::fma(p[i], c.weight_decay, g);  // grad.add(param, alpha=wd)
    m[i] = std::fma(g, c.one_minus_beta1, m[i] * c.beta1);        // exp_avg.mul_(b1).add_(g, alpha)
    v[i] = std::fma(c.one_minus_beta2 * g, g, v[i] * c.beta2);    // .mul_(b2).addcmul_(g, g, val)
    const float denom = std::sqrt(v[i]) / c.bc2_sqrt + c.eps;
    p[i] = p[i] + (c.neg_step_size * m[i]) / denom;  // param.addcdiv_(m, denom, value=-ss)
  }
}

// GCC vectorises this loop only under -fno-math-errno (else sqrt keeps a per-element errno
// branch, about 6x slower); the build sets that flag for this file. It changes no result
// (sqrt is correctly rounded either way and v >= 0).
VD_SIMD_CLONES void adam_kernel(size_t n, float* p, const float* grad, float* m, float* v,
                                const StepScalars& s, bool decay) {
  if (decay)
    adam_loop<true>(n, p, grad, m, v, s);
  else
    adam_loop<false>(n, p, grad, m, v, s);
}

}  // namespace

Adam::Adam(size_t n, AdamConfig config) : config_(config), m_(n, 0.0f), v_(n, 0.0f) {
  auto beta_ok = [](double b) { return b >= 0.0 && b < 1.0; };
  if (!beta_ok(config.beta1) || !beta_ok(config.beta2)) {
    throw ConfigError("Adam: beta1 and beta2 must lie in [0, 1), got " +
                      std::to_string(config.beta1) + " and " + std::to_string(config.beta2) + ".");
  }
  if (!(config.eps >= 0.0) || !(config.weight_decay >= 0.0)) {
    throw ConfigError("Adam: eps and weight_decay must be non-negative, got " +
                      std::to_string(config.eps) + " and " + std::to_string(config.weight_decay) +
                      ".");
  }
}

void Adam::set_steps(int64_t steps) {
  if (steps < 0) {
    throw ConfigError("Adam: the restored step count must be non-negative, got " +
                      std::to_string(steps) + ".");
  }
  steps_ = steps;
}

void Adam::step(std::span<float> params, std::span<const float> grads, double lr) {
  step_range(params, grads, 0, m_.size(), lr);
}

void Adam::step_range(std::span<float> params, std::span<const float> grads, size_t begin,
                      size_t end, double lr) {
  check(params, grads, begin, end);  // a rejected step is not counted
  begin_step();
  apply(params, grads, begin, end, lr);
}

void Adam::check(std::span<float> params, std::span<const float> grads, size_t begin,
                 size_t end) const {
  if (params.size() != m_.size() || grads.size() != m_.size()) {
    throw ShapeError("Adam::step: expected " + std::to_string(m_.size()) +
                     " parameters and gradients, got " + std::to_string(params.size()) + " and " +
                     std::to_string(grads.size()) + ".");
  }
  if (begin > end || end > m_.size())
    throw ShapeError("Adam::step_range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") is outside the " + std::to_string(m_.size()) + " parameters.");
}

void Adam::begin_step() {
  ++steps_;
}

void Adam::apply(std::span<float> params, std::span<const float> grads, size_t begin, size_t end,
                 double lr) {
  check(params, grads, begin, end);
  if (steps_ == 0) throw Error("Adam::apply before begin_step()");
  // torch keeps the step in a float32 tensor and reads it back as a Python float; the two
  // agree exactly up to 2^24 steps.
  const double t = static_cast<double>(static_cast<float>(steps_));
  const double bias_correction1 = 1.0 - std::pow(config_.beta1, t);
  const double bias_correction2 = 1.0 - std::pow(config_.beta2, t);
  const double step_size = lr / bias_correction1;
  StepScalars s;
  s.beta1 = static_cast<float>(config_.beta1);
  s.one_minus_beta1 = static_cast<float>(1.0 - config_.beta1);
  s.beta2 = static_cast<float>(config_.beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - config_.beta2);
  s.weight_decay = static_cast<float>(config_.weight_decay);
  s.eps = static_cast<float>(config_.eps);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  s.neg_step_size = static_cast<float>(-step_size);
  adam_kernel(end - begin, params.data() + begin, grads.data() + begin, m_ptr() + begin,
              v_ptr() + begin, s, config_.weight_decay != 0.0);
}

void Adam::use_external_moments(float* exp_avg, float* exp_avg_sq, bool copy) {
  if ((exp_avg == nullptr) != (exp_avg_sq == nullptr))
    throw ShapeError("Adam::use_external_moments needs both moment buffers or neither");
  if (exp_avg != nullptr) {
    if (!copy) {
      m_ext_ = exp_avg;
      v_ext_ = exp_avg_sq;
      return;
    }
    std::copy(m_.begin(), m_.end(), exp_avg);
    std::copy(v_.begin(), v_.end(), exp_avg_sq);
  } else if (m_ext_ != nullptr) {
    std::copy(m_ext_, m_ext_ + m_.size(), m_.begin());
    std::copy(v_ext_, v_ext_ + v_.size(), v_.begin());
  }
  m_ext_ = exp_avg;
  v_ext_ = exp_avg_sq;
}

}  // namespace vd
