// Tests of the model families table (vae/models.hpp): --model's choices are the table's names,
// each family checks the settings that do not apply to it, and the IWAE family builds the
// VAE's networks with the bound's noise (k = 1: the VAE's step, bit for bit).
#include "vae/models.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/param_store.hpp"
#include "vae/model.hpp"

namespace {

vd::ModelConfig small(const std::string& family, int k) {
  vd::ModelConfig c = vd::ModelConfig::mlp(12, {8}, 3);
  c.model = family;
  c.iw_train_samples = k;
  return c;
}

TEST(ModelFamilies, ModelOptionChoicesAreTheTablesNames) {
  std::string names;
  for (const vd::ModelFamily& f : vd::model_families()) {
    if (!names.empty()) names += '|';
    names += f.name;  // appended: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string
  }
  EXPECT_NE(vd::help_text().find("--model <" + names + ">"), std::string::npos)
      << "vae_dist --help does not offer --model " << names
      << "; add the family's name to the --model choices in src/config/options.cpp";
  for (const vd::ModelFamily& f : vd::model_families())
    EXPECT_EQ(&vd::find_model_family(f.name), &f);
}

TEST(ModelFamilies, AnUnknownFamilyIsAConfigErrorListingTheNames) {
  vd::ParamStore store;
  try {
    vd::make_model(small("vqvae2", 0), store);
    FAIL() << "an unknown family was built";
  } catch (const vd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--model 'vqvae2' is not a model vae_dist trains; use "
                                         "one of " +
                                         vd::model_family_names()),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelFamilies, TheVaeRefusesTheBoundsSamplesAndIwaeDefaultsToFive) {
  vd::ParamStore store;
  try {
    vd::make_model(small("vae", 4), store);
    FAIL() << "--model vae took --train-iw-samples 4";
  } catch (const vd::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--train-iw-samples 4 trains on the importance-weighted "
                                         "bound, which is --model iwae"),
              std::string::npos)
        << e.what();
  }
  vd::ParamStore a, b;
  const auto vae = vd::make_model(small("vae", 0), a);
  EXPECT_EQ(vae->train_noise_per_sample(), 3);
  EXPECT_EQ(vae->term_names(), (std::vector<std::string>{"recon", "kl"}));
  EXPECT_EQ(vd::make_model(small("iwae", 0), b)->train_noise_per_sample(), 3 * 5);
}

// k = 1: the same networks and the same step, so the same loss and gradient bits.
TEST(ModelFamilies, IwaeWithOneSampleTrainsExactlyAsTheVae) {
  vd::ParamStore sa, sb;
  auto vae = vd::make_model(small("vae", 0), sa);
  auto iwae = vd::make_model(small("iwae", 1), sb);
  sa.finalize();
  sb.finalize();
  vd::Rng ra(7), rb(7);
  vae->init(ra);
  iwae->init(rb);
  ASSERT_EQ(sa.size(), sb.size());
  const int n = 5;
  std::vector<float> x(static_cast<size_t>(n) * 12), eps(static_cast<size_t>(n) * 3);
  vd::Rng data(3);
  for (float& v : x) v = static_cast<float>(data.uniform());
  data.fill_normal(eps.data(), eps.size());
  vd::Context ctx;
  const vd::Batch batch{n, x.data(), nullptr, eps.data()};
  const vd::LossSums la = vae->train_step(ctx, batch, 1.0f, 0.2f);
  const vd::LossSums lb = iwae->train_step(ctx, batch, 1.0f, 0.2f);
  EXPECT_EQ(la.loss, lb.loss);
  EXPECT_EQ(la.term, lb.term);
  EXPECT_EQ(std::memcmp(sa.grads().data(), sb.grads().data(), sa.size() * sizeof(float)), 0);
  // And the bound with k = 3 is another objective: another loss.
  vd::ParamStore sc;
  auto iwae3 = vd::make_model(small("iwae", 3), sc);
  sc.finalize();
  vd::Rng rc(7);
  iwae3->init(rc);
  std::vector<float> eps3(static_cast<size_t>(n) * 9);
  data.fill_normal(eps3.data(), eps3.size());
  const vd::LossSums l3 = iwae3->train_step(ctx, {n, x.data(), nullptr, eps3.data()}, 1.0f, 0.2f);
  EXPECT_NE(l3.loss, la.loss);
}

}  // namespace
