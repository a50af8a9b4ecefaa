// Tests of vd::Ema: bit-for-bit agreement with torch 1.13's AveragedModel under the EMA
// averaging function, a double-precision scalar recurrence, pieces against one pass, errors.
#include "optim/ema.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace {

// Generated once with Debian's python3-torch 1.13 (/usr/bin/python3):
//
// import torch
// class M(torch.nn.Module):
//     def __init__(self, init):
//         super().__init__()
//         self.w = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))
// init = [0.5, -1.25, 3.0e-3, 7.0, -0.333, 1e-7]
// steps = [[0.51, -1.2, 2.9e-3, 6.9, -0.3, 2e-7], [0.49, -1.3, 3.1e-3, 7.1, -0.35, -1e-7],
//          [0.52, -1.1, 2.0e-3, 6.5, -0.31, 5e-7], [0.47, -1.4, 4.0e-3, 7.7, -0.4, 0.0],
//          [0.55, -1.0, 1.0e-3, 6.0, -0.2, 3e-7]]
// for decay in (0.9, 0.999):
//     m = M(init)
//     ema = torch.optim.swa_utils.AveragedModel(
//         m, avg_fn=lambda avg, p, n: decay * avg + (1 - decay) * p)
//     for s in steps:
//         with torch.no_grad():
//             m.w.copy_(torch.tensor(s, dtype=torch.float32))
//         ema.update_parameters(m)
//         print(decay, [float(x).hex() for x in ema.module.w.detach()])
const double kInit[6] = {0.5, -1.25, 3.0e-3, 7.0, -0.333, 1e-7};
const double kSteps[5][6] = {{0.51, -1.2, 2.9e-3, 6.9, -0.3, 2e-7},
                             {0.49, -1.3, 3.1e-3, 7.1, -0.35, -1e-7},
                             {0.52, -1.1, 2.0e-3, 6.5, -0.31, 5e-7},
                             {0.47, -1.4, 4.0e-3, 7.7, -0.4, 0.0},
                             {0.55, -1.0, 1.0e-3, 6.0, -0.2, 3e-7}};
const float kTorch09[5][6] = {{0x1.051eb8p-1f, -0x1.333334p+0f, 0x1.7c1bdap-9f, 0x1.b9999ap+2f,
                               -0x1.333334p-2f, 0x1.ad7f2ap-23f},
                              {0x1.041894p-1f, -0x1.35c29p+0f, 0x1.7ebafp-9f, 0x1.bae148p+2f,
                               -0x1.3851ecp-2f, 0x1.6d127ep-23f},
                              {0x1.04b5dcp-1f, -0x1.32f1aap+0f, 0x1.72abecp-9f, 0x1.b83126p+2f,
                               -0x1.38d4fep-2f, 0x1.b3f06ep-23f},
                              {0x1.02b40ep-1f, -0x1.3816fp+0f, 0x1.82088p-9f, 0x1.bd73eap+2f,
                               -0x1.42824p-2f, 0x1.885862p-23f},
                              {0x1.04fe34p-1f, -0x1.327b0cp+0f, 0x1.68897ep-9f, 0x1.b74eb8p+2f,
                               -0x1.36bce8p-2f, 0x1.a18904p-23f}};
const float kTorch0999[5][6] = {{0x1.051eb8p-1f, -0x1.333334p+0f, 0x1.7c1bdap-9f, 0x1.b9999ap+2f,
                                 -0x1.333334p-2f, 0x1.ad7f2ap-23f},
                                {0x1.051c1ap-1f, -0x1.3339c2p+0f, 0x1.7c229p-9f, 0x1.b99ce2p+2f,
                                 -0x1.33405p-2f, 0x1.acda3cp-23f},
                                {0x1.051d6ap-1f, -0x1.333332p+0f, 0x1.7c045cp-9f, 0x1.b99652p+2f,
                                 -0x1.3342ecp-2f, 0x1.ad7f54p-23f},
                                {0x1.05182cp-1f, -0x1.33404ep+0f, 0x1.7c294cp-9f, 0x1.b9a36ep+2f,
                                 -0x1.335d2p-2f, 0x1.ad116p-23f},
                                {0x1.051d6cp-1f, -0x1.33333p+0f, 0x1.7be988p-9f, 0x1.b994aep+2f,
                                 -0x1.3342dep-2f, 0x1.ad4876p-23f}};

// With warm-up (decay 0.9), the same script with
//     def fn(avg, p, n):
//         d = min(decay, (1 + float(n)) / (10 + float(n)))
//         return d * avg + (1 - d) * p
//     ema = torch.optim.swa_utils.AveragedModel(m, avg_fn=fn)
const float kTorchWarmup09[5][6] = {{0x1.051eb8p-1f, -0x1.333334p+0f, 0x1.7c1bdap-9f,
                                     0x1.b9999ap+2f, -0x1.333334p-2f, 0x1.ad7f2ap-23f},
                                    {0x1.f97bdp-2f, -0x1.48253cp+0f, 0x1.918e94p-9f, 0x1.c4129cp+2f,
                                     -0x1.5d1746p-2f, -0x1.867398p-25f},
                                    {0x1.06dd8ep-1f, -0x1.253c84p+0f, 0x1.28ff4cp-9f,
                                     0x1.a904a8p+2f, -0x1.455a4cp-2f, 0x1.86739cp-22f},
                                    {0x1.eef50cp-2f, -0x1.525984p+0f, 0x1.c65a38p-9f,
                                     0x1.d7f1acp+2f, -0x1.7fad84p-2f, 0x1.e08e4cp-24f},
                                    {0x1.0d69eep-1f, -0x1.1d691cp+0f, 0x1.ed0fp-10f, 0x1.9f6898p+2f,
                                     -0x1.0caf58p-2f, 0x1.f3f89ap-23f}};

