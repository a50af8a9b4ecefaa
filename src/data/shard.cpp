// Shard: validation of a data set file and the per-rank hyperslab read.
#include "data/shard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <new>
#include <sstream>

#include "core/deflate_chunks.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/simd.hpp"
#include "data/file_watch.hpp"

namespace vd {

VD_SIMD_CLONES void decode_u8(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
}

namespace {

std::string join(const std::vector<std::string>& names) {
  if (names.empty()) return "(none)";
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

// Rejects NaN/Inf always and values outside [0, 1] under UnitInterval, naming the first
// offending row (global index) so the user can find it.
void check_values(const float* data, int64_t rows, int64_t row_size, int64_t first_row,
                  ValueCheck check, const std::string& where) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = data + r * row_size;
    bool bad = false;
    for (int64_t i = 0; i < row_size; ++i) {
      const float v = p[i];
      // One branch for the common case: finite and in range (NaN fails every comparison).
      bad |= check == ValueCheck::UnitInterval ? !(v >= 0.0f && v <= 1.0f) : !std::isfinite(v);
    }
    if (!bad) continue;
    for (int64_t i = 0; i < row_size; ++i) {
      const float v = p[i];
      std::ostringstream msg;
      msg << where << ": row " << first_row + r << ", element " << i;
      // Every digit a float has (max_digits10): 1.0000001 reads back as 1.00000012, not "1".
      msg << std::setprecision(std::numeric_limits<float>::max_digits10);
      if (!std::isfinite(v)) {
        msg << " is " << v << "; the data must be finite, fix or drop that row";
        throw DataError(msg.str());
      }
      if (check == ValueCheck::UnitInterval && !(v >= 0.0f && v <= 1.0f)) {
        msg << " is " << v
            << ", outside [0, 1], which the Bernoulli likelihood needs; rescale the data "
               "to [0, 1] or train with --likelihood gaussian";
        throw DataError(msg.str());
      }
    }
  }
}

// Rows [first, first + count) of the data set into dst, as uint8 or float32. HDF5 converts
// float64 to the nearest float32 (IEEE round to nearest), and a value beyond float32's range to
// an infinity, which check_values then refuses as non-finite. HDF5's message gets the file and
// data set named.
void read_hyperslab(hid_t dset, int64_t first, int64_t count, bool u8, void* dst,
                    const std::string& where) {
  try {
    if (u8)
      h5::read_rows(dset, first, count, static_cast<uint8_t*>(dst));
    else
      h5::read_rows(dset, first, count, static_cast<float*>(dst));
  } catch (const IoError& e) {
    throw DataError(where + ": " + e.what() + "; re-create the file");
  }
}

// Refuses a data set whose header claims more than the file stores: a current shape beyond the
// maximum one, a contiguous data set with less storage than its shape needs, or a chunked one
// with chunks never written (a writer stopped half-way; HDF5 would read the fill value). A
// damaged header can claim gigabytes in a file of kilobytes (found by tests/fuzz), so this
// runs before the shard is allocated. Virtual and external data sets are not checked.
void check_storage(hid_t dset, const std::vector<int64_t>& dims, const std::string& where) {
  h5::Dataspace space(VD_H5(H5Dget_space(dset), "cannot read the shape of " + where));
  std::vector<hsize_t> cur(dims.size()), max(dims.size());
  VD_H5(H5Sget_simple_extent_dims(space, cur.data(), max.data()),
        "cannot read the shape of " + where);
  for (size_t i = 0; i < dims.size(); ++i)
    if (max[i] != H5S_UNLIMITED && cur[i] > max[i])
      throw DataError(where + " has shape " + shape_text(dims) +
                      " beyond its maximum shape; the file is damaged, re-create it");
  h5::PropList dcpl(VD_H5(H5Dget_create_plist(dset), "cannot read the layout of " + where));
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  const auto incomplete = [&](const std::string& what) {
    return DataError(where + " has shape " + shape_text(dims) + " but the file stores " + what +
                     "; the file is truncated, damaged or was not completely written, "
                     "re-create it");
  };
  if (layout == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0) {
    h5::Datatype type(VD_H5(H5Dget_type(dset), "cannot read the type of " + where));
    // In long double: a damaged shape's byte count may not fit in 64 bits.
    long double need = static_cast<long double>(H5Tget_size(type));
    for (int64_t d : dims) need *= static_cast<long double>(d);
    const hsize_t have = H5Dget_storage_size(dset);
    if (static_cast<long double>(have) < need)
      throw incomplete(std::to_string(have) + " bytes of data");
  } else if (layout == H5D_CHUNKED) {
    const std::vector<int64_t> chunk = h5::chunk_of(dset);
    long double need = 1;
    for (size_t i = 0; i < dims.size() && i < chunk.size(); ++i)
      if (chunk[i] > 0) need *= static_cast<long double>((dims[i] + chunk[i] - 1) / chunk[i]);
    hsize_t have = 0;
    VD_H5(H5Dget_num_chunks(dset, space, &have), "cannot count the chunks of " + where);
    if (static_cast<long double>(have) < need) {
      char count[64];
      std::snprintf(count, sizeof count, "%.0Lf", need);
      throw incomplete(std::to_string(have) + " of its " + count + " chunks");
    }
  }
}

// The data set, checked: the file exists and is HDF5, the data set is there, with a supported
// rank, dtype and shape (no zero dimension, no damaged chunk shape).
struct Opened {
  h5::File f;
  h5::Dataset dset;
  std::vector<int64_t> dims;
  h5::DType type;
  std::string where;
};

Opened open_checked(const std::string& file, const std::string& dataset) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    throw DataError("data file '" + file +
                    "' does not exist; check the path, or create it "
                    "with `vae_data import-idx` or `vae_data synth`");
  if (!h5::is_hdf5(file))
    throw DataError("data file '" + file +
                    "' is not an HDF5 file; convert IDX files with "
                    "`vae_data import-idx`");
  h5::File f = h5::open_file(file);
  const std::string where = "data file '" + file + "', data set '" + dataset + "'";
  if (!h5::is_dataset(f, dataset)) {
    // A damaged object header or link table also lands here: say so when the name exists.
    if (h5::exists(f, dataset)) {
      h5::Object obj(H5Oopen(f, dataset.c_str(), H5P_DEFAULT));
      if (!obj.valid()) {
        const std::string reason = h5::take_error_stack();
        throw DataError(where + " cannot be opened (HDF5: " + reason +
                        "); the file is damaged, re-create it");
      }
    }
    throw DataError("data file '" + file + "' has no data set '" + dataset +
                    "'; the data sets in it are: " + join(h5::list_datasets(f, "/", true)) +
                    "; pass one of those or re-create the file with `vae_data import-idx` (if "
                    "it should have '" +
                    dataset + "', the file may be damaged)");
  }
  h5::Dataset dset = h5::open_dataset(f, dataset);
  const std::vector<int64_t> dims = h5::dims_of(dset);
  if (dims.size() < 2 || dims.size() > 5)
    throw DataError(where + " has shape " + shape_text(dims) + " (rank " +
                    std::to_string(dims.size()) +
                    "); expected images [N, C, H, W], signals [N, C, L], volumes [N, C, D, H, W] "
                    "or vectors [N, D]");
  const h5::DType type = h5::dtype_of(dset);
  if (type != h5::DType::UInt8 && type != h5::DType::Float32 && type != h5::DType::Float64)
    throw DataError(where + " has unsupported dtype " + h5::dtype_name(dset) +
                    "; store uint8 (0..255), float32, or float64 (read as float32)");
  for (int64_t d : dims)
    if (d == 0)
      throw DataError(where + " is empty (shape " + shape_text(dims) +
                      "); it needs at least one row and no zero dimension");
  // A chunk larger than a fixed dimension is never written by HDF5, and HDF5 1.10 reads past
  // its buffer on one (found by tests/fuzz): a damaged header, refused before any read.
  if (const std::vector<int64_t> chunk = h5::chunk_of(dset); !chunk.empty()) {
    h5::Dataspace space(VD_H5(H5Dget_space(dset), "cannot read the shape of " + where));
    std::vector<hsize_t> cur(dims.size()), max(dims.size());
    VD_H5(H5Sget_simple_extent_dims(space, cur.data(), max.data()),
          "cannot read the shape of " + where);
    for (size_t i = 0; i < chunk.size() && i < max.size(); ++i)
      if (max[i] != H5S_UNLIMITED && static_cast<hsize_t>(chunk[i]) > max[i])
        throw DataError(where + " has chunks " + shape_text(chunk) + " larger than its shape " +
                        shape_text(dims) + "; the file is damaged, re-create it");
  }
  check_storage(dset, dims, where);
  return Opened{std::move(f), std::move(dset), dims, type, where};
}

}  // namespace

