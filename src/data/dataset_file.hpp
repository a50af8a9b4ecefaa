// The project's HDF5 data set files: importing IDX (MNIST-style) files, writing synthetic
// data, and describing a file for `vae_data info`.
//
// Layout of a data set file (format "vae_dist-dataset", format_version 1):
//   /images  uint8 or float32 [N, C, H, W] (float data in [0, 1]), chunked, usually gzip;
//            also [N, C, L] (1-D signals), [N, C, D, H, W] (3-D volumes) or [N, D] (vectors)
//   /labels  uint8 [N] (optional), the class of each image row
//   root attributes: format, format_version, created_by, source file names, shuffle info.
// Train and test splits are SEPARATE files, each with its own /images and /labels, e.g.
// data/fashion-mnist/train.h5 and data/fashion-mnist/test.h5, so a shard reader never has
// to know about splits and every file is self-describing.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vd {

inline constexpr const char* kDatasetFormat = "vae_dist-dataset";
inline constexpr int64_t kDatasetFormatVersion = 1;

// What a writer produced, for the one-line summary of the command-line tool.
struct DatasetSummary {
  int64_t rows = 0;
  std::vector<int64_t> sample_shape;  // {C, H, W}, {C, L}, {C, D, H, W} or {D}
  std::string dtype;                  // "uint8" or "float32"
  bool has_labels = false;
};

// Rows per HDF5 chunk for rows of row_bytes bytes: about 1 MiB per chunk (the default
// chunk cache size), at most 1024 rows, at least 1, never more than n.
int64_t chunk_rows_for(int64_t row_bytes, int64_t n);

// The permutation import applies: output row r is input row perm[r]. Fisher-Yates from the
// last element down, with j = vd::Rng(seed).below(i + 1).
std::vector<int64_t> shuffle_permutation(int64_t n, uint64_t seed);

// Converts IDX images ([N, H, W] -> C = 1, or [N, C, H, W]) and optional IDX labels ([N];
// pass "" for none) to a data set file at out_path. With shuffle_seed, ONE permutation is
// applied to images and labels together. Writes out_path + ".tmp" then renames it, so an
// interrupted import never leaves a half-written file; creates missing parent directories.
// Throws vd::DataError for bad input (naming the file), vd::IoError when writing fails.
// The images are deflate-compressed at `deflate` (0 = stored uncompressed, 1..9).
// drop_labels: the rows of these labels are left out (the others keep the order they have
// without it; the root attribute dropped_labels names them); each must occur in the labels.
DatasetSummary import_idx(const std::string& images_path, const std::string& labels_path,
                          const std::string& out_path, std::optional<uint64_t> shuffle_seed,
                          int deflate = 4, const std::vector<int64_t>& drop_labels = {});

// The same for a NumPy .npy array of images (uint8 or float32, C order, little-endian): [N, D]
// vectors, [N, H, W] (C = 1), [N, C, H, W], or [N, C, D, H, W] volumes; with `signals`, a 3-D
// array is [N, C, L] 1-D signals instead. Labels (pass "" for none): a 1-D .npy of N integers
// of any integer type, within int32, written as int32 /labels. Throws vd::DataError naming the
// file for what is not supported (see read_npy) or sizes that do not fit each other.
// drop_labels as for import_idx.
DatasetSummary import_npy(const std::string& images_path, const std::string& labels_path,
                          const std::string& out_path, std::optional<uint64_t> shuffle_seed,
                          int deflate = 4, bool signals = false,
                          const std::vector<int64_t>& drop_labels = {});

enum class SynthDType { UInt8, Float32 };

// Writes n deterministic (per seed) synthetic images [n, c, h, w] with labels: each class is
// a smooth pattern (a blob at a class-dependent position over class-oriented stripes) plus
// noise, values in [0, 1] (float32) or 0..255 (uint8). Streams chunk by chunk, so n may be
// in the millions. Same temp-file-and-rename scheme as import_idx. num_classes in 1..256.
// `deflate`: the images' deflate level, 0 = uncompressed; -1 = level 1 for uint8 and none for
// float32 (float mantissa noise hardly compresses).
DatasetSummary write_synthetic(const std::string& out_path, int64_t n, int64_t c, int64_t h,
                               int64_t w, uint64_t seed, SynthDType dtype, int num_classes,
                               int deflate = -1);

// The same for any sample shape: sample_dims {C, H, W} is the function above; {C, L} writes
// 1-D signals [n, C, L] (class k: a Gaussian bump at a class position over a sinusoid of
// 1 + k % 4 cycles, jittered per sample, the channels with different phases and bump
// heights); {C, D, H, W} writes 3-D volumes [n, C, D, H, W] (a Gaussian blob at a class
// position over class-oriented stripes, as the images one dimension up). Values in [0, 1]
// plus noise, same labels, chunking, deflate and determinism per seed.
DatasetSummary write_synthetic(const std::string& out_path, int64_t n,
                               const std::vector<int64_t>& sample_dims, uint64_t seed,
                               SynthDType dtype, int num_classes, int deflate = -1);

// Writes n deterministic (per seed) rows of float32 "scientific" vectors [n, features] with
// labels (num_classes clusters): a few latent factors (class centre + noise) mixed into every
// feature with a mild non-linearity, then feature d is scaled by 10^(-3 + 6 d / (D - 1)) and
// shifted by +-10^(4 (D - 1 - d) / (D - 1)): scales from 1e-3 to 1e3, offsets up to 1e4, the
// data --standardize is for. Same temp-file-and-rename scheme. features >= 1.
DatasetSummary write_synthetic_features(const std::string& out_path, int64_t n, int64_t features,
                                        uint64_t seed, int num_classes);

// The writers' scheme, for writers in other files (data/shapes.cpp): creates missing parent
// directories and out_path + ".tmp" with the format attributes (created_by names the writer),
// runs write(file), closes the file and renames it over out_path; on any exception the temp
// file is removed and the exception passes on.
void write_dataset_file(const std::string& out_path, const std::string& created_by,
                        const std::function<void(hid_t file)>& write);

// An importer's root attributes: the format attributes (as write_dataset_file writes them), the
// source files' names (labels_path "" for none) and the shuffle (shuffled, shuffle_seed,
// shuffle_method).
void write_import_attributes(hid_t file, const std::string& created_by,
                             const std::string& images_path, const std::string& labels_path,
                             std::optional<uint64_t> shuffle_seed);

// A 1-D int64 attribute on obj (e.g. the factor sizes on /factors), an array to h5py.
// Replaces an attribute of the same name.
void write_int64_array_attribute(hid_t obj, const std::string& name,
                                 std::span<const int64_t> values);

// Text report of a data set file: file attributes, then every dataset with shape, dtype,
// chunking, min/max (streamed in blocks) and attributes, and a histogram of /labels.
std::string describe(const std::string& path);

}  // namespace vd
