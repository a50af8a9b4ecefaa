// read_npy: the .npy header (magic, version, a Python dict literal of descr, fortran_order and
// shape) parsed by hand, then the payload, checked against the shape.
#include "data/npy.hpp"

#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "core/error.hpp"

namespace vd {

namespace {

struct TypeInfo {
  const char* code;  // descr without the byte-order mark, e.g. "u1", "f4"
  NpyType type;
  size_t size;
  const char* name;
};
constexpr TypeInfo kTypes[] = {
    {"u1", NpyType::UInt8, 1, "uint8"},     {"i1", NpyType::Int8, 1, "int8"},
    {"i2", NpyType::Int16, 2, "int16"},     {"i4", NpyType::Int32, 4, "int32"},
    {"i8", NpyType::Int64, 8, "int64"},     {"u2", NpyType::UInt16, 2, "uint16"},
    {"u4", NpyType::UInt32, 4, "uint32"},   {"u8", NpyType::UInt64, 8, "uint64"},
    {"f4", NpyType::Float32, 4, "float32"}, {"f8", NpyType::Float64, 8, "float64"}};

const TypeInfo& info(NpyType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i;
  return kTypes[0];
}

// The value of `key` in the header's dict literal: the text after "'key':" up to the next
// top-level comma or the closing brace.
std::string dict_value(const std::string& header, const std::string& key,
                       const std::string& where) {
  const std::string quoted = "'" + key + "'";
  size_t at = header.find(quoted);
  if (at == std::string::npos)
    throw DataError(where + ": its header has no '" + key + "'; is it a .npy file numpy wrote?");
  at = header.find(':', at + quoted.size());
  if (at == std::string::npos) throw DataError(where + ": its header is not a dict literal");
  ++at;
  while (at < header.size() && header[at] == ' ') ++at;
  int depth = 0;
  size_t end = at;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  std::string v = header.substr(at, end - at);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

}  // namespace

const char* npy_type_name(NpyType t) {
  return info(t).name;
}

bool npy_is_integer(NpyType t) {
  return t != NpyType::Float32 && t != NpyType::Float64;
}

int64_t NpyArray::count() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

double NpyArray::value(int64_t i) const {
  const uint8_t* p = bytes.data() + static_cast<size_t>(i) * info(type).size;
  const auto as = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return static_cast<double>(v);
  };
  switch (type) {
    case NpyType::UInt8:
      return as(uint8_t{});
    case NpyType::Int8:
      return as(int8_t{});
    case NpyType::Int16:
      return as(int16_t{});
    case NpyType::Int32:
      return as(int32_t{});
    case NpyType::Int64:
      return as(int64_t{});
    case NpyType::UInt16:
      return as(uint16_t{});
    case NpyType::UInt32:
      return as(uint32_t{});
    case NpyType::UInt64:
      return as(uint64_t{});
    case NpyType::Float32:
      return as(float{});
    case NpyType::Float64:
      return as(double{});
  }
  return 0;
}

NpyArray read_npy(const std::string& path) {
  const std::string where = "'" + path + "'";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open the .npy file " + where + "; check the path");
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.size() < 10 || all.compare(0, 6, "\x93NUMPY") != 0)
    throw DataError(where + " is not a .npy file (no \\x93NUMPY magic); write it with numpy.save");
  const int major = static_cast<unsigned char>(all[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(all[8]) |
                 static_cast<size_t>(static_cast<unsigned char>(all[9])) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (all.size() < 12) throw DataError(where + ": its .npy header is cut short");
    for (int b = 0; b < 4; ++b)
      header_len |= static_cast<size_t>(static_cast<unsigned char>(all[8 + b])) << (8 * b);
    start = 12;
  } else {
    throw DataError(where + " has .npy format version " + std::to_string(major) +
                    ", which this reader does not know (1, 2 and 3 are read)");
  }
  if (start + header_len > all.size()) throw DataError(where + ": its .npy header is cut short");
  const std::string header = all.substr(start, header_len);

  std::string descr = dict_value(header, "descr", where);
  if (descr.size() < 2 || (descr.front() != '\'' && descr.front() != '"'))
    throw DataError(where + " holds a structured array (descr " + descr +
                    "); save one plain numeric array per file");
  descr = descr.substr(1, descr.size() - 2);
  if (descr == "|O" || descr == "O")
    throw DataError(where +
                    " holds Python objects (dtype object); convert it to a numeric "
                    "array (e.g. np.stack) before saving");
  if (!descr.empty() && descr.front() == '>')
    throw DataError(where + " is big-endian (dtype " + descr +
                    "); convert it with a.astype(a.dtype.newbyteorder('<')) before saving");
  const std::string code = descr.size() >= 2 ? descr.substr(1) : descr;
  const TypeInfo* type = nullptr;
  for (const auto& i : kTypes)
    if (code == i.code && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=')) type = &i;
  if (type == nullptr)
    throw DataError(where + " has dtype " + descr +
                    ", which is not read (integers, float32 or float64 only; no complex, "
                    "string or datetime arrays)");

  const std::string fortran = dict_value(header, "fortran_order", where);
  if (fortran == "True")
    throw DataError(where + " is stored in Fortran order; save np.ascontiguousarray(a) instead");
  if (fortran != "False") throw DataError(where + ": fortran_order is " + fortran);

  const std::string shape = dict_value(header, "shape", where);
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')')
    throw DataError(where + ": its shape " + shape + " is not a tuple");
  NpyArray a;
  a.type = type->type;
  size_t pos = 1;
  while (pos < shape.size() - 1) {
    while (pos < shape.size() - 1 && (shape[pos] == ' ' || shape[pos] == ',')) ++pos;
    if (pos >= shape.size() - 1) break;
    size_t used = 0;
    int64_t d = -1;
    try {
      d = std::stoll(shape.substr(pos), &used);
    } catch (const std::exception&) {
      throw DataError(where + ": its shape " + shape + " is not a tuple of sizes");
    }
    if (d < 0) throw DataError(where + ": its shape " + shape + " has a negative size");
    a.dims.push_back(d);
    pos += used;
  }
  const size_t payload = all.size() - start - header_len;
  // The shape's byte count, stopped as soon as it passes the payload (no overflow).
  size_t want = type->size;
  for (int64_t d : a.dims) {
    if (d == 0) {
      want = 0;
      break;
    }
    if (want > payload / static_cast<size_t>(d)) {
      want = payload + 1;
      for (int64_t e : a.dims)
        if (e == 0) want = 0;
      break;
    }
    want *= static_cast<size_t>(d);
  }
  if (payload != want)
    throw DataError(where + " holds " + std::to_string(payload) + " bytes of data but its shape " +
                    shape + " of " + type->name + " needs " +
                    (want > payload ? "more" : std::to_string(want)) +
                    "; the file is truncated or has trailing bytes");
  a.bytes.assign(all.begin() + static_cast<std::ptrdiff_t>(start + header_len), all.end());
  return a;
}

}  // namespace vd
