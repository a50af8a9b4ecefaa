// The model families vae_dist trains (--model): one table entry each, with its name, what it
// is, the settings it takes, and how to build it. A new family is its own files in src/vae/
// plus one entry in models.cpp.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "nn/param_store.hpp"
#include "vae/latent_model.hpp"

namespace vd {

struct ModelFamily {
  std::string_view name;  // --model
  std::string_view what;  // one line for the docs and errors
  // Refuses settings that do not apply to the family, or completes them (the default number
  // of samples of the importance-weighted objective), with a vd::ConfigError naming the option
  // and what to do.
  void (*check)(ModelConfig& config);
  // Builds the model and registers its parameters in store (not finalized yet).
  std::unique_ptr<LatentModel> (*build)(const ModelConfig& config, ParamStore& store);
};

std::span<const ModelFamily> model_families();
// "vae, iwae, btcvae": the names, for help texts and errors.
std::string model_family_names();
// The family of that name; throws vd::ConfigError listing the names otherwise.
const ModelFamily& find_model_family(std::string_view name);

// config.model's family checks config, then builds it. Throws vd::ConfigError (unknown
// family, settings that do not apply) and what the model's constructor throws.
std::unique_ptr<LatentModel> make_model(ModelConfig config, ParamStore& store);

}  // namespace vd
