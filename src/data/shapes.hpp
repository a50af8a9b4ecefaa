// Procedural dSprites-like images with known generative factors (shape, scale, orientation,
// x, y and, in RGB, colour): the pure renderer, the factor grid, and the data set file writer.
// Not a copy of dSprites' pixels: the shapes are drawn here, anti-aliased by supersampling.
//
// Geometry (pixel coordinates: x to the right from the left edge, y down from the top edge,
// pixel (i, j) covers [j, j + 1) x [i, i + 1)):
//   every shape fits in a circle of radius scale * R around its centre, R = 0.2 * size, at any
//   orientation; the centres span [R + 1, size - R - 1] on both axes, so even the largest shape
//   leaves the one-pixel border empty. Orientation turns counter-clockwise on screen.
//   square:  side sqrt(2) * scale * R (its corners touch the circle)
//   ellipse: semi-axes scale * R (along x at orientation 0) and scale * R / 2
//   heart:   (x^2 + y^2 - 1)^3 <= x^2 y^3, upright (lobes up), scaled to touch the circle and
//            centred on its bounding box, so it is mirror-symmetric left-right only.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "data/dataset_file.hpp"

namespace vd {

enum class ShapeKind : int32_t { Square = 0, Ellipse = 1, Heart = 2 };
inline constexpr int kShapeKinds = 3;
inline constexpr int kPaletteColours = 6;
// `--all` refuses grids of more rows than this (the dSprites grid, 737280 rows, fits).
inline constexpr int64_t kMaxShapesGridRows = int64_t{1} << 21;

// The factor grid and the image format; the defaults are dSprites' (3 x 6 x 40 x 32 x 32
// factor values, 64 x 64 gray images).
struct ShapesSpec {
  int size = 64;          // H = W, pixels
  int channels = 1;       // 1 (gray, white shapes) or 3 (RGB: colour is a factor)
  int shapes = 3;         // the first `shapes` of square, ellipse, heart
  int scales = 6;         // 0.5 .. 1.0 evenly (1.0 alone when scales = 1)
  int orientations = 40;  // 2 pi k / orientations, k = 0 .. orientations - 1
  int positions_x = 32;   // evenly over the span where the largest shape fits (centre if 1)
  int positions_y = 32;
  int colours = 6;      // the first `colours` of the palette; used only when channels = 3
  int supersample = 4;  // k x k samples per pixel, averaged (anti-aliasing)
};

// Throws vd::ConfigError naming the option (--size, --scales, ...) of a value out of range.
void check_shapes_spec(const ShapesSpec& spec);

// Factor names and sizes in /factors column order: shape, scale, orientation, x, y[, colour].
std::vector<std::string> shapes_factor_names(const ShapesSpec& spec);
std::vector<int64_t> shapes_factor_sizes(const ShapesSpec& spec);
// prod(sizes), saturated at INT64_MAX.
int64_t shapes_grid_rows(const ShapesSpec& spec);
const char* shape_name(ShapeKind shape);  // "square", "ellipse", "heart"

// The value of each factor index.
double shapes_bounding_radius(const ShapesSpec& spec);  // R above, pixels
double shapes_scale_value(const ShapesSpec& spec, int index);
double shapes_orientation_value(const ShapesSpec& spec, int index);          // radians
double shapes_position_value(const ShapesSpec& spec, int count, int index);  // centre, pixels
std::array<float, 3> shapes_palette_colour(int index);                       // RGB in [0, 1]

// One image as continuous values (tests render between grid points with these).
struct ShapeParams {
  ShapeKind shape = ShapeKind::Square;
  double scale = 1.0;                          // fraction of R
  double angle = 0.0;                          // radians, counter-clockwise on screen
  double cx = 0.0, cy = 0.0;                   // centre, pixels
  std::array<float, 3> rgb{1.0f, 1.0f, 1.0f};  // gray images use rgb[0]
};
// The parameters of one factor row (F = shapes_factor_sizes(spec).size() indices).
ShapeParams shape_params(const ShapesSpec& spec, std::span<const int32_t> factors);

// Renders into dst[channels, size, size] (all of it overwritten), values in [0, 1]: the
// fraction of the pixel's k x k samples inside the shape, times the colour. Pure: the same
// arguments give the same bits.
void render_shape(const ShapesSpec& spec, const ShapeParams& params, float* dst);
void render_factors(const ShapesSpec& spec, std::span<const int32_t> factors, float* dst);

// Row `index` of the full grid in row-major order (the last factor varies fastest).
void shapes_grid_factors(const ShapesSpec& spec, int64_t index, std::span<int32_t> out);
// One row of independent uniform draws, factor by factor: rng.below(size) in column order.
void shapes_draw_factors(const ShapesSpec& spec, Rng& rng, std::span<int32_t> out);
// n rows [n, F] drawn from Rng(seed): exactly the rows write_shapes writes for count = n.
std::vector<int32_t> shapes_random_factors(const ShapesSpec& spec, int64_t n, uint64_t seed);

// Which rows to write: `count` random draws from `seed`, or the whole grid (`all`), in grid
// order or permuted by shuffle_permutation(rows, *shuffle_seed).
struct ShapesDraw {
  int64_t count = 0;
  bool all = false;
  uint64_t seed = 0;
  std::optional<uint64_t> shuffle_seed;  // only with all
  int deflate = 1;                       // deflate level of /images, 0 = uncompressed
};

// Writes a data set file (temp file, then rename, like the other writers):
//   /images   uint8 [N, C, H, W] (coverage * 255, rounded), chunked, deflated
//   /labels   int32 [N], the shape index
//   /factors  int32 [N, F], factor indices; attributes names ("shape,scale,..."), sizes
//             (int64 [F]) and shape_names ("square,ellipse,heart")
//   /factor_values_scale, _orientation (radians), _x, _y (pixels): float64, one per index;
//   /factor_values_colour float32 [colours, 3] when channels = 3.
// Throws vd::ConfigError for a bad spec or draw (naming the option), vd::IoError on writing.
DatasetSummary write_shapes(const std::string& out_path, const ShapesSpec& spec,
                            const ShapesDraw& draw);

}  // namespace vd
