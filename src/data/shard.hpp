// The training-time data reader: each MPI rank reads only its own contiguous block of a range
// of rows of an HDF5 data set (one hyperslab) and converts rows to float32 on demand. A shard
// is held in memory, or streamed: its rows stay in the file and are read when asked for
// (data/row_stream reads a training epoch ahead of the steps).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "data/feature_scaling.hpp"

namespace vd {

// dst[i] = src[i] / 255 (division, not multiplication by 1/255, keeps 255 -> exactly 1.0f),
// cloned for AVX-512 and AVX2 (core/simd.hpp): every clone divides exactly, so the bits agree.
void decode_u8(const uint8_t* src, float* dst, int64_t n);

struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Rows [rank*n/world, (rank+1)*n/world) of n rows split over world ranks; the ranges tile
// [0, n) and their sizes differ by at most one. Computed without overflow for any n.
RowRange shard_rows(int64_t n, int rank, int world);

// UnitInterval: float data must lie in [0, 1] (needed by the Bernoulli likelihood).
enum class ValueCheck { None, UnitInterval };

// InMemory: read() reads the shard's rows. Streamed: read() checks the file and reads the labels;
// rows are read (and their values checked) when they are asked for, each read refused once the
// file is no longer the one read() opened (data/file_watch).
enum class Residency { InMemory, Streamed };

// What read() would hold: the rows of the data set and the bytes one row takes in memory
// (uint8 stays uint8, float64 becomes float32), after read()'s checks of the file.
struct DataExtent {
  int64_t rows = 0;
  int64_t row_bytes = 0;
};

class Shard {
 public:
  // An empty shard (0 rows), so a Shard can be a member filled later by read().
  Shard() = default;

  // Reads exactly this rank's rows of `dataset` (e.g. "/images") as ONE hyperslab, never
  // other ranks' rows, and the same rows of /labels when the file has one. The ranks split
  // `rows` of the file (all N rows when not given; e.g. [0, N - V) for training and
  // [N - V, N) for a held-out validation set): rank r reads rows.begin + shard_rows(rows.size(),
  // r, world). Accepts uint8, float32 and float64 (converted to float32) data of shape
  // [N, C, H, W] or [N, D]. Throws vd::DataError naming the file and the problem for bad input
  // (rows outside [0, N), fewer rows than ranks); no partial object.
  static Shard read(const std::string& file, const std::string& dataset, int rank, int world,
                    ValueCheck check, std::optional<RowRange> rows = std::nullopt,
                    Residency residency = Residency::InMemory);
  // N, the rows of `dataset` in `file`, with read()'s checks of the file and the data set.
  static int64_t count_rows(const std::string& file, const std::string& dataset);
  static DataExtent extent(const std::string& file, const std::string& dataset);

  int64_t rows() const { return range_.size(); }             // local rows
  int64_t global_rows() const { return selection_.size(); }  // rows over all ranks
  RowRange selection() const { return selection_; }          // the file rows the ranks split
  RowRange range() const { return range_; }                  // this shard's rows of the file
  // {C, H, W} for 4-D data, {D} for 2-D data.
  const std::vector<int64_t>& sample_shape() const { return sample_shape_; }
  int64_t sample_size() const { return sample_size_; }
  bool has_labels() const { return !labels_.empty(); }
  const std::vector<int32_t>& labels() const { return labels_; }  // one per local row
  bool stored_as_uint8() const { return u8_data_; }
  bool streamed() const { return source_ != nullptr; }
  // Bytes of one row as stored in memory (sample_size() x 1 for uint8, x 4 for float).
  int64_t row_bytes() const { return sample_size_ * (u8_data_ ? 1 : 4); }
  int64_t chunk_rows() const { return chunk_rows_; }
  const std::string& file() const { return file_; }
  const std::string& dataset() const { return dataset_; }
  // The float data [rows(), sample_size()] in memory (empty when stored as uint8 or streamed).
  std::span<const float> float_values() const { return f32_; }

  // Copies the listed local rows, in order, into dst [local_rows.size(), sample_size()] as
  // float32 (uint8 divided by 255), standardised when standardize() was called. In memory the
  // hot path: no allocation. Streamed: reads each run of consecutive rows from the file. Throws
  // vd::ShapeError for a row outside [0, rows()), vd::DataError for a failed read.
  void gather(std::span<const int64_t> local_rows, float* dst) const;

  // Reads local rows [first, first + count) as stored (uint8 or float32 bytes, row_bytes()
  // each) into dst, checking float values as read() does. From memory, or from the file
  // (thread-safe: HDF5 serialises its calls); from the file, throws vd::DataError naming the
  // file and the change when it was truncated, written over or replaced since read().
  void read_stored(int64_t first, int64_t count, void* dst) const;
  // dst [1, sample_size()] = the stored row `src` (row_bytes() bytes) as gather() gives it,
  // before standardisation (see finish()).
  void decode(const void* src, float* dst) const {
    if (u8_data_) {
      decode_u8(static_cast<const uint8_t*>(src), dst, sample_size_);
    } else {
      const auto* in = static_cast<const float*>(src);
      std::copy_n(in, sample_size_, dst);
    }
  }
  // Standardises n decoded rows in place when the shard is streamed (in memory they were
  // standardised once, by standardize()).
  void finish(float* dst, int64_t n) const {
    if (streamed() && !scaling_.empty()) scaling_.apply(dst, n);
  }
  // Calls fn(rows, n) for consecutive runs of float rows covering the shard, in order; runs of
  // at most `rows_per_call` rows when streamed (the whole shard at once in memory). Unscaled.
  void for_each_float_run(int64_t rows_per_call,
                          const std::function<void(const float* rows, int64_t n)>& fn) const;
  // x' = (x - mean) / std from now on: in place in memory, on read when streamed.
  void standardize(const FeatureScaling& scaling);

 private:
  std::string file_, dataset_;
  RowRange selection_, range_;
  struct Source;  // the open file of a streamed shard
  std::vector<int64_t> sample_shape_;
  int64_t sample_size_ = 0, chunk_rows_ = 0;
  bool u8_data_ = false;
  ValueCheck check_ = ValueCheck::None;
  std::vector<uint8_t> u8_;  // uint8 data stays uint8: 4x less memory than float
  std::vector<float> f32_;
  std::vector<int32_t> labels_;
  std::shared_ptr<const Source> source_;
  FeatureScaling scaling_;  // applied on read when streamed
};

}  // namespace vd
