// RAII ownership of HDF5 handles plus small typed helpers (files, datasets, row blocks,
// attributes, listings) shared by the data and checkpoint code. Failures throw vd::IoError.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.hpp"

namespace vd::h5 {

// Owns one hid_t and closes it with Close when destroyed; movable, not copyable.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.release()) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.release();
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  // Implicit so a handle can be passed straight to the HDF5 C API.
  operator hid_t() const { return id_; }  // NOLINT(google-explicit-constructor)
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0) Close(id_);  // a failing close cannot be reported from a destructor
    id_ = H5I_INVALID_HID;
  }
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using File = Handle<H5Fclose>;
using Dataset = Handle<H5Dclose>;
using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using PropList = Handle<H5Pclose>;
using Attribute = Handle<H5Aclose>;
using Group = Handle<H5Gclose>;
using Object = Handle<H5Oclose>;  // any object opened with H5Oopen

// The most useful lines of HDF5's current error stack ("" when empty); clears the stack.
std::string take_error_stack();

// Throws IoError "<file:line>: <what>: <HDF5 reason>" when result < 0, else returns it.
template <class R>
R check(R result, const char* file, int line, const std::string& what) {
  if (result < 0) {
    std::string reason = take_error_stack();
    throw IoError(source_location_prefix(file, line) + what +
                  (reason.empty() ? std::string() : " (HDF5: " + reason + ")"));
  }
  return result;
}

}  // namespace vd::h5

// VD_H5(H5Dread(...), "reading /images from x.h5"): checks a herr_t/hid_t/htri_t result.
#define VD_H5(expr, what) ::vd::h5::check((expr), __FILE__, __LINE__, (what))

namespace vd::h5 {

// Element types the helpers move between memory and file.
template <class T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, uint8_t>)
    return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<T, int8_t>)
    return H5T_NATIVE_INT8;
  else if constexpr (std::is_same_v<T, int32_t>)
    return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, uint32_t>)
    return H5T_NATIVE_UINT32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, uint64_t>)
    return H5T_NATIVE_UINT64;
  else if constexpr (std::is_same_v<T, float>)
    return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return H5T_NATIVE_DOUBLE;
  else
    static_assert(sizeof(T) == 0, "no HDF5 native type for this element type");
}

// Element type of a dataset or attribute as stored in the file.
enum class DType {
  UInt8,
  Int8,
  UInt16,
  Int16,
  UInt32,
  Int32,
  UInt64,
  Int64,
  Float32,
  Float64,
  String,
  Other
};
DType dtype_of_type(hid_t type);  // from a datatype id
DType dtype_of(hid_t dataset);    // from a dataset id
// "uint8", "float32", "string", ... ; for Other a description such as "compound".
std::string type_name(hid_t type);
std::string dtype_name(hid_t dataset);
inline bool is_integer(DType t) {
  return t <= DType::Int64;
}

// Stops HDF5 printing its error stack to stderr (our exceptions carry the message instead).
void quiet_errors();
// Whether this HDF5 library may be called from several threads (built with --enable-threadsafe,
// as Debian's is): streamed data read ahead in a thread of their own.
bool library_threadsafe();

// True when path is an existing HDF5 file; false for a missing or non-HDF5 file.
bool is_hdf5(const std::string& path);
// Truncates an existing file. checksummed: the file format of HDF5 1.10 and later, whose
// superblock, object headers and chunk indexes carry checksums that HDF5 verifies on every
// read (readable by HDF5 >= 1.10, as in current h5py), instead of the oldest format (none).
File create_file(const std::string& path, bool checksummed = false);
File open_file(const std::string& path, bool writable = false);

// In a checksummed file (create_file) the group keeps all its links in its object header,
// which carries a checksum.
Group create_group(hid_t loc, const std::string& name);
Group open_group(hid_t loc, const std::string& name);
// True when every component of path (e.g. "/a/b/images") exists as a link.
bool exists(hid_t loc, const std::string& path);
bool is_dataset(hid_t loc, const std::string& path);
// Datasets directly in group (or below it when recursive), as full paths like "/images", in
// name order.
std::vector<std::string> list_datasets(hid_t loc, const std::string& group = "/",
                                       bool recursive = false);

// Dataset creation: chunk empty = contiguous; deflate 0 = no compression (needs chunks).
// fletcher32: a checksum per chunk, which HDF5 checks on every read (needs chunks).
struct CreateOptions {
  std::vector<int64_t> chunk;
  int deflate = 0;
  bool fletcher32 = false;
};
Dataset create_dataset(hid_t loc, const std::string& name, hid_t file_type,
                       std::span<const int64_t> dims, const CreateOptions& options = {});
