// Every shipped configs/*.cfg file parses and builds its model, and the named experiments hold
// their settings.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "config/options.hpp"
#include "core/error.hpp"
#include "nn/param_store.hpp"
#include "train/model_config.hpp"
#include "vae/model.hpp"
#include "vae/models.hpp"

namespace {

namespace fs = std::filesystem;

vd::Options parse_config(const std::string& path) {
  const char* argv[] = {"vae_dist", "--config", path.c_str()};
  return vd::parse_options(3, argv).options;
}

std::string config_path(const std::string& name) {
  return (fs::path(VD_SOURCE_DIR) / "configs" / name).string();
}

// Every config in configs/ builds its model for the data its comment makes, with the parameter
// count of the same model counted by hand (MLPs) or in PyTorch (tests/reference/config_vae.py,
// tests/reference/pytorch_vae.py). A new config must be added here.
TEST(Configs, EveryConfigFileBuildsItsModel) {
  struct Case {
    vd::Shape data;
    int classes;
    size_t parameters;
  };
  const std::map<std::string, Case> cases = {
      // 784-400-20: (784*400+400) + 2*(400*20+20) + (20*400+400) + (400*784+784)
      {"fashion_mlp.cfg", {vd::Shape{1, 28, 28}, 0, 652824}},
      {"fashion_conv.cfg", {vd::Shape{1, 28, 28}, 0, 1691369}},
      // The MLP with the one-hot label of 10 classes at fc1 and fc3: + 10*400 + 10*400.
      {"fashion_cvae.cfg", {vd::Shape{1, 28, 28}, 10, 660824}},
      {"fashion_iwae.cfg", {vd::Shape{1, 28, 28}, 0, 652824}},  // fashion_mlp's networks
      // 784-400-10: (784*400+400) + 2*(400*10+10) + (10*400+400) + (400*784+784)
      {"fashion_btcvae.cfg", {vd::Shape{1, 28, 28}, 0, 640804}},
      // 784-128-8: (784*128+128) + 2*(128*8+8) + (8*128+128) + (128*784+784)
      {"smoke.cfg", {vd::Shape{1, 28, 28}, 0, 204832}},
      // 32-128-64-8 and back: 4224 + 8256 + 2*520 + 576 + 8320 + 4128
      {"synth_float.cfg", {vd::Shape{32, 1, 1}, 0, 26544}},
      {"shapes64_kl.cfg", {vd::Shape{3, 64, 64}, 0, 2608747}},
      {"signals_kl.cfg", {vd::Shape::signal(2, 256), 0, 303466}},
      {"volumes_kl.cfg", {vd::Shape::volume(1, 16, 16, 16), 0, 464857}},
  };
  int count = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(VD_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".cfg") continue;
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    ++count;
    const auto it = cases.find(name);
    ASSERT_NE(it, cases.end()) << "add configs/" << name << " to this test";
    vd::Options o;
    ASSERT_NO_THROW(o = parse_config(entry.path().string()));
    vd::ParamStore store;
    std::unique_ptr<vd::LatentModel> model;
    ASSERT_NO_THROW(
        model = vd::make_model(vd::model_config(o, it->second.data, it->second.classes), store));
    // MLPs give it flat.
    EXPECT_EQ(model->graphs().back()->out_shape().size(), it->second.data.size());
    EXPECT_EQ(store.num_parameters(), it->second.parameters);
  }
  EXPECT_EQ(count, static_cast<int>(cases.size()));
}

TEST(Configs, FashionMlpIsTheClassicVae) {
  const auto o = parse_config(config_path("fashion_mlp.cfg"));
  EXPECT_EQ(o.data, "data/fashion-mnist/train.h5");
  EXPECT_EQ(o.test_data, "data/fashion-mnist/test.h5");
  EXPECT_EQ(o.out, "runs/fashion_mlp");
  EXPECT_EQ(o.hidden, std::vector<int>{400});
  EXPECT_EQ(o.latent_dim, 20);
  EXPECT_EQ(o.likelihood, vd::DecoderLikelihood::Bernoulli);
  EXPECT_EQ(o.batch_size, 128);
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.epochs, 10);
  EXPECT_EQ(o.beta, 1.0);
  EXPECT_EQ(o.max_steps, 0);
}

TEST(Configs, SmokeIsOneShortEpoch) {
  const auto o = parse_config(config_path("smoke.cfg"));
  EXPECT_EQ(o.data, "data/fashion-mnist/train.h5");
  EXPECT_EQ(o.test_data, "data/fashion-mnist/test.h5");
  EXPECT_EQ(o.epochs, 1);
  EXPECT_EQ(o.max_steps, 50);
  EXPECT_NE(o.out, vd::Options{}.out);
}

TEST(Configs, SynthFloatIsStandardisedGaussianWithCyclicalKlAndFreeBits) {
  const auto o = parse_config(config_path("synth_float.cfg"));
  EXPECT_EQ(o.data, "data/synth_float/train.h5");
  EXPECT_EQ(o.likelihood, vd::DecoderLikelihood::Gaussian);
  EXPECT_TRUE(o.standardize);
  EXPECT_EQ(o.kl_schedule, vd::KlScheduleKind::Cyclical);
  EXPECT_EQ(o.kl_cycles, 4);
  EXPECT_GT(o.free_bits, 0.0);
  EXPECT_EQ(o.logvar_min, -30.0);
  EXPECT_EQ(o.logvar_max, 20.0);
}

// The block-built configs build their models for the data their comments make: the encoder
// gives the latent map and the decoder ends in the data's shape (a broken layer list or a
// latent shape the encoder cannot give would throw here).
TEST(Configs, BlockConfigsBuildTheirModelsForTheirData) {
  const std::tuple<const char*, vd::Shape, const char*> cases[] = {
      {"shapes64_kl.cfg", vd::Shape{3, 64, 64}, "4x8x8"},
      {"signals_kl.cfg", vd::Shape::signal(2, 256), "4x32"},
      {"volumes_kl.cfg", vd::Shape::volume(1, 16, 16, 16), "4x4x4x4"},
  };
  for (const auto& [name, data, latent] : cases) {
    SCOPED_TRACE(name);
    const vd::Options o = parse_config(config_path(name));
    const vd::ModelConfig c = vd::model_config(o, data, 0);
    vd::ParamStore store;
    const vd::Vae vae(c, store);
    EXPECT_EQ(vae.decoder().out_shape(), data);
    EXPECT_EQ(vae.decoder().in_shape().text(), latent);
    EXPECT_EQ(vae.decoder().in_shape().rank, data.rank);
  }
}

}  // namespace
