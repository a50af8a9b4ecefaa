// libFuzzer target: the HDF5 data-set reader (Shard::read of /images, one rank of two) on
// arbitrary bytes, held in memory and streamed (every row read back, deflate chunks through
// libdeflate). A vd::Error is the expected answer to bad input.
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "data/shard.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = vd::fuzz::write_input(data, size, ".h5");
  try {
    (void)vd::Shard::read(path, "/images", 1, 2, vd::ValueCheck::UnitInterval);
  } catch (const vd::Error&) {
  }
  try {
    const vd::Shard s = vd::Shard::read(path, "/images", 1, 2, vd::ValueCheck::UnitInterval,
                                        std::nullopt, vd::Residency::Streamed);
    // Small shards only: a header may claim any size (the in-memory read refuses those).
    if (s.rows() <= (int64_t{1} << 22) / s.sample_size()) {
      std::vector<int64_t> rows(static_cast<size_t>(s.rows()));
      std::iota(rows.begin(), rows.end(), 0);
      std::vector<float> x(static_cast<size_t>(s.rows() * s.sample_size()));
      s.gather(rows, x.data());
    }
  } catch (const vd::Error&) {
  }
  return 0;
}
