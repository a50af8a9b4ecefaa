// Tests of vd::Adam: bit-for-bit agreement with torch.optim.Adam (PyTorch 1.13), the closed
// form of the first step, checkpoint restore, errors, and the vectorised loop vs a scalar one.
#include "optim/adam.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace {

// Reference values, generated once with Debian's python3-torch 1.13 (/usr/bin/python3):
//
// import torch
// def lcg(state):
//     state = (1664525 * state + 1013904223) % 2**32
//     return state, state / 4294967296.0 - 0.5
// def long_run(n, steps, wd):
//     s = 12345
//     init = []
//     for i in range(n):
//         s, u = lcg(s); init.append(4.0 * u)
//     param = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))
//     opt = torch.optim.Adam([param], lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
//                            weight_decay=wd, foreach=False)
//     for t in range(steps):
//         g = []
//         for i in range(n):
//             s, u = lcg(s); g.append(0.0 if t % 50 == 49 else u * 2.0 ** -(i % 12))
//         opt.param_groups[0]['lr'] = 1e-3 * (1 + t % 7)
//         param.grad = torch.tensor(g, dtype=torch.float32)
//         opt.step()
//     st = opt.state[param]
//     for name, t in (('params', param.detach()), ('exp_avg', st['exp_avg']),
//                     ('exp_avg_sq', st['exp_avg_sq'])):
//         print(name, ', '.join(float(v).hex() for v in t))
// def short_run(wd):
//     p = [0.5, -1.25, 2.0, 1e-3, -3.0]
//     grads = [[0.1, -0.2, 1e-4, 5.0, -0.003], [0.05, 0.3, -2e-4, 4.0, 0.01],
//              [-0.2, 0.1, 3e-4, -1.0, 0.02]]
//     param = torch.nn.Parameter(torch.tensor(p, dtype=torch.float32))
//     opt = torch.optim.Adam([param], lr=1e-2, weight_decay=wd, foreach=False)
//     for g in grads:
//         param.grad = torch.tensor(g, dtype=torch.float32)
//         opt.step()
//         print(', '.join(float(v).hex() for v in param.detach()))
// print('short wd=0'); short_run(0.0)
// print('short wd=0.1'); short_run(0.1)
// print('long wd=0'); long_run(37, 300, 0.0)
// print('long wd=0.05'); long_run(37, 300, 0.05)
//
// (The printed hex values were pasted below with trailing zeros dropped and an f suffix.)
// short wd=0
constexpr float kShortNoDecay[3][5] = {
    {0x1.f5c29p-2f, -0x1.3d70a4p+0f, 0x1.fd70b4p+0f, -0x1.26e976p-7f, -0x1.7eb852p+1f},
    {0x1.ec36e8p-2f, -0x1.3e12fap+0f, 0x1.fe609ep+0f, -0x1.3559bap-6f, -0x1.7f62d2p+1f},
    {0x1.ee53dcp-2f, -0x1.3efbdap+0f, 0x1.fd7faep+0f, -0x1.a0d4e8p-6f, -0x1.80596p+1f}};
// short wd=0.1
constexpr float kShortDecay[3][5] = {
    {0x1.f5c29p-2f, -0x1.3d70a4p+0f, 0x1.fd70a4p+0f, -0x1.26e978p-7f, -0x1.7eb852p+1f},
    {0x1.ebd5ep-2f, -0x1.3cd6dcp+0f, 0x1.fae166p+0f, -0x1.3558ecp-6f, -0x1.7d7122p+1f},
    {0x1.ea3482p-2f, -0x1.3c4558p+0f, 0x1.f8524p+0f, -0x1.a0ca1p-6f, -0x1.7c2aa2p+1f}};
