// Every shipped configs/*.cfg file parses, and the named experiments hold their settings.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "config/options.hpp"
#include "core/error.hpp"
#include "nn/param_store.hpp"
#include "train/model_config.hpp"
#include "vae/model.hpp"

namespace {

namespace fs = std::filesystem;

vd::Options parse_config(const std::string& path) {
  const char* argv[] = {"vae_dist", "--config", path.c_str()};
  return vd::parse_options(3, argv).options;
}

std::string config_path(const std::string& name) {
  return (fs::path(VD_SOURCE_DIR) / "configs" / name).string();
}

TEST(Configs, EveryConfigFileParses) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(VD_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".cfg") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(parse_config(entry.path().string()));
    ++count;
  }
  EXPECT_GE(count, 2);
}

TEST(Configs, FashionMlpIsTheClassicVae) {
  const auto o = parse_config(config_path("fashion_mlp.cfg"));
  EXPECT_EQ(o.data, "data/fashion-mnist/train.h5");
  EXPECT_EQ(o.test_data, "data/fashion-mnist/test.h5");
  EXPECT_EQ(o.out, "runs/fashion_mlp");
  EXPECT_EQ(o.hidden, std::vector<int>{400});
  EXPECT_EQ(o.latent_dim, 20);
  EXPECT_EQ(o.likelihood, "bernoulli");
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
  EXPECT_EQ(o.likelihood, "gaussian");
  EXPECT_TRUE(o.standardize);
  EXPECT_EQ(o.kl_schedule, "cyclical");
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
    const vd::VaeConfig c = vd::vae_config(o, data, 0);
    vd::ParamStore store;
    const vd::Vae vae(c, store);
    EXPECT_EQ(vae.decoder().out_shape(), data);
    EXPECT_EQ(vae.decoder().in_shape().text(), latent);
    EXPECT_EQ(vae.decoder().in_shape().rank, data.rank);
  }
}

}  // namespace
