// libFuzzer target: the checkpoint reader on arbitrary bytes, into the small model of
// tests/io/checkpoint_test.cpp. A vd::Error is the expected answer to bad input; a load must
// leave only finite parameters and moments.
#include <cmath>

#include "core/error.hpp"
#include "fuzz_support.hpp"
#include "io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = vd::fuzz::write_input(data, size, ".h5");
  vd::ParamStore store;
  store.add("encoder.fc1.weight", {3, 4});
  store.add("encoder.fc1.bias", {3});
  store.add("decoder.out.weight", {5, 3});
  store.finalize();
  std::vector<float> m(store.size()), v(store.size());
  try {
    (void)vd::read_checkpoint(path, store, m, v);
    for (size_t i = 0; i < store.size(); ++i)
      if (!std::isfinite(store.params()[i]) || !std::isfinite(m[i]) || !(v[i] >= 0))
        __builtin_trap();
  } catch (const vd::Error&) {
  }
  return 0;
}
