// Tests of vd::Vae against an independent double-precision reference of the whole model
// (tests/support/reference_vae.hpp): loss values and every parameter's gradient by central
// finite differences (eps held fixed) for MLP, convolutional and conditional models;
// evaluation, the empty batch, the importance-weighted bound, and shape errors.
#include "vae/model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "support/gradcheck.hpp"
#include "support/reference_vae.hpp"
#include "support/vae_fixture.hpp"

namespace {

using vd::Likelihood;

vd::ModelConfig mlp(Likelihood lik, std::vector<int> hidden) {
  vd::ModelConfig c = vd::ModelConfig::mlp(12, std::move(hidden), 3);
  c.likelihood = lik;
  c.gaussian_sigma = 0.7f;
  return c;
}

// A small conv VAE of the Fashion-MNIST model's form: 1x8x8 -> conv -> conv -> fc -> heads;
// fc -> fc -> reshape -> convt -> convt -> 1x8x8.
vd::ModelConfig conv(Likelihood lik, int channels = 1) {
  vd::ModelConfig c;
  c.data = vd::Shape{channels, 8, 8};
  c.latent_dim = 3;
  c.encoder = "conv 3 k4 s2 p1, relu, conv 4 k3 s1 p1, relu, flatten, fc 6, relu";
  c.decoder = "fc 6, relu, fc 16, relu, reshape 4x2x2, convt 3 k4 s2 p1, relu, convt " +
              std::to_string(channels) + " k4 s2 p1";
  c.likelihood = lik;
  c.gaussian_sigma = 0.7f;
  return c;
}

using Fixture = vd::testing::VaeFixture;

void check_gradients(vd::ModelConfig cfg) {
  Fixture f(std::move(cfg), 5);
  const double beta = 0.7;
  const vd::LossSums sums = f.vae->train_step(f.ctx, f.batch(), beta, 1.0f / f.B);
  vd::testing::ReferenceVae ref{*f.vae, f.store};
  std::vector<double> p = f.params_double();
  const int samples = f.cfg.iw_train_samples;
  const auto ref_loss_of = [&](const std::vector<double>& q) {
    return samples > 1 ? ref.iw_loss(q, f.B, f.x.data(), f.labels.data(), f.eps.data(), samples)
                       : ref.loss(q, f.B, f.x.data(), f.labels.data(), f.eps.data(), beta);
  };
  const double ref_loss = ref_loss_of(p);
  EXPECT_NEAR(sums.loss / f.B, ref_loss, 1e-5 * std::abs(ref_loss));
  EXPECT_EQ(sums.count, f.B);
  if (samples == 1) {
    EXPECT_NEAR(sums.loss, sums.term[vd::Vae::kRecon] + beta * sums.term[vd::Vae::kKl],
                1e-9 * std::abs(sums.loss));
  } else {
    EXPECT_LE(sums.loss, sums.term[vd::Vae::kRecon] +
                             sums.term[vd::Vae::kKl]);  // the bound is tighter than the ELBO
  }

  const auto grads = f.store.grads();
  const std::vector<double> fd = vd::testing::numeric_gradient(ref_loss_of, p);
  double gmax = 0;
  for (double g : fd) gmax = std::max(gmax, std::abs(g));
  ASSERT_GT(gmax, 1e-3);
  size_t bad = 0;
  for (const auto& e : f.store.entries()) {
    double emax = 0;  // every tensor must carry gradient, or the test would prove nothing
    for (size_t k = 0; k < e.size; ++k) {
      const size_t i = e.offset + k;
      emax = std::max(emax, std::abs(fd[i]));
      const double tol = 2e-3 * std::abs(fd[i]) + 2e-5 * gmax;
      if (std::abs(grads[i] - fd[i]) > tol && bad++ < 10)
        ADD_FAILURE() << e.name << "[" << k << "]: analytic " << grads[i] << " vs finite "
                      << "difference " << fd[i];
    }
    // An attention's key bias adds q . b_k to every score of a row, which the softmax ignores:
    // its gradient is zero in exact arithmetic (checked against that above).
    const bool zero_by_design = e.name.ends_with(".to_k.bias");
    if (!zero_by_design) {
      EXPECT_GT(emax, 0.0) << e.name << " gets no gradient at all";
    }
  }
  EXPECT_EQ(bad, 0u);
}

// --gaussian-sigma learned / learned-per-output: the decoder's log-variance is one more
// parameter, and its gradient (and everyone else's) matches finite differences.
TEST(Vae, LearnedDecoderVarianceGradientMatchesFiniteDifferences) {
  for (const auto v : {vd::ModelConfig::OutputVariance::Learned,
                       vd::ModelConfig::OutputVariance::LearnedPerOutput}) {
    vd::ModelConfig c = mlp(Likelihood::Gaussian, {7});
    c.output_variance = v;
    check_gradients(c);
  }
  vd::ModelConfig c = conv(Likelihood::Gaussian);
  c.output_variance = vd::ModelConfig::OutputVariance::LearnedPerOutput;
  check_gradients(c);
}

TEST(Vae, LearnedDecoderVarianceIsAParameterOfTheDataShapeStartingAtZero) {
  vd::ModelConfig c = conv(Likelihood::Gaussian);
  c.output_variance = vd::ModelConfig::OutputVariance::LearnedPerOutput;
  vd::ParamStore store;
  vd::Vae vae(c, store);
  store.finalize();
  vd::Rng rng(1);
  vae.init(rng);
  const auto& e = store.find("decoder.out_logvar");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{1, 8, 8}));
  for (size_t k = 0; k < e.size; ++k) EXPECT_EQ(store.param(store.index_of(e.name))[k], 0.0f);
  c.output_variance = vd::ModelConfig::OutputVariance::Learned;
  vd::ParamStore one;
  vd::Vae global(c, one);
  EXPECT_EQ(one.find("decoder.out_logvar").shape, (std::vector<int64_t>{1}));
  // Fixed: no such parameter; the Bernoulli likelihood has none either.
  c.output_variance = vd::ModelConfig::OutputVariance::Fixed;
  vd::ParamStore none;
  vd::Vae fixed(c, none);
  EXPECT_THROW(none.find("decoder.out_logvar"), vd::ShapeError);
}