std::vector<float> to_float(const double (&v)[6]) {
  return std::vector<float>(std::begin(v), std::end(v));
}

void expect_torch(double decay, const float (&expected)[5][6], bool warmup = false) {
  vd::Ema ema(6, decay, warmup);
  ema.reset(to_float(kInit));
  for (int s = 0; s < 5; ++s) {
    const std::vector<float> p = to_float(kSteps[s]);
    ema.begin_update();
    ema.apply(p, 0, p.size());
    for (int i = 0; i < 6; ++i)
      EXPECT_EQ(ema.values()[i], expected[s][i])
          << "decay " << decay << " update " << s + 1 << " element " << i;
  }
  EXPECT_EQ(ema.updates(), 5);
}

TEST(Ema, MatchesTorchAveragedModelBitForBit) {
  expect_torch(0.9, kTorch09);
  expect_torch(0.999, kTorch0999);
  expect_torch(0.9, kTorchWarmup09, true);
}

TEST(Ema, WarmupDecayIsDiffusersScheduleCappedByTheDecay) {
  vd::Ema ema(1, 0.999, true);
  EXPECT_DOUBLE_EQ(ema.decay_at(2), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(ema.decay_at(91), 0.91);
  EXPECT_DOUBLE_EQ(ema.decay_at(8991), 0.999);
  EXPECT_DOUBLE_EQ(ema.decay_at(100000), 0.999);
  ema.set_warmup(false);
  EXPECT_DOUBLE_EQ(ema.decay_at(2), 0.999);
}

TEST(Ema, BeforeAnyUpdateItIsTheInitialParameters) {
  vd::Ema ema(6, 0.99);
  ema.reset(to_float(kInit));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ema.values()[i], static_cast<float>(kInit[i]));
  EXPECT_EQ(ema.updates(), 0);
}

// The same recurrence in double, over many updates of random parameters: float32 rounding is
// the only difference (each update adds at most ~1 ulp of relative error, and the decay damps
// earlier errors).
TEST(Ema, FollowsTheScalarRecurrenceInDouble) {
  const size_t n = 1000;
  const double decay = 0.99;
  vd::Rng rng(7);
  std::vector<float> p(n);
  rng.fill_normal(p.data(), n);
  vd::Ema ema(n, decay);
  ema.reset(p);
  std::vector<double> ref(p.begin(), p.end());
  for (int u = 1; u <= 2000; ++u) {
    rng.fill_normal(p.data(), n);
    for (float& v : p) v = 1.0f + 0.1f * v;  // a parameter moving around 1
    ema.begin_update();
    ema.apply(p, 0, n);
    for (size_t i = 0; i < n; ++i)
      ref[i] = u == 1 ? p[i] : decay * ref[i] + (1.0 - decay) * static_cast<double>(p[i]);
  }
  double worst = 0;
  for (size_t i = 0; i < n; ++i)
    worst = std::max(worst, std::abs(ema.values()[i] - ref[i]) / std::abs(ref[i]));
  EXPECT_LT(worst, 2e-6);
  EXPECT_GT(worst, 0.0);  // float32, not a copy of the double answer
}

// Pieces in any order (one rank's slice, buckets as their sums arrive) give the same bits as
// one pass over all the parameters.
TEST(Ema, PiecesInAnyOrderEqualOnePass) {
  const size_t n = 517;
  vd::Rng rng(3);
  std::vector<float> p(n);
  rng.fill_normal(p.data(), n);
  vd::Ema whole(n, 0.95), pieces(n, 0.95);
  whole.reset(p);
  pieces.reset(p);
  for (int u = 0; u < 4; ++u) {
    rng.fill_normal(p.data(), n);
    whole.begin_update();
    whole.apply(p, 0, n);
    pieces.begin_update();
    pieces.apply(p, 300, n);
    pieces.apply(p, 0, 17);
    pieces.apply(p, 17, 300);
  }
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(whole.values()[i], pieces.values()[i]) << i;
}

TEST(Ema, ExternalMemoryHoldsTheAverageAndGivesItBack) {
  vd::Ema ema(6, 0.5);
  ema.reset(to_float(kInit));
  std::vector<float> shared(6, -9.0f);
  ema.use_external(shared.data());
  EXPECT_EQ(shared[3], 7.0f);
  const std::vector<float> p(6, 1.0f);
  ema.begin_update();
  ema.apply(p, 0, 6);  // the first update copies
  ema.begin_update();
  ema.apply(p, 0, 6);
  EXPECT_EQ(shared[3], 1.0f);
  ema.use_external(nullptr);
  EXPECT_EQ(ema.values()[3], 1.0f);
}

TEST(Ema, RefusesADecayOutsideZeroToOneAndMisuse) {
  for (double d : {0.0, 1.0, -0.5, 1.5, std::nan("")})
    EXPECT_THROW(vd::Ema(4, d), vd::ConfigError) << d;
  vd::Ema ema(4, 0.9);
  const std::vector<float> p(4, 0.0f), short_p(3, 0.0f);
  EXPECT_THROW(ema.apply(p, 0, 4), vd::Error);  // no begin_update()
  ema.begin_update();
  EXPECT_THROW(ema.apply(p, 2, 5), vd::ShapeError);
  EXPECT_THROW(ema.apply(short_p, 0, 3), vd::ShapeError);
  EXPECT_THROW(ema.reset(short_p), vd::ShapeError);
  EXPECT_THROW(ema.set_updates(-1), vd::ConfigError);
  EXPECT_STREQ(vd::weights_name(vd::Weights::Ema), "ema");
  EXPECT_STREQ(vd::weights_name(vd::Weights::Raw), "raw");
}

}  // namespace
