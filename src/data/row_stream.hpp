// RowStream: a streamed shard's training batches, read ahead of the steps. A background thread
// reads the epochs' windows (data/epoch_plan's BlockShuffle) one after another into two
// buffers, block by block, while the steps take their rows from the window before; at an
// epoch's end it goes on with the next epoch's first window.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/epoch_plan.hpp"
#include "data/shard.hpp"

namespace vd {

class RowStream {
 public:
  // `shard` (streamed or not) and `plan` (windowed, for this shard) outlive the stream. Every
  // window of the plan must hold at least a batch of rows, unless there is one window, so that
  // a step's rows lie in at most two windows.
  RowStream(const Shard& shard, const EpochPlan& plan);
  ~RowStream();
  RowStream(const RowStream&) = delete;
  RowStream& operator=(const RowStream&) = delete;

  // Starts reading the windows of `epoch` (of the run's `seed`) from the one holding
  // `first_step`'s rows, then of the epochs after it up to `last_epoch`; a read going on is
  // stopped first. The HDF5 library must be thread-safe (h5::library_threadsafe).
  void start(uint64_t seed, int64_t epoch, int64_t first_step, int64_t last_epoch);
  // dst [rows, sample_size()] = the rows of plan.local_rows(step), the plan shuffled for
  // `epoch`, as Shard::gather gives them (the same values, bitwise). Waits for their windows;
  // rethrows a failed read (DataError). (epoch, step) must come in order from start()'s.
  void gather(int64_t epoch, int64_t step, float* dst);

  // Seconds gather() waited for reads since construction: 0 when reading kept ahead.
  double wait_seconds() const { return wait_seconds_; }

 private:
  // A window of an epoch; ordered as the reads go.
  struct Key {
    int64_t epoch = -1, window = -1;
    auto operator<=>(const Key&) const = default;
  };
  struct Slot {
    Key key;  // the window it holds or is being filled with
    bool ready = false;
    // The largest window's size, allocated once and not initialised: a resize or a regrowth
    // would touch (or copy) pages, and the peak RSS would count both buffers.
    std::unique_ptr<uint8_t[]> bytes;
  };
  void stop();
  void read_ahead(uint64_t seed, Key first, int64_t last_epoch);  // the thread
  void enter_epoch(int64_t epoch);                                // the steps' block -> window maps
  static int64_t window_at(const std::vector<PlanWindow>& windows, int64_t position);

  const Shard& shard_;
  const EpochPlan& plan_;
  // The steps' side: the epoch the maps are for, its windows, and by block index the window
  // and the offset (rows) of the block in the window's buffer.
  int64_t epoch_ = -1;
  std::vector<PlanWindow> windows_;
  std::vector<int64_t> window_of_block_, offset_of_block_;
  Slot slots_[2];
  int64_t capacity_rows_ = 0;  // rows each slot holds
  std::mutex mutex_;
  std::condition_variable changed_;
  Key released_below_;                 // windows before this one are no longer needed
  std::atomic<bool> stopping_{false};  // set under the mutex; read by the thread between blocks
  std::exception_ptr error_;           // a failed read, of the window error_at_ and those after it
  Key error_at_;
  uint64_t seed_ = 0;
  std::thread thread_;
  double wait_seconds_ = 0;
};

}  // namespace vd
