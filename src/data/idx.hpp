// Reader for IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vd {

// An IDX array: dims as stored (e.g. {N, 28, 28} for images, {N} for labels), row-major data.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an IDX file of unsigned bytes (type 0x08) with 1 to 4 dimensions. gzip is detected
// from the content, so "x.gz" and an unpacked "x" both work. Throws vd::DataError naming the
// file for a missing file, bad magic, another element type, or a payload whose size differs
// from the dims (truncated file or trailing bytes).
IdxArray read_idx(const std::string& path);

}  // namespace vd