// --train-iw-samples k: the importance-weighted bound's gradient matches finite differences of
// a double-precision reference of the bound, for Bernoulli, Gaussian (with a learned variance)
// and conditional conv models.
TEST(Vae, ImportanceWeightedTrainingGradientMatchesFiniteDifferences) {
  vd::ModelConfig m = mlp(Likelihood::Bernoulli, {7});
  m.iw_train_samples = 3;
  check_gradients(m);
  vd::ModelConfig g = mlp(Likelihood::Gaussian, {7});
  g.iw_train_samples = 4;
  g.output_variance = vd::ModelConfig::OutputVariance::LearnedPerOutput;
  check_gradients(g);
  vd::ModelConfig c = conv(Likelihood::Bernoulli);
  c.classes = 3;
  c.iw_train_samples = 2;
  check_gradients(c);
}

// k = 1 is the VAE's objective (analytic KL) bit for bit: the same loss and gradients.
TEST(Vae, ImportanceWeightedTrainingWithOneSampleIsTheVae) {
  vd::ModelConfig a = mlp(Likelihood::Bernoulli, {7});
  vd::ModelConfig b = a;
  b.iw_train_samples = 1;
  Fixture fa(a, 5), fb(b, 5);
  const vd::LossSums sa = fa.vae->train_step(fa.ctx, fa.batch(), 1.0f, 0.2f);
  const vd::LossSums sb = fb.vae->train_step(fb.ctx, fb.batch(), 1.0f, 0.2f);
  EXPECT_EQ(sa.loss, sb.loss);
  EXPECT_EQ(fa.grads(), fb.grads());
}

TEST(Vae, BernoulliLossGradientMatchesFiniteDifferencesForEveryParameter) {
  check_gradients(mlp(Likelihood::Bernoulli, {7}));
}

TEST(Vae, GaussianLossGradientMatchesFiniteDifferencesWithTwoHiddenLayers) {
  check_gradients(mlp(Likelihood::Gaussian, {9, 6}));
}

TEST(Vae, ConvolutionalModelGradientMatchesFiniteDifferencesForEveryParameter) {
  check_gradients(conv(Likelihood::Bernoulli));
}

TEST(Vae, RgbConvolutionalGaussianModelGradientMatchesFiniteDifferences) {
  vd::ModelConfig c = conv(Likelihood::Gaussian, 3);
  // 7x7 needs an output padding on the way back: 7 -> 4 -> 7 (op0) and a standalone relu.
  c.data = vd::Shape{3, 7, 7};
  c.encoder = "conv 4 k3 s2 p1, relu, fc 5";
  c.decoder = "fc 64, reshape 4x4x4, relu, convt 3 k3 s2 p1";
  check_gradients(c);
}

