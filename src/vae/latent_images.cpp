// The pictures of vae_latent: each encodes what it needs, moves in latent space
// (vae/latent) and decodes, in batches so any count fits the model's workspace.
#include "vae/latent_images.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "vae/latent.hpp"

namespace vd {

namespace {

constexpr int kDecodeBatch = 256;

size_t sz(int64_t v) {
  return static_cast<size_t>(v);
}

// Row i of a [n, width] buffer.
template <class T>
T* row(T* base, int64_t i, int64_t width) {
  return base + sz(i) * sz(width);
}

// Copies the image x [D] into row i of images.
void put(std::vector<float>& images, int64_t i, const float* x, int64_t D) {
  std::copy_n(x, sz(D), images.data() + sz(i) * sz(D));
}

}  // namespace

void encode_rows(Context& ctx, LatentModel& model, int64_t n, const float* x, const int32_t* labels,
                 int batch, float* mu, float* logvar) {
  const int64_t D = model.config().data.size(), L = model.config().latent_dim;
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int b = static_cast<int>(std::min<int64_t>(batch, n - b0));
    Batch bt{b, row(x, b0, D), labels ? labels + b0 : nullptr, nullptr};
    model.encode(ctx, bt, row(mu, b0, L), logvar ? row(logvar, b0, L) : nullptr);
  }
}

std::vector<float> decode_rows(Context& ctx, LatentModel& model, int64_t n, const float* z,
                               const int32_t* labels) {
  const int64_t D = model.config().data.size(), L = model.config().latent_dim;
  std::vector<float> images(sz(n) * sz(D));
  for (int64_t b0 = 0; b0 < n; b0 += kDecodeBatch) {
    const int b = static_cast<int>(std::min<int64_t>(kDecodeBatch, n - b0));
    model.decode_mean(ctx, b, row(z, b0, L), labels ? labels + b0 : nullptr,
                      row(images.data(), b0, D));
  }
  return images;
}

std::vector<float> interpolation_row(Context& ctx, LatentModel& model, const float* xa,
                                     const float* xb, int32_t la, int32_t lb, int steps,
                                     bool spherical) {
  const int L = model.config().latent_dim;
  const int64_t D = model.config().data.size();
  std::vector<float> mu_a(sz(L)), mu_b(sz(L)), z(sz(steps) * sz(L));
  encode_rows(ctx, model, 1, xa, &la, 1, mu_a.data(), nullptr);
  encode_rows(ctx, model, 1, xb, &lb, 1, mu_b.data(), nullptr);
  interpolate(mu_a.data(), mu_b.data(), L, steps, spherical, z.data());
  const std::vector<int32_t> labels(sz(steps), la);
  const std::vector<float> points = decode_rows(ctx, model, steps, z.data(), labels.data());
  std::vector<float> images(sz(steps + 2) * sz(D));
  put(images, 0, xa, D);
  std::copy(points.begin(), points.end(), images.begin() + static_cast<std::ptrdiff_t>(D));
  put(images, steps + 1, xb, D);
  return images;
}

std::vector<float> similar_row(Context& ctx, LatentModel& model, const float* x, int32_t label,
                               int n, float spread, Rng& rng) {
  const int L = model.config().latent_dim;
  const int64_t D = model.config().data.size();
  std::vector<float> mu(sz(L)), logvar(sz(L)), z(sz(n + 1) * sz(L));
  encode_rows(ctx, model, 1, x, &label, 1, mu.data(), logvar.data());
  std::copy(mu.begin(), mu.end(), z.begin());  // row 0: the reconstruction through mu
  std::vector<float> eps(sz(n) * sz(L));
  rng.fill_normal(eps.data(), eps.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < L; ++j)
      z[sz(i + 1) * sz(L) + sz(j)] =
          mu[sz(j)] + spread * std::exp(0.5f * logvar[sz(j)]) * eps[sz(i) * sz(L) + sz(j)];
  const std::vector<int32_t> labels(sz(n + 1), label);
  const std::vector<float> decoded = decode_rows(ctx, model, n + 1, z.data(), labels.data());
  std::vector<float> images(sz(n + 2) * sz(D));
  put(images, 0, x, D);
  std::copy(decoded.begin(), decoded.end(), images.begin() + static_cast<std::ptrdiff_t>(D));
  return images;
}

