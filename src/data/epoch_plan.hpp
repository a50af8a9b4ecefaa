// EpochPlan: which rows of its shard a rank trains on at each step of an epoch. A pure
// function of (rows in the data set, rank, world size, batch size, seed, epoch, block layout),
// so the plans of several ranks can be built and checked in one process.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/rng.hpp"
#include "data/shard.hpp"

namespace vd {

// Streams of random numbers derived from the run's seed; each purpose draws from its own.
// ValEps: the validation noise, one stream per (epoch, validation row).
enum class RngStream : uint64_t {
  Init = 1,
  Shuffle = 2,
  Eps = 3,
  EvalEps = 4,
  Grid = 5,
  Iw = 6,
  ValEps = 7
};
Rng make_rng(uint64_t seed, RngStream stream, uint64_t a = 0, uint64_t b = 0);

// The windowed shuffle of a streamed shard (data/row_stream): the shard is cut into blocks of
// consecutive rows at file rows that are multiples of block_rows (so a block is whole HDF5
// chunks), the blocks are shuffled, consecutive shuffled blocks form windows of about
// window_blocks blocks, and the rows are shuffled within each window. An epoch visits the
// windows in order, so only two windows need be in memory.
struct BlockShuffle {
  int64_t first_file_row = 0;  // the file row of the first row the ranks split
  int64_t block_rows = 1;
  int64_t window_blocks = 1;
};

// One window of an epoch: positions [begin, end) of the epoch's order, and its blocks (local
// rows) in the order they lie in the window's buffer.
struct PlanWindow {
  int64_t begin = 0, end = 0;
  std::vector<RowRange> blocks;
};

// Where a run stands in its epochs, as a checkpoint stores it: the 1-based epoch and the steps
// of it done, with the plan that numbered them (its steps per epoch and row order), which a
// resume compares with its own plan.
struct EpochCursor {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;    // == steps_per_epoch at an epoch's end
  int64_t steps_per_epoch = 0;  // 0 in checkpoints written before it was stored
  // The row order: blocks of this many rows shuffled in windows of this many blocks (a
  // BlockShuffle); 0, 0 = a full shuffle.
  int64_t shuffle_block_rows = 0, shuffle_window_blocks = 0;
  friend bool operator==(const EpochCursor&, const EpochCursor&) = default;
};

class EpochPlan {
 public:
  // Without `blocks`, shuffle() permutes the whole shard uniformly; with it, by windows.
  EpochPlan(int64_t global_rows, int rank, int world, int batch_size,
            std::optional<BlockShuffle> blocks = std::nullopt);

  // Steps every rank runs per epoch: enough for the largest shard, so all ranks stay in step.
  // A smaller shard's last step may hold fewer rows, or none.
  int64_t steps_per_epoch() const { return steps_; }
  RowRange shard() const { return shard_; }

  // Shuffles this rank's rows for `epoch` with a stream derived from (seed, epoch, rank).
  void shuffle(uint64_t seed, int64_t epoch);
  // Local row indices (0-based within the shard) of `step`; empty past the shard's end. They
  // are positions [step * batch, ...) of the epoch's order.
  std::span<const int64_t> local_rows(int64_t step) const;
  int batch_size() const { return batch_; }
  bool windowed() const { return blocks_.has_value(); }
  int64_t global_rows() const { return global_rows_; }
  const std::optional<BlockShuffle>& block_shuffle() const { return blocks_; }
  // Windowed: the blocks of the shard, in local rows and file order, and the epoch's windows
  // (one window holding every block before the first shuffle).
  const std::vector<RowRange>& blocks() const { return block_ranges_; }
  const std::vector<PlanWindow>& windows() const { return windows_; }
  // The windows shuffle(seed, epoch) lays out, without shuffling: what a read-ahead needs to
  // know of the next epoch while this one is still being trained on.
  std::vector<PlanWindow> windows_of(uint64_t seed, int64_t epoch) const;
  // Samples in `step` summed over all ranks (no communication: shard sizes are known).
  int64_t global_count(int64_t step) const;
  // The stream this rank draws the reparameterisation noise from during `epoch`.
  Rng eps_rng(uint64_t seed, int64_t epoch) const;
  // The cursor after `step_in_epoch` steps of `epoch` under this plan.
  EpochCursor cursor(int64_t epoch, int64_t step_in_epoch) const;
  // Whether this plan orders an epoch's rows as the one that wrote `c` (steps may differ).
  bool same_order(const EpochCursor& c) const;

 private:
  int64_t rows_in_step(int64_t shard_rows, int64_t step) const;
  std::vector<int64_t> block_order(Rng& rng) const;
  std::vector<PlanWindow> window_layout(const std::vector<int64_t>& block_order) const;
  void lay_out_windows(const std::vector<int64_t>& block_order);
  int64_t global_rows_;
  int rank_, world_, batch_;
  RowRange shard_;
  int64_t steps_ = 0;
  std::optional<BlockShuffle> blocks_;
  std::vector<RowRange> block_ranges_;
  std::vector<PlanWindow> windows_;
  std::vector<int64_t> perm_;
};

}  // namespace vd
