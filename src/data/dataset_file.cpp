// Writers (IDX import, synthetic data) and the describer for data set files.
#include "data/dataset_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "data/idx.hpp"
#include "data/npy.hpp"

namespace vd {

namespace {

constexpr int kDeflateLevel = 4;
// Synthetic images carry pixel noise that compresses poorly: uint8 saves about 15% at level 4
// and level 1 keeps most of that at less than half the cost; float32 mantissa noise saves
// about 12% at several times the write and read cost, so float32 is stored uncompressed.
constexpr int kSynthDeflateUint8 = 1;

// Runs write(tmp_path) and renames tmp_path to out_path; removes the temp file on failure.
void write_atomically(const std::string& out_path,
                      const std::function<void(const std::string&)>& write) {
  namespace fs = std::filesystem;
  const fs::path out(out_path);
  std::error_code ec;
  if (out.has_parent_path() && !fs::exists(out.parent_path(), ec)) {
    fs::create_directories(out.parent_path(), ec);
    if (ec)
      throw IoError("cannot create the directory '" + out.parent_path().string() + "' for '" +
                    out_path + "': " + ec.message());
  }
  const std::string tmp = out_path + ".tmp";
  try {
    write(tmp);  // the HDF5 file is closed when write returns
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw IoError("cannot rename '" + tmp + "' to '" + out_path + "': " + ec.message());
  }
}

void write_format_attributes(hid_t file, const std::string& created_by) {
  h5::write_attribute(file, "format", kDatasetFormat);
  h5::write_attribute(file, "format_version", kDatasetFormatVersion);
  h5::write_attribute(file, "created_by", created_by);
}

}  // namespace

void write_import_attributes(hid_t file, const std::string& created_by,
                             const std::string& images_path, const std::string& labels_path,
                             std::optional<uint64_t> shuffle_seed) {
  write_format_attributes(file, created_by);
  h5::write_attribute(file, "source_images",
                      std::filesystem::path(images_path).filename().string());
  if (!labels_path.empty())
    h5::write_attribute(file, "source_labels",
                        std::filesystem::path(labels_path).filename().string());
  h5::write_attribute(file, "shuffled", int64_t{shuffle_seed ? 1 : 0});
  if (shuffle_seed) {
    h5::write_attribute(file, "shuffle_seed", *shuffle_seed);
    h5::write_attribute(file, "shuffle_method", "fisher-yates, vd::Rng(seed).below(i + 1)");
  }
}

namespace {

// The source rows an import writes, in output order: the shuffle's order (or the file's),
// without the rows whose label is in `drop` (label(i): row i's label). Dropping keeps the
// other rows in the order of the import without it.
std::vector<int64_t> import_order(int64_t n, std::optional<uint64_t> shuffle_seed,
                                  const std::function<int64_t(int64_t)>& label,
                                  const std::vector<int64_t>& drop,
                                  const std::string& labels_path) {
  std::vector<int64_t> order = shuffle_seed ? shuffle_permutation(n, *shuffle_seed)
                                            : std::vector<int64_t>(static_cast<size_t>(n));
  if (!shuffle_seed)
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  if (drop.empty()) return order;
  if (!label) throw DataError("--drop-labels needs the labels of the images; give --labels FILE");
  std::vector<uint8_t> seen(drop.size(), 0);
  std::vector<int64_t> kept;
  for (int64_t r : order) {
    const auto it = std::find(drop.begin(), drop.end(), label(r));
    if (it == drop.end())
      kept.push_back(r);
    else
      seen[static_cast<size_t>(it - drop.begin())] = 1;
  }
  for (size_t j = 0; j < drop.size(); ++j)
    if (!seen[j])
      throw DataError("--drop-labels: label " + std::to_string(drop[j]) + " does not occur in '" +
                      labels_path + "'; name labels the file holds");
  if (kept.empty())
    throw DataError("--drop-labels drops every row of '" + labels_path +
                    "'; keep at least one label");
  return kept;
}

void write_dropped_attribute(hid_t file, const std::vector<int64_t>& drop) {
  if (drop.empty()) return;
  std::string text;
  for (int64_t l : drop) {
    if (!text.empty()) text += ',';
    text += std::to_string(l);
  }
  h5::write_attribute(file, "dropped_labels", text);
}

std::vector<int64_t> image_chunk(int64_t chunk_rows, const std::vector<int64_t>& dims) {
  std::vector<int64_t> chunk = dims;
  chunk[0] = chunk_rows;
  return chunk;
}

}  // namespace

int64_t chunk_rows_for(int64_t row_bytes, int64_t n) {
  const int64_t target = int64_t{1} << 20;
  const int64_t rows = std::clamp<int64_t>(target / std::max<int64_t>(row_bytes, 1), 1, 1024);
  return std::max<int64_t>(1, std::min(rows, n));
}

std::vector<int64_t> shuffle_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

DatasetSummary import_idx(const std::string& images_path, const std::string& labels_path,
                          const std::string& out_path, std::optional<uint64_t> shuffle_seed,
                          int deflate, const std::vector<int64_t>& drop_labels) {
  const IdxArray images = read_idx(images_path);
  if (images.dims.size() != 3 && images.dims.size() != 4)
    throw DataError("IDX images file '" + images_path + "' has shape " + shape_text(images.dims) +
                    "; expected [N, H, W] or [N, C, H, W] images (did you swap --images and "
                    "--labels?)");
  std::vector<int64_t> dims = images.dims;  // -> [N, C, H, W]
  if (dims.size() == 3) dims.insert(dims.begin() + 1, 1);
  const int64_t n = dims[0];
  if (std::find(dims.begin(), dims.end(), 0) != dims.end())
    throw DataError("IDX images file '" + images_path + "' has shape " + shape_text(images.dims) +
                    " and so holds no image data");
  const int64_t row = dims[1] * dims[2] * dims[3];

  IdxArray labels;
  if (!labels_path.empty()) {
    labels = read_idx(labels_path);
    if (labels.dims.size() != 1)
      throw DataError("IDX labels file '" + labels_path + "' has shape " + shape_text(labels.dims) +
                      "; expected one label per image ([N])");
    if (labels.dims[0] != n)
      throw DataError("IDX labels file '" + labels_path + "' has " +
                      std::to_string(labels.dims[0]) + " labels but '" + images_path + "' has " +
                      std::to_string(n) +
                      " images; pass the labels file that belongs to these images");
  }

  // Output row r is input row order[r] (the shuffle, without the dropped labels' rows).
  const std::vector<int64_t> order = import_order(
      n, shuffle_seed,
      labels_path.empty() ? std::function<int64_t(int64_t)>{} : [&](int64_t i) -> int64_t {
        return labels.data[static_cast<size_t>(i)];
      },
      drop_labels, labels_path);
  const auto m = static_cast<int64_t>(order.size());
  dims[0] = m;
  write_atomically(out_path, [&](const std::string& tmp) {
    h5::File file = h5::create_file(tmp);
    write_import_attributes(file, "vae_data import-idx", images_path, labels_path, shuffle_seed);
    write_dropped_attribute(file, drop_labels);

    const int64_t chunk_rows = chunk_rows_for(row, m);
    h5::Dataset dimg = h5::create_dataset<uint8_t>(file, "/images", dims,
                                                   {image_chunk(chunk_rows, dims), deflate});
    h5::write_attribute(dimg, "layout", "NCHW");
    std::vector<uint8_t> buf(static_cast<size_t>(chunk_rows * row));
    for (int64_t r0 = 0; r0 < m; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, m - r0);
      for (int64_t r = 0; r < rows; ++r)
        std::copy_n(images.data.data() + order[static_cast<size_t>(r0 + r)] * row, row,
                    buf.data() + r * row);
      h5::write_rows(dimg, r0, rows, buf.data());
    }

    if (!labels_path.empty()) {
      std::vector<uint8_t> lab(static_cast<size_t>(m));
      for (int64_t r = 0; r < m; ++r)
        lab[static_cast<size_t>(r)] =
            labels.data[static_cast<size_t>(order[static_cast<size_t>(r)])];
      const std::vector<int64_t> ldims{m};
      h5::write_dataset<uint8_t>(file, "/labels", lab, ldims,
                                 {{std::min<int64_t>(m, 1 << 16)}, kDeflateLevel});
    }
  });
  return {m, {dims[1], dims[2], dims[3]}, "uint8", !labels_path.empty()};
}

