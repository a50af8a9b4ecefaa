// Reference throughput of a bare oneDNN inner product (plain layouts, as vd::Linear uses),
// the benchmark's yardstick for "peak" on this machine and thread count.
#pragma once
#include <vector>

#include "nn/context.hpp"
#include "nn/dnnl_prims.hpp"

namespace vd {

enum class InnerProductPass {
  Forward,          // 2*B*I*O flops per run
  BackwardData,     // 2*B*I*O
  BackwardWeights,  // 2*B*I*O (+ B*O for the bias)
  All,              // forward + backward_data + backward_weights: 6*B*I*O
};

// Runs `pass` of a [batch, in] x [out, in]^T inner product (with bias, no activation)
// repeatedly for about `seconds` after a warm-up and returns the median GFLOP/s over the
// timed repetitions (each a few milliseconds long). Uses as many threads as oneDNN's
// OpenMP runtime is given (set OMP_NUM_THREADS=1 for the single-thread peak). In bf16 the
// time includes the conversions InnerProductPrims makes, as a Linear layer pays them.
double measure_inner_product_gflops(Context& ctx, int batch, int in, int out, InnerProductPass pass,
                                    double seconds, Precision precision = Precision::F32);

// The forward pass alone: the single-thread peak reference of the benchmark.
double measure_inner_product_peak_gflops(Context& ctx, int batch, int in, int out, double seconds,
                                         Precision precision = Precision::F32);

// Forward + backward_data + backward_weights, counted as 6*B*I*O flops per step.
double measure_inner_product_train_peak_gflops(Context& ctx, int batch, int in, int out,
                                               double seconds,
                                               Precision precision = Precision::F32);

// oneDNN's convolutions alone: every shape in `layers` runs forward, backward-weights and
// backward-data with src in the layout the primitive chose (format_tag::any), no reorder of
// activations, no framework; returns their total GFLOP/s (median over repetitions). The
// yardstick for "share of the convolution peak" of a conv model.
double measure_conv_train_peak_gflops(Context& ctx, const std::vector<ConvShape>& layers,
                                      double seconds);

}  // namespace vd