constexpr float kLongParamsNoDecay[37] = {
    -0x1.fb18d6p+0f, -0x1.d30f1ap+0f, 0x1.cc7108p-3f,  0x1.2151dp-1f,   0x1.a5d404p+0f,
    -0x1.9585f8p+0f, 0x1.b70cfap-4f,  0x1.518c56p-3f,  0x1.650dccp-2f,  0x1.35d2dap+0f,
    -0x1.e9f3dep+0f, 0x1.fdbd2cp-1f,  0x1.e9f2e8p+0f,  -0x1.ac5578p+0f, 0x1.72914ap-1f,
    -0x1.a7e7fp-4f,  -0x1.893c88p-2f, 0x1.dca6e8p+0f,  -0x1.ac3472p-2f, 0x1.c54186p+0f,
    0x1.fbb576p+0f,  0x1.681f08p-1f,  -0x1.7d9d14p-2f, -0x1.15e40ep-6f, -0x1.9d931ap-1f,
    -0x1.c6a1aep-2f, 0x1.297ab4p-1f,  -0x1.425b8ep+0f, -0x1.adb4ccp+0f, 0x1.7d8f2cp+0f,
    -0x1.884b44p-1f, -0x1.07ccd2p+1f, -0x1.37c75cp-5f, -0x1.e758dcp-1f, 0x1.0b5a72p-3f,
    0x1.db577ep+0f,  -0x1.ec6922p+0f};
constexpr float kLongExpAvgNoDecay[37] = {
    -0x1.c7b0fp-9f,   0x1.53b5c6p-6f,   0x1.bee30cp-7f,  -0x1.939022p-10f, -0x1.95e066p-8f,
    0x1.17d1fcp-9f,   -0x1.645848p-12f, 0x1.e23f78p-16f, 0x1.11e806p-15f,  -0x1.b8bdp-13f,
    -0x1.1272d8p-14f, -0x1.98ba44p-15f, -0x1.b32e3p-5f,  0x1.363378p-7f,   0x1.069f1cp-6f,
    -0x1.aafaeap-8f,  -0x1.4f5632p-10f, 0x1.234342p-9f,  -0x1.46e14p-11f,  0x1.67a78cp-11f,
    0x1.723dd8p-14f,  0x1.97007ep-16f,  0x1.2d3572p-15f, -0x1.9ac11ep-17f, -0x1.50e514p-6f,
    0x1.d4d80ap-10f,  0x1.0c3f3p-6f,    0x1.92a928p-9f,  0x1.ee3326p-9f,   0x1.14b6bcp-11f,
    0x1.2f193ep-11f,  0x1.0d316cp-11f,  0x1.c9e9b6p-14f, 0x1.5ae486p-17f,  0x1.2b94acp-13f,
    -0x1.bd9d8p-19f,  -0x1.20b108p-5f};
constexpr float kLongExpAvgSqNoDecay[37] = {
    0x1.627b02p-6f,  0x1.4a76e2p-8f,  0x1.522b6p-10f,  0x1.3dd70ap-12f, 0x1.359624p-14f,
    0x1.74fa74p-16f, 0x1.3c8496p-18f, 0x1.5097cp-20f,  0x1.3aada8p-22f, 0x1.5d03b8p-24f,
    0x1.527688p-26f, 0x1.6007aep-28f, 0x1.80191p-6f,   0x1.4b8836p-8f,  0x1.7f6218p-10f,
    0x1.61a2cp-12f,  0x1.66a442p-14f, 0x1.60ef52p-16f, 0x1.5f1766p-18f, 0x1.789564p-20f,
    0x1.64d60cp-22f, 0x1.5f5962p-24f, 0x1.2eab54p-26f, 0x1.668c44p-28f, 0x1.7e36a2p-6f,
    0x1.2a1bf4p-8f,  0x1.5edd34p-10f, 0x1.4124bcp-12f, 0x1.5f84cap-14f, 0x1.60000cp-16f,
    0x1.566e2p-18f,  0x1.5fab2ep-20f, 0x1.5686cep-22f, 0x1.6a0b12p-24f, 0x1.853e1ep-26f,
    0x1.4e311cp-28f, 0x1.3dd5a4p-6f};