DatasetSummary import_npy(const std::string& images_path, const std::string& labels_path,
                          const std::string& out_path, std::optional<uint64_t> shuffle_seed,
                          int deflate, bool signals, const std::vector<int64_t>& drop_labels) {
  const NpyArray images = read_npy(images_path);
  if (images.type != NpyType::UInt8 && images.type != NpyType::Float32)
    throw DataError("'" + images_path + "' holds " + npy_type_name(images.type) +
                    " values; images must be uint8 or float32 (e.g. a.astype(np.float32))");
  const size_t rank = images.dims.size();
  if (rank < 2 || rank > 5)
    throw DataError("'" + images_path + "' has shape " + shape_text(images.dims) +
                    "; expected [N, D], [N, H, W], [N, C, H, W] or [N, C, D, H, W]");
  std::vector<int64_t> dims = images.dims;
  const char* layout = rank == 2 ? "ND" : rank == 5 ? "NCDHW" : "NCHW";
  if (rank == 3 && signals) {
    layout = "NCL";
  } else if (rank == 3) {
    dims.insert(dims.begin() + 1, 1);  // grayscale images
  }
  if (std::find(dims.begin(), dims.end(), 0) != dims.end())
    throw DataError("'" + images_path + "' has shape " + shape_text(images.dims) +
                    " and so holds no data");
  const int64_t n = dims[0];
  int64_t row = 1;
  for (size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  const bool u8 = images.type == NpyType::UInt8;
  const size_t elem = u8 ? 1 : 4;

  std::vector<int32_t> labels;
  if (!labels_path.empty()) {
    const NpyArray l = read_npy(labels_path);
    if (!npy_is_integer(l.type) || l.dims.size() != 1)
      throw DataError("'" + labels_path + "' holds " + npy_type_name(l.type) + " " +
                      shape_text(l.dims) + "; labels must be a 1-D array of integers [N]");
    if (l.dims[0] != n)
      throw DataError("'" + labels_path + "' has " + std::to_string(l.dims[0]) + " labels but '" +
                      images_path + "' has " + std::to_string(n) +
                      " rows; pass the labels that belong to these rows");
    for (int64_t i = 0; i < n; ++i) {
      const double v = l.value(i);
      if (v < 0 || v > 2147483647.0)
        throw DataError("'" + labels_path + "' has label " + std::to_string(v) + " at row " +
                        std::to_string(i) + "; labels must be class numbers 0..2^31-1");
      labels.push_back(static_cast<int32_t>(v));
    }
  }
  const std::vector<int64_t> order = import_order(
      n, shuffle_seed,
      labels.empty() ? std::function<int64_t(int64_t)>{}
                     : [&](int64_t i) -> int64_t { return labels[static_cast<size_t>(i)]; },
      drop_labels, labels_path);
  const auto m = static_cast<int64_t>(order.size());
  dims[0] = m;
  write_atomically(out_path, [&](const std::string& tmp) {
    h5::File file = h5::create_file(tmp);
    write_import_attributes(file, "vae_data import-npy", images_path, labels_path, shuffle_seed);
    write_dropped_attribute(file, drop_labels);
    const int64_t chunk_rows = chunk_rows_for(row * static_cast<int64_t>(elem), m);
    std::vector<int64_t> chunk = dims;
    chunk[0] = chunk_rows;
    h5::Dataset dimg = u8 ? h5::create_dataset<uint8_t>(file, "/images", dims, {chunk, deflate})
                          : h5::create_dataset<float>(file, "/images", dims, {chunk, deflate});
    h5::write_attribute(dimg, "layout", layout);
    const size_t row_bytes = static_cast<size_t>(row) * elem;
    std::vector<uint8_t> buf(static_cast<size_t>(chunk_rows) * row_bytes);
    for (int64_t r0 = 0; r0 < m; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, m - r0);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t from = order[static_cast<size_t>(r0 + r)];
        std::memcpy(buf.data() + static_cast<size_t>(r) * row_bytes,
                    images.bytes.data() + static_cast<size_t>(from) * row_bytes, row_bytes);
      }
      // The payload is little-endian, as x86-64 is: the bytes are the values.
      h5::write_rows(dimg, u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, r0, rows, buf.data());
    }
    if (!labels.empty()) {
      std::vector<int32_t> lab(static_cast<size_t>(m));
      for (int64_t r = 0; r < m; ++r)
        lab[static_cast<size_t>(r)] = labels[static_cast<size_t>(order[static_cast<size_t>(r)])];
      const std::vector<int64_t> ldims{m};
      h5::write_dataset<int32_t>(file, "/labels", lab, ldims,
                                 {{std::min<int64_t>(m, 1 << 16)}, kDeflateLevel});
    }
  });
  return {m, std::vector<int64_t>(dims.begin() + 1, dims.end()), u8 ? "uint8" : "float32",
          !labels.empty()};
}

