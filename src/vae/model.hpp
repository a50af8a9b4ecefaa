// The VAE (a LatentModel): encoder (a Graph ending in the mean and log-variance heads) ->
// reparameterisation -> decoder (a Graph) -> likelihood, built from the layer lists of the config;
// forward and backward for training, plus the forward-only pieces (evaluation, encoding, decoding,
// importance-weighted bound). A conditional model gives both graphs the one-hot label as a
// second input.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layer.hpp"
#include "nn/param_store.hpp"
#include "vae/latent_model.hpp"

namespace vd {

class Vae : public LatentModel {
 public:
  // Indices of the terms in LossSums::term.
  static constexpr int kRecon = 0, kKl = 1;

  // Builds the layers and registers their parameters in `store` (not finalized yet) under
  // PyTorch-style names: encoder.fc1.*, encoder.conv1.*, ..., encoder.mu.*, encoder.logvar.*,
  // decoder.fc1.*, ..., decoder.out.*. Throws vd::ConfigError naming the layer and both
  // shapes when the layers do not fit the data.
  Vae(const ModelConfig& config, ParamStore& store);

  // Inputs x [N, data] (and the one-hot label [N, K] when conditional); outputs mu and
  // logvar [N, L] (logvar before the clamp).
  const Graph& encoder() const { return encoder_; }
  // Inputs z [N, L] (and the label); output the decoder's [N, data].
  const Graph& decoder() const { return decoder_; }
  // {"recon", "kl"}: the reconstruction NLL and KL(q(z|x) || N(0, I)), in nats.
  const std::vector<std::string>& term_names() const override;
  std::vector<const Graph*> graphs() const override { return {&encoder_, &decoder_}; }
  // PyTorch initialisation of every layer, in module order (encoder, heads, decoder).
  void init(Rng& rng) override;
  std::string summary() const override;

  // Forward and backward of one batch. Writes every parameter's gradient of (sum over the
  // batch of recon + beta*kl) * grad_scale. n = 0 is allowed (a rank with no rows left in
  // the last step): gradients become zero. With free bits, kl's gradient is that of the
  // floored term over the global batch; every rank then calls ctx.batch_reducer once, also
  // with n = 0.
  LossSums train_step(Context& ctx, const Batch& batch, float beta, float grad_scale) override;
  // latent_dim x iw_train_samples.
  int train_noise_per_sample() const override {
    return config_.latent_dim * config_.iw_train_samples;
  }
  // Forward only with the batch's eps: the same per-sample terms, no gradients. With stats,
  // adds the batch's encodings to the posterior-collapse statistics.
  // With per_sample, also each sample's terms (see EvalOutputs).
  LossSums evaluate(Context& ctx, const Batch& batch, float beta, PosteriorStats* stats = nullptr,
                    const EvalOutputs* per_sample = nullptr) override;
  std::vector<float> output_logvar() const override;

  void encode(Context& ctx, const Batch& batch, float* mu, float* logvar) override;
  void decode_mean(Context& ctx, int n, const float* z, const int32_t* labels,
                   float* mean) override;
  double iw_log_likelihood_sum(Context& ctx, const Batch& batch, int k, Rng& rng) override;

  double flops_per_sample_forward() const override;

 protected:
  // For the families that share these networks (vae/btcvae.hpp).
  void ensure_workspace(int n);
  void set_condition(int n, const int32_t* labels);
  // The graph's inputs: x (or z), then the one-hot label of a conditional model.
  std::vector<const float*> graph_inputs(const float* first) const;
  void encoder_forward(Context& ctx, int n, const float* x);
  const float* decoder_forward(Context& ctx, int n, const float* z);
  // diff_out_ [n, D] -> diff_z_ [n, L] through the decoder (its parameter gradients written).
  void decoder_backward(Context& ctx, int n);
  // z_ [n, L] -> the decoder -> each sample's NLL of x (recon_ws_) and its gradient times
  // grad_scale, back through the decoder to diff_z_ (its parameter gradients written).
  void decoder_step(Context& ctx, int n, const float* x, float grad_scale);
  // diff_mu_, diff_logvar_ [n, L] -> the encoder's parameter gradients, for the batch's x.
  void encoder_backward(Context& ctx, int n, const float* x);
  bool clamps_logvar() const;
  // train_step for iw_train_samples > 1: the importance-weighted bound and its gradient.
  LossSums train_step_iw(Context& ctx, const Batch& batch, float grad_scale);
  // Per-sample reconstruction NLL into recon_ws_ and, when diff != nullptr, its gradient.
  void reconstruction(int n, const float* out, const float* x, float* diff, float scale);

  bool learns_variance() const {
    return config_.likelihood == Likelihood::Gaussian &&
           config_.output_variance != ModelConfig::OutputVariance::Fixed;
  }

  ParamStore& store_;
  size_t out_logvar_ = 0;                  // the entry of decoder.out_logvar (learns_variance())
  std::vector<float> out_logvar_clamped_;  // its values held in the clamp's range
  int data_size_;
  Graph encoder_, decoder_;
  int capacity_ = 0;
  std::vector<float> onehot_;  // [N, K]
  // The current batch's encoding [N, L]: mu and the raw logvar point into the encoder's
  // outputs; logvar_ is the clamped copy (or the raw one without a clamp).
  const float* mu_ = nullptr;
  const float* logvar_raw_ = nullptr;
  const float* logvar_ = nullptr;
  std::vector<float> logvar_clamped_, z_;  // [N, L]
  std::vector<double> kl_dim_;             // free bits: [L] sums of KL_j, then the batch size
  std::vector<uint8_t> kl_active_;         // free bits: [L] dimensions above the floor
  std::vector<float> diff_mu_, diff_logvar_, diff_z_;
  std::vector<float> diff_out_;           // [N, D]
  std::vector<double> recon_ws_, kl_ws_;  // per-sample terms [N]
  std::vector<float> x_rep_;              // IWAE training: each row k times [N*k, D]
  std::vector<int32_t> labels_rep_;       // and its labels [N*k]
};

}  // namespace vd
