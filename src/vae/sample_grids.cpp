// SampleGrids: decoding the fixed z, the class rows and the reconstructions into PNG grids,
// and how a sample of each data kind (image, 1-D signal, 3-D volume, flat) becomes a tile.
#include "vae/sample_grids.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.hpp"

namespace vd {

namespace {

bool is_signal(const Shape& data) {
  return !data.flat() && data.rank == 1;
}
bool is_volume(const Shape& data) {
  return !data.flat() && data.rank == 3;
}

}  // namespace

TileShape tile_shape(const Shape& data) {
  if (is_signal(data)) return TileShape{3, kCurveHeight, curve_width(data.w)};
  if (!data.flat()) return TileShape{data.c == 3 ? 3 : 1, data.h, data.w};
  const int d = data.c;
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(d))));
  return side * side == d ? TileShape{1, side, side} : TileShape{1, 1, d};
}

int middle_depth(const Shape& data) {
  return is_volume(data) ? data.d / 2 : 0;
}

std::vector<float> middle_slices(const std::vector<float>& volumes, int n, const Shape& data) {
  const size_t hw = static_cast<size_t>(data.h) * data.w, C = static_cast<size_t>(data.c);
  const size_t depth = static_cast<size_t>(data.d), z = static_cast<size_t>(middle_depth(data));
  std::vector<float> out(static_cast<size_t>(n) * C * hw);
  for (size_t i = 0; i < static_cast<size_t>(n); ++i)
    for (size_t c = 0; c < C; ++c)
      std::copy_n(volumes.data() + ((i * C + c) * depth + z) * hw, hw,
                  out.data() + (i * C + c) * hw);
  return out;
}

std::string grid_note(const Shape& data, std::optional<ValueRange> range) {
  std::ostringstream out;
  if (is_signal(data)) {
    out << "1-D samples drawn as curves (" << data.c
        << (data.c == 1 ? " channel: " : " channels: ");
    const int named = std::min(data.c, 10);  // the colours repeat after ten
    for (int c = 0; c < named; ++c) out << (c ? ", " : "") << curve_colour_name(c);
    if (data.c > named) out << ", ... (colours repeat)";
    if (range) out << "; values " << range->lo << ".." << range->hi;
    out << ")";
  } else if (is_volume(data)) {
    out << "3-D samples drawn as their middle slices (depth " << middle_depth(data) << " of 0.."
        << data.d - 1 << ")";
  }
  return out.str();
}

namespace {

// Images [n, C, plane] as the tiles draw them: unchanged for 1 or 3 channels, else the mean.
std::vector<float> as_tiles(const std::vector<float>& images, int n, int channels, int64_t plane) {
  if (channels == 1 || channels == 3) return images;
  const size_t hw = static_cast<size_t>(plane), C = static_cast<size_t>(channels);
  std::vector<float> out(static_cast<size_t>(n) * hw, 0.0f);
  for (size_t i = 0; i < static_cast<size_t>(n); ++i)
    for (size_t c = 0; c < C; ++c)
      for (size_t p = 0; p < hw; ++p) out[i * hw + p] += images[(i * C + c) * hw + p] / C;
  return out;
}

void write_grid(const std::string& dir, const char* stem, int64_t epoch,
                const std::vector<float>& images, int n, const Shape& data, int cols) {
  char name[64];
  std::snprintf(name, sizeof name, "%s_epoch%03lld.png", stem, static_cast<long long>(epoch));
  write_grid_png(dir + "/" + name, images, n, data, cols);
}

}  // namespace

std::string write_grid_png(const std::string& path, const std::vector<float>& images, int n,
                           const Shape& data, int cols) {
  VD_CHECK(n >= 1 && images.size() >= static_cast<size_t>(n) * static_cast<size_t>(data.size()),
           ShapeError,
           "grid " + path + ": " + std::to_string(images.size()) + " values given for " +
               std::to_string(n) + " samples of " + data.text());
  if (is_signal(data)) {
    const ValueRange range =
        curve_value_range(images.data(), static_cast<size_t>(n) * static_cast<size_t>(data.size()));
    const std::string note = grid_note(data, range);
    write_curve_grid(path, images.data(), n, data.c, data.w, range, cols, note);
    return note;
  }
  const TileShape t = tile_shape(data);
  const std::string note = grid_note(data);
  if (is_volume(data)) {
    const int64_t plane = static_cast<int64_t>(data.h) * data.w;
    write_image_grid(path, as_tiles(middle_slices(images, n, data), n, data.c, plane).data(), n,
                     t.c, t.h, t.w, cols, 2, note);
  } else {
    // Flat data is one gray channel of D values.
    const std::vector<float> tiles =
        data.flat() ? images : as_tiles(images, n, data.c, data.spatial_size());
    write_image_grid(path, tiles.data(), n, t.c, t.h, t.w, cols);
  }
  return note;
}

