// HDF5 helpers: error-stack capture, file/group/dataset/attribute operations, listings.
#include "core/h5.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace vd::h5 {

namespace {

std::vector<hsize_t> to_hsize(std::span<const int64_t> v) {
  std::vector<hsize_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0) throw ShapeError("HDF5 dimensions must not be negative");
    out[i] = static_cast<hsize_t>(v[i]);
  }
  return out;
}

herr_t collect_error(unsigned /*n*/, const H5E_error2_t* err, void* data) {
  auto* lines = static_cast<std::vector<std::string>*>(data);
  if (err && err->desc && *err->desc) lines->emplace_back(err->desc);
  return 0;
}

// Collects the names of a group's links; the caller opens them once the iteration is over.
herr_t collect_link(hid_t /*group*/, const char* name, const H5L_info_t* /*info*/, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

// The names of a group's links, in name order (strcmp's, as HDF5's name index). Iterated in
// native order: for a group that keeps its links in a fractal heap (HDF5's default past 8
// links, as in checkpoints written before create_group kept them in the header) any other
// order makes HDF5 1.10 copy every link into a table it does not zero, and when a link cannot
// be read (a damaged heap block fails its checksum) it frees the table's unset entries too:
// garbage pointers, a crash at once or, the heap corrupted, later in MPI_Finalize. In native
// order it reads one link at a time and fails cleanly.
std::vector<std::string> link_names(hid_t group, const std::string& what) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  VD_H5(H5Literate(group, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect_link, &names),
        "cannot list the HDF5 group '" + what + "'");
  std::sort(names.begin(), names.end());
  return names;
}

void list_group(hid_t group, const std::string& prefix, bool recursive,
                std::vector<std::string>& out) {
  const std::string path = prefix.size() > 1 ? prefix.substr(0, prefix.size() - 1) : prefix;
  for (const std::string& name : link_names(group, path)) {
    // H5Oopen follows the link; a dangling external/soft link is skipped, not fatal.
    Object obj(H5Oopen(group, name.c_str(), H5P_DEFAULT));
    if (!obj.valid()) {
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    const H5I_type_t type = H5Iget_type(obj);
    if (type == H5I_DATASET)
      out.push_back(prefix + name);
    else if (type == H5I_GROUP && recursive)
      list_group(obj, prefix + name + "/", true, out);
  }
}

herr_t collect_attr(hid_t /*loc*/, const char* name, const H5A_info_t* /*info*/, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

}  // namespace

std::string take_error_stack() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &lines);
  H5Eclear2(H5E_DEFAULT);
  if (lines.empty()) return "";
  // The outermost line says what failed, the innermost says why; the middle is noise.
  if (lines.size() == 1 || lines.front() == lines.back()) return lines.front();
  return lines.front() + ": " + lines.back();
}

void quiet_errors() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

bool library_threadsafe() {
  hbool_t yes = false;
  return H5is_library_threadsafe(&yes) >= 0 && yes;
}

DType dtype_of_type(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
      case 1:
        return is_signed ? DType::Int8 : DType::UInt8;
      case 2:
        return is_signed ? DType::Int16 : DType::UInt16;
      case 4:
        return is_signed ? DType::Int32 : DType::UInt32;
      case 8:
        return is_signed ? DType::Int64 : DType::UInt64;
      default:
        return DType::Other;
    }
  }
  if (cls == H5T_FLOAT) {
    if (size == 4) return DType::Float32;
    if (size == 8) return DType::Float64;
    return DType::Other;
  }
  if (cls == H5T_STRING) return DType::String;
  return DType::Other;
}

DType dtype_of(hid_t dataset) {
  Datatype type(VD_H5(H5Dget_type(dataset), "reading the type of an HDF5 dataset"));
  return dtype_of_type(type);
}

std::string type_name(hid_t type) {
  switch (dtype_of_type(type)) {
    case DType::UInt8:
      return "uint8";
    case DType::Int8:
      return "int8";
    case DType::UInt16:
      return "uint16";
    case DType::Int16:
      return "int16";
    case DType::UInt32:
      return "uint32";
    case DType::Int32:
      return "int32";
    case DType::UInt64:
      return "uint64";
    case DType::Int64:
      return "int64";
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::String:
      return "string";
    case DType::Other:
      break;
  }
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return "int" + std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_REFERENCE:
      return "reference";
    case H5T_VLEN:
      return "variable-length";
    case H5T_TIME:
      return "time";
    default:
      return "unknown";
  }
}

