// Adam optimizer over one flat float parameter buffer, bit-for-bit equal to PyTorch 1.13's
// torch.optim.Adam (single-tensor path, amsgrad off) on CPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace vd {

struct AdamConfig {
  double lr = 1e-3;  // default only; step() takes the rate of each step (schedules)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2 added to the gradient as torch Adam does (not AdamW)
};

// Per step, in float32 with torch's scalar roundings (each double scalar is rounded to float
// before it meets the tensors) and torch's fused multiply-adds (its CPU add/addcmul kernels
// use FMA):
//   g     = fma(param, wd, grad)                      if weight_decay != 0
//   m     = fma(g, 1-beta1, m*beta1)
//   v     = fma((1-beta2)*g, g, v*beta2)
//   denom = sqrt(v) / sqrt(1-beta2^t) + eps           (bias corrections in double)
//   param = param + ((-lr/(1-beta1^t)) * m) / denom
class Adam {
 public:
  // n parameters; moments start at zero and the step count at 0. Throws vd::ConfigError on
  // betas outside [0, 1), negative eps or weight decay.
  Adam(size_t n, AdamConfig config);

  // One update of params [n] in place from grads [n] with learning rate lr. Throws
  // vd::ShapeError if a span's size is not n.
  void step(std::span<float> params, std::span<const float> grads, double lr);
  // The same update applied to elements [begin, end) only (one rank's share when the ranks
  // of a node update one shared copy); counts as one step.
  void step_range(std::span<float> params, std::span<const float> grads, size_t begin, size_t end,
                  double lr);
  // One step applied in pieces (each rank's share, bucket by bucket as its gradient sum
  // arrives): begin_step() counts the step, then apply() updates [begin, end) with that
  // step's scalars; pieces may come in any order and must not overlap.
  void begin_step();
  void apply(std::span<float> params, std::span<const float> grads, size_t begin, size_t end,
             double lr);
  // Keeps the moments in caller-owned memory of size() floats each (e.g. shared by the ranks
  // of a node); the current moments are copied there (unless copy = false: the memory holds
  // them already), and back when called with nullptrs.
  void use_external_moments(float* exp_avg, float* exp_avg_sq, bool copy = true);

  int64_t steps() const { return steps_; }
  // First and second moments [n], for checkpoints (read or restore in place).
  std::span<float> exp_avg() { return {m_ptr(), m_.size()}; }
  std::span<float> exp_avg_sq() { return {v_ptr(), v_.size()}; }
  std::span<const float> exp_avg() const { return {m_ptr(), m_.size()}; }
  std::span<const float> exp_avg_sq() const { return {v_ptr(), v_.size()}; }
  // Restores the step count from a checkpoint (>= 0, else vd::ConfigError).
  void set_steps(int64_t steps);
  const AdamConfig& config() const { return config_; }
  size_t size() const { return m_.size(); }

 private:
  AdamConfig config_;
  int64_t steps_ = 0;
  std::vector<float> m_;    // [n] exp_avg
  std::vector<float> v_;    // [n] exp_avg_sq
  float* m_ext_ = nullptr;  // external moments, when set (use_external_moments)
  float* v_ext_ = nullptr;
  void check(std::span<float> params, std::span<const float> grads, size_t begin, size_t end) const;
  float* m_ptr() const { return m_ext_ ? m_ext_ : const_cast<float*>(m_.data()); }
  float* v_ptr() const { return v_ext_ ? v_ext_ : const_cast<float*>(v_.data()); }
};

}  // namespace vd
