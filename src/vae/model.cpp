// Vae: the encoder and decoder graphs and the loss pieces put together into forward and
// backward passes.
#include "vae/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"
#include "nn/conv.hpp"
#include "nn/linear.hpp"
#include "nn/reshape.hpp"
#include "vae/architecture.hpp"
#include "vae/latent.hpp"
#include "vae/loss.hpp"

namespace vd {

Likelihood parse_likelihood(const std::string& name) {
  if (name == "bernoulli") return Likelihood::Bernoulli;
  if (name == "gaussian") return Likelihood::Gaussian;
  throw ConfigError("likelihood '" + name + "' is not known; use bernoulli or gaussian");
}

ModelConfig ModelConfig::mlp(int data_dim, std::vector<int> hidden, int latent_dim) {
  ModelConfig c;
  c.data = Shape{data_dim, 1, 1};
  c.latent_dim = latent_dim;
  c.encoder = mlp_encoder_spec(hidden);
  c.decoder = mlp_decoder_spec(hidden, data_dim);
  return c;
}

namespace {

std::vector<Shape> graph_shapes(const Shape& first, int classes) {
  std::vector<Shape> s{first};
  if (classes > 0) s.push_back(Shape{classes, 1, 1});
  return s;
}

}  // namespace

Vae::Vae(const ModelConfig& config, ParamStore& store)
    : LatentModel(config),
      store_(store),
      data_size_(static_cast<int>(config.data.size())),
      encoder_(graph_shapes(config.data, config.classes)),
      decoder_(graph_shapes(config.latent_shape(), config.classes)) {
  VD_CHECK(config.data.size() > 0 && config.latent_dim > 0, ShapeError,
           "a VAE needs a positive data size and latent dimension");
  const Shape latent = config.latent_shape();
  VD_CHECK(latent.size() == config.latent_dim, ShapeError,
           "the latent shape " + latent.text() + " does not hold latent_dim " +
               std::to_string(config.latent_dim) + " values");
  VD_CHECK(config.classes >= 0, ShapeError, "the number of classes cannot be negative");
  VD_CHECK(config.logvar_min < config.logvar_max, ShapeError,
           "the logvar clamp needs logvar_min < logvar_max");
  VD_CHECK(config.free_bits >= 0, ShapeError, "free bits cannot be negative");
  const Graph::Value label = config.classes > 0 ? 1 : -1;
  build_layers(encoder_, store, "encoder", parse_layers(config.encoder, "encoder"), false,
               "encoder", label);
  Graph::Value mu = 0, logvar = 0;
  if (latent.flat()) {
    // The heads: two fc layers reading the encoder's (flattened) output.
    if (!encoder_.shape(encoder_.last()).flat())
      encoder_.add(make_flatten("encoder.flatten", encoder_.shape(encoder_.last())));
    const Graph::Value h = encoder_.last();
    const Shape hs = encoder_.shape(h);
    mu = encoder_.add(
        std::make_unique<Linear>(store, "encoder.mu", hs, config.latent_dim, Activation::None), h);
    logvar = encoder_.add(
        std::make_unique<Linear>(store, "encoder.logvar", hs, config.latent_dim, Activation::None),
        h);
  } else {
    // A spatial latent: two 3x3 convolutions giving the mean and log-variance maps, as
    // AutoencoderKL's conv_out with double_z (its 2C output channels, split in halves).
    const Graph::Value h = encoder_.last();
    const Shape hs = encoder_.shape(h);
    // The same spatial axes (1-D, 2-D or 3-D), whatever the channels.
    if (hs.flat() || hs.spatial() != latent.spatial()) {
      std::string map;
      for (int64_t v : latent.spatial()) {
        if (!map.empty()) map += 'x';
        map += std::to_string(v);
      }
      throw ConfigError("encoder: it ends in " + hs.text() + " per sample, but the latent " +
                        latent.text() + " needs a map of " + map +
                        "; change the encoder's down-sampling (or "
                        "--latent-shape) so that they agree");
    }
    const ConvSpec head{latent.c, 3, 1, 1, 0, false};
    mu = encoder_.add(std::make_unique<Conv2d>(store, "encoder.mu", hs, head, Activation::None), h);
    logvar = encoder_.add(
        std::make_unique<Conv2d>(store, "encoder.logvar", hs, head, Activation::None), h);
  }
  encoder_.set_outputs({mu, logvar});
  const auto dec = parse_layers(config.decoder, "decoder");
  if (dec.empty()) throw ConfigError("decoder: give at least one layer");
  build_layers(decoder_, store, "decoder", dec, true, "decoder", label);
  const Shape out = decoder_.out_shape();
  const bool fits = out == config.data || (out.flat() && out.size() == config.data.size());
  if (!fits) {
    const Graph::Node& last = decoder_.producer(decoder_.last());
    throw ConfigError("decoder: its last layer " + last.name + " (" +
                      (last.layer ? last.layer->describe() : std::string("merge")) + ") gives " +
                      out.text() + " per sample but the data are " + config.data.text() +
                      "; change the decoder so it ends in the data's shape");
  }
  if (learns_variance()) {
    const bool per_output = config.output_variance == ModelConfig::OutputVariance::LearnedPerOutput;
    out_logvar_ =
        store.add("decoder.out_logvar", per_output ? config.data.dims() : std::vector<int64_t>{1});
    out_logvar_clamped_.resize(per_output ? config.data.size() : 1);
  }
  // Before any primitive exists: layers build theirs for one precision.
  for (const Graph* g : {&encoder_, &decoder_})
    for (Layer* l : g->layers()) l->set_precision(config.precision);
}

const std::vector<std::string>& Vae::term_names() const {
  static const std::vector<std::string> names = {"recon", "kl"};
  return names;
}

void Vae::init(Rng& rng) {
  encoder_.init(rng);
  decoder_.init(rng);
  // A learned variance starts at 1 (log-variance 0), as a fixed sigma of 1.
  if (learns_variance()) {
    const std::span<float> v = store_.param_view(out_logvar_);
    std::fill(v.begin(), v.end(), 0.0f);
  }
}

std::string Vae::summary() const {
  std::string s;
  char line[256];
  // In an f32 run the table is as it always was; a bf16 run adds each layer's precision.
  const bool show = config_.precision != Precision::F32;
  const auto row = [&](const std::string& name, const std::string& what, const Shape& out,
                       const Layer* layer) {
    if (show && layer)
      std::snprintf(line, sizeof line, "  %-18s %-28s -> %-10s %s\n", name.c_str(), what.c_str(),
                    out.text().c_str(), precision_name(layer->precision()));
    else
      std::snprintf(line, sizeof line, "  %-18s %-28s -> %s\n", name.c_str(), what.c_str(),
                    out.text().c_str());
    s += line;
  };
  row("input", "data", config_.data, nullptr);
  for (const Graph* g : {&encoder_, &decoder_})
    for (const Graph::Node& node : g->nodes()) {
      std::string what;
      if (node.layer) {
        what = node.layer->describe();
      } else {
        what = node.op == Graph::Op::Sum ? "sum" : "concat";
        for (size_t j = 0; j < node.from.size(); ++j)
          what += (j ? " + " : " ") + g->shape(node.from[j]).text();
      }
      row(node.name, what, node.out, node.layer.get());
    }
  if (learns_variance()) {
    const bool per_output = out_logvar_clamped_.size() > 1;
    row("decoder.out_logvar",
        per_output ? "learned log-variance, one per output" : "learned log-variance, one",
        per_output ? config_.data : Shape{1, 1, 1}, nullptr);
  }
  return s;
}

double Vae::flops_per_sample_forward() const {
  return encoder_.flops_per_sample() + decoder_.flops_per_sample();
}

void Vae::ensure_workspace(int n) {
  if (n <= capacity_) return;
  const size_t b = static_cast<size_t>(n), L = static_cast<size_t>(config_.latent_dim);
  for (auto* v : {&z_, &diff_mu_, &diff_logvar_, &diff_z_}) v->resize(b * L);
  if (clamps_logvar()) logvar_clamped_.resize(b * L);
  diff_out_.resize(b * static_cast<size_t>(data_size_));
  onehot_.resize(b * static_cast<size_t>(config_.classes));
  recon_ws_.resize(b);
  kl_ws_.resize(b);
  capacity_ = n;
}

void Vae::set_condition(int n, const int32_t* labels) {
  const int K = config_.classes;
  if (K == 0) return;
  VD_CHECK(labels, DataError, "a conditional model needs the labels of every batch");
  std::fill_n(onehot_.begin(), static_cast<size_t>(n) * K, 0.0f);
  for (int b = 0; b < n; ++b) {
    if (labels[b] < 0 || labels[b] >= K)
      throw DataError("label " + std::to_string(labels[b]) + " is outside 0.." +
                      std::to_string(K - 1) + " of the conditional model's " + std::to_string(K) +
                      " classes");
    onehot_[static_cast<size_t>(b) * K + static_cast<size_t>(labels[b])] = 1.0f;
  }
}

std::vector<const float*> Vae::graph_inputs(const float* first) const {
  std::vector<const float*> in{first};
  if (config_.classes > 0) in.push_back(onehot_.data());
  return in;
}

bool Vae::clamps_logvar() const {
  return !(std::isinf(config_.logvar_min) && std::isinf(config_.logvar_max));
}

void Vae::encoder_forward(Context& ctx, int n, const float* x) {
  encoder_.forward(ctx, n, graph_inputs(x));
  mu_ = encoder_.output(0);
  logvar_raw_ = logvar_ = encoder_.output(1);
  if (clamps_logvar()) {
    // Inside the range the values pass unchanged (bit for bit), so a run that never reaches
    // a bound trains exactly as without the clamp.
    clamp_forward(static_cast<size_t>(n) * config_.latent_dim, logvar_raw_, config_.logvar_min,
                  config_.logvar_max, logvar_clamped_.data());
    logvar_ = logvar_clamped_.data();
  }
}

const float* Vae::decoder_forward(Context& ctx, int n, const float* z) {
  decoder_.forward(ctx, n, graph_inputs(z));
  return decoder_.output(0);
}

void Vae::reconstruction(int n, const float* out, const float* x, float* diff, float scale) {
  if (config_.likelihood == Likelihood::Bernoulli) {
    bernoulli_nll(n, data_size_, out, x, recon_ws_.data(), diff, scale);
  } else if (!learns_variance()) {
    gaussian_nll(n, data_size_, out, x, config_.gaussian_sigma, recon_ws_.data(), diff, scale);
  } else {
    // The log-variance held in the clamp's range; its gradient is exact inside, zero outside.
    const float* raw = store_.param(out_logvar_);
    const size_t count = out_logvar_clamped_.size();
    clamp_forward(count, raw, config_.logvar_min, config_.logvar_max, out_logvar_clamped_.data());
    float* grad = diff ? store_.grad(out_logvar_) : nullptr;
    gaussian_nll_learned(n, data_size_, out, x, out_logvar_clamped_.data(), count > 1,
                         recon_ws_.data(), diff, grad, scale);
    if (grad) clamp_backward(count, raw, config_.logvar_min, config_.logvar_max, grad);
  }
}

void Vae::decoder_backward(Context& ctx, int n) {
  const std::vector<const float*> in = graph_inputs(z_.data());
  float* diff_out = diff_out_.data();
  std::vector<float*> diff_in(in.size(), nullptr);  // the label needs no gradient
  diff_in[0] = diff_z_.data();
  decoder_.backward(ctx, n, in, std::span<float* const>(&diff_out, 1), diff_in);
}

void Vae::decoder_step(Context& ctx, int n, const float* x, float grad_scale) {
  const float* out = decoder_forward(ctx, n, z_.data());
  reconstruction(n, out, x, diff_out_.data(), grad_scale);
  if (learns_variance() && ctx.grad_listener) {
    const size_t final_entry[] = {out_logvar_};
    ctx.grad_listener->backward_done(final_entry);
  }
  decoder_backward(ctx, n);
}

void Vae::encoder_backward(Context& ctx, int n, const float* x) {
  // The data and the label need no gradient, so the first layer skips its backward-data.
  const std::vector<const float*> in = graph_inputs(x);
  float* const diff_heads[] = {diff_mu_.data(), diff_logvar_.data()};
  const std::vector<float*> diff_in(in.size(), nullptr);
  encoder_.backward(ctx, n, in, diff_heads, diff_in);
}

LossSums Vae::train_step(Context& ctx, const Batch& batch, float beta, float grad_scale) {
  if (config_.iw_train_samples > 1 && batch.n > 0) return train_step_iw(ctx, batch, grad_scale);
  LossSums sums;
  const int n = batch.n;
  const int L = config_.latent_dim;
  const bool free_bits = config_.free_bits > 0;
  if (free_bits) {
    kl_dim_.resize(static_cast<size_t>(L) + 1);
    kl_active_.resize(static_cast<size_t>(L));
  }
  if (n == 0) {
    // Nothing to learn from on this rank this step; contribute zero to the gradient sum (and
    // to the free-bits sums, which every rank must join).
    if (free_bits && ctx.batch_reducer) {
      std::fill(kl_dim_.begin(), kl_dim_.end(), 0.0);
      ctx.batch_reducer->start(kl_dim_);
      ctx.batch_reducer->finish();
    }
    store_.zero_grads();
    return sums;
  }
  ensure_workspace(n);
  set_condition(n, batch.labels);
  // Forward: x -> encoder -> (mu, logvar) -> z -> decoder -> logits (or Gaussian mean).
  encoder_forward(ctx, n, batch.x);
  if (free_bits) {
    // The floor applies to the global batch's mean KL per dimension: its sums travel over
    // the ranks while the decoder runs forward and backward (one exchange of L + 1 doubles).
    kl_per_dim_sums(n, L, mu_, logvar_, kl_dim_.data());
    kl_dim_[static_cast<size_t>(L)] = n;
    if (ctx.batch_reducer) ctx.batch_reducer->start(kl_dim_);
  }
  reparameterize(n, L, mu_, logvar_, batch.eps, z_.data());
  // Backward, in reverse order, from the likelihood's gradient at the decoder's output.
  decoder_step(ctx, n, batch.x, grad_scale);
  reparameterize_backward(n, L, logvar_, batch.eps, diff_z_.data(), diff_mu_.data(),
                          diff_logvar_.data());
  double kl_loss = 0;  // the KL part of the loss, summed over this rank's samples
  if (free_bits) {
    if (ctx.batch_reducer) ctx.batch_reducer->finish();
    const double global_n = kl_dim_[static_cast<size_t>(L)];
    for (int j = 0; j < L; ++j) kl_dim_[static_cast<size_t>(j)] /= global_n;  // now means
    const double floored = free_bits_kl(L, kl_dim_.data(), config_.free_bits, kl_active_.data());
    kl_free_bits_backward(n, L, mu_, logvar_, kl_active_.data(), diff_mu_.data(),
                          diff_logvar_.data(), beta * grad_scale);
    // The true per-sample KL, for the logs.
    kl_standard_normal(n, L, mu_, logvar_, kl_ws_.data(), nullptr, nullptr, 0.0f);
    kl_loss = floored * n;
  } else {
    // The KL term adds beta * grad_scale * dKL to the same head gradients.
    kl_standard_normal(n, L, mu_, logvar_, kl_ws_.data(), diff_mu_.data(), diff_logvar_.data(),
                       beta * grad_scale);
  }
  double& recon = sums.term[kRecon];
  double& kl = sums.term[kKl];
  for (int b = 0; b < n; ++b) {
    recon += recon_ws_[b];
    kl += kl_ws_[b];
  }
  if (!free_bits) kl_loss = kl;
  sums.loss = recon + beta * kl_loss;
  sums.count = n;
  // The clamp passes no gradient to logvar values outside its range.
  if (clamps_logvar())
    clamp_backward(static_cast<size_t>(n) * L, logvar_raw_, config_.logvar_min, config_.logvar_max,
                   diff_logvar_.data());

  // The encoder, from both heads.
  encoder_backward(ctx, n, batch.x);
  return sums;
}

// The importance-weighted bound per data point b, with log weights
//   log w_bi = log p(x_b|z_bi) + log p(z_bi) - log q(z_bi|x_b),  z_bi = mu_b + sigma_b eps_bi,
// is log((1/k) sum_i w_bi); the loss is its negative, and its gradient is sum_i wt_bi times the
// gradient of -log w_bi, wt = softmax_i(log w). The decoder runs once on all N*k samples; each
// sample's reconstruction gradient is scaled by its weight. recon and kl report the k-sample
// ELBO's terms, the means over the samples of the reconstruction NLL and of
// log q(z|x) - log p(z), so that loss <= recon + kl (Jensen) on every batch.
LossSums Vae::train_step_iw(Context& ctx, const Batch& batch, float grad_scale) {
  LossSums sums;
  const int n = batch.n, k = config_.iw_train_samples, L = config_.latent_dim;
  const int nk = n * k;
  const size_t D = static_cast<size_t>(data_size_);
  ensure_workspace(nk);
  set_condition(n, batch.labels);
  encoder_forward(ctx, n, batch.x);
  // Every row k times, for the decoder and its likelihood.
  x_rep_.resize(static_cast<size_t>(nk) * D);
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < k; ++i)
      std::copy_n(batch.x + static_cast<size_t>(b) * D, D,
                  x_rep_.data() + (static_cast<size_t>(b) * k + i) * D);
  if (config_.classes > 0) {
    labels_rep_.resize(static_cast<size_t>(nk));
    for (int b = 0; b < n; ++b)
      std::fill_n(labels_rep_.data() + static_cast<size_t>(b) * k, k, batch.labels[b]);
  }
  // z [N*k, L]: row (b, i) from mu_b, logvar_b and eps_bi.
  std::vector<float> mu_rep(static_cast<size_t>(nk) * L), lv_rep(mu_rep.size());
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < k; ++i) {
      std::copy_n(mu_ + static_cast<size_t>(b) * L, L, mu_rep.data() + (b * k + i) * L);
      std::copy_n(logvar_ + static_cast<size_t>(b) * L, L, lv_rep.data() + (b * k + i) * L);
    }
  reparameterize(nk, L, mu_rep.data(), lv_rep.data(), batch.eps, z_.data());
  set_condition(nk, config_.classes > 0 ? labels_rep_.data() : nullptr);
  const float* out = decoder_forward(ctx, nk, z_.data());
  reconstruction(nk, out, x_rep_.data(), diff_out_.data(), 1.0f);
  // The weights of each data point's samples.
  std::vector<double> log_w(static_cast<size_t>(nk)), weight(log_w.size());
  double kl_mean = 0;  // of log q - log p over the samples
  for (int r = 0; r < nk; ++r) {
    const float* zr = z_.data() + static_cast<size_t>(r) * L;
    const double kl_r = log_normal_diag(L, zr, mu_rep.data() + static_cast<size_t>(r) * L,
                                        lv_rep.data() + static_cast<size_t>(r) * L) -
                        log_standard_normal(L, zr);
    log_w[r] = -recon_ws_[r] - kl_r;
    kl_mean += kl_r / k;
  }
  double recon_mean = 0;
  for (int b = 0; b < n; ++b) {
    const double* lw = log_w.data() + static_cast<size_t>(b) * k;
    const double bound = log_mean_exp(lw, k);
    sums.loss -= bound;
    for (int i = 0; i < k; ++i) {
      weight[b * k + i] = std::exp(lw[i] - bound) / k;  // softmax: exp(lw_i) / sum_j exp(lw_j)
      recon_mean += recon_ws_[b * k + i] / k;
    }
  }
  // Each sample's reconstruction gradient, times its weight and the batch scale.
  for (int r = 0; r < nk; ++r) {
    const float a = static_cast<float>(weight[r] * grad_scale);
    float* d = diff_out_.data() + static_cast<size_t>(r) * D;
    for (size_t j = 0; j < D; ++j) d[j] *= a;
  }
  if (learns_variance()) {
    // reconstruction() wrote the unweighted variance gradient over all N*k rows; redo it with
    // the weights (a pass over the residuals, cheap beside the decoder).
    const float* raw = store_.param(out_logvar_);
    float* grad = store_.grad(out_logvar_);
    const size_t count = out_logvar_clamped_.size();
    std::fill_n(grad, count, 0.0f);
    std::vector<double> g(count, 0.0);
    for (int r = 0; r < nk; ++r) {
      const float* m = out + static_cast<size_t>(r) * D;
      const float* xr = x_rep_.data() + static_cast<size_t>(r) * D;
      for (size_t j = 0; j < D; ++j) {
        const size_t c = count > 1 ? j : 0;
        const double e = static_cast<double>(m[j]) - xr[j];
        g[c] += weight[r] * 0.5 * (1.0 - e * e * std::exp(-double{out_logvar_clamped_[c]}));
      }
    }
    for (size_t c = 0; c < count; ++c) grad[c] = static_cast<float>(g[c] * grad_scale);
    clamp_backward(count, raw, config_.logvar_min, config_.logvar_max, grad);
    if (ctx.grad_listener) {
      const size_t final_entry[] = {out_logvar_};
      ctx.grad_listener->backward_done(final_entry);
    }
  }
  decoder_backward(ctx, nk);
  // -log w_bi = recon_bi - log p(z_bi) + log q(z_bi|x_b): add the prior's and the posterior's
  // terms to the reconstruction's diff_z, then through z = mu + sigma eps, plus log q's own
  // dependence on mu and logvar.
  std::fill_n(diff_mu_.data(), static_cast<size_t>(n) * L, 0.0f);
  std::fill_n(diff_logvar_.data(), static_cast<size_t>(n) * L, 0.0f);
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < k; ++i) {
      const size_t r = static_cast<size_t>(b) * k + i;
      const double a = weight[r] * grad_scale;
      for (int j = 0; j < L; ++j) {
        const size_t rz = r * L + j, bz = static_cast<size_t>(b) * L + j;
        const double e = batch.eps[rz];
        const double sigma = std::exp(0.5 * double{logvar_[bz]});
        const double gz = diff_z_[rz] + a * (double{z_[rz]} - e / sigma);
        diff_mu_[bz] += static_cast<float>(gz + a * e / sigma);
        diff_logvar_[bz] += static_cast<float>(gz * 0.5 * sigma * e + a * 0.5 * (e * e - 1.0));
      }
    }
  sums.term[kKl] = kl_mean;
  sums.term[kRecon] = recon_mean;
  sums.count = n;
  if (clamps_logvar())
    clamp_backward(static_cast<size_t>(n) * L, logvar_raw_, config_.logvar_min, config_.logvar_max,
                   diff_logvar_.data());
  set_condition(n, batch.labels);
  encoder_backward(ctx, n, batch.x);
  return sums;
}

