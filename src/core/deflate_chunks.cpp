// DeflateChunks: H5Dread_chunk for the compressed bytes, libdeflate to decode them.
#include "core/deflate_chunks.hpp"

#include <libdeflate.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.hpp"

namespace vd::h5 {

namespace {

struct FreeDecompressor {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};

// One decoder per thread: a decoder is not shareable, and the training thread and the
// read-ahead thread may decode at once.
libdeflate_decompressor* decompressor() {
  thread_local std::unique_ptr<libdeflate_decompressor, FreeDecompressor> d(
      libdeflate_alloc_decompressor());
  return d.get();
}

}  // namespace

std::optional<DeflateChunks> DeflateChunks::open(hid_t dataset, hid_t mem_type) {
  const hid_t dcpl = H5Dget_create_plist(dataset);
  if (dcpl < 0) return std::nullopt;
  std::optional<DeflateChunks> out;
  const hid_t type = H5Dget_type(dataset);
  const hid_t space = H5Dget_space(dataset);
  const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (type >= 0 && rank >= 1 && rank <= 8 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
      H5Pget_nfilters(dcpl) == 1 && H5Tequal(type, mem_type) > 0) {
    unsigned flags = 0;
    size_t nvalues = 0;
    unsigned config = 0;
    const H5Z_filter_t filter =
        H5Pget_filter2(dcpl, 0, &flags, &nvalues, nullptr, 0, nullptr, &config);
    hsize_t dims[8], chunk[8];
    H5Sget_simple_extent_dims(space, dims, nullptr);
    const int crank = H5Pget_chunk(dcpl, 8, chunk);
    bool whole_rows = crank == rank && chunk[0] >= 1;
    for (int i = 1; whole_rows && i < rank; ++i) whole_rows = chunk[i] == dims[i];
    if (filter == H5Z_FILTER_DEFLATE && whole_rows) {
      DeflateChunks r;
      r.dataset_ = dataset;
      r.chunk_rows_ = static_cast<int64_t>(chunk[0]);
      r.row_bytes_ = static_cast<int64_t>(H5Tget_size(type));
      for (int i = 1; i < rank; ++i) r.row_bytes_ *= static_cast<int64_t>(dims[i]);
      out = r;
    }
  }
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  H5Pclose(dcpl);
  return out;
}

void DeflateChunks::read(int64_t row, int64_t rows, void* dst) const {
  const int64_t chunk_bytes = chunk_rows_ * row_bytes_;
  thread_local std::vector<uint8_t> packed, chunk;
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t c = row / chunk_rows_; c * chunk_rows_ < row + rows; ++c) {
    hsize_t offset[8] = {};
    offset[0] = static_cast<hsize_t>(c * chunk_rows_);
    hsize_t stored = 0;
    if (H5Dget_chunk_storage_size(dataset_, offset, &stored) < 0 || stored == 0)
      throw IoError("chunk " + std::to_string(c) + " is missing");
    // zlib never grows data by more than a few bytes per 16 KB: more is a damaged index.
    if (static_cast<int64_t>(stored) > chunk_bytes + chunk_bytes / 64 + 1024)
      throw IoError("chunk " + std::to_string(c) + " claims " + std::to_string(stored) +
                    " stored bytes for " + std::to_string(chunk_bytes) + " (damaged index)");
    packed.resize(static_cast<size_t>(stored));
    uint32_t skipped = 0;
    if (H5Dread_chunk(dataset_, H5P_DEFAULT, offset, &skipped, packed.data()) < 0)
      throw IoError("cannot read chunk " + std::to_string(c));
    // The rows of this chunk that were asked for, and whether they are all of it.
    const int64_t first = std::max(row, c * chunk_rows_);
    const int64_t last = std::min(row + rows, (c + 1) * chunk_rows_);
    const bool whole = first == c * chunk_rows_ && last == (c + 1) * chunk_rows_;
    uint8_t* into = out + (first - row) * row_bytes_;
    if (!whole) chunk.resize(static_cast<size_t>(chunk_bytes));
    uint8_t* target = whole ? into : chunk.data();
    if (skipped & 1u) {  // stored without the filter (it would not compress)
      if (static_cast<int64_t>(stored) != chunk_bytes)
        throw IoError("chunk " + std::to_string(c) + " has " + std::to_string(stored) +
                      " bytes, not " + std::to_string(chunk_bytes));
      std::memcpy(target, packed.data(), static_cast<size_t>(chunk_bytes));
    } else {
      size_t got = 0;
      const libdeflate_result res =
          libdeflate_zlib_decompress(decompressor(), packed.data(), packed.size(), target,
                                     static_cast<size_t>(chunk_bytes), &got);
      if (res != LIBDEFLATE_SUCCESS || static_cast<int64_t>(got) != chunk_bytes)
        throw IoError("chunk " + std::to_string(c) + " does not inflate to its " +
                      std::to_string(chunk_bytes) + " bytes (damaged data)");
    }
    if (!whole)
      std::memcpy(into, chunk.data() + (first - c * chunk_rows_) * row_bytes_,
                  static_cast<size_t>((last - first) * row_bytes_));
  }
}

}  // namespace vd::h5
