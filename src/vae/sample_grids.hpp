// The pictures a run shows after each epoch, made by the model: prior samples from fixed z,
// one row per class for a conditional model, and inputs above their reconstructions. Each is
// written as a PNG grid (io/image_grid) in the data's own shape: images as tiles, 1-D
// signals as curves, 3-D volumes as their middle slices.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "io/image_grid.hpp"

#include "data/standardize.hpp"
#include "nn/context.hpp"
#include "vae/latent_model.hpp"

namespace vd {

// How one sample is drawn: C x H x W for images; flat [D] data square when D is a square
// (784 -> 28 x 28), else one row of pixels. Channels other than 1 (gray) or 3 (RGB) are
// drawn as the gray mean of their channels. A 3-D sample [C, D, H, W] is drawn as its
// middle slice (depth D / 2) like an image; a 1-D sample [C, L] as an RGB cell of curves,
// kCurveHeight x curve_width(L) (io/image_grid).
struct TileShape {
  int c = 1, h = 1, w = 1;
};
TileShape tile_shape(const Shape& data);

// The depth index a 3-D sample is drawn at: D / 2 (rounded down, so 8 of 0..15).
int middle_depth(const Shape& data);

// volumes [n, C, D, H, W] -> their slices at middle_depth, [n, C, H, W].
std::vector<float> middle_slices(const std::vector<float>& volumes, int n, const Shape& data);

// What a grid of `data` shows when it is not a plain picture of the samples, for log lines
// and the PNG's Description: "" for 2-D and flat data; "1-D samples drawn as curves (2
// channels: blue, orange; values 0..1)" (the values part only when `range` is given);
// "3-D samples drawn as their middle slices (depth 8 of 0..15)".
std::string grid_note(const Shape& data, std::optional<ValueRange> range = std::nullopt);

// Writes images [n, data] as a PNG grid of `cols` columns, each tile drawn as tile_shape says;
// 1-D samples share one value range over the grid (curve_value_range). Returns the grid's
// note (grid_note with that range), also stored as the PNG's tEXt "Description".
std::string write_grid_png(const std::string& path, const std::vector<float>& images, int n,
                           const Shape& data, int cols);

class SampleGrids {
 public:
  // grid_z [g*g, L]: the fixed prior draws, so grids compare across epochs.
  SampleGrids(std::vector<float> grid_z, int grid_size) : z_(std::move(grid_z)), g_(grid_size) {}

  // Images the reconstruction grid shows: g/2 rows of inputs (each above its reconstructions).
  int reconstruction_count() const { return (g_ / 2 > 0 ? g_ / 2 : 1) * g_; }

  // Writes <dir>/samples_epochNNN.png, samples_class_epochNNN.png (conditional models; both
  // only for a model with a N(0, I) prior) and recon_epochNNN.png from the first min(n,
  // reconstruction_count()) rows of `x` [n, D] (labels [n] or nullptr). With a non-empty scaling
  // (--standardize) the model works on standardised values, x among them, and every image is mapped
  // back to the data's units.
  void write(Context& ctx, LatentModel& model, const std::string& dir, int64_t epoch, int n,
             const float* x, const int32_t* labels, const FeatureScaling* scaling = nullptr) const;

 private:
  void write_prior_grids(Context& ctx, LatentModel& model, const std::string& dir, int64_t epoch,
                         const FeatureScaling* scaling) const;
  std::vector<float> z_;
  int g_;
};

}  // namespace vd
