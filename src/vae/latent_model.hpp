// LatentModel: what the trainer, the evaluation, the sample grids and vae_latent need of a
// latent-variable model (train and evaluate steps with named loss terms, encode, decode, the
// importance-weighted bound) and what it can do; ModelConfig, the settings every model is
// built from. The models themselves and their registration: vae/models.hpp.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "nn/graph.hpp"
#include "nn/precision.hpp"
#include "nn/shape.hpp"

namespace vd {

class PosteriorStats;  // vae/latent.hpp

enum class Likelihood { Bernoulli, Gaussian };
Likelihood parse_likelihood(const std::string& name);  // "bernoulli" | "gaussian"

struct ModelConfig {
  // The model family, a name of vae/models.hpp's table: "vae", "iwae", "btcvae".
  std::string model = "vae";
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
  // Rows of the whole training set (all ranks): beta-TCVAE's minibatch-weighted sampling
  // estimator weighs the batch by it. 0 = not known (a model loaded to evaluate).
  int64_t dataset_rows = 0;

  // The classic MLP: encoder widths `hidden`, mirrored in the decoder.
  static ModelConfig mlp(int data_dim, std::vector<int> hidden, int latent_dim);
};

// The most terms a model's loss has (LossSums::term).
inline constexpr int kMaxLossTerms = 6;

// Sums over the samples of a batch, in nats: the loss and the model's terms in the order of
// LatentModel::term_names() (the VAE's: recon, kl). Terms a model does not have stay 0.
struct LossSums {
  double loss = 0;
  std::array<double, kMaxLossTerms> term{};
  int64_t count = 0;
  LossSums& operator+=(const LossSums& o) {
    loss += o.loss, count += o.count;
    for (size_t i = 0; i < term.size(); ++i) term[i] += o.term[i];
    return *this;
  }
};

// What goes through the model: n samples x [N, D] (plain, in the likelihood's range), their
// labels [N] (needed by a conditional model, else ignored) and the noise eps [N, noise per
// sample].
struct Batch {
  int n = 0;
  const float* x = nullptr;
  const int32_t* labels = nullptr;
  const float* eps = nullptr;
};

// Per-sample outputs of LatentModel::evaluate, each optional (nullptr: not wanted): the
// reconstruction NLL and the latent term (the VAE's KL) [N] (nats, as LossSums sums them), and
// the decoder's raw output at z [N, D] (the logits for Bernoulli, the mean for Gaussian).
struct EvalOutputs {
  double* recon = nullptr;
  double* kl = nullptr;
  float* decoder_out = nullptr;
};

// What a model can do beyond training, which decides the reports, pictures and vae_latent
// subcommands that apply to it.
struct ModelCapabilities {
  // encode gives q(z|x) = N(mu, diag(exp(logvar))): the posterior-collapse diagnostics, the
  // latent toolkit's encodings, similar images.
  bool gaussian_posterior = true;
  // p(z) = N(0, I): prior samples in the grids, manifolds, class samples.
  bool normal_prior = true;
  // iw_log_likelihood_sum estimates log p(x) (the final test_iw row).
  bool likelihood_bound = true;
};

class LatentModel {
 public:
  virtual ~LatentModel() = default;

  const ModelConfig& config() const { return config_; }
  // The names of the loss's terms after the loss itself, as metrics columns and in the
  // progress lines ("recon", "kl"); at most kMaxLossTerms.
  virtual const std::vector<std::string>& term_names() const = 0;
  // The networks, encoder first (summaries, the memory check, precision, benchmarks).
  virtual std::vector<const Graph*> graphs() const = 0;
  // PyTorch initialisation of every layer, in module order.
  virtual void init(Rng& rng) = 0;
  // One line per layer: name, what it is, output shape.
  virtual std::string summary() const = 0;
  virtual double flops_per_sample_forward() const = 0;
  virtual ModelCapabilities capabilities() const { return {}; }

  // Forward and backward of one batch: writes every parameter's gradient of (the sum over the
  // batch of the loss) * grad_scale and returns the batch's sums. beta weighs the KL term.
  // n = 0 is allowed (a rank with no rows left in the last step): gradients become zero, and
  // the model still joins every collective exchange its step makes (Context::batch_reducer).
  virtual LossSums train_step(Context& ctx, const Batch& batch, float beta, float grad_scale) = 0;
  // Noise values train_step and evaluate read per sample (Batch::eps), N(0, 1) each.
  virtual int train_noise_per_sample() const = 0;
  virtual int eval_noise_per_sample() const { return config_.latent_dim; }
  // Forward only with the batch's eps: the same terms, no gradients. With stats, adds the
  // batch's encodings to the posterior-collapse statistics; with per_sample, each sample's
  // terms (EvalOutputs).
  virtual LossSums evaluate(Context& ctx, const Batch& batch, float beta,
                            PosteriorStats* stats = nullptr,
                            const EvalOutputs* per_sample = nullptr) = 0;
  // A learned decoder variance: its log-variance as the likelihood uses it (held in the clamp's
  // range), one value for all outputs or one per output; empty for a fixed sigma or Bernoulli.
  virtual std::vector<float> output_logvar() const { return {}; }

  // q(z|x): mu, logvar [N, L] (logvar may be nullptr). Reads x and labels of the batch.
  virtual void encode(Context& ctx, const Batch& batch, float* mu, float* logvar) = 0;
  // Mean of p(x|z) for z [N, L] into mean [N, D] (sigmoid of the logits for Bernoulli);
  // labels [N] for a conditional model.
  virtual void decode_mean(Context& ctx, int n, const float* z, const int32_t* labels,
                           float* mean) = 0;
  // Sum over the batch of the importance-weighted estimate of log p(x) with k samples per
  // data point (Burda et al.): log (1/k) sum_i p(x, z_i) / q(z_i | x).
  virtual double iw_log_likelihood_sum(Context& ctx, const Batch& batch, int k, Rng& rng) = 0;

 protected:
  explicit LatentModel(const ModelConfig& config) : config_(config) {}
  ModelConfig config_;
};

}  // namespace vd