TEST(Vae, TransposedConvolutionWithOutputPaddingMatchesFiniteDifferences) {
  vd::ModelConfig c = conv(Likelihood::Bernoulli);
  c.data = vd::Shape{1, 6, 6};
  c.encoder = "conv 2 k3 s2 p1, relu";  // 6 -> 3; flatten before the heads is implied
  c.encoder += ", flatten";
  c.decoder = "fc 18, reshape 2x3x3, convt 1 k3 s2 p1 op1";  // 3 -> 6
  check_gradients(c);
}

TEST(Vae, ConditionalMlpGradientMatchesFiniteDifferences) {
  vd::ModelConfig c = mlp(Likelihood::Bernoulli, {7});
  c.classes = 3;
  check_gradients(c);
}

TEST(Vae, ConditionalConvolutionalGradientMatchesFiniteDifferences) {
  vd::ModelConfig c = conv(Likelihood::Bernoulli);
  c.classes = 4;
  check_gradients(c);
}

// A spatial latent (AutoencoderKL's form): conv heads give 2x4x4 mean and log-variance maps,
// the decoder starts from the 2x4x4 map; GroupNorm, SiLU, a ResnetBlock and up-sampling.
vd::ModelConfig spatial() {
  vd::ModelConfig c;
  c.data = vd::Shape{3, 8, 8};
  c.latent = vd::Shape{2, 4, 4};
  c.latent_dim = 32;
  c.encoder = "conv 4 k3 s2 p1, gn 2, silu";
  c.decoder = "conv 4 k3 p1, res 4 g2, up 2, conv 3 k3 p1";
  c.likelihood = Likelihood::Gaussian;
  c.gaussian_sigma = 0.7f;
  return c;
}

TEST(Vae, SpatialLatentModelGradientMatchesFiniteDifferences) {
  check_gradients(spatial());
}

TEST(Vae, BlocksAttentionAndEveryActivationInOneModelMatchFiniteDifferences) {
  vd::ModelConfig c = spatial();
  c.likelihood = Likelihood::Bernoulli;
  c.encoder = "conv 4 k3 s2 p1, res(gn 2, gelu, conv 4 k3 p1), attn g2, leakyrelu 0.2";
  c.decoder = "conv 4 k3 p1, tanh, attn g4, up 2, res(conv 4 k3 p1, sigmoid), conv 3 k3 p1";
  check_gradients(c);
}

// Signals [C, L]: a flat latent behind convolutions, and a spatial one (a 2x4 latent signal)
// behind blocks, attention and up-sampling.
TEST(Vae, SignalModelsMatchFiniteDifferences) {
  vd::ModelConfig c = conv(Likelihood::Gaussian, 2);
  c.data = vd::Shape::signal(2, 16);
  c.encoder = "conv 3 k4 s2 p1, relu, conv 4 k3 s2 p1, relu, flatten, fc 6, relu";
  c.decoder = "fc 16, relu, reshape 4x4, convt 3 k4 s2 p1, relu, convt 2 k4 s2 p1";
  check_gradients(c);
  c = spatial();
  c.data = vd::Shape::signal(3, 8);
  c.latent = vd::Shape::signal(2, 4);
  c.latent_dim = 8;
  c.encoder = "conv 4 k3 s2 p1, res 4 g2, attn g2, silu";
  c.decoder = "conv 4 k3 p1, attn g4, up 2, res(gn 2, silu, conv 4 k3 p1), conv 3 k3 p1";
  check_gradients(c);
}

// Volumes [C, D, H, W]: the same two forms in 3-D, with a 2x2x2x2 latent volume.
TEST(Vae, VolumeModelsMatchFiniteDifferences) {
  vd::ModelConfig c = conv(Likelihood::Bernoulli);
  c.data = vd::Shape::volume(1, 4, 4, 4);
  c.encoder = "conv 3 k4 s2 p1, relu, flatten, fc 6, relu";
  c.decoder = "fc 24, relu, reshape 3x2x2x2, convt 1 k4 s2 p1";
  check_gradients(c);
  c = spatial();
  c.data = vd::Shape::volume(2, 4, 4, 4);
  c.latent = vd::Shape::volume(2, 2, 2, 2);
  c.latent_dim = 16;
  c.encoder = "conv 4 k3 s2 p1, res 4 g2, attn g2";
  c.decoder = "conv 4 k3 p1, attn g4, up 2, res 4 g2, conv 2 k3 p1";
  check_gradients(c);
}