RowRange shard_rows(int64_t n, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw ShapeError("shard_rows: rank " + std::to_string(rank) + " is not in [0, " +
                     std::to_string(world) + ")");
  if (n < 0) throw ShapeError("shard_rows: negative row count " + std::to_string(n));
  // floor(rank * n / world) with n = q * world + rem, so no product exceeds n or world^2.
  const int64_t q = n / world, rem = n % world;
  auto start = [&](int64_t p) { return p * q + p * rem / world; };
  return {start(rank), start(int64_t{rank} + 1)};
}

int64_t Shard::count_rows(const std::string& file, const std::string& dataset) {
  return open_checked(file, dataset).dims[0];
}

DataExtent Shard::extent(const std::string& file, const std::string& dataset) {
  const Opened o = open_checked(file, dataset);
  DataExtent e;
  e.rows = o.dims[0];
  // Saturating: a row that large is refused by read() with a clear message.
  e.row_bytes = o.type == h5::DType::UInt8 ? 1 : 4;
  for (size_t i = 1; i < o.dims.size(); ++i)
    e.row_bytes =
        o.dims[i] > (int64_t{1} << 50) / e.row_bytes ? int64_t{1} << 50 : e.row_bytes * o.dims[i];
  return e;
}

// A streamed shard's open data set. HDF5 (built thread-safe on Debian) serialises calls, so
// the training thread and the read-ahead thread can share it.
struct Shard::Source {
  h5::File file;
  h5::Dataset dset;
  std::string where;
  // Deflate-compressed chunks of whole rows: read raw and decoded with libdeflate, 2-3x
  // faster than HDF5's zlib (a streamed shard inflates its rows every epoch).
  std::optional<h5::DeflateChunks> chunks;
  // The file as it was opened: a read after it changed (truncated, written over, replaced) is
  // refused, because HDF5 would return zeros or another file's bytes without an error.
  FileWatch watch;
};