std::vector<float> class_samples(Context& ctx, LatentModel& model, const float* mean_k,
                                 const float* sd_k, int32_t k, int n, float spread, Rng& rng) {
  const int L = model.config().latent_dim;
  const bool conditional = model.config().classes > 0;
  std::vector<float> z(sz(n) * sz(L));
  rng.fill_normal(z.data(), z.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < L; ++j) {
      float& v = z[sz(i) * sz(L) + sz(j)];
      v = conditional ? spread * v : mean_k[j] + spread * sd_k[j] * v;
    }
  const std::vector<int32_t> labels(sz(n), k);
  return decode_rows(ctx, model, n, z.data(), labels.data());
}

std::vector<float> transfer_row(Context& ctx, LatentModel& model, const float* x, int32_t from,
                                int32_t to, const float* delta, int steps) {
  const int L = model.config().latent_dim;
  const int64_t D = model.config().data.size();
  std::vector<float> mu(sz(L));
  encode_rows(ctx, model, 1, x, &from, 1, mu.data(), nullptr);
  std::vector<float> z;
  std::vector<int32_t> labels;
  if (model.config().classes > 0) {
    z.insert(z.end(), mu.begin(), mu.end());
    z.insert(z.end(), mu.begin(), mu.end());
    labels = {from, to};
  } else {
    VD_CHECK(steps >= 2, ShapeError, "attribute transfer needs at least 2 steps");
    for (int i = 0; i < steps; ++i) {
      const float alpha = static_cast<float>(i) / static_cast<float>(steps - 1);
      for (int j = 0; j < L; ++j) z.push_back(mu[sz(j)] + alpha * delta[j]);
    }
    labels.assign(sz(steps), from);
  }
  const int64_t n = static_cast<int64_t>(labels.size());
  const std::vector<float> decoded = decode_rows(ctx, model, n, z.data(), labels.data());
  std::vector<float> images(sz(n + 1) * sz(D));
  put(images, 0, x, D);
  std::copy(decoded.begin(), decoded.end(), images.begin() + static_cast<std::ptrdiff_t>(D));
  return images;
}

std::vector<float> manifold_images(Context& ctx, LatentModel& model, int n, int32_t label) {
  if (model.config().latent_dim != 2)
    throw ConfigError("the manifold needs a model with latent-dim 2; this one has latent-dim " +
                      std::to_string(model.config().latent_dim) +
                      "; train one with --latent-dim 2, or use the sample subcommand");
  const std::vector<double> axis = manifold_axis(n);
  std::vector<float> z(sz(n) * sz(n) * 2);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      const size_t i = sz(r) * sz(n) + sz(c);
      z[2 * i] = static_cast<float>(axis[sz(c)]);
      z[2 * i + 1] = static_cast<float>(axis[sz(n - 1 - r)]);
    }
  const std::vector<int32_t> labels(sz(n) * sz(n), label);
  return decode_rows(ctx, model, static_cast<int64_t>(n) * n, z.data(), labels.data());
}

std::vector<float> prior_samples(Context& ctx, LatentModel& model, int n, float temperature,
                                 const int32_t* labels, Rng& rng) {
  std::vector<float> z(sz(n) * sz(model.config().latent_dim));
  rng.fill_normal(z.data(), z.size());
  for (float& v : z) v *= temperature;
  return decode_rows(ctx, model, n, z.data(), labels);
}

void check_finite_images(const std::vector<float>& images, int64_t n, const std::string& what) {
  const int64_t D = n > 0 ? static_cast<int64_t>(images.size()) / n : 0;
  for (size_t i = 0; i < images.size(); ++i)
    if (!std::isfinite(images[i])) {
      std::ostringstream msg;
      msg << what << ": image " << static_cast<int64_t>(i) / std::max<int64_t>(1, D) << " of " << n
          << " decodes to " << images[i] << " at value "
          << static_cast<int64_t>(i) % std::max<int64_t>(1, D)
          << ", so no picture is written; the model gives no finite image there (lower "
             "--temperature or --spread, or use another checkpoint)";
      throw Error(msg.str());
    }
}

}  // namespace vd
