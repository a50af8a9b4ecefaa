// A short training run in bf16 against the same run in f32: the MLP VAE, 200 Adam steps on
// structured synthetic images, same initial weights, data and noise; the losses must track.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "nn/precision.hpp"
#include "optim/adam.hpp"
#include "vae/model.hpp"

namespace {

using vd::Precision;

constexpr int kD = 784, kBatch = 64, kSteps = 200;

// 10 smooth random prototypes in [0, 1]; image i is prototype i % 10 plus a little noise.
std::vector<float> synthetic_images(int n) {
  vd::Rng rng(3);
  std::vector<float> protos(10 * kD);
  for (int p = 0; p < 10; ++p) {
    const double fx = rng.uniform(1, 4), fy = rng.uniform(1, 4), ph = rng.uniform(0, 6.3);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x)
        protos[p * kD + y * 28 + x] =
            static_cast<float>(0.5 + 0.5 * std::sin(fx * x / 28.0 * 6.28 + fy * y / 28.0 + ph));
  }
  std::vector<float> x(static_cast<size_t>(n) * kD);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kD; ++j) {
      const double v = protos[(i % 10) * kD + j] + rng.uniform(-0.1, 0.1);
      x[static_cast<size_t>(i) * kD + j] = static_cast<float>(std::min(1.0, std::max(0.0, v)));
    }
  return x;
}

// Mean loss per sample at each step.
std::vector<double> train(Precision precision) {
  vd::ModelConfig cfg = vd::ModelConfig::mlp(kD, {400}, 20);
  cfg.precision = precision;
  vd::ParamStore store;
  vd::Vae vae(cfg, store);
  store.finalize();
  vd::Rng init(1);
  vae.init(init);  // the same weights in both runs
  vd::Adam adam(store.size(), vd::AdamConfig{});
  vd::Context ctx;
  const std::vector<float> data = synthetic_images(640);
  std::vector<float> eps(kBatch * 20);
  vd::Rng noise(2);
  std::vector<double> losses;
  for (int s = 0; s < kSteps; ++s) {
    noise.fill_normal(eps.data(), eps.size());
    const float* x = data.data() + static_cast<size_t>(s % 10) * kBatch * kD;
    const vd::LossSums sums =
        vae.train_step(ctx, vd::Batch{kBatch, x, nullptr, eps.data()}, 1.0f, 1.0f / kBatch);
    adam.step(store.params(), store.grads(), 1e-3);
    losses.push_back(sums.loss / kBatch);
  }
  return losses;
}

TEST(Bf16Training, LossTracksF32Over200Steps) {
  if (!vd::cpu_has_bf16())
    GTEST_SKIP() << "this CPU has no native bf16 (" << vd::cpu_isa_name() << ")";
  omp_set_num_threads(1);  // OpenMP threads spinning on a shared machine cost seconds here
  const std::vector<double> f32 = train(Precision::F32);
  const std::vector<double> bf16 = train(Precision::BF16);
  // Training works at all: the loss falls by a third (from about 550 nats).
  ASSERT_LT(f32.back(), 0.67 * f32.front());
  // Means over windows of 20 steps (single steps are noisy): within 1.5% all the way, so a
  // drift would show before the end.
  for (int w = 0; w < kSteps; w += 20) {
    double a = 0, b = 0;
    for (int s = w; s < w + 20; ++s) a += f32[s], b += bf16[s];
    EXPECT_NEAR(b / a, 1.0, 0.015)
        << "steps " << w << ".." << w + 19 << ": f32 " << a / 20 << ", bf16 " << b / 20;
  }
  // ...and not identical: bf16 really ran.
  EXPECT_NE(f32.back(), bf16.back());
}

}  // namespace
