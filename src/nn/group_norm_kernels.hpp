// GroupNorm forward and backward kernels (torch.nn.GroupNorm(G, C, eps, affine=True)) on plain
// [N, C, S] memory and on oneDNN's channel-blocked layouts. Pure functions over raw buffers: the
// layer that owns gamma and beta and picks the layout wraps them (oneDNN 2.6 has no group norm).
#pragma once
#include <cstddef>
#include <cstdint>

namespace vd {

// Legend: N = samples, C = channels, G = groups (C % G == 0), D = C / G channels per group,
// S = spatial size (H*W, D*H*W or L; 1 for a flat vector), B = channel block,
// Cb = ceil(C / B) channel blocks, Cp = Cb * B channels with padding.
//
// Layout of src, dst, diff_dst and diff_src, by block:
//   B = 1       plain row-major [N, C, S] (PyTorch's NCHW, NCDHW, NCL);
//   B = 8, 16   [N, Cb, S, B]: oneDNN's nChw8c / nChw16c (also nCdhw16c, nCw16c), element
//               (n, c, s) at ((n * Cb + c / B) * S + s) * B + c % B. Channels C..Cp-1 are
//               padding: src and diff_dst must hold finite values there (oneDNN writes zeros),
//               dst and diff_src get zeros there.
// gamma, beta, diff_gamma, diff_beta are [C]; mean and rstd are [N, G].
struct GroupNormDims {
  int64_t n = 1;       // N
  int64_t c = 1;       // C
  int64_t s = 1;       // S
  int64_t groups = 1;  // G
  int64_t block = 1;   // B: 1, 8 or 16

  int64_t padded_channels() const { return (c + block - 1) / block * block; }  // Cp
  size_t elements() const {  // floats in one tensor of this layout: N * Cp * S
    return static_cast<size_t>(n) * static_cast<size_t>(padded_channels()) * static_cast<size_t>(s);
  }
};

// Throws vd::ShapeError, naming the sizes, unless N, C, S, G >= 1, C % G == 0 and B is 1, 8 or
// 16. Both kernels call it; a layer can call it once when it is built.
void check_group_norm_dims(const GroupNormDims& dims);

// dst = (src - mean[n, g]) * rstd[n, g] * gamma[c] + beta[c], with mean and the biased variance
// var over the D * S values of group g of sample n and rstd = 1 / sqrt(var + eps); mean and rstd
// are written for the backward pass.
//   src [N, C, S] (layout above), gamma [C], beta [C] -> dst [N, C, S], mean [N, G], rstd [N, G]
// Statistics are summed in double, shifted by a value of the same channel (no cancellation
// when the mean is far from zero), in one pass over src; a second pass writes dst.
void group_norm_forward(const GroupNormDims& dims, float eps, const float* src, const float* gamma,
                        const float* beta, float* dst, float* mean, float* rstd);

// How a kernel writes a gradient: replace the buffer's contents, or add to them (the sum over
// the consumers of a value that feeds several nodes).
enum class GradWrite { Overwrite, Accumulate };

// The backward pass of group_norm_forward, given the mean and rstd it wrote. With
// xhat = (src - mean) * rstd and dg = gamma[c] * diff_dst, per (n, g):
//   diff_src   = rstd * (dg - mean_g(dg) - xhat * mean_g(dg * xhat))   (mean_g over D * S values)
//   diff_gamma = sum over N and S of diff_dst * xhat,  diff_beta = sum over N and S of diff_dst
//   src [N, C, S], mean [N, G], rstd [N, G], gamma [C], diff_dst [N, C, S]
//     -> diff_src [N, C, S] (written as diff_src_write says; nullptr: not computed),
//        diff_gamma [C], diff_beta [C] (OVERWRITTEN)
// Sums are in double and in a fixed order: the results do not depend on the thread count.
void group_norm_backward(const GroupNormDims& dims, const float* src, const float* mean,
                         const float* rstd, const float* gamma, const float* diff_dst,
                         float* diff_src, float* diff_gamma, float* diff_beta,
                         GradWrite diff_src_write = GradWrite::Overwrite);

}  // namespace vd
