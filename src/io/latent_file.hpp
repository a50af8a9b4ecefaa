// The encodings file vae_latent encode writes: /mu and /logvar float32 [N, L], /labels int32
// [N] when the data have labels, and root attributes naming the checkpoint (and which of its
// weights), and the data.
// Rows are written by rank in turn, each its own block, so row order is the data's order.
#pragma once
#include <cstdint>
#include <string>

namespace vd {

struct LatentFileInfo {
  int64_t rows = 0;     // N
  int latent_dim = 0;   // L
  bool labels = false;  // write /labels
  std::string checkpoint, data, dataset;
  std::string weights = "raw";  // "raw" or "ema": which of the checkpoint's weights encoded
};

// Creates (truncates) path with empty data sets of the given sizes.
void create_latent_file(const std::string& path, const LatentFileInfo& info);

// Writes rows [begin, begin + n) of /mu, /logvar (and /labels when labels != nullptr) into a
// file made by create_latent_file. Throws vd::IoError naming the path.
void write_latent_rows(const std::string& path, int64_t begin, int64_t n, const float* mu,
                       const float* logvar, const int32_t* labels);

}  // namespace vd