constexpr float kLongParamsDecay[37] = {
    -0x1.a30078p+0f, -0x1.47867ep+0f, 0x1.90ae22p-4f,   0x1.bc270cp-4f,   0x1.653dcap-1f,
    -0x1.2d36e8p-1f, -0x1.8b83f8p-9f, -0x1.54905cp-10f, -0x1.1fa6a2p-8f,  0x1.0cf3a2p-2f,
    -0x1.aac154p-1f, 0x1.4a325cp-3f,  0x1.979b06p+0f,   -0x1.26d7e2p+0f,  0x1.566d44p-2f,
    -0x1.8c4dd2p-7f, -0x1.e41d56p-7f, 0x1.b1ccd2p-1f,   0x1.54ac98p-8f,   0x1.9cb4bp-1f,
    0x1.e86b2cp-1f,  0x1.8d706p-6f,   -0x1.f6ee6ap-10f, -0x1.5aee04p-10f, -0x1.54b7d8p-1f,
    -0x1.3ef96ap-2f, 0x1.f2155ep-3f,  -0x1.0ee6b8p-1f,  -0x1.661668p-1f,  0x1.f0727p-2f,
    -0x1.c7d9c6p-5f, -0x1.e6ef3cp-1f, 0x1.190d4cp-8f,   -0x1.660ca4p-4f,  -0x1.2ce7aap-9f,
    0x1.aec376p-1f,  -0x1.8f12acp+0f};
constexpr float kLongExpAvgDecay[37] = {
    -0x1.5f7a56p-4f, -0x1.6711dep-5f,  0x1.37f876p-6f,   0x1.12ab72p-8f,   0x1.e887b2p-6f,
    -0x1.d166b6p-6f, -0x1.afd0cep-11f, 0x1.d57c2ep-17f,  -0x1.17adbep-12f, 0x1.c4e038p-7f,
    -0x1.613c66p-5f, 0x1.1ddd0ap-7f,   0x1.b5dae6p-6f,   -0x1.9110d2p-5f,  0x1.102804p-5f,
    -0x1.d305f8p-8f, -0x1.21dfb4p-9f,  0x1.787cb8p-5f,   -0x1.2e7c2ap-11f, 0x1.5afd38p-5f,
    0x1.932ac8p-5f,  0x1.851c34p-10f,  -0x1.97a31cp-15f, -0x1.228216p-16f, -0x1.ba3a32p-5f,
    -0x1.c0085ep-7f, 0x1.e3a038p-6f,   -0x1.902b64p-6f,  -0x1.08c884p-5f,  0x1.a7b318p-6f,
    -0x1.516e8ap-9f, -0x1.8cf946p-5f,  0x1.1c56bap-12f,  -0x1.3f65cep-8f,  0x1.3c289cp-14f,
    0x1.63e4ccp-5f,  -0x1.d1798cp-4f};
constexpr float kLongExpAvgSqDecay[37] = {
    0x1.7ac2f8p-6f,  0x1.cfb3a8p-8f,  0x1.54c646p-10f, 0x1.71f118p-12f, 0x1.dcc996p-11f,
    0x1.78769cp-11f, 0x1.42c11cp-18f, 0x1.75e0ap-19f,  0x1.6d16bap-17f, 0x1.2e9312p-12f,
    0x1.248f16p-10f, 0x1.83f5p-13f,   0x1.90a93ap-6f,  0x1.accec6p-8f,  0x1.c51f44p-10f,
    0x1.69a4ep-12f,  0x1.bed4e6p-14f, 0x1.2b0e8ep-10f, 0x1.046376p-16f, 0x1.19406ep-10f,
    0x1.606f08p-10f, 0x1.cbf46ep-15f, 0x1.712e9p-18f,  0x1.3c401p-27f,  0x1.883e48p-6f,
    0x1.26c358p-8f,  0x1.9a6fap-10f,  0x1.e7204ep-11f, 0x1.dfb2d8p-11f, 0x1.256a18p-11f,
    0x1.77c93p-14f,  0x1.5d984ap-10f, 0x1.1b1beep-20f, 0x1.e147c4p-14f, 0x1.3c5b0cp-18f,
    0x1.285482p-10f, 0x1.63f9fcp-6f};

// Python parses the decimals to double and torch rounds those to float: do the same.
std::vector<float> to_float(std::initializer_list<double> v) {
  std::vector<float> out;
  for (double d : v) out.push_back(static_cast<float>(d));
  return out;
}