Shard Shard::read(const std::string& file, const std::string& dataset, int rank, int world,
                  ValueCheck check, std::optional<RowRange> rows, Residency residency) {
  if (world < 1 || rank < 0 || rank >= world)
    throw ShapeError("Shard::read: rank " + std::to_string(rank) + " is not in [0, " +
                     std::to_string(world) + ")");
  // Stamped before HDF5 reads a byte, so a change while it opens the file is seen too.
  const std::optional<FileStamp> stamp =
      residency == Residency::Streamed ? FileStamp::of(file) : std::nullopt;
  Opened o = open_checked(file, dataset);
  const h5::Dataset& dset = o.dset;
  const std::vector<int64_t>& dims = o.dims;
  const h5::DType type = o.type;
  const std::string& where = o.where;
  h5::File& f = o.f;
  const int64_t n = dims[0];
  const RowRange sel = rows.value_or(RowRange{0, n});
  if (sel.begin < 0 || sel.end < sel.begin || sel.end > n)
    throw DataError(where + " has " + std::to_string(n) + " rows; rows [" +
                    std::to_string(sel.begin) + ", " + std::to_string(sel.end) +
                    ") cannot be read from it");
  if (sel.size() < world)
    throw DataError(where + " has " + std::to_string(sel.size()) + " rows" +
                    (rows ? " to split (rows [" + std::to_string(sel.begin) + ", " +
                                std::to_string(sel.end) + ") of " + std::to_string(n) + ")"
                          : std::string()) +
                    " but there are " + std::to_string(world) +
                    " ranks; every rank needs at least one row, so use fewer ranks or more "
                    "data");

  Shard s;
  s.file_ = file;
  s.dataset_ = dataset;
  s.selection_ = sel;
  s.range_ = shard_rows(sel.size(), rank, world);
  s.range_.begin += sel.begin;
  s.range_.end += sel.begin;
  s.sample_shape_.assign(dims.begin() + 1, dims.end());
  s.u8_data_ = type == h5::DType::UInt8;
  s.check_ = check;
  if (const std::vector<int64_t> chunk = h5::chunk_of(dset); !chunk.empty())
    s.chunk_rows_ = chunk[0];
  // The shard's size, checked: a damaged or hostile header can claim any dims (found by
  // tests/fuzz; the product overflowed int64).
  const auto too_large = [&] {
    return DataError(where + " has shape " + shape_text(dims) + ": rank " + std::to_string(rank) +
                     "'s rows would not fit in memory; check the file "
                     "(damaged?) or use more ranks");
  };
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  s.sample_size_ = 1;
  for (int64_t d : s.sample_shape_) {
    if (d > kMaxElements / s.sample_size_) throw too_large();
    s.sample_size_ *= d;
  }
  if (residency == Residency::InMemory && s.range_.size() > kMaxElements / s.sample_size_)
    throw too_large();
  if (residency == Residency::InMemory) {
    const size_t count = static_cast<size_t>(s.range_.size() * s.sample_size_);
    try {
      if (s.u8_data_)
        s.u8_.resize(count);
      else
        s.f32_.resize(count);
    } catch (const std::bad_alloc&) {
      throw too_large();
    }
    read_hyperslab(dset, s.range_.begin, s.range_.size(), s.u8_data_,
                   s.u8_data_ ? static_cast<void*>(s.u8_.data()) : s.f32_.data(), where);
    if (!s.u8_data_)
      check_values(s.f32_.data(), s.range_.size(), s.sample_size_, s.range_.begin, check, where);
  }

  if (dataset != "/labels" && h5::exists(f, "/labels")) {
    const std::string lwhere = "data file '" + file + "', data set '/labels'";
    if (!h5::is_dataset(f, "/labels"))
      throw DataError(lwhere + " is not a data set; remove or rename it");
    h5::Dataset lset = h5::open_dataset(f, "/labels");
    const std::vector<int64_t> ldims = h5::dims_of(lset);
    if (ldims.size() != 1)
      throw DataError(lwhere + " has shape " + shape_text(ldims) +
                      "; expected one label per row, [" + std::to_string(n) + "]");
    if (ldims[0] != n)
      throw DataError(lwhere + " has " + std::to_string(ldims[0]) + " labels but " + dataset +
                      " has " + std::to_string(n) +
                      " rows; the file is inconsistent, re-create it");
    if (!h5::is_integer(h5::dtype_of(lset)))
      throw DataError(lwhere + " has dtype " + h5::dtype_name(lset) + "; labels must be integers");
    s.labels_.resize(static_cast<size_t>(s.range_.size()));
    try {
      h5::read_rows(lset, s.range_.begin, s.range_.size(), s.labels_.data());
    } catch (const IoError& e) {
      throw DataError(lwhere + ": " + e.what() + "; re-create the file");
    }
  }
  if (residency == Residency::Streamed) {
    auto src = std::make_shared<Source>(
        Source{std::move(o.f), std::move(o.dset), where, {}, FileWatch(file, stamp)});
    src->chunks =
        h5::DeflateChunks::open(src->dset, s.u8_data_ ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT);
    s.source_ = std::move(src);
  }
  return s;
}

