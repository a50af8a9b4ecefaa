// Reader for NumPy's .npy files (format versions 1.0, 2.0 and 3.0, as numpy's
// lib/format.py specifies them): little-endian, C-order arrays of plain numbers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vd {

enum class NpyType { UInt8, Int8, Int16, Int32, Int64, UInt16, UInt32, UInt64, Float32, Float64 };
const char* npy_type_name(NpyType t);  // numpy's name: "uint8", "float32", ...
bool npy_is_integer(NpyType t);

// An array as stored: its shape (row-major) and raw little-endian bytes.
struct NpyArray {
  std::vector<int64_t> dims;
  NpyType type = NpyType::UInt8;
  std::vector<uint8_t> bytes;
  int64_t count() const;
  // Element i as a double (exact for every type but 64-bit integers beyond 2^53).
  double value(int64_t i) const;
};

// Reads path. Throws vd::DataError naming the file and what to do for: a missing file, bad
// magic or header, Fortran order, a big-endian, object, structured, complex or string dtype,
// and a payload whose size is not the shape's (truncated file or trailing bytes).
NpyArray read_npy(const std::string& path);

}  // namespace vd
