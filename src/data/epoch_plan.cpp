// EpochPlan: per-epoch shuffles and per-step batches of one rank's shard.
#include "data/epoch_plan.hpp"

#include <algorithm>
#include <numeric>

#include "core/error.hpp"

namespace vd {

Rng make_rng(uint64_t seed, RngStream stream, uint64_t a, uint64_t b) {
  return Rng(Rng::derive_seed(seed, static_cast<uint64_t>(stream), a, b));
}

EpochPlan::EpochPlan(int64_t global_rows, int rank, int world, int batch_size,
                     std::optional<BlockShuffle> blocks)
    : global_rows_(global_rows), rank_(rank), world_(world), batch_(batch_size), blocks_(blocks) {
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
  if (!blocks_) return;
  VD_CHECK(blocks_->block_rows >= 1 && blocks_->window_blocks >= 1 && blocks_->first_file_row >= 0,
           ShapeError, "EpochPlan: a block shuffle needs blocks and windows of at least one");
  // Blocks end at file rows that are multiples of block_rows; the first and last may be short.
  const int64_t br = blocks_->block_rows, f0 = blocks_->first_file_row + shard_.begin;
  for (int64_t r = 0; r < shard_.size();) {
    const int64_t end = std::min(shard_.size(), ((f0 + r) / br + 1) * br - f0);
    block_ranges_.push_back({r, end});
    r = end;
  }
  std::vector<int64_t> order(block_ranges_.size());
  std::iota(order.begin(), order.end(), 0);
  lay_out_windows(order);
}

std::vector<PlanWindow> EpochPlan::window_layout(const std::vector<int64_t>& order) const {
  // Windows of nearly equal numbers of blocks (never a short last one), each one's blocks in
  // the given order.
  const auto nb = static_cast<int64_t>(order.size());
  const int64_t nw =
      std::max<int64_t>(1, (nb + blocks_->window_blocks - 1) / blocks_->window_blocks);
  std::vector<PlanWindow> windows(static_cast<size_t>(nw));
  int64_t pos = 0;
  for (int64_t w = 0; w < nw; ++w) {
    PlanWindow& win = windows[static_cast<size_t>(w)];
    win.begin = pos;
    for (int64_t k = w * nb / nw; k < (w + 1) * nb / nw; ++k) {
      win.blocks.push_back(block_ranges_[static_cast<size_t>(order[static_cast<size_t>(k)])]);
      pos += win.blocks.back().size();
    }
    win.end = pos;
  }
  return windows;
}

void EpochPlan::lay_out_windows(const std::vector<int64_t>& order) {
  windows_ = window_layout(order);
  int64_t pos = 0;
  for (const PlanWindow& win : windows_)
    for (const RowRange& b : win.blocks)
      for (int64_t r = b.begin; r < b.end; ++r) perm_[static_cast<size_t>(pos++)] = r;
}

std::vector<int64_t> EpochPlan::block_order(Rng& rng) const {
  std::vector<int64_t> order(block_ranges_.size());
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

std::vector<PlanWindow> EpochPlan::windows_of(uint64_t seed, int64_t epoch) const {
  VD_CHECK(blocks_.has_value(), ShapeError, "EpochPlan::windows_of: no block shuffle");
  Rng rng = make_rng(seed, RngStream::Shuffle, static_cast<uint64_t>(epoch),
                     static_cast<uint64_t>(rank_));
  return window_layout(block_order(rng));
}

void EpochPlan::shuffle(uint64_t seed, int64_t epoch) {
  Rng rng = make_rng(seed, RngStream::Shuffle, static_cast<uint64_t>(epoch),
                     static_cast<uint64_t>(rank_));
  if (!blocks_) {
    std::iota(perm_.begin(), perm_.end(), 0);
    for (size_t i = perm_.size(); i > 1; --i) std::swap(perm_[i - 1], perm_[rng.below(i)]);
    return;
  }
  // The block order first (windows_of draws the same), then the rows within each window.
  lay_out_windows(block_order(rng));
  for (const PlanWindow& win : windows_) {
    int64_t* rows = perm_.data() + win.begin;
    for (auto i = static_cast<size_t>(win.end - win.begin); i > 1; --i)
      std::swap(rows[i - 1], rows[rng.below(i)]);
  }
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

EpochCursor EpochPlan::cursor(int64_t epoch, int64_t step_in_epoch) const {
  EpochCursor c;
  c.epoch = epoch;
  c.step_in_epoch = step_in_epoch;
  c.steps_per_epoch = steps_;
  if (blocks_) {
    c.shuffle_block_rows = blocks_->block_rows;
    c.shuffle_window_blocks = blocks_->window_blocks;
  }
  return c;
}

bool EpochPlan::same_order(const EpochCursor& c) const {
  return blocks_ ? c.shuffle_block_rows == blocks_->block_rows &&
                       c.shuffle_window_blocks == blocks_->window_blocks
                 : c.shuffle_block_rows == 0;
}

}  // namespace vd
