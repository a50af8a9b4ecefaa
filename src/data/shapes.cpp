// The dSprites-like renderer (supersampled inside tests per shape), the factor grid and the
// writer of `vae_data shapes` files.
#include "data/shapes.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/error.hpp"
#include "core/h5.hpp"

namespace vd {

namespace {

// R as a fraction of the image size; with the one-pixel margin the largest shape leaves
// 0.6 * size - 2 pixels for its centre to move along each axis.
constexpr double kRadiusFraction = 0.2;
constexpr double kMarginPixels = 1.0;
constexpr int kMaxFactorValues = 1024;
constexpr int kMaxSupersample = 16;

// The heart curve's extent, found numerically (bisection along rays; the curve is star-shaped
// around the origin): x in [-1.13903, 1.13903], y in [-1, 1.23666]. Centred on the bounding
// box (y = 0.11833) its farthest point lies 1.33660 away; the radius is rounded up so that the
// heart stays inside its circle (the InsideTheImage tests check it).
constexpr double kHeartCentreY = 0.11833;
constexpr double kHeartRadius = 1.3367;

constexpr std::array<std::array<float, 3>, kPaletteColours> kPalette{{
    {1.00f, 1.00f, 1.00f},  // white
    {0.95f, 0.20f, 0.15f},  // red
    {0.20f, 0.80f, 0.25f},  // green
    {0.25f, 0.40f, 1.00f},  // blue
    {1.00f, 0.85f, 0.10f},  // yellow
    {0.85f, 0.30f, 0.90f},  // magenta
}};

// Inside tests in the shape's own frame: u right, v up, unit circle = the bounding circle.
bool inside(ShapeKind shape, double u, double v) {
  switch (shape) {
    case ShapeKind::Square:
      return std::max(std::abs(u), std::abs(v)) <= std::numbers::sqrt2 / 2;
    case ShapeKind::Ellipse:
      return u * u + 4.0 * v * v <= 1.0;
    case ShapeKind::Heart: {
      const double x = u * kHeartRadius, y = v * kHeartRadius + kHeartCentreY;
      const double q = x * x + y * y - 1.0;
      return q * q * q <= x * x * y * y * y;
    }
  }
  return false;
}

void check_range(const char* option, int value, int lo, int hi, const std::string& why) {
  if (value < lo || value > hi)
    throw ConfigError("--" + std::string(option) + " must be " + std::to_string(lo) + " to " +
                      std::to_string(hi) + ", not " + std::to_string(value) + why);
}

std::string join(const std::vector<std::string>& parts, const char* sep = ",") {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

}  // namespace

void check_shapes_spec(const ShapesSpec& spec) {
  check_range("size", spec.size, 8, 1024, " (images are size x size pixels)");
  if (spec.channels != 1 && spec.channels != 3)
    throw ConfigError("--channels must be 1 (gray) or 3 (RGB, with colour as a factor), not " +
                      std::to_string(spec.channels));
  check_range("shapes", spec.shapes, 1, kShapeKinds, " (square, ellipse, heart)");
  check_range("scales", spec.scales, 1, kMaxFactorValues, "");
  check_range("orientations", spec.orientations, 1, kMaxFactorValues, "");
  check_range("positions-x", spec.positions_x, 1, kMaxFactorValues, "");
  check_range("positions-y", spec.positions_y, 1, kMaxFactorValues, "");
  if (spec.channels == 3)
    check_range("colours", spec.colours, 1, kPaletteColours, " (the palette's size)");
  check_range("supersample", spec.supersample, 1, kMaxSupersample, "");
}

std::vector<std::string> shapes_factor_names(const ShapesSpec& spec) {
  std::vector<std::string> names{"shape", "scale", "orientation", "x", "y"};
  if (spec.channels == 3) names.push_back("colour");
  return names;
}

std::vector<int64_t> shapes_factor_sizes(const ShapesSpec& spec) {
  std::vector<int64_t> sizes{spec.shapes, spec.scales, spec.orientations, spec.positions_x,
                             spec.positions_y};
  if (spec.channels == 3) sizes.push_back(spec.colours);
  return sizes;
}

int64_t shapes_grid_rows(const ShapesSpec& spec) {
  int64_t rows = 1;
  for (int64_t s : shapes_factor_sizes(spec)) {
    if (s > 0 && rows > std::numeric_limits<int64_t>::max() / s)
      return std::numeric_limits<int64_t>::max();
    rows *= s;
  }
  return rows;
}

const char* shape_name(ShapeKind shape) {
  switch (shape) {
    case ShapeKind::Square:
      return "square";
    case ShapeKind::Ellipse:
      return "ellipse";
    case ShapeKind::Heart:
      return "heart";
  }
  return "?";
}

double shapes_bounding_radius(const ShapesSpec& spec) {
  return kRadiusFraction * spec.size;
}

double shapes_scale_value(const ShapesSpec& spec, int index) {
  if (spec.scales == 1) return 1.0;
  return 0.5 + 0.5 * index / (spec.scales - 1);
}

double shapes_orientation_value(const ShapesSpec& spec, int index) {
  return 2.0 * std::numbers::pi * index / spec.orientations;
}

double shapes_position_value(const ShapesSpec& spec, int count, int index) {
  const double lo = shapes_bounding_radius(spec) + kMarginPixels;
  const double hi = spec.size - lo;
  if (count == 1) return 0.5 * spec.size;
  return lo + (hi - lo) * index / (count - 1);
}

std::array<float, 3> shapes_palette_colour(int index) {
  return kPalette[static_cast<size_t>(index)];
}

ShapeParams shape_params(const ShapesSpec& spec, std::span<const int32_t> factors) {
  const std::vector<int64_t> sizes = shapes_factor_sizes(spec);
  if (factors.size() != sizes.size())
    throw ShapeError("a shapes factor row has " + std::to_string(factors.size()) +
                     " entries; this spec has " + std::to_string(sizes.size()) + " factors");
  for (size_t f = 0; f < sizes.size(); ++f)
    if (factors[f] < 0 || factors[f] >= sizes[f])
      throw ShapeError("shapes factor " + shapes_factor_names(spec)[f] + " = " +
                       std::to_string(factors[f]) + " is outside 0.." +
                       std::to_string(sizes[f] - 1));
  ShapeParams p;
  p.shape = static_cast<ShapeKind>(factors[0]);
  p.scale = shapes_scale_value(spec, factors[1]);
  p.angle = shapes_orientation_value(spec, factors[2]);
  p.cx = shapes_position_value(spec, spec.positions_x, factors[3]);
  p.cy = shapes_position_value(spec, spec.positions_y, factors[4]);
  if (spec.channels == 3) p.rgb = shapes_palette_colour(factors[5]);
  return p;
}

void render_shape(const ShapesSpec& spec, const ShapeParams& p, float* dst) {
  const int S = spec.size, k = spec.supersample;
  const int64_t plane = int64_t{S} * S;
  std::fill_n(dst, plane * spec.channels, 0.0f);
  const double radius = p.scale * shapes_bounding_radius(spec);
  if (!(radius > 0)) return;  // nothing to draw (and no division by zero)
  const double inv_r = 1.0 / radius;
  const double c = std::cos(p.angle), s = std::sin(p.angle);
  const double inv_samples = 1.0 / (k * k);
  // Only pixels that meet the bounding circle's box can be covered.
  const int x0 = std::max(0, static_cast<int>(std::floor(p.cx - radius)));
  const int x1 = std::min(S, static_cast<int>(std::ceil(p.cx + radius)) + 1);
  const int y0 = std::max(0, static_cast<int>(std::floor(p.cy - radius)));
  const int y1 = std::min(S, static_cast<int>(std::ceil(p.cy + radius)) + 1);
  for (int py = y0; py < y1; ++py)
    for (int px = x0; px < x1; ++px) {
      int hits = 0;
      for (int sy = 0; sy < k; ++sy) {
        // Screen y grows downwards; the shape's v grows upwards.
        const double dy = p.cy - (py + (sy + 0.5) / k);
        for (int sx = 0; sx < k; ++sx) {
          const double dx = px + (sx + 0.5) / k - p.cx;
          // Rotating the sample by -angle is rotating the shape by +angle.
          const double u = (c * dx + s * dy) * inv_r, v = (c * dy - s * dx) * inv_r;
          hits += inside(p.shape, u, v) ? 1 : 0;
        }
      }
      if (hits == 0) continue;
      const float cover = static_cast<float>(hits * inv_samples);
      for (int ch = 0; ch < spec.channels; ++ch)
        dst[ch * plane + int64_t{py} * S + px] = cover * p.rgb[static_cast<size_t>(ch)];
    }
}

void render_factors(const ShapesSpec& spec, std::span<const int32_t> factors, float* dst) {
  render_shape(spec, shape_params(spec, factors), dst);
}

void shapes_grid_factors(const ShapesSpec& spec, int64_t index, std::span<int32_t> out) {
  const std::vector<int64_t> sizes = shapes_factor_sizes(spec);
  for (size_t f = sizes.size(); f-- > 0;) {
    out[f] = static_cast<int32_t>(index % sizes[f]);
    index /= sizes[f];
  }
}

void shapes_draw_factors(const ShapesSpec& spec, Rng& rng, std::span<int32_t> out) {
  const std::vector<int64_t> sizes = shapes_factor_sizes(spec);
  for (size_t f = 0; f < sizes.size(); ++f)
    out[f] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(sizes[f])));
}

