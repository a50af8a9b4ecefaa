// RowStream: the read-ahead thread and the steps' side of the two window buffers.
#include "data/row_stream.hpp"

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "core/h5.hpp"

namespace vd {

RowStream::RowStream(const Shard& shard, const EpochPlan& plan) : shard_(shard), plan_(plan) {
  VD_CHECK(plan.windowed(), ShapeError, "RowStream: the epoch plan has no block shuffle");
  VD_CHECK(plan.shard().size() == shard.rows(), ShapeError,
           "RowStream: the plan is for " + std::to_string(plan.shard().size()) +
               " rows, the shard has " + std::to_string(shard.rows()));
  // A window holds ceil(blocks / windows) blocks at most (EpochPlan spreads them evenly).
  const auto nb = static_cast<int64_t>(plan.blocks().size());
  const auto nw = static_cast<int64_t>(plan.windows().size());
  const int64_t most =
      std::min(plan.shard().size(), (nb + nw - 1) / nw * plan.block_shuffle()->block_rows);
  capacity_rows_ = std::max<int64_t>(1, most);
  for (Slot& s : slots_)
    s.bytes.reset(new uint8_t[static_cast<size_t>(capacity_rows_ * shard.row_bytes())]);
}

RowStream::~RowStream() {
  stop();
}

void RowStream::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t RowStream::window_at(const std::vector<PlanWindow>& windows, int64_t position) {
  const auto it = std::upper_bound(windows.begin(), windows.end(), position,
                                   [](int64_t p, const PlanWindow& w) { return p < w.begin; });
  return static_cast<int64_t>(it - windows.begin()) - 1;
}

void RowStream::enter_epoch(int64_t epoch) {
  // The plan must be shuffled for this epoch of start()'s seed, or the rows would be others.
  const std::vector<PlanWindow>& windows = plan_.windows();
  const std::vector<PlanWindow> expected = plan_.windows_of(seed_, epoch);
  bool same = windows.size() == expected.size();
  for (size_t w = 0; same && w < windows.size(); ++w)
    same = windows[w].begin == expected[w].begin &&
           windows[w].blocks.size() == expected[w].blocks.size() &&
           windows[w].blocks.front().begin == expected[w].blocks.front().begin;
  VD_CHECK(same, ShapeError,
           "RowStream: the plan is not shuffled for epoch " + std::to_string(epoch) +
               " of the stream's seed");
  const std::vector<RowRange>& blocks = plan_.blocks();
  std::vector<int64_t> window_of(blocks.size(), -1), offset_of(blocks.size(), 0);
  for (size_t w = 0; w < windows.size(); ++w) {
    int64_t offset = 0;
    for (const RowRange& b : windows[w].blocks) {
      const auto it = std::lower_bound(blocks.begin(), blocks.end(), b.begin,
                                       [](const RowRange& x, int64_t r) { return x.begin < r; });
      const auto k = static_cast<size_t>(it - blocks.begin());
      window_of[k] = static_cast<int64_t>(w);
      offset_of[k] = offset;
      offset += b.size();
    }
    VD_CHECK(windows.size() == 1 || offset >= plan_.batch_size(), ShapeError,
             "RowStream: window " + std::to_string(w) + " holds " + std::to_string(offset) +
                 " rows, fewer than a batch of " + std::to_string(plan_.batch_size()));
  }
  windows_ = windows;
  window_of_block_ = std::move(window_of);
  offset_of_block_ = std::move(offset_of);
  epoch_ = epoch;
}

void RowStream::start(uint64_t seed, int64_t epoch, int64_t first_step, int64_t last_epoch) {
  stop();
  const std::vector<PlanWindow> windows = plan_.windows_of(seed, epoch);
  const int64_t position = std::min(first_step * plan_.batch_size(), plan_.shard().size() - 1);
  const Key first{epoch, std::max<int64_t>(0, window_at(windows, position))};
  for (Slot& s : slots_) {
    s.key = Key{};
    s.ready = false;
  }
  seed_ = seed;
  epoch_ = -1;
  released_below_ = first;
  stopping_ = false;
  error_ = nullptr;
  error_at_ = Key{};
  thread_ = std::thread([this, seed, first, last_epoch] { read_ahead(seed, first, last_epoch); });
}

void RowStream::read_ahead(uint64_t seed, Key first, int64_t last_epoch) {
  // HDF5's error stack and its printing are per thread: this one's must be quiet too (a
  // damaged chunk becomes a DataError, not a dump on stderr).
  h5::quiet_errors();
  const int64_t row_bytes = shard_.row_bytes();
  int64_t n = 0;  // windows read so far: the slot is n % 2
  Key at = first;
  try {
    for (int64_t epoch = first.epoch; epoch <= last_epoch; ++epoch) {
      // This thread's own copy of the epoch's windows: the plan belongs to the steps.
      const std::vector<PlanWindow> windows = plan_.windows_of(seed, epoch);
      for (int64_t w = epoch == first.epoch ? first.window : 0;
           w < static_cast<int64_t>(windows.size()); ++w, ++n) {
        at = Key{epoch, w};
        Slot& slot = slots_[n % 2];
        {
          // The slot is free once the steps have moved past the window it held (two back).
          std::unique_lock lock(mutex_);
          changed_.wait(lock, [&] { return stopping_ || slot.key < released_below_; });
          if (stopping_) return;
          slot.key = at;
          slot.ready = false;
        }
        const PlanWindow& win = windows[static_cast<size_t>(w)];
        VD_CHECK(win.end - win.begin <= capacity_rows_, ShapeError,
                 "RowStream: window of " + std::to_string(win.end - win.begin) +
                     " rows in buffers of " + std::to_string(capacity_rows_));
        int64_t offset = 0;
        for (const RowRange& b : win.blocks) {
          if (stopping_) return;
          shard_.read_stored(b.begin, b.size(), slot.bytes.get() + offset * row_bytes);
          offset += b.size();
        }
        {
          std::lock_guard lock(mutex_);
          slot.ready = true;
        }
        changed_.notify_all();
      }
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    error_ = std::current_exception();
    error_at_ = at;
    changed_.notify_all();
  }
}

void RowStream::gather(int64_t epoch, int64_t step, float* dst) {
  VD_CHECK(thread_.joinable(), ShapeError, "RowStream::gather before start()");
  if (epoch != epoch_) enter_epoch(epoch);
  const std::span<const int64_t> rows = plan_.local_rows(step);
  if (rows.empty()) return;
  const int64_t p0 = step * plan_.batch_size();
  const Key lo{epoch, window_at(windows_, p0)};
  const Key hi{epoch, window_at(windows_, p0 + static_cast<int64_t>(rows.size()) - 1)};
  VD_CHECK(hi.window - lo.window <= 1, ShapeError, "RowStream: a step spans over two windows");
  const auto slot_of = [&](Key k) -> const Slot* {
    for (const Slot& s : slots_)
      if (s.key == k && s.ready) return &s;
    return nullptr;
  };
  const Slot* in[2] = {nullptr, nullptr};
  {
    std::unique_lock lock(mutex_);
    VD_CHECK(!(lo < released_below_), ShapeError,
             "RowStream: epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
                 " comes after a later step, or before start()'s");
    if (released_below_ < lo) {
      released_below_ = lo;
      changed_.notify_all();
    }
    if (!slot_of(lo) || !slot_of(hi)) {
      const auto t0 = std::chrono::steady_clock::now();
      // A failed read matters only if it is of a window this step needs (or one before).
      changed_.wait(lock,
                    [&] { return (error_ && !(hi < error_at_)) || (slot_of(lo) && slot_of(hi)); });
      wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    if (error_ && !(hi < error_at_)) std::rethrow_exception(error_);
    in[0] = slot_of(lo);
    in[1] = slot_of(hi);
  }
  // Both windows stay ours until a later step releases them: no lock while copying.
  const std::vector<RowRange>& blocks = plan_.blocks();
  const int64_t row_bytes = shard_.row_bytes(), size = shard_.sample_size();
  for (size_t k = 0; k < rows.size(); ++k) {
    const int64_t r = rows[k];
    const auto it = std::upper_bound(blocks.begin(), blocks.end(), r,
                                     [](int64_t x, const RowRange& b) { return x < b.begin; });
    const auto b = static_cast<size_t>(it - blocks.begin()) - 1;
    const int64_t w = window_of_block_[b];
    VD_CHECK(w == lo.window || w == hi.window, ShapeError,
             "RowStream: row " + std::to_string(r) + " is not in the step's windows");
    const Slot* slot = in[w == lo.window ? 0 : 1];
    const int64_t at = offset_of_block_[b] + (r - blocks[b].begin);
    shard_.decode(slot->bytes.get() + at * row_bytes, dst + static_cast<int64_t>(k) * size);
  }
  shard_.finish(dst, static_cast<int64_t>(rows.size()));
}

}  // namespace vd
