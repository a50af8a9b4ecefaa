// libFuzzer target: the HDF5 data-set reader (Shard::read of /images, one rank of two) on
// arbitrary bytes. A vd::Error is the expected answer to bad input.
#include "core/error.hpp"
#include "data/shard.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = vd::fuzz::write_input(data, size, ".h5");
  try {
    (void)vd::Shard::read(path, "/images", 1, 2, vd::ValueCheck::UnitInterval);
  } catch (const vd::Error&) {
  }
  return 0;
}
