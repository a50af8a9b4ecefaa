// The pictures vae_latent draws from a trained model, as images [n, D] in the data's layout:
// interpolations, samples near an image, class samples, attribute transfer, the 2-D manifold
// and prior samples. Forward passes only. A conditional model (classes > 0) is given the
// label wherever it encodes or decodes; a label is ignored by an unconditional one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/context.hpp"
#include "vae/latent_model.hpp"

namespace vd {

// mu and logvar [n, L] (logvar may be nullptr) of x [n, D], in batches of at most `batch` rows.
void encode_rows(Context& ctx, LatentModel& model, int64_t n, const float* x, const int32_t* labels,
                 int batch, float* mu, float* logvar);

// The means of p(x|z) for z [n, L] (labels [n] for a conditional model): [n, D].
std::vector<float> decode_rows(Context& ctx, LatentModel& model, int64_t n, const float* z,
                               const int32_t* labels);

// [steps + 2, D]: image a; the decodings of z(t) from mu(a) to mu(b) at `steps` evenly spaced
// t in [0, 1], linear or spherical (vae/latent interpolate); image b. A conditional model
// decodes every point with a's label.
std::vector<float> interpolation_row(Context& ctx, LatentModel& model, const float* xa,
                                     const float* xb, int32_t la, int32_t lb, int steps,
                                     bool spherical);

// [n + 2, D]: the image; its reconstruction through z = mu; n decodings of
// z = mu + spread * sigma * eps, samples of q(z|x) widened or narrowed by spread.
std::vector<float> similar_row(Context& ctx, LatentModel& model, const float* x, int32_t label,
                               int n, float spread, Rng& rng);

// [n, D], images "of class k": z = mean_k + spread * sd_k * eps around the class's mean
// encoding (mean_k, sd_k [L]: vae/latent ClassSums); for a conditional model the class is
// an input, so z = spread * eps from the prior decoded with label k (mean_k, sd_k unused).
std::vector<float> class_samples(Context& ctx, LatentModel& model, const float* mean_k,
                                 const float* sd_k, int32_t k, int n, float spread, Rng& rng);

// Attribute transfer of one image of class `from` to class `to`. Unconditional ([steps + 1, D]):
// the image, then the decodings of mu(x) + alpha * delta for alpha = 0 .. 1 in `steps` steps,
// with delta = mean_to - mean_from [L]. Conditional ([3, D]): the image, mu(x) decoded with
// label `from` (its reconstruction) and with label `to` (delta and steps unused).
std::vector<float> transfer_row(Context& ctx, LatentModel& model, const float* x, int32_t from,
                                int32_t to, const float* delta, int steps);

// [n * n, D]: the decodings of z = (axis[col], axis[n - 1 - row]) over vae/latent
// manifold_axis(n), so z1 grows to the right and z2 upwards; latent_dim must be 2.
std::vector<float> manifold_images(Context& ctx, LatentModel& model, int n, int32_t label);

// [n, D]: the decodings of z = temperature * eps, eps ~ N(0, I); labels [n] for a conditional
// model.
// Throws vd::Error when a picture's images [n, D] hold a NaN or an infinity (a model that
// decodes to no finite picture, e.g. from z far out of the prior), naming the image, the value
// and what to do; `what` names the picture ("the prior samples").
void check_finite_images(const std::vector<float>& images, int64_t n, const std::string& what);

std::vector<float> prior_samples(Context& ctx, LatentModel& model, int n, float temperature,
                                 const int32_t* labels, Rng& rng);

}  // namespace vd
