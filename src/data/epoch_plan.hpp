// EpochPlan: which rows of its shard a rank trains on at each step of an epoch. A pure
// function of (rows in the data set, rank, world size, batch size, seed, epoch), so the plans
// of several ranks can be built and checked in one process.
#pragma once
#include <cstdint>
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

class EpochPlan {
 public:
  EpochPlan(int64_t global_rows, int rank, int world, int batch_size);

  // Steps every rank runs per epoch: enough for the largest shard, so all ranks stay in step.
  // A smaller shard's last step may hold fewer rows, or none.
  int64_t steps_per_epoch() const { return steps_; }
  RowRange shard() const { return shard_; }

  // Shuffles this rank's rows for `epoch` with a stream derived from (seed, epoch, rank).
  void shuffle(uint64_t seed, int64_t epoch);
  // Local row indices (0-based within the shard) of `step`; empty past the shard's end.
  std::span<const int64_t> local_rows(int64_t step) const;
  // Samples in `step` summed over all ranks (no communication: shard sizes are known).
  int64_t global_count(int64_t step) const;
  // The stream this rank draws the reparameterisation noise from during `epoch`.
  Rng eps_rng(uint64_t seed, int64_t epoch) const;

 private:
  int64_t rows_in_step(int64_t shard_rows, int64_t step) const;
  int64_t global_rows_;
  int rank_, world_, batch_;
  RowRange shard_;
  int64_t steps_ = 0;
  std::vector<int64_t> perm_;
};

}  // namespace vd