namespace {

// One synthetic row: fills dst (one sample, values in [0, 1]) for class k, drawn just before.
using SynthRowFill = std::function<void(Rng& rng, int k, float* dst)>;

// The writer every synthetic image/signal/volume kind shares: the attributes, /images
// [n, sample...] and /labels, streamed chunk by chunk from one Rng(seed) that draws each row's
// label and then whatever fill draws, in row order (so the file is a function of the seed).
DatasetSummary write_synthetic_rows(const std::string& out_path, int64_t n,
                                    const std::vector<int64_t>& sample, uint64_t seed,
                                    SynthDType dtype, int num_classes, int deflate,
                                    const char* layout, const SynthRowFill& fill) {
  int64_t row = 1;
  for (int64_t v : sample) row *= v;
  const bool as_u8 = dtype == SynthDType::UInt8;
  const int64_t chunk_rows = chunk_rows_for(row * (as_u8 ? 1 : 4), n);
  write_atomically(out_path, [&](const std::string& tmp) {
    h5::File file = h5::create_file(tmp);
    write_format_attributes(file, "vae_data synth");
    h5::write_attribute(file, "synthetic_seed", seed);
    h5::write_attribute(file, "num_classes", int64_t{num_classes});
    h5::write_attribute(file, "shuffled", int64_t{0});
    std::vector<int64_t> dims{n};
    dims.insert(dims.end(), sample.begin(), sample.end());
    h5::Dataset dimg =
        h5::create_dataset(file, "/images", as_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, dims,
                           {image_chunk(chunk_rows, dims), deflate >= 0 ? deflate
                                                           : as_u8      ? kSynthDeflateUint8
                                                                        : 0});
    h5::write_attribute(dimg, "layout", layout);
    const std::vector<int64_t> ldims{n};
    h5::Dataset dlab = h5::create_dataset<uint8_t>(
        file, "/labels", ldims, {{std::min<int64_t>(n, 1 << 16)}, kDeflateLevel});

    Rng rng(seed);
    std::vector<float> fbuf(static_cast<size_t>(chunk_rows * row));
    std::vector<uint8_t> ubuf(as_u8 ? fbuf.size() : 0);
    std::vector<uint8_t> lbuf(static_cast<size_t>(chunk_rows));
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - r0);
      for (int64_t r = 0; r < rows; ++r) {
        const int k = static_cast<int>(rng.below(static_cast<uint64_t>(num_classes)));
        lbuf[static_cast<size_t>(r)] = static_cast<uint8_t>(k);
        fill(rng, k, fbuf.data() + r * row);
      }
      const size_t count = static_cast<size_t>(rows * row);
      if (as_u8) {
        for (size_t i = 0; i < count; ++i)
          ubuf[i] = static_cast<uint8_t>(fbuf[i] * 255.0f + 0.5f);  // fbuf is in [0, 1]
        h5::write_rows(dimg, r0, rows, ubuf.data());
      } else {
        h5::write_rows(dimg, r0, rows, fbuf.data());
      }
      h5::write_rows(dlab, r0, rows, lbuf.data());
    }
  });
  return {n, sample, as_u8 ? "uint8" : "float32", true};
}