std::string dtype_name(hid_t dataset) {
  Datatype type(VD_H5(H5Dget_type(dataset), "reading the type of an HDF5 dataset"));
  return type_name(type);
}

bool is_hdf5(const std::string& path) {
  quiet_errors();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  const htri_t r = H5Fis_hdf5(path.c_str());
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

namespace {
// The most links HDF5 lets a group keep in its object header (H5Pset_link_phase_change).
constexpr unsigned kMaxCompactLinks = 65535;

// Whether loc's file was created in the 1.10 format (create_file's checksummed), whose object
// headers carry checksums; the oldest format has none, and no compact link storage either.
bool checksummed_format(hid_t loc) {
  const hid_t file_id = VD_H5(H5Iget_file_id(loc), "cannot find the file of an HDF5 object");
  File file(file_id);
  PropList fapl(VD_H5(H5Fget_access_plist(file), "cannot read a file's access properties"));
  H5F_libver_t low = H5F_LIBVER_EARLIEST, high = H5F_LIBVER_LATEST;
  VD_H5(H5Pget_libver_bounds(fapl, &low, &high), "cannot read a file's format bounds");
  return low >= H5F_LIBVER_V110;
}
}  // namespace

File create_file(const std::string& path, bool checksummed) {
  quiet_errors();
  PropList fapl(VD_H5(H5Pcreate(H5P_FILE_ACCESS), "cannot create a property list"));
  PropList fcpl(VD_H5(H5Pcreate(H5P_FILE_CREATE), "cannot create a property list"));
  if (checksummed) {
    // 1.10's format: besides checksummed headers, a one-chunk data set keeps its chunk's
    // address in its (checksummed) header, not in a version-1 B-tree, which has no checksum.
    VD_H5(H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST),
          "cannot choose the HDF5 1.10 file format");
    // The root group's attributes stay in its (checksummed) object header: past 8 HDF5 moves
    // them to a fractal heap, whose blocks carry no checksum.
    VD_H5(H5Pset_attr_phase_change(fcpl, 64, 32), "cannot keep attributes compact");
  }
  return File(VD_H5(
      H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, fapl),
      "cannot create HDF5 file '" + path + "'; check that its directory exists and is writable"));
}

File open_file(const std::string& path, bool writable) {
  quiet_errors();
  PropList fapl(VD_H5(H5Pcreate(H5P_FILE_ACCESS), "cannot create a property list"));
#if H5_VERSION_GE(1, 10, 7)
  // Readers take no file lock: HDF5's flock fails on many NFS and Lustre mounts (the
  // h5py #1082 and #1101 reports; users set HDF5_USE_FILE_LOCKING=FALSE), and every rank of a
  // job opens the data read-only, so a lock protects nothing. Writers (checkpoints: rank 0,
  // to a temporary name then rename) keep the default.
  if (!writable)
    VD_H5(H5Pset_file_locking(fapl.get(), false, true), "cannot switch off HDF5 file locking");
#endif
  return File(VD_H5(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get()),
                    "cannot open HDF5 file '" + path + "'"));
}

Group create_group(hid_t loc, const std::string& name) {
  PropList gcpl(VD_H5(H5Pcreate(H5P_GROUP_CREATE), "cannot create a property list"));
  if (checksummed_format(loc))
    // Every link stays in the group's (checksummed) object header, never in a fractal heap
    // (HDF5's default past 8 links), whose damage HDF5 1.10 mishandles (link_names); h5py and
    // other readers, which list groups in name order, are spared it too.
    VD_H5(H5Pset_link_phase_change(gcpl, kMaxCompactLinks, kMaxCompactLinks - 1),
          "cannot keep the links of HDF5 group '" + name + "' compact");
  return Group(VD_H5(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT),
                     "cannot create HDF5 group '" + name + "'"));
}

Group open_group(hid_t loc, const std::string& name) {
  return Group(
      VD_H5(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), "cannot open HDF5 group '" + name + "'"));
}

