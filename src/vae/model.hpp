// The VAE: encoder (a Graph ending in the mean and log-variance heads) -> reparameterisation ->
// decoder (a Graph) -> likelihood, built from the layer lists of the config; forward and
// backward for training, plus the forward-only pieces (evaluation, encoding, decoding,
// importance-weighted bound). A conditional model gives both graphs the one-hot label as a
// second input.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/graph.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

class PosteriorStats;  // vae/latent.hpp

enum class Likelihood { Bernoulli, Gaussian };
Likelihood parse_likelihood(const std::string& name);  // "bernoulli" | "gaussian"

struct VaeConfig {
  Shape data{784, 1, 1};  // one sample: C x H x W, or D
  int latent_dim = 20;    // L
  // A spatial latent C x H x W (L = C*H*W values in PyTorch's order): the heads are 3x3
  // convolutions on the encoder's H x W map and the decoder reads z as C x H x W. Flat (the
  // default, {0, 1, 1} = {latent_dim}): the heads are fc layers.
  Shape latent{0, 1, 1};
  Shape latent_shape() const { return latent.c > 0 ? latent : Shape{latent_dim, 1, 1}; }
  // Layer lists (see vae/architecture.hpp). The encoder ends before the heads; the decoder's
  // output must have the data's shape (or its size, flat).
  std::string encoder = "fc 400, relu";
  std::string decoder = "fc 400, relu, fc 784";
  int classes = 0;  // > 0: conditional on a one-hot label of this many classes
  Likelihood likelihood = Likelihood::Bernoulli;
  float gaussian_sigma = 1.0f;  // fixed decoder std for the Gaussian likelihood
  // A learned decoder variance instead (Gaussian only): the parameter decoder.out_logvar, one
  // log-variance for all outputs ([1]) or one per output (the data's shape), starting at 0 and
  // clamped to [logvar_min, logvar_max] like the encoder's.
  enum class OutputVariance { Fixed, Learned, LearnedPerOutput };
  OutputVariance output_variance = OutputVariance::Fixed;
  // BF16: the layers where bf16 pays compute in bf16 (each layer's set_precision); the loss,
  // the reparameterisation, the parameters and their gradients stay f32 either way.
  Precision precision = Precision::F32;
  // logvar is clamped to [logvar_min, logvar_max] after its head (the gradient is exact
  // inside, zero outside); -inf, +inf = no clamp.
  float logvar_min = -30.0f, logvar_max = 20.0f;
  // Free bits: the training KL term is sum_j max(free_bits, batch-mean KL_j) (loss.hpp); the
  // batch is the global one, summed over the ranks by Context::batch_reducer. 0 = off.
  double free_bits = 0.0;
  // Training objective: k = 1 the ELBO (analytic KL); k > 1 the importance-weighted bound of
  // Burda et al. 2016 with k samples per data point (Batch::eps then holds [N, k, L]).
  int iw_train_samples = 1;

  // The classic MLP: encoder widths `hidden`, mirrored in the decoder.
  static VaeConfig mlp(int data_dim, std::vector<int> hidden, int latent_dim);
};

// Sums over the samples of a batch, in nats. loss = recon + beta * kl; with free bits, kl is
// still the true KL and loss = recon + beta * (the floored KL, counted once per sample).
struct LossSums {
  double loss = 0, recon = 0, kl = 0;
  int64_t count = 0;
  LossSums& operator+=(const LossSums& o) {
    loss += o.loss, recon += o.recon, kl += o.kl, count += o.count;
    return *this;
  }
};

// What goes through the model: n samples x [N, D] (plain, in the likelihood's range), their
// labels [N] (needed by a conditional model, else ignored) and the noise eps [N, L].
struct Batch {
  int n = 0;
  const float* x = nullptr;
  const int32_t* labels = nullptr;
  const float* eps = nullptr;
};

// Per-sample outputs of Vae::evaluate, each optional (nullptr: not wanted): the
// reconstruction NLL and the KL [N] (nats, as LossSums sums them), and the decoder's raw
// output at z [N, D] (the logits for Bernoulli, the mean for Gaussian).
struct EvalOutputs {
  double* recon = nullptr;
  double* kl = nullptr;
  float* decoder_out = nullptr;
};