TEST(Vae, SpatialLatentHeadsAreConvolutionsAndTheEncoderMustGiveTheMap) {
  Fixture f(spatial(), 2);
  EXPECT_EQ(f.store.find("encoder.mu.weight").shape, (std::vector<int64_t>{2, 4, 3, 3}));
  EXPECT_EQ(f.store.find("encoder.logvar.weight").shape, (std::vector<int64_t>{2, 4, 3, 3}));
  EXPECT_EQ(f.vae->decoder().in_shape(), (vd::Shape{2, 4, 4}));
  vd::ModelConfig c = spatial();
  c.encoder = "conv 4 k3 p1";  // 8x8, not the latent's 4x4
  vd::ParamStore store;
  try {
    vd::Vae vae(c, store);
    ADD_FAILURE() << "no error";
  } catch (const vd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("encoder: it ends in 4x8x8 per sample, but the latent "
                                         "2x4x4 needs a map of 4x4"),
              std::string::npos)
        << e.what();
  }
}

TEST(Vae, ConditionalModelFeedsTheLabelToBothNetworks) {
  vd::ModelConfig c = mlp(Likelihood::Bernoulli, {7});
  c.classes = 3;
  Fixture f(c, 2);
  // The first fc layers read data + 3 one-hot entries (encoder) and z + 3 (decoder).
  EXPECT_EQ(f.store.find("encoder.fc1.weight").shape, (std::vector<int64_t>{7, 15}));
  EXPECT_EQ(f.store.find("decoder.fc1.weight").shape, (std::vector<int64_t>{7, 6}));
  std::vector<float> z(6, 0.3f), a(24), b(24);
  const int32_t y0[2] = {0, 0}, y1[2] = {1, 2};
  f.vae->decode_mean(f.ctx, 2, z.data(), y0, a.data());
  f.vae->decode_mean(f.ctx, 2, z.data(), y1, b.data());
  EXPECT_NE(a, b);
  const int32_t bad[2] = {0, 3};
  EXPECT_THROW(f.vae->decode_mean(f.ctx, 2, z.data(), bad, a.data()), vd::DataError);
  EXPECT_THROW(f.vae->decode_mean(f.ctx, 2, z.data(), nullptr, a.data()), vd::DataError);
}

TEST(Vae, ConvolutionWeightsUsePyTorchNamesAndLayouts) {
  Fixture f(conv(Likelihood::Bernoulli), 2);
  // Conv2d [out, in, kh, kw]; ConvTranspose2d [in, out, kh, kw].
  EXPECT_EQ(f.store.find("encoder.conv1.weight").shape, (std::vector<int64_t>{3, 1, 4, 4}));
  EXPECT_EQ(f.store.find("encoder.conv2.weight").shape, (std::vector<int64_t>{4, 3, 3, 3}));
  EXPECT_EQ(f.store.find("encoder.fc1.weight").shape, (std::vector<int64_t>{6, 4 * 4 * 4}));
  EXPECT_EQ(f.store.find("decoder.convt1.weight").shape, (std::vector<int64_t>{4, 3, 4, 4}));
  EXPECT_EQ(f.store.find("decoder.out.weight").shape, (std::vector<int64_t>{3, 1, 4, 4}));
  EXPECT_EQ(f.store.find("decoder.out.bias").shape, (std::vector<int64_t>{1}));
}

TEST(Vae, ShapeErrorsNameTheLayerAndBothShapes) {
  vd::ParamStore store;
  vd::ModelConfig c = conv(Likelihood::Bernoulli);
  c.data = vd::Shape{1, 10, 10};  // the decoder still ends in 1x8x8
  try {
    vd::Vae vae(c, store);
    ADD_FAILURE() << "no error";
  } catch (const vd::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("decoder.out"), std::string::npos) << m;
    EXPECT_NE(m.find("1x8x8"), std::string::npos) << m;
    EXPECT_NE(m.find("1x10x10"), std::string::npos) << m;
  }
  vd::ParamStore store2;
  c = conv(Likelihood::Bernoulli);
  c.decoder = "fc 6, reshape 4x2x2";  // 6 values cannot become 16
  try {
    vd::Vae vae(c, store2);
    ADD_FAILURE() << "no error";
  } catch (const vd::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("reshape 4x2x2"), std::string::npos) << m;
    EXPECT_NE(m.find("cannot turn 6 (6 values) into 4x2x2 (16 values)"), std::string::npos) << m;
  }
  vd::ParamStore store3;
  c = conv(Likelihood::Bernoulli);
  c.encoder = "conv 3 k9";  // a 9x9 kernel on 8x8
  EXPECT_THROW(vd::Vae(c, store3), vd::ConfigError);
}

