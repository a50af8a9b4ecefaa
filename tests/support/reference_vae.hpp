// A double-precision VAE for tests: walks the graphs of a vd::Vae (structure only: nodes, kinds,
// sizes, parameter names) and computes every layer by direct loops over a flat double copy
// of the parameters, so it shares no numerical code with the oneDNN path.
#pragma once
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "nn/activation.hpp"
#include "nn/attention.hpp"
#include "nn/block.hpp"
#include "nn/conv.hpp"
#include "nn/graph.hpp"
#include "nn/group_norm.hpp"
#include "nn/linear.hpp"
#include "nn/param_store.hpp"
#include "nn/relu.hpp"
#include "nn/reshape.hpp"
#include "nn/upsample.hpp"
#include "vae/model.hpp"

namespace vd::testing {

inline std::vector<std::vector<double>> reference_graph(const vd::ParamStore& store,
                                                        const std::vector<double>& p,
                                                        const vd::Graph& g,
                                                        std::vector<std::vector<double>> inputs);

// One sample through one layer, parameters read by name from p (a double copy of the
// store's flat buffer).
inline std::vector<double> reference_layer(const vd::ParamStore& store,
                                           const std::vector<double>& p, const vd::Layer& l,
                                           const std::vector<double>& in) {
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
  } else if (auto* cv = dynamic_cast<const vd::Conv*>(&l)) {
    // Every shape seen as D x H x W: a missing axis has size 1, kernel 1, stride 1, pad 0,
    // which leaves the flat indices of [C, L] and [C, H, W] and of their weights as they are.
    const auto three = [](const std::vector<int>& v, int fill) {
      std::vector<int> r(v);
      while (r.size() < 3) r.insert(r.begin(), fill);
      return r;
    };
    const std::vector<int> I{is.d, is.h, is.w}, O{os.d, os.h, os.w};
    const auto K = three(cv->kernel(), 1), S = three(cv->stride(), 1), P = three(cv->pad(), 0);
    const double* W = w(p, l.name() + ".weight");
    const double* b = w(p, l.name() + ".bias");
    const bool t = cv->spec().transposed;
    const int isz = I[0] * I[1] * I[2], osz = O[0] * O[1] * O[2], ksz = K[0] * K[1] * K[2];
    for (int oc = 0; oc < os.c; ++oc)
      for (int i = 0; i < osz; ++i) out[static_cast<size_t>(oc * osz + i)] = b[oc];
    // A convolution reads input (o * s - p + k) into output o; a transposed one writes
    // input i into output (i * s - p + k). A is the side looped over, B the side indexed.
    const auto& A = t ? I : O;
    const auto& B = t ? O : I;
    for (int ic = 0; ic < is.c; ++ic)
      for (int oc = 0; oc < os.c; ++oc)
        for (int k = 0; k < ksz; ++k) {
          const int kd = k / (K[1] * K[2]), kh = k / K[2] % K[1], kw = k % K[2];
          // Conv weight [OC, IC, K...]; ConvTranspose weight [IC, OC, K...].
          const double wt = t ? W[(ic * os.c + oc) * ksz + k] : W[(oc * is.c + ic) * ksz + k];
          for (int a0 = 0; a0 < A[0]; ++a0)
            for (int a1 = 0; a1 < A[1]; ++a1)
              for (int a2 = 0; a2 < A[2]; ++a2) {
                const int b0 = a0 * S[0] - P[0] + kd, b1 = a1 * S[1] - P[1] + kh,
                          b2 = a2 * S[2] - P[2] + kw;
                if (b0 < 0 || b0 >= B[0] || b1 < 0 || b1 >= B[1] || b2 < 0 || b2 >= B[2]) continue;
                const int ai = (a0 * A[1] + a1) * A[2] + a2, bi = (b0 * B[1] + b1) * B[2] + b2;
                const int src = t ? ai : bi, dst = t ? bi : ai;
                out[static_cast<size_t>(oc * osz + dst)] +=
                    wt * in[static_cast<size_t>(ic * isz + src)];
              }
        }
    if (cv->activation() == vd::Activation::ReLU)
      for (auto& v : out) v = std::max(v, 0.0);
  } else if (dynamic_cast<const vd::Relu*>(&l)) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = std::max(in[i], 0.0);
  } else if (auto* el = dynamic_cast<const vd::Eltwise*>(&l)) {
    // PyTorch's definitions, directly: SiLU x sigmoid(x), GELU x Phi(x) with erf.
    const double a = el->alpha();
    for (size_t i = 0; i < out.size(); ++i) {
      const double x = in[i];
      switch (el->op()) {
        case vd::EltwiseOp::Silu:
          out[i] = x / (1 + std::exp(-x));
          break;
        case vd::EltwiseOp::Gelu:
          out[i] = 0.5 * x * (1 + std::erf(x / std::numbers::sqrt2));
          break;
        case vd::EltwiseOp::LeakyRelu:
          out[i] = x > 0 ? x : a * x;
          break;
        case vd::EltwiseOp::Tanh:
          out[i] = std::tanh(x);
          break;
        case vd::EltwiseOp::Sigmoid:
          out[i] = 1 / (1 + std::exp(-x));
          break;
      }
    }
  } else if (dynamic_cast<const vd::Upsample*>(&l)) {
    // Nearest: output position (z, y, x) copies input (z / S, y / S, x / S) on the axes the
    // data has (S = out / in there; 1 on an axis it lacks).
    for (int c = 0; c < os.c; ++c)
      for (int z = 0; z < os.d; ++z)
        for (int y = 0; y < os.h; ++y)
          for (int x = 0; x < os.w; ++x)
            out[static_cast<size_t>(((c * os.d + z) * os.h + y) * os.w + x)] =
                in[static_cast<size_t>(((c * is.d + z / (os.d / is.d)) * is.h + y / (os.h / is.h)) *
                                           is.w +
                                       x / (os.w / is.w))];
  } else if (dynamic_cast<const vd::Reshape*>(&l)) {
    out = in;
  } else if (auto* gn = dynamic_cast<const vd::GroupNorm*>(&l)) {
    // Biased variance over each group's channels and positions.
    const double* gamma = w(p, l.name() + ".weight");
    const double* beta = w(p, l.name() + ".bias");
    const size_t S = static_cast<size_t>(is.spatial_size()),
                 per = static_cast<size_t>(is.c / gn->groups());
    for (size_t g = 0; g < static_cast<size_t>(gn->groups()); ++g) {
      double mean = 0, var = 0;
      const size_t begin = g * per * S, end = begin + per * S;
      for (size_t i = begin; i < end; ++i) mean += in[i];
      mean /= static_cast<double>(end - begin);
      for (size_t i = begin; i < end; ++i) var += (in[i] - mean) * (in[i] - mean);
      var /= static_cast<double>(end - begin);
      for (size_t i = begin; i < end; ++i) {
        const size_t c = i / S;
        out[i] = (in[i] - mean) / std::sqrt(var + gn->eps()) * gamma[c] + beta[c];
      }
    }
  } else if (auto* block = dynamic_cast<const vd::Block*>(&l)) {
    out = reference_graph(store, p, block->graph(), {in})[0];
  } else if (auto* at = dynamic_cast<const vd::Attention*>(&l)) {
    // diffusers' Attention with one head and the residual: GroupNorm of x [C, S] (S positions
    // of 1-D, 2-D or 3-D data), tokens t [S, C], q/k/v = t W^T + b, ctx = softmax(q k^T /
    // sqrt(C)) v, o = ctx Wo^T + bo, out = x + o (as [C, S]).
    const size_t C = static_cast<size_t>(is.c), S = static_cast<size_t>(is.spatial_size());
    const size_t per = C / static_cast<size_t>(at->groups());
    const double* gamma = w(p, l.name() + ".group_norm.weight");
    const double* beta = w(p, l.name() + ".group_norm.bias");
    Vec t(S * C);  // [S, C]
    for (size_t g = 0; g < C / per; ++g) {
      double mean = 0, var = 0;
      for (size_t i = g * per * S; i < (g + 1) * per * S; ++i) mean += in[i];
      mean /= static_cast<double>(per * S);
      for (size_t i = g * per * S; i < (g + 1) * per * S; ++i)
        var += (in[i] - mean) * (in[i] - mean);
      var /= static_cast<double>(per * S);
      for (size_t c = g * per; c < (g + 1) * per; ++c)
        for (size_t s = 0; s < S; ++s)
          t[s * C + c] = (in[c * S + s] - mean) / std::sqrt(var + at->eps()) * gamma[c] + beta[c];
    }
    const auto linear = [&](const std::string& m, const Vec& x) {  // [S, C] -> [S, C]
      const double* W = w(p, l.name() + "." + m + ".weight");      // [out, in]
      const double* b = w(p, l.name() + "." + m + ".bias");
      Vec y(S * C);
      for (size_t s = 0; s < S; ++s)
        for (size_t o = 0; o < C; ++o) {
          double acc = b[o];
          for (size_t i = 0; i < C; ++i) acc += W[o * C + i] * x[s * C + i];
          y[s * C + o] = acc;
        }
      return y;
    };
    const Vec q = linear("to_q", t), k = linear("to_k", t), v = linear("to_v", t);
    Vec ctx(S * C, 0.0), a(S);
    for (size_t i = 0; i < S; ++i) {
      double top = -INFINITY, sum = 0;
      for (size_t j = 0; j < S; ++j) {
        a[j] = 0;
        for (size_t c = 0; c < C; ++c) a[j] += q[i * C + c] * k[j * C + c];
        a[j] /= std::sqrt(static_cast<double>(C));
        top = std::max(top, a[j]);
      }
      for (size_t j = 0; j < S; ++j) sum += (a[j] = std::exp(a[j] - top));
      for (size_t j = 0; j < S; ++j)
        for (size_t c = 0; c < C; ++c) ctx[i * C + c] += a[j] / sum * v[j * C + c];
    }
    const Vec o = linear("to_out", ctx);
    for (size_t c = 0; c < C; ++c)
      for (size_t s = 0; s < S; ++s) out[c * S + s] = in[c * S + s] + o[s * C + c];
  } else {
    ADD_FAILURE() << "the reference does not know layer " << l.name();
  }
  return out;
}