void SampleGrids::write_prior_grids(Context& ctx, LatentModel& model, const std::string& dir,
                                    int64_t epoch, const FeatureScaling* scaling) const {
  const ModelConfig& vc = model.config();
  const auto to_data_units = [&](std::vector<float>& v, int count) {
    if (scaling && !scaling->empty()) scaling->invert(v.data(), count);
  };
  const int g = g_, L = vc.latent_dim, K = vc.classes;
  const size_t D = static_cast<size_t>(vc.data.size());
  // Prior samples from the fixed z; a conditional model draws row r as class r mod K.
  std::vector<int32_t> rows(static_cast<size_t>(g) * g);
  for (int i = 0; i < g * g; ++i) rows[static_cast<size_t>(i)] = K > 0 ? (i / g) % K : 0;
  std::vector<float> images(static_cast<size_t>(g) * g * D);
  model.decode_mean(ctx, g * g, z_.data(), K > 0 ? rows.data() : nullptr, images.data());
  to_data_units(images, g * g);
  write_grid(dir, "samples", epoch, images, g * g, vc.data, g);

  if (K > 0) {
    // One row per class, the same g draws of z in every row: what the label alone changes.
    std::vector<float> z(static_cast<size_t>(K) * g * L);
    std::vector<int32_t> cls(static_cast<size_t>(K) * g);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < g; ++j) {
        std::copy_n(z_.data() + static_cast<size_t>(j) * L, L,
                    z.data() + (static_cast<size_t>(k) * g + j) * L);
        cls[static_cast<size_t>(k) * g + j] = k;
      }
    std::vector<float> class_images(static_cast<size_t>(K) * g * D);
    model.decode_mean(ctx, K * g, z.data(), cls.data(), class_images.data());
    to_data_units(class_images, K * g);
    write_grid(dir, "samples_class", epoch, class_images, K * g, vc.data, g);
  }
}

void SampleGrids::write(Context& ctx, LatentModel& model, const std::string& dir, int64_t epoch,
                        int n, const float* x, const int32_t* labels,
                        const FeatureScaling* scaling) const {
  const ModelConfig& vc = model.config();
  // Images [count, D] in the data's units.
  const auto to_data_units = [&](std::vector<float>& v, int count) {
    if (scaling && !scaling->empty()) scaling->invert(v.data(), count);
  };
  const int g = g_, L = vc.latent_dim;
  const size_t D = static_cast<size_t>(vc.data.size());

  std::vector<float> images(static_cast<size_t>(g) * g * D);
  // Prior samples need the model's prior to be N(0, I), which the fixed z are drawn from.
  if (model.capabilities().normal_prior) write_prior_grids(ctx, model, dir, epoch, scaling);

  // Reconstructions: rows of inputs, each followed by a row of their reconstructions
  // through the posterior mean z = mu.
  n = std::min(n, reconstruction_count());
  if (n <= 0) return;
  std::vector<float> rec(static_cast<size_t>(n) * D), mu(static_cast<size_t>(n) * L);
  model.encode(ctx, Batch{n, x, labels, nullptr}, mu.data(), nullptr);
  model.decode_mean(ctx, n, mu.data(), labels, rec.data());
  std::fill(images.begin(), images.end(), 0.0f);
  for (int i = 0; i < n; ++i) {
    const size_t r = static_cast<size_t>(i / g), col = static_cast<size_t>(i % g);
    std::copy_n(x + static_cast<size_t>(i) * D, D, images.data() + (2 * r * g + col) * D);
    std::copy_n(rec.data() + static_cast<size_t>(i) * D, D,
                images.data() + ((2 * r + 1) * g + col) * D);
  }
  const int tiles = 2 * ((n + g - 1) / g) * g;
  // Empty tiles (0 in the model's units) show the mean of a standardised feature.
  to_data_units(images, tiles);
  write_grid(dir, "recon", epoch, images, tiles, vc.data, g);
}

}  // namespace vd
