// Where a run's data live: in memory when every rank's rows fit its memory budget, else
// streamed from the files (data/row_stream), and the block shuffle of streamed training rows.
#pragma once
#include <cstdint>
#include <string>

#include "config/options.hpp"
#include "data/epoch_plan.hpp"
#include "data/shard.hpp"
#include "parallel/comm.hpp"

namespace vd {

// The node's memory in bytes: the physical memory, or the cgroup's limit when lower.
int64_t node_memory_bytes();

struct DataBudget {
  int64_t bytes = 0;
  std::string source;  // how it was set, for the start-up line
};
// --data-memory-mb, or auto: half of node_memory_bytes() over the node's ranks.
DataBudget data_memory_budget(const Options& opt, const Comm& comm);

// The block shuffle of a streamed training shard: blocks of whole HDF5 chunks of at least
// 1 MB, windows of about --stream-window-mb (at most window_cap_bytes) and never fewer than
// 2 x (batch / block + 2) blocks, so that every window holds a batch (see EpochPlan,
// RowStream).
BlockShuffle block_shuffle_for(const Shard& train, const Options& opt,
                               int64_t window_cap_bytes = INT64_MAX);

// "1.5 GB", "12.0 MB": for the start-up lines.
std::string bytes_text(double bytes);

}  // namespace vd