void Shard::gather(std::span<const int64_t> local_rows, float* dst) const {
  const int64_t n = rows(), size = sample_size_;
  for (const int64_t r : local_rows)
    if (r < 0 || r >= n)
      throw ShapeError("Shard::gather: local row " + std::to_string(r) + " is outside [0, " +
                       std::to_string(n) + ")");
  if (!streamed()) {
    for (size_t k = 0; k < local_rows.size(); ++k) {
      const int64_t r = local_rows[k];
      // The rows are shuffled: fetch the next one while this one decodes.
      if (u8_data_ && k + 1 < local_rows.size()) {
        const uint8_t* next = u8_.data() + local_rows[k + 1] * size;
        for (int64_t b = 0; b < size; b += 64) __builtin_prefetch(next + b);
      }
      decode(u8_data_ ? static_cast<const void*>(u8_.data() + r * size) : f32_.data() + r * size,
             dst + static_cast<int64_t>(k) * size);
    }
    return;
  }
  // One read per run of consecutive rows (evaluation asks for runs: one read per batch).
  std::vector<uint8_t> stored;
  for (size_t k = 0; k < local_rows.size();) {
    size_t end = k + 1;
    while (end < local_rows.size() && local_rows[end] == local_rows[end - 1] + 1) ++end;
    const auto count = static_cast<int64_t>(end - k);
    stored.resize(static_cast<size_t>(count * row_bytes()));
    read_stored(local_rows[k], count, stored.data());
    for (int64_t i = 0; i < count; ++i)
      decode(stored.data() + i * row_bytes(), dst + (static_cast<int64_t>(k) + i) * size);
    k = end;
  }
  finish(dst, static_cast<int64_t>(local_rows.size()));
}

