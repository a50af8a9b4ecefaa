// EpochPlan: per-epoch shuffles and per-step batches of one rank's shard.
#include "data/epoch_plan.hpp"

#include <algorithm>
#include <numeric>

#include "core/error.hpp"

namespace vd {

Rng make_rng(uint64_t seed, RngStream stream, uint64_t a, uint64_t b) {
  return Rng(Rng::derive_seed(seed, static_cast<uint64_t>(stream), a, b));
}

EpochPlan::EpochPlan(int64_t global_rows, int rank, int world, int batch_size)
    : global_rows_(global_rows), rank_(rank), world_(world), batch_(batch_size) {
  VD_CHECK(world >= 1 && rank >= 0 && rank < world, ShapeError,
           "rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  VD_CHECK(batch_size >= 1, ShapeError, "the batch size must be at least 1");
  VD_CHECK(global_rows >= world, ShapeError,
           "a data set of " + std::to_string(global_rows) + " rows cannot be split over " +
               std::to_string(world) + " ranks");
  shard_ = shard_rows(global_rows, rank, world);
  int64_t max_rows = 0;
  for (int r = 0; r < world; ++r)
    max_rows = std::max(max_rows, shard_rows(global_rows, r, world).size());
  steps_ = (max_rows + batch_size - 1) / batch_size;
  perm_.resize(static_cast<size_t>(shard_.size()));
  std::iota(perm_.begin(), perm_.end(), 0);
}

void EpochPlan::shuffle(uint64_t seed, int64_t epoch) {
  std::iota(perm_.begin(), perm_.end(), 0);
  Rng rng = make_rng(seed, RngStream::Shuffle, static_cast<uint64_t>(epoch),
                     static_cast<uint64_t>(rank_));
  for (size_t i = perm_.size(); i > 1; --i) std::swap(perm_[i - 1], perm_[rng.below(i)]);
}

int64_t EpochPlan::rows_in_step(int64_t shard_rows_r, int64_t step) const {
  return std::clamp<int64_t>(shard_rows_r - step * batch_, 0, batch_);
}

std::span<const int64_t> EpochPlan::local_rows(int64_t step) const {
  const int64_t n = rows_in_step(shard_.size(), step);
  if (n == 0) return {};
  return {perm_.data() + step * batch_, static_cast<size_t>(n)};
}

int64_t EpochPlan::global_count(int64_t step) const {
  int64_t total = 0;
  for (int r = 0; r < world_; ++r)
    total += rows_in_step(shard_rows(global_rows_, r, world_).size(), step);
  return total;
}

Rng EpochPlan::eps_rng(uint64_t seed, int64_t epoch) const {
  return make_rng(seed, RngStream::Eps, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank_));
}

}  // namespace vd