LossSums Vae::evaluate(Context& ctx, const Batch& batch, float beta, PosteriorStats* stats,
                       const EvalOutputs* per_sample) {
  LossSums sums;
  const int n = batch.n;
  if (n == 0) return sums;
  ensure_workspace(n);
  set_condition(n, batch.labels);
  const int L = config_.latent_dim;
  encoder_forward(ctx, n, batch.x);
  if (stats) stats->add(n, mu_, logvar_);
  reparameterize(n, L, mu_, logvar_, batch.eps, z_.data());
  const float* out = decoder_forward(ctx, n, z_.data());
  reconstruction(n, out, batch.x, nullptr, 0.0f);
  kl_standard_normal(n, L, mu_, logvar_, kl_ws_.data(), nullptr, nullptr, 0.0f);
  double& recon = sums.term[kRecon];
  double& kl = sums.term[kKl];
  for (int b = 0; b < n; ++b) {
    recon += recon_ws_[b];
    kl += kl_ws_[b];
  }
  sums.loss = recon + beta * kl;
  sums.count = n;
  if (per_sample) {
    if (per_sample->recon) std::copy_n(recon_ws_.data(), n, per_sample->recon);
    if (per_sample->kl) std::copy_n(kl_ws_.data(), n, per_sample->kl);
    if (per_sample->decoder_out)
      std::copy_n(out, static_cast<size_t>(n) * data_size_, per_sample->decoder_out);
  }
  return sums;
}