std::vector<int32_t> shapes_random_factors(const ShapesSpec& spec, int64_t n, uint64_t seed) {
  const size_t F = shapes_factor_sizes(spec).size();
  std::vector<int32_t> rows(static_cast<size_t>(n) * F);
  Rng rng(seed);
  for (int64_t r = 0; r < n; ++r)
    shapes_draw_factors(spec, rng, std::span<int32_t>(rows).subspan(static_cast<size_t>(r) * F, F));
  return rows;
}

DatasetSummary write_shapes(const std::string& out_path, const ShapesSpec& spec,
                            const ShapesDraw& draw) {
  check_shapes_spec(spec);
  const std::vector<std::string> names = shapes_factor_names(spec);
  const std::vector<int64_t> sizes = shapes_factor_sizes(spec);
  std::vector<std::string> size_texts;
  for (size_t f = 0; f < sizes.size(); ++f)
    size_texts.push_back(names[f] + " " + std::to_string(sizes[f]));
  if (draw.all == (draw.count > 0))
    throw ConfigError("give either --count N (random factor draws) or --all (the whole grid)");
  if (draw.shuffle_seed && !draw.all)
    throw ConfigError(
        "--shuffle-seed permutes the --all grid; --count draws are already in "
        "random order");
  if (draw.deflate < 0 || draw.deflate > 9)
    throw ConfigError("--deflate must be 0 (none) to 9, not " + std::to_string(draw.deflate));
  const int64_t grid = shapes_grid_rows(spec);
  if (draw.all && grid > kMaxShapesGridRows)
    throw ConfigError("--all would write " +
                      (grid == std::numeric_limits<int64_t>::max() ? std::string("too many")
                                                                   : std::to_string(grid)) +
                      " rows (" + join(size_texts, ", ") + "), more than the limit of " +
                      std::to_string(kMaxShapesGridRows) +
                      "; reduce --orientations, --positions-x, --positions-y, --scales or "
                      "--colours, or draw a random subset with --count N");
  const int64_t n = draw.all ? grid : draw.count;
  const int C = spec.channels, S = spec.size;
  const int64_t row = int64_t{C} * S * S;
  const auto F = static_cast<int64_t>(sizes.size());
  const int64_t chunk_rows = chunk_rows_for(row, n);
  const std::vector<int64_t> perm =
      draw.shuffle_seed ? shuffle_permutation(n, *draw.shuffle_seed) : std::vector<int64_t>{};

  write_dataset_file(out_path, "vae_data shapes", [&](hid_t file) {
    h5::write_attribute(file, "shapes_mode", draw.all ? "grid" : "random");
    if (!draw.all) h5::write_attribute(file, "shapes_seed", draw.seed);
    // As for import-idx: 1 when a permutation was applied (random draws need none).
    h5::write_attribute(file, "shuffled", int64_t{draw.shuffle_seed ? 1 : 0});
    if (draw.shuffle_seed) {
      h5::write_attribute(file, "shuffle_seed", *draw.shuffle_seed);
      h5::write_attribute(file, "shuffle_method", "fisher-yates, vd::Rng(seed).below(i + 1)");
    }
    h5::write_attribute(file, "shapes_supersample", int64_t{spec.supersample});
    h5::write_attribute(file, "shapes_bounding_radius", shapes_bounding_radius(spec));

    const std::vector<int64_t> dims{n, C, S, S};
    std::vector<int64_t> chunk = dims;
    chunk[0] = chunk_rows;
    h5::Dataset dimg = h5::create_dataset<uint8_t>(file, "/images", dims, {chunk, draw.deflate});
    h5::write_attribute(dimg, "layout", "NCHW");
    const std::vector<int64_t> ldims{n}, fdims{n, F};
    h5::Dataset dlab =
        h5::create_dataset<int32_t>(file, "/labels", ldims, {{std::min<int64_t>(n, 1 << 16)}, 4});
    h5::Dataset dfac = h5::create_dataset<int32_t>(file, "/factors", fdims,
                                                   {{std::min<int64_t>(n, 1 << 14), F}, 4});
    h5::write_attribute(dfac, "names", join(names));
    write_int64_array_attribute(dfac, "sizes", sizes);
    std::vector<std::string> shape_names;
    for (int i = 0; i < spec.shapes; ++i) shape_names.push_back(shape_name(ShapeKind(i)));
    h5::write_attribute(dfac, "shape_names", join(shape_names));

    // The value behind every index, so a reader needs no copy of this file's formulas.
    const auto values = [&](const std::string& name, int count, auto value, const char* unit) {
      std::vector<double> v(static_cast<size_t>(count));
      for (int i = 0; i < count; ++i) v[static_cast<size_t>(i)] = value(i);
      const std::vector<int64_t> vdims{count};
      h5::write_dataset<double>(file, "/factor_values_" + name, v, vdims);
      h5::Dataset d = h5::open_dataset(file, "/factor_values_" + name);
      h5::write_attribute(d, "unit", unit);
    };
    values(
        "scale", spec.scales, [&](int i) { return shapes_scale_value(spec, i); },
        "fraction of the largest size");
    values(
        "orientation", spec.orientations, [&](int i) { return shapes_orientation_value(spec, i); },
        "radians, counter-clockwise on screen");
    values(
        "x", spec.positions_x,
        [&](int i) { return shapes_position_value(spec, spec.positions_x, i); },
        "centre in pixels from the left edge");
    values(
        "y", spec.positions_y,
        [&](int i) { return shapes_position_value(spec, spec.positions_y, i); },
        "centre in pixels from the top edge");
    if (C == 3) {
      std::vector<float> rgb;
      for (int i = 0; i < spec.colours; ++i)
        for (float x : shapes_palette_colour(i)) rgb.push_back(x);
      const std::vector<int64_t> cdims{spec.colours, 3};
      h5::write_dataset<float>(file, "/factor_values_colour", rgb, cdims);
    }

    Rng rng(draw.seed);
    std::vector<float> image(static_cast<size_t>(row));
    std::vector<uint8_t> ibuf(static_cast<size_t>(chunk_rows * row));
    std::vector<int32_t> lbuf(static_cast<size_t>(chunk_rows));
    std::vector<int32_t> fbuf(static_cast<size_t>(chunk_rows * F));
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - r0);
      for (int64_t r = 0; r < rows; ++r) {
        const std::span<int32_t> f(fbuf.data() + r * F, static_cast<size_t>(F));
        if (!draw.all)
          shapes_draw_factors(spec, rng, f);
        else
          shapes_grid_factors(spec, perm.empty() ? r0 + r : perm[static_cast<size_t>(r0 + r)], f);
        lbuf[static_cast<size_t>(r)] = f[0];
        render_factors(spec, f, image.data());
        uint8_t* dst = ibuf.data() + r * row;
        for (int64_t i = 0; i < row; ++i)  // image is in [0, 1]
          dst[i] = static_cast<uint8_t>(image[static_cast<size_t>(i)] * 255.0f + 0.5f);
      }
      h5::write_rows(dimg, r0, rows, ibuf.data());
      h5::write_rows(dlab, r0, rows, lbuf.data());
      h5::write_rows(dfac, r0, rows, fbuf.data());
    }
  });
  return {n, {C, S, S}, "uint8", true};
}

}  // namespace vd