void Shard::read_stored(int64_t first, int64_t count, void* dst) const {
  if (first < 0 || count < 0 || first + count > rows())
    throw ShapeError("Shard::read_stored: rows [" + std::to_string(first) + ", " +
                     std::to_string(first + count) + ") are outside [0, " + std::to_string(rows()) +
                     ")");
  if (count == 0) return;
  if (!streamed()) {
    const size_t bytes = static_cast<size_t>(count * row_bytes());
    const auto* from = u8_data_ ? static_cast<const void*>(u8_.data() + first * sample_size_)
                                : f32_.data() + first * sample_size_;
    std::memcpy(dst, from, bytes);
    return;
  }
  try {
    if (source_->chunks) {
      try {
        source_->chunks->read(range_.begin + first, count, dst);
      } catch (const IoError& e) {
        throw DataError(source_->where + ": " + e.what() + "; re-create the file");
      }
    } else {
      read_hyperslab(source_->dset, range_.begin + first, count, u8_data_, dst, source_->where);
    }
  } catch (const Error&) {
    source_->watch.check();  // a changed file explains a failed read better than HDF5 does
    throw;
  }
  // After the read, not before: rows that pass were read from the file as it was opened
  // (write(2) sets the modification time before its bytes can be read).
  source_->watch.check();
  if (!u8_data_)
    check_values(static_cast<const float*>(dst), count, sample_size_, range_.begin + first, check_,
                 source_->where);
}

void Shard::for_each_float_run(int64_t rows_per_call,
                               const std::function<void(const float*, int64_t)>& fn) const {
  VD_CHECK(!u8_data_, ShapeError, "Shard::for_each_float_run: the data are uint8");
  if (!streamed()) {
    fn(f32_.data(), rows());
    return;
  }
  const int64_t step = std::max<int64_t>(1, rows_per_call);
  std::vector<float> buf(static_cast<size_t>(std::min(step, rows()) * sample_size_));
  for (int64_t r = 0; r < rows(); r += step) {
    const int64_t n = std::min(step, rows() - r);
    read_stored(r, n, buf.data());
    fn(buf.data(), n);
  }
}

void Shard::standardize(const FeatureScaling& scaling) {
  if (streamed())
    scaling_ = scaling;
  else
    scaling.apply(f32_.data(), rows());
}

}  // namespace vd