std::vector<float> Vae::output_logvar() const {
  if (!learns_variance()) return {};
  std::vector<float> v(out_logvar_clamped_.size());
  clamp_forward(v.size(), store_.param(out_logvar_), config_.logvar_min, config_.logvar_max,
                v.data());
  return v;
}

void Vae::encode(Context& ctx, const Batch& batch, float* mu, float* logvar) {
  const int n = batch.n;
  if (n == 0) return;
  ensure_workspace(n);
  set_condition(n, batch.labels);
  encoder_forward(ctx, n, batch.x);
  const size_t count = static_cast<size_t>(n) * config_.latent_dim;
  std::copy_n(mu_, count, mu);
  if (logvar) std::copy_n(logvar_, count, logvar);
}

void Vae::decode_mean(Context& ctx, int n, const float* z, const int32_t* labels, float* mean) {
  if (n == 0) return;
  ensure_workspace(n);
  set_condition(n, labels);
  const float* out = decoder_forward(ctx, n, z);
  const size_t count = static_cast<size_t>(n) * data_size_;
  if (config_.likelihood == Likelihood::Bernoulli) {
    for (size_t i = 0; i < count; ++i) mean[i] = 1.0f / (1.0f + std::exp(-out[i]));
  } else {
    std::copy_n(out, count, mean);
  }
}

