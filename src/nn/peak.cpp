// Timing loops for the inner-product peak reference; primitives come from dnnl_prims.cpp.
#include "nn/peak.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "nn/dnnl_prims.hpp"
#include "nn/layer.hpp"

namespace vd {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

double measure_inner_product_gflops(Context& ctx, int batch, int in, int out, InnerProductPass pass,
                                    double seconds, Precision precision) {
  VD_CHECK(seconds > 0 && std::isfinite(seconds), ShapeError,
           "The inner product peak measurement needs a positive duration in seconds.");
  InnerProductPrims prims(ctx.engine, InnerProductShape{batch, in, out, false, precision});
  const size_t b = static_cast<size_t>(batch), i = static_cast<size_t>(in),
               o = static_cast<size_t>(out);
  // Small random values: no denormals or infinities to distort the timing.
  std::vector<float> src(b * i), weights(o * i), bias(o), dst(b * o), diff_src(b * i),
      diff_weights(o * i), diff_bias(o);
  Rng rng(1);
  for (auto* v : {&src, &weights, &bias, &dst})
    for (float& x : *v) x = static_cast<float>(rng.uniform(-0.5, 0.5));

  const bool fwd = pass == InnerProductPass::Forward || pass == InnerProductPass::All;
  const bool bwd_d = pass == InnerProductPass::BackwardData || pass == InnerProductPass::All;
  const bool bwd_w = pass == InnerProductPass::BackwardWeights || pass == InnerProductPass::All;
  // dst doubles as diff_dst so the forward pass leaves the backward inputs warm in cache,
  // as in training.
  auto run = [&] {
    if (fwd) prims.forward(ctx.stream, src.data(), weights.data(), bias.data(), dst.data());
    if (bwd_w)
      prims.backward_weights(ctx.stream, src.data(), dst.data(), diff_weights.data(),
                             diff_bias.data());
    if (bwd_d) prims.backward_data(ctx.stream, dst.data(), weights.data(), diff_src.data());
  };
  const double flops = 2.0 * b * i * o * ((fwd ? 1 : 0) + (bwd_d ? 1 : 0) + (bwd_w ? 1 : 0));

  // Warm-up (first runs pay for JIT and page faults), and a rough time per run to size
  // the repetitions at about 2 ms each so timer resolution does not matter.
  for (int k = 0; k < 3; ++k) run();
  const auto t_probe = Clock::now();
  run();
  const double per_run = std::max(seconds_since(t_probe), 1e-7);
  const int reps = std::max(1, static_cast<int>(2e-3 / per_run));

  std::vector<double> gflops;
  const auto t_start = Clock::now();
  while (gflops.size() < 5 || seconds_since(t_start) < seconds) {
    const auto t0 = Clock::now();
    for (int k = 0; k < reps; ++k) run();
    gflops.push_back(reps * flops / seconds_since(t0) * 1e-9);
  }
  std::nth_element(gflops.begin(), gflops.begin() + gflops.size() / 2, gflops.end());
  return gflops[gflops.size() / 2];
}

double measure_conv_train_peak_gflops(Context& ctx, const std::vector<ConvShape>& layers,
                                      double seconds) {
  VD_CHECK(seconds > 0 && std::isfinite(seconds) && !layers.empty(), ShapeError,
           "The convolution peak measurement needs layers and a positive duration in seconds.");
  struct One {
    std::unique_ptr<ConvPrims> prims;
    std::vector<float> src, weights, bias, dst, diff_src, diff_weights, diff_bias;
  };
  // The peak is oneDNN's own choice of layouts, whatever vae_bench set for the model.
  set_conv_layouts(ConvLayouts::Any);
  std::vector<One> all;
  double flops = 0;
  Rng rng(1);
  for (const ConvShape& s : layers) {
    One o;
    // Ask which src layout the primitive wants, then build it with exactly that one.
    const Shape src = Shape{}.with_spatial(s.ic, s.src_spatial());
    const ConvPrims probe(ctx.engine, s, plain_layout(s.batch, src));
    o.prims = std::make_unique<ConvPrims>(ctx.engine, s, probe.wanted_src_layout());
    o.src.resize(layout_floats(probe.wanted_src_layout()));
    o.diff_src.resize(o.src.size());
    o.dst.resize(layout_floats(o.prims->dst_layout()));
    o.weights.resize(static_cast<size_t>(s.oc) * s.ic * s.kernel_volume());
    o.diff_weights.resize(o.weights.size());
    o.bias.resize(static_cast<size_t>(s.oc));
    o.diff_bias.resize(o.bias.size());
    for (auto* v : {&o.src, &o.weights, &o.bias})
      for (float& x : *v) x = static_cast<float>(rng.uniform(-0.5, 0.5));
    flops += 3 * s.flops();  // forward, backward-data, backward-weights
    all.push_back(std::move(o));
  }
  // dst doubles as diff_dst, as in the inner-product peak.
  auto run = [&] {
    for (One& o : all) {
      o.prims->forward(ctx.stream, o.src.data(), o.weights.data(), o.bias.data(), o.dst.data());
      o.prims->backward_weights(ctx.stream, o.src.data(), o.dst.data(), o.diff_weights.data(),
                                o.diff_bias.data());
      o.prims->backward_data(ctx.stream, o.dst.data(), o.diff_src.data());
    }
  };
  for (int k = 0; k < 2; ++k) run();
  std::vector<double> gflops;
  const auto t_start = Clock::now();
  while (gflops.size() < 5 || seconds_since(t_start) < seconds) {
    const auto t0 = Clock::now();
    run();
    gflops.push_back(flops / seconds_since(t0) * 1e-9);
  }
  std::nth_element(gflops.begin(), gflops.begin() + gflops.size() / 2, gflops.end());
  return gflops[gflops.size() / 2];
}

double measure_inner_product_peak_gflops(Context& ctx, int batch, int in, int out, double seconds,
                                         Precision precision) {
  return measure_inner_product_gflops(ctx, batch, in, out, InnerProductPass::Forward, seconds,
                                      precision);
}

double measure_inner_product_train_peak_gflops(Context& ctx, int batch, int in, int out,
                                               double seconds, Precision precision) {
  return measure_inner_product_gflops(ctx, batch, in, out, InnerProductPass::All, seconds,
                                      precision);
}

}  // namespace vd