bool exists(hid_t loc, const std::string& path) {
  // H5Lexists fails (rather than returning false) when an intermediate group is missing,
  // so walk the components one by one.
  std::string prefix = path.starts_with('/') ? "/" : "";
  size_t pos = prefix.size();
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) {
      prefix += path.substr(pos, next - pos);
      const htri_t r = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
      if (r <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return false;
      }
      prefix += '/';
    }
    pos = next + 1;
  }
  return true;
}

bool is_dataset(hid_t loc, const std::string& path) {
  if (!exists(loc, path)) return false;
  Object obj(H5Oopen(loc, path.c_str(), H5P_DEFAULT));
  if (!obj.valid()) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  return H5Iget_type(obj) == H5I_DATASET;
}

std::vector<std::string> list_datasets(hid_t loc, const std::string& group, bool recursive) {
  Group g = open_group(loc, group);
  std::vector<std::string> out;
  std::string prefix = group;
  if (!prefix.ends_with('/')) prefix += '/';
  list_group(g, prefix, recursive, out);
  return out;
}

Dataset create_dataset(hid_t loc, const std::string& name, hid_t file_type,
                       std::span<const int64_t> dims, const CreateOptions& options) {
  const std::vector<hsize_t> hdims = to_hsize(dims);
  Dataspace space(VD_H5(H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(), nullptr),
                        "cannot create a dataspace for '" + name + "'"));
  PropList dcpl(VD_H5(H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list"));
  bool any_zero = false;
  for (int64_t d : dims) any_zero |= d == 0;
  // Chunks may not exceed fixed dimensions, and an empty dataset needs no chunks.
  if (!options.chunk.empty() && !any_zero) {
    if (options.chunk.size() != dims.size())
      throw ShapeError("HDF5 dataset '" + name + "': the chunk shape has " +
                       std::to_string(options.chunk.size()) + " dimensions but the data has " +
                       std::to_string(dims.size()));
    std::vector<hsize_t> chunk(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
      chunk[i] = static_cast<hsize_t>(std::max<int64_t>(1, std::min(options.chunk[i], dims[i])));
    VD_H5(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()),
          "cannot set the chunk shape of '" + name + "'");
    if (options.fletcher32)
      VD_H5(H5Pset_fletcher32(dcpl), "cannot enable the Fletcher-32 checksum for '" + name + "'");
    if (options.deflate > 0)
      VD_H5(H5Pset_deflate(dcpl, static_cast<unsigned>(options.deflate)),
            "cannot enable gzip compression for '" + name + "'");
  }
  return Dataset(
      VD_H5(H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
            "cannot create HDF5 dataset '" + name + "'"));
}

Dataset open_dataset(hid_t loc, const std::string& name) {
  return Dataset(
      VD_H5(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), "cannot open HDF5 dataset '" + name + "'"));
}

std::vector<int64_t> dims_of(hid_t dataset) {
  Dataspace space(VD_H5(H5Dget_space(dataset), "cannot read the shape of an HDF5 dataset"));
  const int rank = VD_H5(H5Sget_simple_extent_ndims(space), "cannot read an HDF5 dataset's rank");
  std::vector<hsize_t> hdims(static_cast<size_t>(rank));
  if (rank > 0)
    VD_H5(H5Sget_simple_extent_dims(space, hdims.data(), nullptr),
          "cannot read the shape of an HDF5 dataset");
  return std::vector<int64_t>(hdims.begin(), hdims.end());
}

std::vector<int64_t> chunk_of(hid_t dataset) {
  PropList dcpl(VD_H5(H5Dget_create_plist(dataset), "cannot read a dataset's creation list"));
  if (H5Pget_layout(dcpl) != H5D_CHUNKED) return {};
  std::vector<hsize_t> chunk(32);
  const int rank = VD_H5(H5Pget_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()),
                         "cannot read a dataset's chunk shape");
  return std::vector<int64_t>(chunk.begin(), chunk.begin() + rank);
}

