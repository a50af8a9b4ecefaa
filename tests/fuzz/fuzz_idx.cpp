// libFuzzer target: the IDX importer (plain and gzip) on arbitrary bytes. A vd::Error is the
// expected answer to bad input; a crash, a sanitizer report or any other exception is a finding.
#include "data/idx.hpp"

#include "core/error.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = vd::fuzz::write_input(data, size, ".idx");
  try {
    const vd::IdxArray a = vd::read_idx(path);
    size_t count = 1;
    for (int64_t d : a.dims) count *= static_cast<size_t>(d);
    if (count != a.data.size()) __builtin_trap();  // the reader promised dims * 1 byte
  } catch (const vd::Error&) {
  }
  return 0;
}
