// Where a run's data live: in memory when every rank's rows fit its memory budget, else
// streamed from the files (data/row_stream); opening the shards, and the block shuffle of
// streamed training rows.
#pragma once
#include <cstdint>
#include <optional>
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

// A run's data, opened on this rank: its rows of the training set, of the validation set
// (--val-fraction's held-out rows or --val-data) and of the test set, all in memory or all
// streamed, and the start-up line that says which and why.
struct TrainingData {
  Shard train;
  std::optional<Shard> val, test;
  std::optional<BlockShuffle> blocks;  // the block shuffle of streamed training rows
  std::string note;                    // "data: in memory: ..." / "data: streamed ..."
};
// Decides the residency (in memory when every rank's rows of the three sets fit
// data_memory_budget on every rank, else streamed) and opens the shards. Collective. Throws
// vd::ConfigError for a --val-fraction that leaves a rank without rows, a budget the stream
// windows do not fit or streaming without a thread-safe HDF5, and vd::DataError for a
// validation or test set whose samples differ in shape from the training data's.
TrainingData open_training_data(const Options& opt, const Comm& comm, ValueCheck check);

// "1.5 GB", "12.0 MB": for the start-up lines.
std::string bytes_text(double bytes);

}  // namespace vd
