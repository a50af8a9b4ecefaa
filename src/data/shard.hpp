// The training-time data reader: each MPI rank reads only its own contiguous block of a range
// of rows of an HDF5 data set (one hyperslab) and converts rows to float32 on demand.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vd {

struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Rows [rank*n/world, (rank+1)*n/world) of n rows split over world ranks; the ranges tile
// [0, n) and their sizes differ by at most one. Computed without overflow for any n.
RowRange shard_rows(int64_t n, int rank, int world);

// UnitInterval: float data must lie in [0, 1] (needed by the Bernoulli likelihood).
enum class ValueCheck { None, UnitInterval };

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
                    ValueCheck check, std::optional<RowRange> rows = std::nullopt);
  // N, the rows of `dataset` in `file`, with read()'s checks of the file and the data set.
  static int64_t count_rows(const std::string& file, const std::string& dataset);

  int64_t rows() const { return range_.size(); }             // local rows
  int64_t global_rows() const { return selection_.size(); }  // rows over all ranks
  RowRange selection() const { return selection_; }          // the file rows the ranks split
  RowRange range() const { return range_; }                  // this shard's rows of the file
  // {C, H, W} for 4-D data, {D} for 2-D data.
  const std::vector<int64_t>& sample_shape() const { return sample_shape_; }
  int64_t sample_size() const { return sample_size_; }
  bool has_labels() const { return !labels_.empty(); }
  const std::vector<int32_t>& labels() const { return labels_; }  // one per local row
  bool stored_as_uint8() const { return !u8_.empty(); }
  const std::string& file() const { return file_; }
  const std::string& dataset() const { return dataset_; }
  // The float data [rows(), sample_size()] (empty when stored as uint8), writable so the
  // whole shard can be rescaled once (data/standardize).
  std::span<float> float_values() { return f32_; }
  std::span<const float> float_values() const { return f32_; }

  // Copies the listed local rows, in order, into dst [local_rows.size(), sample_size()] as
  // float32 in [0, 1] (uint8 divided by 255). Hot path: no allocation. Throws
  // vd::ShapeError for a row outside [0, rows()).
  void gather(std::span<const int64_t> local_rows, float* dst) const;

 private:
  std::string file_, dataset_;
  RowRange selection_, range_;
  std::vector<int64_t> sample_shape_;
  int64_t sample_size_ = 0;
  std::vector<uint8_t> u8_;  // uint8 data stays uint8: 4x less memory than float
  std::vector<float> f32_;
  std::vector<int32_t> labels_;
};

}  // namespace vd