void check_synthetic_classes(const std::string& out_path, int num_classes) {
  if (num_classes < 1 || num_classes > 256)
    throw DataError("synthetic data for '" + out_path + "' needs 1 to 256 classes (got " +
                    std::to_string(num_classes) + "); labels are stored as uint8");
}

// Noise: four 16-bit uniforms per 64-bit draw, mapped to [-amp, amp).
struct NoiseBits {
  uint64_t bits = 0;
  int left = 0;
  float next(Rng& rng, float amp) {
    if (left == 0) bits = rng.next_u64(), left = 4;
    const float v = static_cast<float>(bits & 0xffff) * (2.0f * amp / 65536.0f) - amp;
    bits >>= 16;
    --left;
    return v;
  }
};

// 1-D signals [n, c, length]: class k is a Gaussian bump at a class position (spread evenly
// over the length) on a sinusoid of 1 + k % 4 cycles; per sample the position, width,
// amplitudes and phase are jittered, per channel the sinusoid's phase turns by pi / 3 and
// odd channels have a smaller bump, so channels differ but share the class. Plus +-0.02 noise.
DatasetSummary write_synthetic_signals(const std::string& out_path, int64_t n, int64_t c,
                                       int64_t length, uint64_t seed, SynthDType dtype,
                                       int num_classes, int deflate) {
  const double pi = std::numbers::pi;
  const SynthRowFill fill = [=](Rng& rng, int k, float* dst) {
    const double centre = 0.15 + 0.7 * (k + 0.5) / num_classes + rng.uniform(-0.03, 0.03);
    const double sigma = 0.06 * rng.uniform(0.85, 1.15);
    const double bump = rng.uniform(0.7, 1.0), wave = rng.uniform(0.7, 1.0);
    const double phase = rng.uniform(-0.4, 0.4);
    const double cycles = 1.0 + k % 4;
    NoiseBits noise;
    for (int64_t ch = 0; ch < c; ++ch) {
      const double b = bump * (ch % 2 ? 0.6 : 1.0);
      for (int64_t x = 0; x < length; ++x) {
        const double u = (x + 0.5) / length, d = u - centre;
        const double v = 0.25 + 0.55 * b * std::exp(-d * d / (2 * sigma * sigma)) +
                         0.2 * wave * std::sin(2 * pi * cycles * u + phase + ch * pi / 3);
        dst[ch * length + x] =
            std::clamp(static_cast<float>(v) + noise.next(rng, 0.02f), 0.0f, 1.0f);
      }
    }
  };
  return write_synthetic_rows(out_path, n, {c, length}, seed, dtype, num_classes, deflate, "NCL",
                              fill);
}

