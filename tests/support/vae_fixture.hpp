// A VAE with its parameters initialised and one batch of fixed inputs, for the model tests:
// x uniform in [0, 1) [B, D], eps normal [B, k, L] (k = iw_train_samples, usually 1), labels
// b % classes (0 when unconditional).
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "vae/model.hpp"

namespace vd::testing {

struct VaeFixture {
  ModelConfig cfg;
  ParamStore store;
  std::unique_ptr<Vae> vae;
  Context ctx;
  std::vector<float> x, eps;
  std::vector<int32_t> labels;
  int B;

  VaeFixture(ModelConfig c, int batch) : cfg(std::move(c)), B(batch) {
    vae = std::make_unique<Vae>(cfg, store);
    store.finalize();
    Rng rng(5);
    vae->init(rng);
    x.resize(static_cast<size_t>(B) * cfg.data.size());
    for (auto& v : x) v = static_cast<float>(rng.uniform());
    eps.resize(static_cast<size_t>(B) * cfg.latent_dim * cfg.iw_train_samples);
    rng.fill_normal(eps.data(), eps.size());
    for (int b = 0; b < B; ++b) labels.push_back(cfg.classes ? b % cfg.classes : 0);
  }
  Batch batch() const { return Batch{B, x.data(), labels.data(), eps.data()}; }
  std::vector<double> params_double() const {
    auto p = store.params();
    return std::vector<double>(p.begin(), p.end());
  }
  std::vector<float> grads() const {
    auto g = store.grads();
    return std::vector<float>(g.begin(), g.end());
  }
};

}  // namespace vd::testing