// One sample through a graph: `inputs` one vector per graph input; returns its outputs.
inline std::vector<std::vector<double>> reference_graph(const vd::ParamStore& store,
                                                        const std::vector<double>& p,
                                                        const vd::Graph& g,
                                                        std::vector<std::vector<double>> inputs) {
  std::vector<std::vector<double>> values = std::move(inputs);
  for (const auto& node : g.nodes()) {
    const auto& first = values[static_cast<size_t>(node.from[0])];
    if (node.op == vd::Graph::Op::Layer) {
      values.push_back(reference_layer(store, p, *node.layer, first));
    } else if (node.op == vd::Graph::Op::Sum) {
      std::vector<double> sum = first;
      for (size_t j = 1; j < node.from.size(); ++j)
        for (size_t i = 0; i < sum.size(); ++i)
          sum[i] += values[static_cast<size_t>(node.from[j])][i];
      values.push_back(sum);
    } else {  // concatenation along channels: one sample's inputs one after the other
      std::vector<double> cat;
      for (vd::Graph::Value v : node.from)
        cat.insert(cat.end(), values[static_cast<size_t>(v)].begin(),
                   values[static_cast<size_t>(v)].end());
      values.push_back(cat);
    }
  }
  std::vector<std::vector<double>> out;
  for (vd::Graph::Value v : g.outputs()) out.push_back(values[static_cast<size_t>(v)]);
  return out;
}