// 3-D volumes [n, c, depth, h, w]: the 2-D images' recipe one dimension up. Class k is a
// Gaussian blob centred on a tilted circle (angle 2 pi k / K, depth 0.5 + 0.22 cos 2 theta),
// jittered per sample, over stripes whose direction depends on the class, plus +-0.05 noise.
// Both are separable, so a volume costs d + h + w exponentials, not d * h * w.
DatasetSummary write_synthetic_volumes(const std::string& out_path, int64_t n, int64_t c,
                                       int64_t depth, int64_t h, int64_t w, uint64_t seed,
                                       SynthDType dtype, int num_classes, int deflate) {
  const double pi = std::numbers::pi;
  // Stripes sin(2 pi f (a . u) + ch pi / 3) = Im(ex[x] ey[y] ez[z]) with unit phasors per axis.
  struct Phasor {
    float re, im;
  };
  const auto phasors = [&](int k, int64_t size, int axis, double phase) {
    const double theta = pi * k / num_classes, tilt = pi / 6 * (k % 3 - 1);
    const double dir[3] = {std::cos(theta) * std::cos(tilt), std::sin(theta) * std::cos(tilt),
                           std::sin(tilt)};
    const double freq = 2.0 + k % 3;
    std::vector<Phasor> out(static_cast<size_t>(size));
    for (int64_t i = 0; i < size; ++i) {
      const double a = 2 * pi * freq * dir[axis] * (i + 0.5) / size + phase;
      out[static_cast<size_t>(i)] = {static_cast<float>(std::cos(a)),
                                     static_cast<float>(std::sin(a))};
    }
    return out;
  };
  // Per class: x phasors per channel (they carry the channel's phase), y and z shared.
  std::vector<std::vector<Phasor>> px(static_cast<size_t>(num_classes * c)),
      py(static_cast<size_t>(num_classes)), pz(static_cast<size_t>(num_classes));
  for (int k = 0; k < num_classes; ++k) {
    for (int64_t ch = 0; ch < c; ++ch)
      px[static_cast<size_t>(k * c + ch)] = phasors(k, w, 0, ch * pi / 3);
    py[static_cast<size_t>(k)] = phasors(k, h, 1, 0.0);
    pz[static_cast<size_t>(k)] = phasors(k, depth, 2, 0.0);
  }
  const SynthRowFill fill = [&, c, depth, h, w](Rng& rng, int k, float* dst) {
    const double theta = 2 * pi * k / num_classes;
    const double cx = 0.5 + 0.28 * std::cos(theta) + rng.uniform(-0.04, 0.04);
    const double cy = 0.5 + 0.28 * std::sin(theta) + rng.uniform(-0.04, 0.04);
    const double cz = 0.5 + 0.22 * std::cos(2 * theta) + rng.uniform(-0.04, 0.04);
    const double sigma = 0.14 * rng.uniform(0.85, 1.15);
    const double amp = rng.uniform(0.7, 1.0);
    const auto gauss = [&](int64_t size, double centre, double scale) {
      std::vector<float> g(static_cast<size_t>(size));
      for (int64_t i = 0; i < size; ++i) {
        const double d = (i + 0.5) / size - centre;
        g[static_cast<size_t>(i)] =
            static_cast<float>(scale * std::exp(-d * d / (2 * sigma * sigma)));
      }
      return g;
    };
    const std::vector<float> gx = gauss(w, cx, 1.0), gy = gauss(h, cy, 1.0),
                             gz = gauss(depth, cz, amp);
    const std::vector<Phasor>&ey = py[static_cast<size_t>(k)], &ez = pz[static_cast<size_t>(k)];
    NoiseBits noise;
    for (int64_t ch = 0; ch < c; ++ch) {
      const std::vector<Phasor>& ex = px[static_cast<size_t>(k * c + ch)];
      for (int64_t z = 0; z < depth; ++z)
        for (int64_t y = 0; y < h; ++y) {
          const Phasor& a = ez[static_cast<size_t>(z)];
          const Phasor& b = ey[static_cast<size_t>(y)];
          const Phasor zy{a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
          const float gzy = gz[static_cast<size_t>(z)] * gy[static_cast<size_t>(y)];
          float* out = dst + ((ch * depth + z) * h + y) * w;
          for (int64_t x = 0; x < w; ++x) {
            const Phasor& e = ex[static_cast<size_t>(x)];
            const float stripe = 0.5f + 0.5f * (zy.re * e.im + zy.im * e.re);
            const float v =
                0.7f * gzy * gx[static_cast<size_t>(x)] + 0.25f * stripe + noise.next(rng, 0.05f);
            out[x] = std::clamp(v, 0.0f, 1.0f);
          }
        }
    }
  };
  return write_synthetic_rows(out_path, n, {c, depth, h, w}, seed, dtype, num_classes, deflate,
                              "NCDHW", fill);
}

}  // namespace