class Vae {
 public:
  // Builds the layers and registers their parameters in `store` (not finalized yet) under
  // PyTorch-style names: encoder.fc1.*, encoder.conv1.*, ..., encoder.mu.*, encoder.logvar.*,
  // decoder.fc1.*, ..., decoder.out.*. Throws vd::ConfigError naming the layer and both
  // shapes when the layers do not fit the data.
  Vae(const VaeConfig& config, ParamStore& store);

  const VaeConfig& config() const { return config_; }
  // Inputs x [N, data] (and the one-hot label [N, K] when conditional); outputs mu and
  // logvar [N, L] (logvar before the clamp).
  const Graph& encoder() const { return encoder_; }
  // Inputs z [N, L] (and the label); output the decoder's [N, data].
  const Graph& decoder() const { return decoder_; }
  // PyTorch initialisation of every layer, in module order (encoder, heads, decoder).
  void init(Rng& rng);
  // One line per layer: name, what it is, output shape.
  std::string summary() const;

  // Forward and backward of one batch. Writes every parameter's gradient of (sum over the
  // batch of recon + beta*kl) * grad_scale. n = 0 is allowed (a rank with no rows left in
  // the last step): gradients become zero. With free bits, kl's gradient is that of the
  // floored term over the global batch; every rank then calls ctx.batch_reducer once, also
  // with n = 0.
  LossSums train_step(Context& ctx, const Batch& batch, float beta, float grad_scale);
  // Noise values train_step reads per sample: latent_dim x iw_train_samples.
  int train_noise_per_sample() const { return config_.latent_dim * config_.iw_train_samples; }
  // Forward only with the batch's eps: the same per-sample terms, no gradients. With stats,
  // adds the batch's encodings to the posterior-collapse statistics.
  // With per_sample, also each sample's terms (see EvalOutputs).
  LossSums evaluate(Context& ctx, const Batch& batch, float beta, PosteriorStats* stats = nullptr,
                    const EvalOutputs* per_sample = nullptr);
  // A learned decoder variance: its log-variance as the likelihood uses it (held in the clamp's
  // range), one value for all outputs or one per output; empty for a fixed sigma or Bernoulli.
  std::vector<float> output_logvar() const;

  // q(z|x): mu, logvar [N, L] (logvar may be nullptr). Reads x and labels of the batch.
  void encode(Context& ctx, const Batch& batch, float* mu, float* logvar);
  // Mean of p(x|z) for z [N, L] into mean [N, D] (sigmoid of the logits for Bernoulli);
  // labels [N] for a conditional model.
  void decode_mean(Context& ctx, int n, const float* z, const int32_t* labels, float* mean);
  // Sum over the batch of the importance-weighted estimate of log p(x) with k samples
  // per data point (Burda et al.): log (1/k) sum_i p(x, z_i) / q(z_i | x).
  double iw_log_likelihood_sum(Context& ctx, const Batch& batch, int k, Rng& rng);

  double flops_per_sample_forward() const;

 private:
  void ensure_workspace(int n);
  void set_condition(int n, const int32_t* labels);
  // The graph's inputs: x (or z), then the one-hot label of a conditional model.
  std::vector<const float*> graph_inputs(const float* first) const;
  void encoder_forward(Context& ctx, int n, const float* x);
  const float* decoder_forward(Context& ctx, int n, const float* z);
  bool clamps_logvar() const;
  // train_step for iw_train_samples > 1: the importance-weighted bound and its gradient.
  LossSums train_step_iw(Context& ctx, const Batch& batch, float grad_scale);
  // Per-sample reconstruction NLL into recon_ws_ and, when diff != nullptr, its gradient.
  void reconstruction(int n, const float* out, const float* x, float* diff, float scale);

  bool learns_variance() const {
    return config_.likelihood == Likelihood::Gaussian &&
           config_.output_variance != VaeConfig::OutputVariance::Fixed;
  }

  VaeConfig config_;
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
