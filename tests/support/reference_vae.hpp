// A double-precision VAE for tests: walks the layer list of a vd::Vae (structure only: kinds,
// sizes, parameter names) and computes every layer by direct loops over a flat double copy
// of the parameters, so it shares no numerical code with the oneDNN path.
#pragma once
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "nn/concat.hpp"
#include "nn/conv.hpp"
#include "nn/linear.hpp"
#include "nn/param_store.hpp"
#include "vae/model.hpp"

namespace vd::testing {

// One sample through one layer, parameters read by name from p (a double copy of the
// store's flat buffer); `label` is the sample's class for a conditional model.
inline std::vector<double> reference_layer(const vd::ParamStore& store,
                                           const std::vector<double>& p, const vd::Layer& l,
                                           const std::vector<double>& in, int label) {
  using Vec = std::vector<double>;
  const auto w = [&](const Vec& q, const std::string& name) {
    return q.data() + store.find(name).offset;
  };
  const vd::Shape is = l.in_shape(), os = l.out_shape();
  Vec out(static_cast<size_t>(os.size()), 0.0);
  if (auto* fc = dynamic_cast<const vd::Linear*>(&l)) {
    const double* W = w(p, l.name() + ".weight");
    const double* b = w(p, l.name() + ".bias");
    const size_t I = static_cast<size_t>(fc->in());
    for (size_t o = 0; o < out.size(); ++o) {
      double acc = b[o];
      for (size_t i = 0; i < I; ++i) acc += W[o * I + i] * in[i];
      out[o] = fc->activation() == vd::Activation::ReLU ? std::max(acc, 0.0) : acc;
    }
  } else if (auto* cv = dynamic_cast<const vd::Conv2d*>(&l)) {
    const auto& s = cv->spec();
    const double* W = w(p, l.name() + ".weight");
    const double* b = w(p, l.name() + ".bias");
    const int K = s.kernel;
    for (int oc = 0; oc < os.c; ++oc)
      for (int i = 0; i < os.h * os.w; ++i) out[static_cast<size_t>(oc * os.h * os.w + i)] = b[oc];
    for (int ic = 0; ic < is.c; ++ic)
      for (int oc = 0; oc < os.c; ++oc)
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            // Conv2d weight [OC, IC, K, K]; ConvTranspose2d weight [IC, OC, K, K].
            const double wt = s.transposed ? W[((ic * os.c + oc) * K + ky) * K + kx]
                                           : W[((oc * is.c + ic) * K + ky) * K + kx];
            if (!s.transposed) {
              for (int oy = 0; oy < os.h; ++oy)
                for (int ox = 0; ox < os.w; ++ox) {
                  const int iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
                  if (iy < 0 || iy >= is.h || ix < 0 || ix >= is.w) continue;
                  out[static_cast<size_t>((oc * os.h + oy) * os.w + ox)] +=
                      wt * in[static_cast<size_t>((ic * is.h + iy) * is.w + ix)];
                }
            } else {
              for (int iy = 0; iy < is.h; ++iy)
                for (int ix = 0; ix < is.w; ++ix) {
                  const int oy = iy * s.stride - s.pad + ky, ox = ix * s.stride - s.pad + kx;
                  if (oy < 0 || oy >= os.h || ox < 0 || ox >= os.w) continue;
                  out[static_cast<size_t>((oc * os.h + oy) * os.w + ox)] +=
                      wt * in[static_cast<size_t>((ic * is.h + iy) * is.w + ix)];
                }
            }
          }
    if (cv->activation() == vd::Activation::ReLU)
      for (auto& v : out) v = std::max(v, 0.0);
  } else if (dynamic_cast<const vd::Relu*>(&l)) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = std::max(in[i], 0.0);
  } else if (dynamic_cast<const vd::Reshape*>(&l)) {
    out = in;
  } else if (dynamic_cast<const vd::ConcatCondition*>(&l)) {
    std::copy(in.begin(), in.end(), out.begin());
    out[in.size() + static_cast<size_t>(label)] = 1.0;
  } else {
    ADD_FAILURE() << "the reference does not know layer " << l.name();
  }
  return out;
}

struct ReferenceVae {
  const vd::Vae& vae;
  const vd::ParamStore& store;

  using Vec = std::vector<double>;

  const double* w(const Vec& p, const std::string& name) const {
    return p.data() + store.find(name).offset;
  }

  // One sample through one layer; `label` is the sample's class for a conditional model.
  Vec layer(const Vec& p, const vd::Layer& l, const Vec& in, int label) const {
    return reference_layer(store, p, l, in, label);
  }

  Vec net(const Vec& p, const vd::Sequential& seq, Vec h, int label) const {
    for (const auto& l : seq.layers()) h = layer(p, *l, h, label);
    return h;
  }

  Vec head(const Vec& p, const std::string& name, const Vec& in) const {
    const double* W = w(p, name + ".weight");
    const double* b = w(p, name + ".bias");
    const size_t L = static_cast<size_t>(vae.config().latent_dim);
    Vec out(L);
    for (size_t o = 0; o < L; ++o) {
      double acc = b[o];
      for (size_t i = 0; i < in.size(); ++i) acc += W[o * in.size() + i] * in[i];
      out[o] = acc;
    }
    return out;
  }

  struct Sample {
    Vec mu, logvar, z, out;
  };
  Sample forward(const Vec& p, const float* x, const float* eps, int label) const {
    const size_t D = static_cast<size_t>(vae.config().data.size());
    Sample s;
    const Vec h = net(p, vae.encoder(), Vec(x, x + D), label);
    s.mu = head(p, "encoder.mu", h);
    s.logvar = head(p, "encoder.logvar", h);
    s.z.resize(s.mu.size());
    for (size_t j = 0; j < s.z.size(); ++j) s.z[j] = s.mu[j] + std::exp(0.5 * s.logvar[j]) * eps[j];
    s.out = net(p, vae.decoder(), s.z, label);
    return s;
  }
  double recon(const Sample& s, const float* x) const {
    const auto& cfg = vae.config();
    double r = 0;
    for (size_t d = 0; d < s.out.size(); ++d) {
      const double l = s.out[d];
      if (cfg.likelihood == vd::Likelihood::Bernoulli) {
        r += std::max(l, 0.0) + std::log1p(std::exp(-std::abs(l))) - x[d] * l;
      } else {
        const double sg = cfg.gaussian_sigma, e = (x[d] - l) / sg;
        r += 0.5 * e * e + std::log(sg) + 0.5 * std::log(2 * std::numbers::pi);
      }
    }
    return r;
  }
  static double kl(const Sample& s) {
    double k = 0;
    for (size_t j = 0; j < s.mu.size(); ++j)
      k += -0.5 * (1 + s.logvar[j] - s.mu[j] * s.mu[j] - std::exp(s.logvar[j]));
    return k;
  }
  // Mean over the batch of recon + beta * kl.
  double loss(const Vec& p, int B, const float* x, const int32_t* labels, const float* eps,
              double beta) const {
    const size_t D = static_cast<size_t>(vae.config().data.size());
    const size_t L = static_cast<size_t>(vae.config().latent_dim);
    double total = 0;
    for (int b = 0; b < B; ++b) {
      const float* xb = x + static_cast<size_t>(b) * D;
      const Sample s = forward(p, xb, eps + static_cast<size_t>(b) * L, labels ? labels[b] : 0);
      total += recon(s, xb) + beta * kl(s);
    }
    return total / B;
  }
};

}  // namespace vd::testing
