// libFuzzer target: the .npy reader on arbitrary bytes. A vd::Error is the expected answer to
// bad input; a crash, a sanitizer report or any other exception is a finding.
#include "data/npy.hpp"

#include "core/error.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = vd::fuzz::write_input(data, size, ".npy");
  try {
    const vd::NpyArray a = vd::read_npy(path);
    // The reader promised a payload of exactly the shape's elements.
    const int64_t n = a.count();
    if (n > 0 && a.bytes.size() % static_cast<size_t>(n) != 0) __builtin_trap();
    if (n > 0) (void)a.value(n - 1);
  } catch (const vd::Error&) {
  }
  return 0;
}
