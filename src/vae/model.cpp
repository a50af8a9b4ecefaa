// Vae: assembly of the Linear layers and the loss pieces into forward and backward passes.
#include "vae/model.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "vae/loss.hpp"

namespace vd {

Likelihood parse_likelihood(const std::string& name) {
  if (name == "bernoulli") return Likelihood::Bernoulli;
  if (name == "gaussian") return Likelihood::Gaussian;
  throw ConfigError("likelihood '" + name + "' is not known; use bernoulli or gaussian");
}

Vae::Vae(const VaeConfig& config, ParamStore& store) : config_(config), store_(store) {
  VD_CHECK(config.data_dim > 0 && config.latent_dim > 0, ShapeError,
           "a VAE needs a positive data dimension and latent dimension");
  VD_CHECK(!config.hidden.empty(), ShapeError, "a VAE needs at least one hidden layer");
  int in = config.data_dim;
  for (size_t i = 0; i < config.hidden.size(); ++i) {
    enc_.push_back(std::make_unique<Linear>(store, "encoder.fc" + std::to_string(i + 1), in,
                                            config.hidden[i], Activation::ReLU));
    in = config.hidden[i];
  }
  mu_head_ = std::make_unique<Linear>(store, "encoder.mu", in, config.latent_dim, Activation::None);
  logvar_head_ =
      std::make_unique<Linear>(store, "encoder.logvar", in, config.latent_dim, Activation::None);
  in = config.latent_dim;
  for (size_t i = 0; i < config.hidden.size(); ++i) {
    const int width = config.hidden[config.hidden.size() - 1 - i];
    dec_.push_back(std::make_unique<Linear>(store, "decoder.fc" + std::to_string(i + 1), in, width,
                                            Activation::ReLU));
    in = width;
  }
  dec_.push_back(
      std::make_unique<Linear>(store, "decoder.out", in, config.data_dim, Activation::None));
  enc_act_.resize(enc_.size());
  dec_act_.resize(dec_.size());
}

void Vae::init(Rng& rng) {
  for (auto& l : enc_) l->init(rng);
  mu_head_->init(rng);
  logvar_head_->init(rng);
  for (auto& l : dec_) l->init(rng);
}

double Vae::flops_per_sample_forward() const {
  double f = mu_head_->flops_per_sample_forward() + logvar_head_->flops_per_sample_forward();
  for (auto& l : enc_) f += l->flops_per_sample_forward();
  for (auto& l : dec_) f += l->flops_per_sample_forward();
  return f;
}

void Vae::ensure_workspace(int batch) {
  if (batch <= capacity_) return;
  const size_t b = static_cast<size_t>(batch), L = static_cast<size_t>(config_.latent_dim);
  size_t widest = static_cast<size_t>(config_.data_dim);
  for (size_t i = 0; i < enc_.size(); ++i) enc_act_[i].resize(b * enc_[i]->out());
  for (size_t i = 0; i < dec_.size(); ++i) dec_act_[i].resize(b * dec_[i]->out());
  for (int h : config_.hidden) widest = std::max(widest, static_cast<size_t>(h));
  for (auto* v : {&mu_, &logvar_, &z_, &eps_copy_, &diff_mu_, &diff_logvar_, &diff_z_, &diff_head_})
    v->resize(b * L);
  grad_a_.resize(b * widest);
  grad_b_.resize(b * widest);
  recon_ws_.resize(b);
  kl_ws_.resize(b);
  capacity_ = batch;
}

void Vae::encoder_forward(Context& ctx, int batch, const float* x) {
  const float* src = x;
  for (size_t i = 0; i < enc_.size(); ++i) {
    enc_[i]->forward(ctx, batch, src, enc_act_[i].data());
    src = enc_act_[i].data();
  }
  mu_head_->forward(ctx, batch, src, mu_.data());
  logvar_head_->forward(ctx, batch, src, logvar_.data());
}

void Vae::decoder_forward(Context& ctx, int batch) {
  const float* src = z_.data();
  for (size_t i = 0; i < dec_.size(); ++i) {
    dec_[i]->forward(ctx, batch, src, dec_act_[i].data());
    src = dec_act_[i].data();
  }
}

void Vae::reconstruction(int batch, const float* x, float* diff, float scale) {
  const float* out = dec_act_.back().data();
  if (config_.likelihood == Likelihood::Bernoulli)
    bernoulli_nll(batch, config_.data_dim, out, x, recon_ws_.data(), diff, scale);
  else
    gaussian_nll(batch, config_.data_dim, out, x, config_.gaussian_sigma, recon_ws_.data(), diff,
                 scale);
}

LossSums Vae::train_step(Context& ctx, int batch, const float* x, const float* eps, float beta,
                         float grad_scale) {
  LossSums sums;
  if (batch == 0) {
    // Nothing to learn from on this rank this step; contribute zero to the allreduce.
    store_.zero_grads();
    return sums;
  }
  ensure_workspace(batch);
  const int L = config_.latent_dim;
  // Forward: x -> (mu, logvar) -> z -> logits.
  encoder_forward(ctx, batch, x);
  reparameterize(batch, L, mu_.data(), logvar_.data(), eps, z_.data());
  decoder_forward(ctx, batch);

  // Reconstruction NLL and its gradient w.r.t. the decoder output, into grad_a_ [B, D].
  reconstruction(batch, x, grad_a_.data(), grad_scale);

  // Backward, in reverse order: decoder.out ... decoder.fc1, then z -> (mu, logvar), then
  // the heads and the encoder. diff buffers ping-pong between grad_a_ and grad_b_.
  float* diff_dst = grad_a_.data();
  float* diff_src = grad_b_.data();
  for (size_t i = dec_.size(); i-- > 0;) {
    const float* src = i == 0 ? z_.data() : dec_act_[i - 1].data();
    float* dsrc = i == 0 ? diff_z_.data() : diff_src;
    dec_[i]->backward(ctx, batch, src, dec_act_[i].data(), diff_dst, dsrc);
    std::swap(diff_dst, diff_src);
  }
  reparameterize_backward(batch, L, logvar_.data(), eps, diff_z_.data(), diff_mu_.data(),
                          diff_logvar_.data());
  // The KL term adds beta * grad_scale * dKL to the same head gradients.
  kl_standard_normal(batch, L, mu_.data(), logvar_.data(), kl_ws_.data(), diff_mu_.data(),
                     diff_logvar_.data(), beta * grad_scale);
  for (int b = 0; b < batch; ++b) {
    sums.recon += recon_ws_[b];
    sums.kl += kl_ws_[b];
  }
  sums.loss = sums.recon + beta * sums.kl;
  sums.count = batch;

  // Heads: both read the last encoder activation, so their input gradients add up.
  const float* h = enc_act_.back().data();
  const int H = enc_.back()->out();
  float* dh = grad_a_.data();
  mu_head_->backward(ctx, batch, h, mu_.data(), diff_mu_.data(), dh);
  logvar_head_->backward(ctx, batch, h, logvar_.data(), diff_logvar_.data(), grad_b_.data());
  const size_t n = static_cast<size_t>(batch) * H;
  const float* db = grad_b_.data();
#pragma omp simd
  for (size_t i = 0; i < n; ++i) dh[i] += db[i];

  diff_dst = grad_a_.data();
  diff_src = grad_b_.data();
  for (size_t i = enc_.size(); i-- > 0;) {
    const float* src = i == 0 ? x : enc_act_[i - 1].data();
    // The data needs no gradient: skip backward-data of the first layer.
    enc_[i]->backward(ctx, batch, src, enc_act_[i].data(), diff_dst, i == 0 ? nullptr : diff_src);
    std::swap(diff_dst, diff_src);
  }
  return sums;
}

LossSums Vae::evaluate(Context& ctx, int batch, const float* x, const float* eps, float beta) {
  LossSums sums;
  if (batch == 0) return sums;
  ensure_workspace(batch);
  const int L = config_.latent_dim;
  encoder_forward(ctx, batch, x);
  reparameterize(batch, L, mu_.data(), logvar_.data(), eps, z_.data());
  decoder_forward(ctx, batch);
  reconstruction(batch, x, nullptr, 0.0f);
  kl_standard_normal(batch, L, mu_.data(), logvar_.data(), kl_ws_.data(), nullptr, nullptr, 0.0f);
  for (int b = 0; b < batch; ++b) {
    sums.recon += recon_ws_[b];
    sums.kl += kl_ws_[b];
  }
  sums.loss = sums.recon + beta * sums.kl;
  sums.count = batch;
  return sums;
}

void Vae::encode(Context& ctx, int batch, const float* x, float* mu, float* logvar) {
  if (batch == 0) return;
  ensure_workspace(batch);
  encoder_forward(ctx, batch, x);
  const size_t n = static_cast<size_t>(batch) * config_.latent_dim;
  std::copy_n(mu_.data(), n, mu);
  if (logvar) std::copy_n(logvar_.data(), n, logvar);
}

void Vae::decode_mean(Context& ctx, int batch, const float* z, float* mean) {
  if (batch == 0) return;
  ensure_workspace(batch);
  std::copy_n(z, static_cast<size_t>(batch) * config_.latent_dim, z_.data());
  decoder_forward(ctx, batch);
  const float* out = dec_act_.back().data();
  const size_t n = static_cast<size_t>(batch) * config_.data_dim;
  if (config_.likelihood == Likelihood::Bernoulli) {
    for (size_t i = 0; i < n; ++i) mean[i] = 1.0f / (1.0f + std::exp(-out[i]));
  } else {
    std::copy_n(out, n, mean);
  }
}

double Vae::iw_log_likelihood_sum(Context& ctx, int batch, const float* x, int k, Rng& rng) {
  VD_CHECK(k >= 1, ShapeError, "the importance-weighted bound needs at least one sample");
  if (batch == 0) return 0.0;
  ensure_workspace(batch);
  const int L = config_.latent_dim;
  encoder_forward(ctx, batch, x);
  // mu and logvar stay fixed while the decoder runs k times; keep copies.
  std::vector<float> mu(mu_.begin(), mu_.begin() + static_cast<size_t>(batch) * L);
  std::vector<float> logvar(logvar_.begin(), logvar_.begin() + static_cast<size_t>(batch) * L);
  std::vector<float> eps(static_cast<size_t>(batch) * L);
  std::vector<double> log_w(static_cast<size_t>(batch) * k);  // [B, k]
  for (int s = 0; s < k; ++s) {
    rng.fill_normal(eps.data(), eps.size());
    reparameterize(batch, L, mu.data(), logvar.data(), eps.data(), z_.data());
    decoder_forward(ctx, batch);
    reconstruction(batch, x, nullptr, 0.0f);
    for (int b = 0; b < batch; ++b) {
      const float* zb = z_.data() + static_cast<size_t>(b) * L;
      const double log_p_z = log_standard_normal(L, zb);
      const double log_q = log_normal_diag(L, zb, mu.data() + static_cast<size_t>(b) * L,
                                           logvar.data() + static_cast<size_t>(b) * L);
      log_w[static_cast<size_t>(b) * k + s] = -recon_ws_[b] + log_p_z - log_q;
    }
  }
  double sum = 0;
  for (int b = 0; b < batch; ++b) sum += log_mean_exp(log_w.data() + static_cast<size_t>(b) * k, k);
  return sum;
}

}  // namespace vd