struct ReferenceVae {
  const vd::Vae& vae;
  const vd::ParamStore& store;

  using Vec = std::vector<double>;

  const double* w(const Vec& p, const std::string& name) const {
    return p.data() + store.find(name).offset;
  }

  // A graph's inputs for one sample: `first`, then the one-hot label of a conditional model.
  std::vector<Vec> inputs(Vec first, int label) const {
    std::vector<Vec> in{std::move(first)};
    const int K = vae.config().classes;
    if (K > 0) {
      in.emplace_back(static_cast<size_t>(K), 0.0);
      in.back()[static_cast<size_t>(label)] = 1.0;
    }
    return in;
  }

  struct Sample {
    Vec mu, logvar, z, out;
    Vec out_logvar;  // a learned decoder log-variance ([1] or [D]), clamped; empty when fixed
  };
  Sample forward(const Vec& p, const float* x, const float* eps, int label) const {
    const size_t D = static_cast<size_t>(vae.config().data.size());
    Sample s;
    const auto enc = reference_graph(store, p, vae.encoder(), inputs(Vec(x, x + D), label));
    s.mu = enc[0];
    s.logvar = enc[1];
    s.z.resize(s.mu.size());
    for (size_t j = 0; j < s.z.size(); ++j) s.z[j] = s.mu[j] + std::exp(0.5 * s.logvar[j]) * eps[j];
    s.out = reference_graph(store, p, vae.decoder(), inputs(s.z, label))[0];
    const auto& cfg = vae.config();
    if (cfg.likelihood == vd::Likelihood::Gaussian &&
        cfg.output_variance != vd::ModelConfig::OutputVariance::Fixed) {
      const auto& e = store.find("decoder.out_logvar");
      for (size_t j = 0; j < e.size; ++j)
        s.out_logvar.push_back(
            std::clamp(p[e.offset + j], double{cfg.logvar_min}, double{cfg.logvar_max}));
    }
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
        const double lv = s.out_logvar.empty() ? 2 * std::log(double{cfg.gaussian_sigma})
                                               : s.out_logvar[s.out_logvar.size() == 1 ? 0 : d];
        const double e = x[d] - l;
        r += 0.5 * (e * e * std::exp(-lv) + lv + std::log(2 * std::numbers::pi));
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
  // Mean over the batch of the negative importance-weighted bound with k samples each:
  // -log((1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)), z_i from eps [B, k, L].
  double iw_loss(const Vec& p, int B, const float* x, const int32_t* labels, const float* eps,
                 int k) const {
    const size_t D = static_cast<size_t>(vae.config().data.size());
    const size_t L = static_cast<size_t>(vae.config().latent_dim);
    double total = 0;
    for (int b = 0; b < B; ++b) {
      const float* xb = x + static_cast<size_t>(b) * D;
      std::vector<double> lw;
      for (int i = 0; i < k; ++i) {
        const Sample s =
            forward(p, xb, eps + (static_cast<size_t>(b) * k + i) * L, labels ? labels[b] : 0);
        double log_p = 0, log_q = 0;
        for (size_t j = 0; j < L; ++j) {
          const double c = std::log(2 * std::numbers::pi);
          log_p += -0.5 * (s.z[j] * s.z[j] + c);
          const double d = s.z[j] - s.mu[j];
          log_q += -0.5 * (d * d * std::exp(-s.logvar[j]) + s.logvar[j] + c);
        }
        lw.push_back(-recon(s, xb) + log_p - log_q);
      }
      const double top = *std::max_element(lw.begin(), lw.end());
      double sum = 0;
      for (double v : lw) sum += std::exp(v - top);
      total -= top + std::log(sum / k);
    }
    return total / B;
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