int deflate_level_of(hid_t dataset) {
  PropList dcpl(VD_H5(H5Dget_create_plist(dataset), "cannot read a dataset's creation list"));
  const int n = H5Pget_nfilters(dcpl);
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, values[4] = {0, 0, 0, 0};
    size_t nvalues = 4;
    unsigned config = 0;
    char name[64];
    const H5Z_filter_t f = H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &nvalues, values,
                                          sizeof name, name, &config);
    if (f == H5Z_FILTER_DEFLATE) return nvalues > 0 ? static_cast<int>(values[0]) : 0;
  }
  return -1;
}

namespace {
// File-space selection of rows [row, row + rows) and the matching memory space.
std::pair<Dataspace, Dataspace> row_spaces(hid_t dataset, int64_t row, int64_t rows) {
  Dataspace file_space(VD_H5(H5Dget_space(dataset), "cannot read an HDF5 dataset's shape"));
  const int rank = VD_H5(H5Sget_simple_extent_ndims(file_space), "cannot read a dataset's rank");
  if (rank < 1) throw ShapeError("row access needs a dataset with at least one dimension");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  VD_H5(H5Sget_simple_extent_dims(file_space, dims.data(), nullptr), "cannot read a shape");
  if (row < 0 || rows < 0 || static_cast<hsize_t>(row) + static_cast<hsize_t>(rows) > dims[0])
    throw ShapeError("rows [" + std::to_string(row) + ", " + std::to_string(row + rows) +
                     ") are outside the HDF5 dataset's " + std::to_string(dims[0]) + " rows");
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = static_cast<hsize_t>(row);
  count[0] = static_cast<hsize_t>(rows);
  VD_H5(
      H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
      "cannot select rows of an HDF5 dataset");
  Dataspace mem_space(
      VD_H5(H5Screate_simple(rank, count.data(), nullptr), "cannot create a memory dataspace"));
  return {std::move(file_space), std::move(mem_space)};
}
}  // namespace

void write_rows(hid_t dataset, hid_t mem_type, int64_t row, int64_t rows, const void* src) {
  if (rows == 0) return;
  auto [file_space, mem_space] = row_spaces(dataset, row, rows);
  VD_H5(H5Dwrite(dataset, mem_type, mem_space, file_space, H5P_DEFAULT, src),
        "cannot write rows " + std::to_string(row) + ".." + std::to_string(row + rows) +
            " of an HDF5 dataset (disk full?)");
}

void read_rows(hid_t dataset, hid_t mem_type, int64_t row, int64_t rows, void* dst) {
  if (rows == 0) return;
  auto [file_space, mem_space] = row_spaces(dataset, row, rows);
  VD_H5(H5Dread(dataset, mem_type, mem_space, file_space, H5P_DEFAULT, dst),
        "cannot read rows " + std::to_string(row) + ".." + std::to_string(row + rows) +
            " of an HDF5 dataset (is the file corrupt or truncated?)");
}

void write_all(hid_t dataset, hid_t mem_type, const void* src) {
  VD_H5(H5Dwrite(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, src),
        "cannot write an HDF5 dataset (disk full?)");
}

void read_all(hid_t dataset, hid_t mem_type, void* dst) {
  VD_H5(H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst),
        "cannot read an HDF5 dataset (is the file corrupt or truncated?)");
}

bool has_attribute(hid_t obj, const std::string& name) {
  return VD_H5(H5Aexists(obj, name.c_str()), "cannot look up HDF5 attribute '" + name + "'") > 0;
}

std::vector<std::string> list_attributes(hid_t obj) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  VD_H5(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &names),
        "cannot list HDF5 attributes");
  return names;
}

