// vd::Ema: an exponential moving average of the parameters over the optimizer's updates, kept
// in the flat parameter layout, bit-for-bit what PyTorch 1.13's AveragedModel computes with the
// EMA averaging function its documentation gives.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace vd {

// Which weights a run evaluates, and a checkpoint's reader uses: the optimizer's own or their
// moving average.
enum class Weights { Raw, Ema };
const char* weights_name(Weights w);  // "raw" | "ema"

// After the optimizer's update number u (1, 2, ...) of params [n]:
//   u = 1:  ema = params
//   u > 1:  ema = d_u * ema + (1 - d_u) * params,   d_u = decay, or with warm-up
//           d_u = min(decay, u / (u + 9))  (diffusers' EMAModel: (1 + s) / (10 + s), s = u - 1)
// in float32 with torch's roundings: each product rounded to float (d_u and 1 - d_u rounded
// to float from double first), then their sum. Without warm-up that is
//   torch.optim.swa_utils.AveragedModel(model,
//       avg_fn=lambda avg, p, n: decay * avg + (1 - decay) * p)
// with update_parameters(model) after every optimizer.step(). Before the first update the
// average is the initial parameters (reset()). Warm-up keeps a young average from clinging to
// the first steps' weights: with decay 0.999 it reaches the full decay after ~9000 updates.
class Ema {
 public:
  // n floats, 64-byte aligned (so the average can stand in for the parameters of a forward
  // pass); decay in (0, 1), else vd::ConfigError.
  Ema(size_t n, double decay, bool warmup = false);

  // The average becomes params (size() floats) and the update count `updates` (>= 0): a fresh
  // run's start, or a resumed one that had no average.
  void reset(std::span<const float> params, int64_t updates = 0);
  // One update applied in pieces, as the optimizer's: begin_update() counts it, then apply()
  // averages elements [begin, end) of params into the average (pieces must not overlap).
  void begin_update() { ++updates_; }
  void apply(std::span<const float> params, size_t begin, size_t end);

  // Keeps the average in caller-owned memory of size() floats (e.g. shared by the ranks of a
  // node); the current values are copied there unless copy = false (the memory holds them
  // already), and back when called with nullptr.
  void use_external(float* values, bool copy = true);

  std::span<float> values() { return {ptr(), n_}; }
  std::span<const float> values() const { return {ptr(), n_}; }
  double decay() const { return decay_; }
  bool warmup() const { return warmup_; }
  void set_warmup(bool warmup) { warmup_ = warmup; }
  // d_u above, for update u >= 2.
  double decay_at(int64_t u) const;
  void set_decay(double decay);  // (0, 1), else vd::ConfigError
  int64_t updates() const { return updates_; }
  void set_updates(int64_t updates);  // >= 0, else vd::ConfigError
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  float* ptr() const { return external_ ? external_ : own_.get(); }
  size_t n_;
  double decay_;
  bool warmup_;
  int64_t updates_ = 0;
  std::unique_ptr<float[], Free> own_;
  float* external_ = nullptr;
};

}  // namespace vd
