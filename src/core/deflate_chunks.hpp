// Rows of a deflate-compressed HDF5 data set read chunk by chunk and decoded with libdeflate,
// which inflates 2-3x faster than the zlib inside HDF5's filter pipeline. That matters when the
// data are streamed from the file every epoch (data/row_stream): inflating is most of what a
// streamed read costs. Only the plain case is taken: chunks of whole rows, deflate as the only
// filter, and a stored type that is the memory type; everything else reads through H5Dread.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>

namespace vd::h5 {

class DeflateChunks {
 public:
  // The reader for `dataset` read into memory of type `mem_type`, or nothing where the plain
  // case does not hold (the caller reads with H5Dread instead).
  static std::optional<DeflateChunks> open(hid_t dataset, hid_t mem_type);

  // Rows [row, row + rows) into dst (row_bytes() each). Thread-safe (HDF5 serialises the raw
  // chunk reads; each thread decodes with its own libdeflate decoder). Throws vd::IoError for
  // a chunk that is missing, damaged or does not decode to its size.
  void read(int64_t row, int64_t rows, void* dst) const;
  int64_t row_bytes() const { return row_bytes_; }

 private:
  hid_t dataset_ = -1;  // not owned
  int64_t chunk_rows_ = 0, row_bytes_ = 0;
};

}  // namespace vd::h5