void write_attribute(hid_t obj, const std::string& name, const std::string& value) {
  if (has_attribute(obj, name))
    VD_H5(H5Adelete(obj, name.c_str()), "cannot replace HDF5 attribute '" + name + "'");
  Datatype type(VD_H5(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  VD_H5(H5Tset_size(type, value.size() + 1), "cannot size a string type");
  VD_H5(H5Tset_strpad(type, H5T_STR_NULLTERM), "cannot set string padding");
  Dataspace space(VD_H5(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
  Attribute attr(VD_H5(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create HDF5 attribute '" + name + "'"));
  VD_H5(H5Awrite(attr, type, value.c_str()), "cannot write HDF5 attribute '" + name + "'");
}

void write_string_array_attribute(hid_t obj, const std::string& name,
                                  const std::vector<std::string>& values) {
  if (has_attribute(obj, name))
    VD_H5(H5Adelete(obj, name.c_str()), "cannot replace HDF5 attribute '" + name + "'");
  Datatype type(VD_H5(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  VD_H5(H5Tset_size(type, H5T_VARIABLE), "cannot size a string type");
  VD_H5(H5Tset_cset(type, H5T_CSET_UTF8), "cannot set a string type's charset");
  const hsize_t n = values.size();
  Dataspace space(VD_H5(H5Screate_simple(1, &n, nullptr), "cannot create a dataspace"));
  Attribute attr(VD_H5(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create HDF5 attribute '" + name + "'"));
  std::vector<const char*> ptrs;
  for (const std::string& v : values) ptrs.push_back(v.c_str());
  VD_H5(H5Awrite(attr, type, ptrs.data()), "cannot write HDF5 attribute '" + name + "'");
}

std::vector<std::string> read_string_array_attribute(hid_t obj, const std::string& name) {
  Attribute attr(
      VD_H5(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "HDF5 attribute '" + name + "' is missing"));
  Datatype ftype(VD_H5(H5Aget_type(attr), "cannot read the type of attribute '" + name + "'"));
  Dataspace space(VD_H5(H5Aget_space(attr), "cannot read the shape of attribute '" + name + "'"));
  if (H5Tget_class(ftype) != H5T_STRING ||
      VD_H5(H5Tis_variable_str(ftype), "cannot inspect a string type") <= 0)
    throw IoError("HDF5 attribute '" + name + "' is a " + type_name(ftype) +
                  ", not an array of variable-length strings");
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  Datatype mtype(VD_H5(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  VD_H5(H5Tset_size(mtype, H5T_VARIABLE), "cannot size a string type");
  VD_H5(H5Tset_cset(mtype, H5Tget_cset(ftype)), "cannot set a string type's charset");
  std::vector<char*> ptrs(static_cast<size_t>(std::max<hssize_t>(n, 0)), nullptr);
  VD_H5(H5Aread(attr, mtype, ptrs.data()), "cannot read HDF5 attribute '" + name + "'");
  std::vector<std::string> out;
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
  return out;
}

void write_attribute(hid_t obj, const std::string& name, hid_t mem_type, const void* value) {
  if (has_attribute(obj, name))
    VD_H5(H5Adelete(obj, name.c_str()), "cannot replace HDF5 attribute '" + name + "'");
  Dataspace space(VD_H5(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
  Attribute attr(VD_H5(H5Acreate2(obj, name.c_str(), mem_type, space, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create HDF5 attribute '" + name + "'"));
  VD_H5(H5Awrite(attr, mem_type, value), "cannot write HDF5 attribute '" + name + "'");
}

std::string read_string_attribute(hid_t obj, const std::string& name) {
  Attribute attr(
      VD_H5(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "HDF5 attribute '" + name + "' is missing"));
  Datatype ftype(VD_H5(H5Aget_type(attr), "cannot read the type of attribute '" + name + "'"));
  if (H5Tget_class(ftype) != H5T_STRING)
    throw IoError("HDF5 attribute '" + name + "' is a " + type_name(ftype) + ", not a string");
  if (VD_H5(H5Tis_variable_str(ftype), "cannot inspect a string type") > 0) {
    Datatype mtype(VD_H5(H5Tcopy(H5T_C_S1), "cannot create a string type"));
    VD_H5(H5Tset_size(mtype, H5T_VARIABLE), "cannot size a string type");
    // h5py writes str attributes as variable-length UTF-8: read them in the file's charset.
    VD_H5(H5Tset_cset(mtype, H5Tget_cset(ftype)), "cannot set a string type's charset");
    char* text = nullptr;
    VD_H5(H5Aread(attr, mtype, &text), "cannot read HDF5 attribute '" + name + "'");
    std::string out = text ? text : "";
    H5free_memory(text);
    return out;
  }
  const size_t size = H5Tget_size(ftype);
  std::string buf(size, '\0');
  VD_H5(H5Aread(attr, ftype, buf.data()), "cannot read HDF5 attribute '" + name + "'");
  const size_t end = buf.find('\0');
  if (end != std::string::npos) buf.resize(end);
  while (!buf.empty() && buf.back() == ' ') buf.pop_back();  // space-padded strings
  return buf;
}

void read_attribute(hid_t obj, const std::string& name, hid_t mem_type, void* value) {
  Attribute attr(
      VD_H5(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "HDF5 attribute '" + name + "' is missing"));
  Dataspace space(VD_H5(H5Aget_space(attr), "cannot read the shape of attribute '" + name + "'"));
  if (H5Sget_simple_extent_npoints(space) != 1)
    throw IoError("HDF5 attribute '" + name + "' holds several values, expected one");
  Datatype ftype(VD_H5(H5Aget_type(attr), "cannot read the type of attribute '" + name + "'"));
  const H5T_class_t cls = H5Tget_class(ftype);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw IoError("HDF5 attribute '" + name + "' is a " + type_name(ftype) + ", not a number");
  VD_H5(H5Aread(attr, mem_type, value), "cannot read HDF5 attribute '" + name + "'");
}

std::string attribute_text(hid_t obj, const std::string& name) {
  Attribute attr(
      VD_H5(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "HDF5 attribute '" + name + "' is missing"));
  Datatype ftype(VD_H5(H5Aget_type(attr), "cannot read the type of attribute '" + name + "'"));
  Dataspace space(VD_H5(H5Aget_space(attr), "cannot read the shape of attribute '" + name + "'"));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  const H5T_class_t cls = H5Tget_class(ftype);
  if (cls == H5T_STRING && n > 1 && H5Tis_variable_str(ftype) > 0) {
    std::string list(1, '[');
    const std::vector<std::string> values = read_string_array_attribute(obj, name);
    for (size_t i = 0; i < values.size(); ++i)
      list.append(i ? ", \"" : "\"").append(values[i]).push_back('"');
    list.push_back(']');
    return list;
  }
  if (cls == H5T_STRING && n == 1) {
    // Appending (not "\"" + string&&) dodges a false -Wrestrict in g++ 12's libstdc++.
    std::string quoted(1, '"');
    quoted.append(read_string_attribute(obj, name)).push_back('"');
    return quoted;
  }
  // An ostringstream (not "<" + string&&) dodges a false -Wrestrict in g++ 12's libstdc++.
  std::ostringstream out;
  if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || n < 0) {
    out << "<" << type_name(ftype) << " x " << n << ">";
    return out.str();
  }
  if (n > 16) {
    out << "<" << n << " " << type_name(ftype) << " values>";
    return out.str();
  }
  const size_t count = static_cast<size_t>(n);
  out.precision(9);
  if (n != 1) out << "[";
  auto emit = [&](const auto& values) {
    for (size_t i = 0; i < count; ++i) out << (i ? ", " : "") << values[i];
  };
  if (cls == H5T_INTEGER && H5Tget_sign(ftype) == H5T_SGN_NONE) {
    std::vector<uint64_t> v(count);
    VD_H5(H5Aread(attr, H5T_NATIVE_UINT64, v.data()), "cannot read attribute '" + name + "'");
    emit(v);
  } else if (cls == H5T_INTEGER) {
    std::vector<int64_t> v(count);
    VD_H5(H5Aread(attr, H5T_NATIVE_INT64, v.data()), "cannot read attribute '" + name + "'");
    emit(v);
  } else {
    std::vector<double> v(count);
    VD_H5(H5Aread(attr, H5T_NATIVE_DOUBLE, v.data()), "cannot read attribute '" + name + "'");
    emit(v);
  }
  if (n != 1) out << "]";
  return out.str();
}

bool has_fletcher32(hid_t dataset) {
  PropList dcpl(VD_H5(H5Dget_create_plist(dataset), "cannot read a dataset's creation list"));
  unsigned flags = 0, config = 0;
  size_t nelmts = 0;
  const herr_t found = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelmts, nullptr,
                                            0, nullptr, &config);
  H5Eclear2(H5E_DEFAULT);  // "filter not found" is an answer here, not an error
  return found >= 0;
}

}  // namespace vd::h5