DatasetSummary write_synthetic(const std::string& out_path, int64_t n, int64_t c, int64_t h,
                               int64_t w, uint64_t seed, SynthDType dtype, int num_classes,
                               int deflate) {
  if (n < 1 || c < 1 || h < 1 || w < 1)
    throw DataError("synthetic data for '" + out_path +
                    "' needs n, channels, height and width "
                    ">= 1 (got n=" +
                    std::to_string(n) + ", " + std::to_string(c) + "x" + std::to_string(h) + "x" +
                    std::to_string(w) + ")");
  check_synthetic_classes(out_path, num_classes);
  const int64_t plane = h * w, row = c * plane;
  const double pi = std::numbers::pi;

  // Per class and channel, a stripe pattern with class-dependent orientation and frequency.
  std::vector<float> stripes(static_cast<size_t>(num_classes * row));
  for (int k = 0; k < num_classes; ++k) {
    const double angle = pi * k / num_classes;
    const double freq = 2.0 + k % 3;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const double u = (x + 0.5) / w, v = (y + 0.5) / h;
          const double s =
              std::sin(2 * pi * freq * (u * std::cos(angle) + v * std::sin(angle)) + ch * pi / 3);
          stripes[static_cast<size_t>(k * row + ch * plane + y * w + x)] =
              static_cast<float>(0.5 + 0.5 * s);
        }
  }

  std::vector<float> gx(static_cast<size_t>(w)), gy(static_cast<size_t>(h));
  const SynthRowFill fill = [&](Rng& rng, int k, float* dst) {
    // A Gaussian blob on a circle at the class's angle, jittered per sample; separable,
    // so it costs h + w exponentials per image instead of h * w.
    const double theta = 2 * pi * k / num_classes;
    const double cx = 0.5 + 0.28 * std::cos(theta) + rng.uniform(-0.04, 0.04);
    const double cy = 0.5 + 0.28 * std::sin(theta) + rng.uniform(-0.04, 0.04);
    const double sigma = 0.12 * rng.uniform(0.85, 1.15);
    const double amp = rng.uniform(0.7, 1.0);
    for (int64_t x = 0; x < w; ++x) {
      const double d = (x + 0.5) / w - cx;
      gx[static_cast<size_t>(x)] = static_cast<float>(std::exp(-d * d / (2 * sigma * sigma)));
    }
    for (int64_t y = 0; y < h; ++y) {
      const double d = (y + 0.5) / h - cy;
      gy[static_cast<size_t>(y)] = static_cast<float>(amp * std::exp(-d * d / (2 * sigma * sigma)));
    }
    const float* pattern = stripes.data() + k * row;
    NoiseBits noise;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t i = ch * plane + y * w + x;
          const float v = 0.7f * gx[static_cast<size_t>(x)] * gy[static_cast<size_t>(y)] +
                          0.25f * pattern[i] + noise.next(rng, 0.05f);
          dst[i] = std::clamp(v, 0.0f, 1.0f);
        }
  };
  return write_synthetic_rows(out_path, n, {c, h, w}, seed, dtype, num_classes, deflate, "NCHW",
                              fill);
}