TEST(Vae, EvaluateEqualsTheTrainingForwardPass) {
  for (const vd::ModelConfig& c : {mlp(Likelihood::Bernoulli, {8}), conv(Likelihood::Bernoulli)}) {
    Fixture f(c, 6);
    const vd::LossSums e = f.vae->evaluate(f.ctx, f.batch(), 1.0f);
    const vd::LossSums t = f.vae->train_step(f.ctx, f.batch(), 1.0f, 1.0f);
    EXPECT_DOUBLE_EQ(e.loss, t.loss);
    EXPECT_DOUBLE_EQ(e.term[vd::Vae::kRecon], t.term[vd::Vae::kRecon]);
    EXPECT_DOUBLE_EQ(e.term[vd::Vae::kKl], t.term[vd::Vae::kKl]);
  }
}

TEST(Vae, EmptyBatchGivesZeroGradientsAndNoLoss) {
  Fixture f(mlp(Likelihood::Bernoulli, {8}), 4);
  f.vae->train_step(f.ctx, f.batch(), 1.0f, 1.0f);
  vd::Batch empty = f.batch();
  empty.n = 0;
  const vd::LossSums s = f.vae->train_step(f.ctx, empty, 1.0f, 1.0f);
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.loss, 0.0);
  for (float g : f.store.grads()) ASSERT_EQ(g, 0.0f);
}

TEST(Vae, ImportanceWeightedBoundMatchesReferenceAndTightensWithK) {
  for (const vd::ModelConfig& c : {mlp(Likelihood::Bernoulli, {8}), conv(Likelihood::Bernoulli)}) {
    Fixture f(c, 3);
    vd::testing::ReferenceVae ref{*f.vae, f.store};
    const auto p = f.params_double();
    const int k = 4, L = f.cfg.latent_dim, D = static_cast<int>(f.cfg.data.size());
    vd::Rng rng(77), replay(77);
    const double got = f.vae->iw_log_likelihood_sum(f.ctx, f.batch(), k, rng);

    // The same draws, in the same order: k rounds of [B, L] normals.
    std::vector<std::vector<float>> eps(k, std::vector<float>(static_cast<size_t>(f.B) * L));
    for (auto& e : eps) replay.fill_normal(e.data(), e.size());
    double expected = 0;
    for (int b = 0; b < f.B; ++b) {
      const float* xb = f.x.data() + static_cast<size_t>(b) * D;
      std::vector<double> logw;
      for (int s = 0; s < k; ++s) {
        const auto smp = ref.forward(p, xb, eps[s].data() + static_cast<size_t>(b) * L, 0);
        double log_p_z = 0, log_q = 0;
        for (int j = 0; j < L; ++j) {
          const double z = smp.z[j], m = smp.mu[j], lv = smp.logvar[j];
          log_p_z += -0.5 * (z * z + std::log(2 * std::numbers::pi));
          log_q += -0.5 * ((z - m) * (z - m) / std::exp(lv) + lv + std::log(2 * std::numbers::pi));
        }
        logw.push_back(-ref.recon(smp, xb) + log_p_z - log_q);
      }
      const double mx = *std::max_element(logw.begin(), logw.end());
      double acc = 0;
      for (double w : logw) acc += std::exp(w - mx);
      expected += mx + std::log(acc / k);
    }
    EXPECT_NEAR(got, expected, 1e-4 * std::abs(expected));

    // On average over draws the bound rises with k (Burda et al., Theorem 1).
    vd::Rng r1(1), r50(2);
    double k1 = 0, k50 = 0;
    for (int rep = 0; rep < 20; ++rep) {
      k1 += f.vae->iw_log_likelihood_sum(f.ctx, f.batch(), 1, r1);
      k50 += f.vae->iw_log_likelihood_sum(f.ctx, f.batch(), 50, r50);
    }
    EXPECT_GT(k50, k1);
  }
}

}  // namespace
