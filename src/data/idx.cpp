// IDX reading through zlib's gz* functions, which read gzip and plain files alike.
#include "data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/error.hpp"

namespace vd {

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzPtr = std::unique_ptr<gzFile_s, GzCloser>;

std::string type_name(int code) {
  switch (code) {
    case 0x08:
      return "unsigned byte (0x08)";
    case 0x09:
      return "signed byte (0x09)";
    case 0x0B:
      return "int16 (0x0B)";
    case 0x0C:
      return "int32 (0x0C)";
    case 0x0D:
      return "float32 (0x0D)";
    case 0x0E:
      return "float64 (0x0E)";
    default:
      return "unknown type code " + std::to_string(code);
  }
}

// Reads up to n bytes; returns how many were read before the end of the data. A damaged
// gzip stream is an error, but a stream that just stops early counts as end of data so the
// caller can report the truncation with byte counts.
size_t read_some(gzFile f, uint8_t* dst, size_t n, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const unsigned step = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 30));
    const int got = gzread(f, dst + done, step);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      throw DataError("IDX file '" + path + "' is not readable: " + (msg ? msg : "zlib error") +
                      "; the gzip data is damaged, download the file again");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw DataError("IDX file '" + path + "' does not exist; check the path");
  if (std::filesystem::is_directory(path, ec))
    throw DataError("IDX path '" + path + "' is a directory; pass the IDX file inside it");
  GzPtr f(gzopen(path.c_str(), "rb"));
  if (!f)
    throw DataError("cannot open IDX file '" + path + "': " + std::strerror(errno) +
                    "; check the file's permissions");
  gzbuffer(f.get(), 1 << 20);

  uint8_t magic[4];
  if (read_some(f.get(), magic, 4, path) != 4)
    throw DataError("IDX file '" + path +
                    "' is shorter than the 4-byte header; it is empty "
                    "or truncated, download it again");
  if (magic[0] != 0 || magic[1] != 0)
    throw DataError("'" + path + "' is not an IDX file: the magic number starts with bytes " +
                    std::to_string(magic[0]) + ", " + std::to_string(magic[1]) +
                    " instead of 0, 0; pass an MNIST-style *-ubyte or *-ubyte.gz file");
  if (magic[2] != 0x08)
    throw DataError("IDX file '" + path + "' holds " + type_name(magic[2]) +
                    " elements; only unsigned byte (0x08) data is supported");
  const int ndims = magic[3];
  if (ndims < 1 || ndims > 4)
    throw DataError("IDX file '" + path + "' declares " + std::to_string(ndims) +
                    " dimensions; 1 to 4 are supported");

  IdxArray out;
  uint64_t expected = 1;
  for (int i = 0; i < ndims; ++i) {
    uint8_t b[4];
    if (read_some(f.get(), b, 4, path) != 4)
      throw DataError("IDX file '" + path + "' is truncated inside its header (dimension " +
                      std::to_string(i + 1) + " of " + std::to_string(ndims) +
                      "); download it again");
    const uint64_t d =
        (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | uint64_t{b[3]};
    if (d != 0 && expected > std::numeric_limits<uint64_t>::max() / 2 / d)
      throw DataError("IDX file '" + path + "' declares impossibly large dimensions");
    expected *= d;
    out.dims.push_back(static_cast<int64_t>(d));
  }

  // Grow the buffer while reading so a corrupt header cannot make us allocate terabytes.
  const size_t step = size_t{64} << 20;
  size_t have = 0;
  while (have < expected) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(expected - have, step));
    out.data.resize(have + want);
    const size_t got = read_some(f.get(), out.data.data() + have, want, path);
    have += got;
    if (got < want) break;
  }
  if (have < expected)
    throw DataError("IDX file '" + path + "' is truncated: its header promises " +
                    std::to_string(expected) + " bytes of data but only " + std::to_string(have) +
                    " follow; download the file again");
  uint8_t extra[4096];
  uint64_t trailing = 0;
  for (size_t got; (got = read_some(f.get(), extra, sizeof extra, path)) > 0;) trailing += got;
  if (trailing > 0)
    throw DataError("IDX file '" + path + "' has " + std::to_string(trailing) +
                    " bytes after the " + std::to_string(expected) +
                    " bytes its header describes; the file is damaged or not an IDX file");
  return out;
}

}  // namespace vd