void run_short(double wd, const float (&expected)[3][5]) {
  std::vector<float> p = to_float({0.5, -1.25, 2.0, 1e-3, -3.0});
  const std::vector<std::vector<float>> grads = {to_float({0.1, -0.2, 1e-4, 5.0, -0.003}),
                                                 to_float({0.05, 0.3, -2e-4, 4.0, 0.01}),
                                                 to_float({-0.2, 0.1, 3e-4, -1.0, 0.02})};
  vd::AdamConfig cfg;
  cfg.weight_decay = wd;
  vd::Adam adam(5, cfg);
  for (int s = 0; s < 3; ++s) {
    adam.step(p, grads[s], 1e-2);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(p[i], expected[s][i]) << "step " << s + 1 << " i " << i;
  }
  EXPECT_EQ(adam.steps(), 3);
}

TEST(Adam, ShortRunMatchesTorchBitwise) {
  run_short(0.0, kShortNoDecay);
}
TEST(Adam, ShortRunWithWeightDecayMatchesTorchBitwise) {
  run_short(0.1, kShortDecay);
}

// Mirrors long_run() in the Python snippet: same generator, same order of draws.
struct Lcg {
  uint64_t state = 12345;
  double next() {
    state = (1664525 * state + 1013904223) % 4294967296ULL;
    return static_cast<double>(state) / 4294967296.0 - 0.5;
  }
};

void run_long(double wd, const float (&params)[37], const float (&exp_avg)[37],
              const float (&exp_avg_sq)[37]) {
  const int n = 37, steps = 300;
  Lcg lcg;
  std::vector<float> p(n), g(n);
  for (int i = 0; i < n; ++i) p[i] = static_cast<float>(4.0 * lcg.next());
  vd::AdamConfig cfg;
  cfg.weight_decay = wd;
  vd::Adam adam(n, cfg);
  for (int t = 0; t < steps; ++t) {
    for (int i = 0; i < n; ++i) {
      const double u = lcg.next();
      g[i] = t % 50 == 49 ? 0.0f : static_cast<float>(u * std::ldexp(1.0, -(i % 12)));
    }
    adam.step(p, g, 1e-3 * (1 + t % 7));
  }
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(p[i], params[i]) << "param " << i;
    EXPECT_EQ(adam.exp_avg()[i], exp_avg[i]) << "exp_avg " << i;
    EXPECT_EQ(adam.exp_avg_sq()[i], exp_avg_sq[i]) << "exp_avg_sq " << i;
  }
}

TEST(Adam, ThreeHundredStepsMatchTorchBitwise) {
  run_long(0.0, kLongParamsNoDecay, kLongExpAvgNoDecay, kLongExpAvgSqNoDecay);
}
TEST(Adam, ThreeHundredStepsWithWeightDecayMatchTorchBitwise) {
  run_long(0.05, kLongParamsDecay, kLongExpAvgDecay, kLongExpAvgSqDecay);
}

// After step 1, m_hat = g and v_hat = g^2, so the update is -lr * g / (|g| + eps): -lr*sign(g)
// when |g| >> eps, and exactly half of that when |g| = eps.
TEST(Adam, FirstStepIsLrTimesSignOfGradient) {
  const double lr = 0.01;
  std::vector<float> g = to_float({3.0, -0.5, 1e-3, -1e-5, 1e-8, -1e-8, 0.0});
  std::vector<float> p(g.size(), 1.0f);
  vd::Adam adam(g.size(), vd::AdamConfig{});
  adam.step(p, g, lr);
  for (size_t i = 0; i < g.size(); ++i) {
    const double gd = g[i];
    const double expected = 1.0 - lr * gd / (std::fabs(gd) + 1e-8);
    EXPECT_NEAR(p[i], expected, 2e-7) << "g = " << gd;
  }
  EXPECT_NEAR(p[0], 1.0 - lr, 2e-7);
  EXPECT_NEAR(p[1], 1.0 + lr, 2e-7);
  EXPECT_NEAR(p[4], 1.0 - lr / 2, 2e-7);
  EXPECT_EQ(p[6], 1.0f);
}

