// The memory budget of a rank's data and the block shuffle of a streamed shard.
#include "train/data_residency.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace vd {

int64_t node_memory_bytes() {
  int64_t bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  // A container's or a Slurm job's limit: cgroup v2 ("max" = none), or v1 (a huge number =
  // none).
  for (const char* file :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream limit(file);
    long long cg = 0;
    if (limit >> cg && cg > 0) bytes = std::min<int64_t>(bytes, cg);
  }
  return bytes;
}

std::string bytes_text(double bytes) {
  char buf[32];
  if (bytes >= 1e9)
    std::snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  else
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

DataBudget data_memory_budget(const Options& opt, const Comm& comm) {
  if (opt.data_memory_mb > 0)
    return {opt.data_memory_mb << 20, "--data-memory-mb " + std::to_string(opt.data_memory_mb)};
  const int64_t node = node_memory_bytes();
  const int ranks = std::max(1, comm.local_size());
  return {node / 2 / ranks, "auto: half of this node's " + bytes_text(static_cast<double>(node)) +
                                " over its " + std::to_string(ranks) + " rank(s)"};
}

BlockShuffle block_shuffle_for(const Shard& train, const Options& opt, int64_t window_cap_bytes) {
  const int64_t row = std::max<int64_t>(1, train.row_bytes());
  const int64_t chunk = std::max<int64_t>(1, train.chunk_rows());
  // Whole chunks (each is decompressed once), at least 1 MB (one read per block pays).
  const int64_t mb_rows = ((int64_t{1} << 20) + row - 1) / row;
  BlockShuffle b;
  b.first_file_row = train.selection().begin;
  b.block_rows = chunk * ((mb_rows + chunk - 1) / chunk);
  const int64_t block_bytes = b.block_rows * row;
  const int64_t window_bytes = std::min(opt.stream_window_mb << 20, window_cap_bytes);
  const int64_t wanted = std::max<int64_t>(1, window_bytes / block_bytes);
  const int64_t batch_blocks = (opt.batch_size + b.block_rows - 1) / b.block_rows;
  b.window_blocks = std::max(wanted, 2 * (batch_blocks + 2));
  return b;
}

}  // namespace vd