double Vae::iw_log_likelihood_sum(Context& ctx, const Batch& batch, int k, Rng& rng) {
  VD_CHECK(k >= 1, ShapeError, "the importance-weighted bound needs at least one sample");
  const int n = batch.n;
  if (n == 0) return 0.0;
  ensure_workspace(n);
  set_condition(n, batch.labels);
  const int L = config_.latent_dim;
  encoder_forward(ctx, n, batch.x);
  // mu and logvar stay fixed while the decoder runs k times; keep copies.
  std::vector<float> mu(mu_, mu_ + static_cast<size_t>(n) * L);
  std::vector<float> logvar(logvar_, logvar_ + static_cast<size_t>(n) * L);
  std::vector<float> eps(static_cast<size_t>(n) * L);
  std::vector<double> log_w(static_cast<size_t>(n) * k);  // [N, k]
  for (int s = 0; s < k; ++s) {
    rng.fill_normal(eps.data(), eps.size());
    reparameterize(n, L, mu.data(), logvar.data(), eps.data(), z_.data());
    const float* out = decoder_forward(ctx, n, z_.data());
    reconstruction(n, out, batch.x, nullptr, 0.0f);
    for (int b = 0; b < n; ++b) {
      const float* zb = z_.data() + static_cast<size_t>(b) * L;
      const double log_p_z = log_standard_normal(L, zb);
      const double log_q = log_normal_diag(L, zb, mu.data() + static_cast<size_t>(b) * L,
                                           logvar.data() + static_cast<size_t>(b) * L);
      log_w[static_cast<size_t>(b) * k + s] = -recon_ws_[b] + log_p_z - log_q;
    }
  }
  double sum = 0;
  for (int b = 0; b < n; ++b) sum += log_mean_exp(log_w.data() + static_cast<size_t>(b) * k, k);
  return sum;
}

}  // namespace vd