DatasetSummary write_synthetic(const std::string& out_path, int64_t n,
                               const std::vector<int64_t>& sample_dims, uint64_t seed,
                               SynthDType dtype, int num_classes, int deflate) {
  const std::vector<int64_t>& s = sample_dims;
  const bool positive = std::all_of(s.begin(), s.end(), [](int64_t v) { return v >= 1; });
  if (n < 1 || s.size() < 2 || s.size() > 4 || !positive)
    throw DataError("synthetic data for '" + out_path +
                    "' needs n >= 1 and a sample shape of 2 to 4 sizes >= 1 ([C, L], [C, H, W] "
                    "or [C, D, H, W]); got n=" +
                    std::to_string(n) + ", sample " + shape_text(s));
  check_synthetic_classes(out_path, num_classes);
  if (s.size() == 2)
    return write_synthetic_signals(out_path, n, s[0], s[1], seed, dtype, num_classes, deflate);
  if (s.size() == 4)
    return write_synthetic_volumes(out_path, n, s[0], s[1], s[2], s[3], seed, dtype, num_classes,
                                   deflate);
  return write_synthetic(out_path, n, s[0], s[1], s[2], seed, dtype, num_classes, deflate);
}

DatasetSummary write_synthetic_features(const std::string& out_path, int64_t n, int64_t features,
                                        uint64_t seed, int num_classes) {
  if (n < 1 || features < 1)
    throw DataError("synthetic feature data for '" + out_path +
                    "' needs n and features >= 1 (got n=" + std::to_string(n) +
                    ", features=" + std::to_string(features) + ")");
  if (num_classes < 1 || num_classes > 256)
    throw DataError("synthetic data for '" + out_path + "' needs 1 to 256 classes (got " +
                    std::to_string(num_classes) + "); labels are stored as uint8");
  constexpr int kFactors = 3;
  const int64_t D = features;
  const int64_t chunk_rows = chunk_rows_for(D * 4, n);
  const double span = D > 1 ? static_cast<double>(D - 1) : 1.0;
  // Per feature: loadings on the factors, a scale and an offset of its own.
  std::vector<double> load(static_cast<size_t>(D * kFactors)), scale(static_cast<size_t>(D)),
      offset(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) {
    for (int m = 0; m < kFactors; ++m)
      load[static_cast<size_t>(d * kFactors + m)] =
          std::sin(1.3 * static_cast<double>(d) + 2.1 * m + 0.4);
    scale[static_cast<size_t>(d)] = std::pow(10.0, -3.0 + 6.0 * static_cast<double>(d) / span);
    offset[static_cast<size_t>(d)] =
        (d % 2 ? -1.0 : 1.0) * std::pow(10.0, 4.0 * static_cast<double>(D - 1 - d) / span);
  }
  write_atomically(out_path, [&](const std::string& tmp) {
    h5::File file = h5::create_file(tmp);
    write_format_attributes(file, "vae_data synth --features");
    h5::write_attribute(file, "synthetic_seed", seed);
    h5::write_attribute(file, "num_classes", int64_t{num_classes});
    h5::write_attribute(file, "shuffled", int64_t{0});
    const std::vector<int64_t> dims{n, D};
    h5::Dataset dset =
        h5::create_dataset(file, "/images", H5T_NATIVE_FLOAT, dims, {{chunk_rows, D}, 0});
    h5::write_attribute(dset, "layout", "ND");
    const std::vector<int64_t> ldims{n};
    h5::Dataset dlab = h5::create_dataset<uint8_t>(
        file, "/labels", ldims, {{std::min<int64_t>(n, 1 << 16)}, kDeflateLevel});
    Rng rng(seed);
    std::vector<float> buf(static_cast<size_t>(chunk_rows * D));
    std::vector<uint8_t> lbuf(static_cast<size_t>(chunk_rows));
    double z[kFactors];
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - r0);
      for (int64_t r = 0; r < rows; ++r) {
        const int k = static_cast<int>(rng.below(static_cast<uint64_t>(num_classes)));
        lbuf[static_cast<size_t>(r)] = static_cast<uint8_t>(k);
        for (int m = 0; m < kFactors; ++m)
          z[m] = 1.5 * std::cos(2.0 * std::numbers::pi * k / num_classes + m) +
                 rng.uniform(-0.85, 0.85);
        for (int64_t d = 0; d < D; ++d) {
          const double* a = load.data() + d * kFactors;
          const double s = a[0] * z[0] + a[1] * z[1] + a[2] * z[2] +
                           0.3 * std::sin(z[0] * (1.0 + 3.0 * static_cast<double>(d) / span)) +
                           0.1 * rng.uniform(-1.0, 1.0);
          buf[static_cast<size_t>(r * D + d)] = static_cast<float>(
              offset[static_cast<size_t>(d)] + scale[static_cast<size_t>(d)] * s);
        }
      }
      h5::write_rows(dset, r0, rows, buf.data());
      h5::write_rows(dlab, r0, rows, lbuf.data());
    }
  });
  return {n, {D}, "float32", true};
}