template <class T>
Dataset create_dataset(hid_t loc, const std::string& name, std::span<const int64_t> dims,
                       const CreateOptions& options = {}) {
  return create_dataset(loc, name, native_type<T>(), dims, options);
}
Dataset open_dataset(hid_t loc, const std::string& name);
std::vector<int64_t> dims_of(hid_t dataset);
// Chunk shape of a dataset (empty when contiguous) and whether it is gzip-compressed.
std::vector<int64_t> chunk_of(hid_t dataset);
int deflate_level_of(hid_t dataset);  // -1 when not compressed with deflate
bool has_fletcher32(hid_t dataset);

// Rows [row, row + rows) along dimension 0, all of every other dimension, as ONE
// hyperslab; HDF5 converts between mem_type and the stored type.
void write_rows(hid_t dataset, hid_t mem_type, int64_t row, int64_t rows, const void* src);
void read_rows(hid_t dataset, hid_t mem_type, int64_t row, int64_t rows, void* dst);
template <class T>
void write_rows(hid_t dataset, int64_t row, int64_t rows, const T* src) {
  write_rows(dataset, native_type<T>(), row, rows, src);
}
template <class T>
void read_rows(hid_t dataset, int64_t row, int64_t rows, T* dst) {
  read_rows(dataset, native_type<T>(), row, rows, dst);
}

// Whole-dataset helpers for small arrays (tests, checkpoints).
template <class T>
struct Array {
  std::vector<int64_t> dims;
  std::vector<T> data;
};
void write_all(hid_t dataset, hid_t mem_type, const void* src);
void read_all(hid_t dataset, hid_t mem_type, void* dst);
template <class T>
void write_dataset(hid_t loc, const std::string& name, std::span<const T> data,
                   std::span<const int64_t> dims, const CreateOptions& options = {}) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  if (count != static_cast<int64_t>(data.size()))
    throw ShapeError("writing HDF5 dataset '" + name + "': " + std::to_string(data.size()) +
                     " values do not match the shape (" + std::to_string(count) + " values)");
  Dataset dset = create_dataset<T>(loc, name, dims, options);
  write_all(dset, native_type<T>(), data.data());
}
template <class T>
Array<T> read_dataset(hid_t loc, const std::string& name) {
  Dataset dset = open_dataset(loc, name);
  Array<T> out;
  out.dims = dims_of(dset);
  int64_t count = 1;
  for (int64_t d : out.dims) count *= d;
  out.data.resize(static_cast<size_t>(count));
  if (count > 0) read_all(dset, native_type<T>(), out.data.data());
  return out;
}

// Attributes (scalars). Writing replaces an existing attribute of the same name.
bool has_attribute(hid_t obj, const std::string& name);
std::vector<std::string> list_attributes(hid_t obj);
void write_attribute(hid_t obj, const std::string& name, const std::string& value);
inline void write_attribute(hid_t obj, const std::string& name, const char* value) {
  write_attribute(obj, name, std::string(value));
}
void write_attribute(hid_t obj, const std::string& name, hid_t mem_type, const void* value);
template <class T>
requires(std::is_arithmetic_v<T> &&
         !std::is_same_v<T, bool>) void write_attribute(hid_t obj, const std::string& name,
                                                        T value) {
  write_attribute(obj, name, native_type<T>(), &value);
}
std::string read_string_attribute(hid_t obj, const std::string& name);
// A 1-D array of variable-length UTF-8 strings (h5py reads it as an array of str), e.g. the
// class names of an image import; replaces an attribute of the same name.
void write_string_array_attribute(hid_t obj, const std::string& name,
                                  const std::vector<std::string>& values);
std::vector<std::string> read_string_array_attribute(hid_t obj, const std::string& name);
void read_attribute(hid_t obj, const std::string& name, hid_t mem_type, void* value);
template <class T>
requires std::is_arithmetic_v<T> T read_attribute(hid_t obj, const std::string& name) {
  T value{};
  read_attribute(obj, name, native_type<T>(), &value);
  return value;
}
inline int64_t read_int_attribute(hid_t obj, const std::string& name) {
  return read_attribute<int64_t>(obj, name);
}
// Human-readable value of any attribute (strings, numbers, small arrays), for `vae_data info`.
std::string attribute_text(hid_t obj, const std::string& name);

}  // namespace vd::h5
