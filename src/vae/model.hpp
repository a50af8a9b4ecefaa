// The VAE: an MLP encoder with mean and log-variance heads, the reparameterisation, an MLP
// decoder, and the per-sample ELBO terms; forward and backward for training, plus the
// forward-only pieces (evaluation, encoding, decoding, importance-weighted bound).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/linear.hpp"
#include "nn/param_store.hpp"

namespace vd {

enum class Likelihood { Bernoulli, Gaussian };
Likelihood parse_likelihood(const std::string& name);  // "bernoulli" | "gaussian"

struct VaeConfig {
  int data_dim = 784;            // D
  std::vector<int> hidden{400};  // encoder widths; the decoder mirrors them
  int latent_dim = 20;           // L
  Likelihood likelihood = Likelihood::Bernoulli;
  float gaussian_sigma = 1.0f;  // fixed decoder std for the Gaussian likelihood
};

// Sums over the samples of a batch, in nats. loss = recon + beta * kl.
struct LossSums {
  double loss = 0, recon = 0, kl = 0;
  int64_t count = 0;
  LossSums& operator+=(const LossSums& o) {
    loss += o.loss, recon += o.recon, kl += o.kl, count += o.count;
    return *this;
  }
};

class Vae {
 public:
  // Registers the parameters in `store` (which must not be finalized yet) under
  // PyTorch-style names: encoder.fc1.weight [H1, D], ..., encoder.mu.*, encoder.logvar.*,
  // decoder.fc1.* ..., decoder.out.* [D, H1].
  Vae(const VaeConfig& config, ParamStore& store);

  const VaeConfig& config() const { return config_; }
  // PyTorch nn.Linear initialisation of every layer, in module order.
  void init(Rng& rng);

  // Forward and backward of one batch. x [B, D] in the likelihood's range, eps [B, L].
  // Writes every parameter's gradient of (sum over the batch of recon + beta*kl) * grad_scale.
  // B = 0 is allowed (a rank with no rows left in the last step): gradients become zero.
  LossSums train_step(Context& ctx, int batch, const float* x, const float* eps, float beta,
                      float grad_scale);

  // Forward only with the given eps: the same per-sample terms, no gradients.
  LossSums evaluate(Context& ctx, int batch, const float* x, const float* eps, float beta);

  // q(z|x): mu, logvar [B, L].
  void encode(Context& ctx, int batch, const float* x, float* mu, float* logvar);
  // Mean of p(x|z) for z [B, L] into mean [B, D] (sigmoid of the logits for Bernoulli).
  void decode_mean(Context& ctx, int batch, const float* z, float* mean);
  // Sum over the batch of the importance-weighted estimate of log p(x) with k samples
  // per data point (Burda et al.): log (1/k) sum_i p(x, z_i) / q(z_i | x).
  double iw_log_likelihood_sum(Context& ctx, int batch, const float* x, int k, Rng& rng);

  double flops_per_sample_forward() const;

 private:
  void ensure_workspace(int batch);
  void encoder_forward(Context& ctx, int batch, const float* x);
  void decoder_forward(Context& ctx, int batch);
  // Per-sample reconstruction NLL into recon_ws_ and, when diff != nullptr, its gradient.
  void reconstruction(int batch, const float* x, float* diff, float scale);

  VaeConfig config_;
  ParamStore& store_;
  std::vector<std::unique_ptr<Linear>> enc_, dec_;  // hidden layers (ReLU) and decoder.out
  std::unique_ptr<Linear> mu_head_, logvar_head_;
  int capacity_ = 0;
  // Activations: enc_act_[i] = output of enc_[i] [B, Hi]; dec_act_[i] likewise; the last
  // decoder activation is the logits (or Gaussian mean) [B, D].
  std::vector<std::vector<float>> enc_act_, dec_act_;
  std::vector<float> mu_, logvar_, z_, eps_copy_;  // [B, L]
  // Gradient scratch: two ping-pong buffers as wide as the widest layer, and [B, L] ones.
  std::vector<float> grad_a_, grad_b_, diff_mu_, diff_logvar_, diff_z_, diff_head_;
  std::vector<double> recon_ws_, kl_ws_;  // per-sample terms [B]
};

}  // namespace vd
