// The known generative factors of a data set: /factors int32 [N, F] with its attributes `names`
// ("shape,scale,...") and `sizes` (int64 [F]), as `vae_data shapes` writes them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vd {

struct FactorTable {
  int64_t rows = 0;
  int F = 0;
  std::vector<int32_t> values;     // [rows, F] factor indices
  std::vector<int64_t> sizes;      // [F] values each factor can take (0..size-1)
  std::vector<std::string> names;  // [F]
};

// Reads /factors of path. Without `sizes` a factor's size is its largest value + 1; without
// `names` the factors are factor0, factor1, ... Throws vd::DataError when the data set is
// missing, not a 2-D integer array, or holds a value outside 0..size-1.
FactorTable read_factors(const std::string& path);

}  // namespace vd