TEST(Adam, ZeroGradientKeepsParametersUnchanged) {
  vd::Rng rng(3);
  std::vector<float> p(1000);
  rng.fill_normal(p.data(), p.size());
  const std::vector<float> before = p;
  const std::vector<float> zero(p.size(), 0.0f);
  vd::Adam adam(p.size(), vd::AdamConfig{});
  for (int s = 0; s < 10; ++s) adam.step(p, zero, 1e-3);
  EXPECT_EQ(p, before);
  EXPECT_EQ(adam.steps(), 10);
}

// The kernel is vectorised (and compiled in several ISA clones); its result must equal the
// plain scalar formula bit for bit, including the loop tail.
TEST(Adam, VectorLoopMatchesScalarFormulaBitwise) {
  const size_t n = 100003;
  vd::Rng rng(11);
  std::vector<float> p(n), g(n);
  rng.fill_normal(p.data(), n);
  vd::AdamConfig cfg;
  cfg.weight_decay = 0.01;
  vd::Adam adam(n, cfg);
  std::vector<float> rp = p, rm(n, 0.0f), rv(n, 0.0f);
  for (int t = 1; t <= 20; ++t) {
    rng.fill_normal(g.data(), n);
    const double lr = 1e-3 / t;
    adam.step(p, g, lr);
    const double bc1 = 1.0 - std::pow(0.9, t), bc2 = 1.0 - std::pow(0.999, t);
    const float neg_ss = static_cast<float>(-(lr / bc1));
    const float bc2s = static_cast<float>(std::sqrt(bc2));
    for (size_t i = 0; i < n; ++i) {
      const float gi = std::fma(rp[i], 0.01f, g[i]);
      rm[i] = std::fma(gi, static_cast<float>(1.0 - 0.9), rm[i] * 0.9f);
      rv[i] = std::fma(static_cast<float>(1.0 - 0.999) * gi, gi, rv[i] * 0.999f);
      const float denom = std::sqrt(rv[i]) / bc2s + 1e-8f;
      rp[i] = rp[i] + (neg_ss * rm[i]) / denom;
    }
  }
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += p[i] != rp[i] || adam.exp_avg()[i] != rm[i];
  EXPECT_EQ(bad, 0u);
}

TEST(Adam, RestoringStateContinuesIdentically) {
  const size_t n = 257;
  vd::Rng rng(5);
  std::vector<float> p(n), g(n);
  rng.fill_normal(p.data(), n);
  vd::Adam a(n, vd::AdamConfig{});
  for (int s = 0; s < 7; ++s) {
    rng.fill_normal(g.data(), n);
    a.step(p, g, 1e-3);
  }
  // "Checkpoint" a into b, then step both with the same gradients.
  vd::Adam b(n, a.config());
  std::copy(a.exp_avg().begin(), a.exp_avg().end(), b.exp_avg().begin());
  std::copy(a.exp_avg_sq().begin(), a.exp_avg_sq().end(), b.exp_avg_sq().begin());
  b.set_steps(a.steps());
  std::vector<float> q = p;
  for (int s = 0; s < 5; ++s) {
    rng.fill_normal(g.data(), n);
    a.step(p, g, 1e-3);
    b.step(q, g, 1e-3);
  }
  EXPECT_EQ(p, q);
  EXPECT_EQ(b.steps(), 12);
}

TEST(Adam, RejectsBadSizesAndConfig) {
  vd::Adam adam(4, vd::AdamConfig{});
  std::vector<float> p(4), g(3);
  EXPECT_THROW(adam.step(p, g, 1e-3), vd::ShapeError);
  std::vector<float> p5(5), g5(5);
  EXPECT_THROW(adam.step(p5, g5, 1e-3), vd::ShapeError);
  EXPECT_EQ(adam.steps(), 0);
  vd::AdamConfig bad;
  bad.beta1 = 1.0;
  EXPECT_THROW(vd::Adam(4, bad), vd::ConfigError);
  bad = vd::AdamConfig{};
  bad.eps = -1.0;
  EXPECT_THROW(vd::Adam(4, bad), vd::ConfigError);
  EXPECT_THROW(adam.set_steps(-1), vd::ConfigError);
}

}  // namespace
