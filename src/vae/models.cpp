// The table of model families (vae/models.hpp).
#include "vae/models.hpp"

#include <array>

#include "core/error.hpp"
#include "vae/btcvae.hpp"
#include "vae/model.hpp"

namespace vd {

namespace {

std::unique_ptr<LatentModel> build_vae(const ModelConfig& c, ParamStore& store) {
  return std::make_unique<Vae>(c, store);
}

void check_vae(ModelConfig& c) {
  if (c.iw_train_samples == 0) c.iw_train_samples = 1;
  if (c.iw_train_samples > 1)
    throw ConfigError("--train-iw-samples " + std::to_string(c.iw_train_samples) +
                      " trains on the importance-weighted bound, which is --model iwae; add "
                      "--model iwae, or drop --train-iw-samples to train the ELBO");
}

// IWAE (Burda et al. 2016): the same networks, trained on the k-sample bound; k = 1 is the
// VAE's step exactly.
void check_iwae(ModelConfig& c) {
  if (c.iw_train_samples == 0) c.iw_train_samples = 5;
}

std::unique_ptr<LatentModel> build_btcvae(const ModelConfig& c, ParamStore& store) {
  return std::make_unique<BtcVae>(c, store);
}

void check_btcvae(ModelConfig& c) {
  if (c.free_bits > 0)
    throw ConfigError(
        "--free-bits floors the VAE's KL per dimension, which --model btcvae splits into mutual "
        "information, total correlation and dimension-wise KL; drop --free-bits");
  if (c.iw_train_samples == 0) c.iw_train_samples = 1;
  if (c.iw_train_samples > 1)
    throw ConfigError("--train-iw-samples " + std::to_string(c.iw_train_samples) +
                      " belongs to --model iwae; --model btcvae trains on one sample per image");
}

constexpr std::array kFamilies = {
    ModelFamily{"vae",
                "the Gaussian VAE (Kingma & Welling 2014) trained on the ELBO: a beta-VAE with "
                "--beta, conditional with --conditional",
                check_vae, build_vae},
    ModelFamily{"iwae",
                "the importance-weighted autoencoder (Burda et al. 2016): the same networks "
                "trained on the bound with --train-iw-samples k samples (default 5)",
                check_iwae, build_vae},
    ModelFamily{"btcvae",
                "beta-TCVAE (Chen et al. 2018): the KL split into mutual information, total "
                "correlation and dimension-wise KL, estimated over the global batch, with "
                "--beta on the total correlation",
                check_btcvae, build_btcvae},
};

}  // namespace

std::span<const ModelFamily> model_families() {
  return kFamilies;
}

std::string model_family_names() {
  std::string s;
  for (const ModelFamily& f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

const ModelFamily& find_model_family(std::string_view name) {
  for (const ModelFamily& f : kFamilies)
    if (f.name == name) return f;
  throw ConfigError("--model '" + std::string(name) +
                    "' is not a model vae_dist trains; use one of " + model_family_names());
}

std::unique_ptr<LatentModel> make_model(ModelConfig config, ParamStore& store) {
  const ModelFamily& family = find_model_family(config.model);
  family.check(config);
  return family.build(config, store);
}

}  // namespace vd