void write_dataset_file(const std::string& out_path, const std::string& created_by,
                        const std::function<void(hid_t file)>& write) {
  write_atomically(out_path, [&](const std::string& tmp) {
    h5::File file = h5::create_file(tmp);
    write_format_attributes(file, created_by);
    write(file);
  });
}

void write_int64_array_attribute(hid_t obj, const std::string& name,
                                 std::span<const int64_t> values) {
  if (h5::has_attribute(obj, name))
    VD_H5(H5Adelete(obj, name.c_str()), "cannot replace HDF5 attribute '" + name + "'");
  const hsize_t count = values.size();
  h5::Dataspace space(
      VD_H5(H5Screate_simple(1, &count, nullptr), "cannot create a dataspace for '" + name + "'"));
  h5::Attribute attr(
      VD_H5(H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT),
            "cannot create HDF5 attribute '" + name + "'"));
  VD_H5(H5Awrite(attr, H5T_NATIVE_INT64, values.data()),
        "cannot write HDF5 attribute '" + name + "'");
}

std::string describe(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw DataError("data file '" + path + "' does not exist; check the path");
  if (!h5::is_hdf5(path))
    throw DataError("'" + path +
                    "' is not an HDF5 file; convert IDX files with "
                    "`vae_data import-idx`");
  h5::File file = h5::open_file(path);
  std::ostringstream out;
  out << "file " << path << " (" << std::filesystem::file_size(path, ec) / 1.0e6 << " MB)\n";
  for (const std::string& a : h5::list_attributes(file))
    out << "  @" << a << " = " << h5::attribute_text(file, a) << "\n";

  for (const std::string& name : h5::list_datasets(file, "/", true)) {
    h5::Dataset dset = h5::open_dataset(file, name);
    const std::vector<int64_t> dims = h5::dims_of(dset);
    const h5::DType type = h5::dtype_of(dset);
    out << name << ": " << h5::dtype_name(dset) << " " << shape_text(dims);
    const std::vector<int64_t> chunk = h5::chunk_of(dset);
    if (!chunk.empty()) out << ", chunks " << shape_text(chunk);
    const int level = h5::deflate_level_of(dset);
    if (level >= 0) out << ", gzip " << level;
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    const bool numeric = type != h5::DType::String && type != h5::DType::Other;
    if (count == 0) {
      out << ", empty";
    } else if (numeric && dims.empty()) {
      double v = 0;
      h5::read_all(dset, H5T_NATIVE_DOUBLE, &v);
      out << ", value " << v;
    } else if (numeric) {
      // Stream blocks of rows so files larger than memory can be described.
      const int64_t row = count / dims[0];
      const int64_t block = std::max<int64_t>(1, (int64_t{4} << 20) / row);
      std::vector<double> buf(static_cast<size_t>(std::min(block, dims[0]) * row));
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      int64_t nonfinite = 0;
      for (int64_t r0 = 0; r0 < dims[0]; r0 += block) {
        const int64_t rows = std::min(block, dims[0] - r0);
        h5::read_rows(dset, r0, rows, buf.data());
        for (int64_t i = 0; i < rows * row; ++i) {
          const double v = buf[static_cast<size_t>(i)];
          if (!std::isfinite(v)) {
            ++nonfinite;
            continue;
          }
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      out << ", min " << lo << ", max " << hi;
      if (nonfinite) out << ", " << nonfinite << " NaN/Inf values";
    }
    out << "\n";
    for (const std::string& a : h5::list_attributes(dset))
      out << "  @" << a << " = " << h5::attribute_text(dset, a) << "\n";

    if (name == "/labels" && h5::is_integer(type) && dims.size() == 1 && count > 0) {
      std::map<int64_t, int64_t> hist;
      const int64_t block = int64_t{1} << 20;
      std::vector<int64_t> buf(static_cast<size_t>(std::min(block, dims[0])));
      for (int64_t r0 = 0; r0 < dims[0]; r0 += block) {
        const int64_t rows = std::min(block, dims[0] - r0);
        h5::read_rows(dset, r0, rows, buf.data());
        for (int64_t i = 0; i < rows; ++i) ++hist[buf[static_cast<size_t>(i)]];
      }
      out << "  label histogram (" << hist.size() << " classes):";
      for (const auto& [label, n] : hist) out << " " << label << ":" << n;
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace vd
