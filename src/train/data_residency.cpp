// The memory budget of a rank's data, opening the shards in memory or streamed, and the block
// shuffle of a streamed shard.
#include "train/data_residency.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "train/model_config.hpp"
#include "train/run_messages.hpp"

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

TrainingData open_training_data(const Options& opt, const Comm& comm, ValueCheck check) {
  TrainingData d;
  // --val-fraction f holds out the last round(f * N) rows of the training file: the ranks
  // train on [0, N - V) and validate on [N - V, N), each reading only its block of both.
  const DataExtent train_extent = Shard::extent(opt.data, opt.dataset);
  std::optional<RowRange> train_rows, val_rows;
  if (opt.val_fraction > 0) {
    const int64_t n = train_extent.rows;
    const int64_t v = std::llround(opt.val_fraction * static_cast<double>(n));
    if (v < comm.size() || n - v < comm.size())
      throw ConfigError("--val-fraction " + number_text(opt.val_fraction) + " of the " +
                        std::to_string(n) + " rows of '" + opt.data + "' holds out " +
                        std::to_string(v) + " rows and trains on " + std::to_string(n - v) +
                        "; with " + std::to_string(comm.size()) +
                        " rank(s) each part needs at least one row per rank; choose a fraction "
                        "between them");
    train_rows = RowRange{0, n - v};
    val_rows = RowRange{n - v, n};
  }
  // In memory when every rank's rows of all three sets fit its budget; else all are streamed
  // (the same on every rank, so the ranks shuffle alike).
  const auto rank_bytes = [&](const DataExtent& e, std::optional<RowRange> rows) {
    const RowRange sel = rows.value_or(RowRange{0, e.rows});
    return static_cast<double>(shard_rows(sel.size(), comm.rank(), comm.size()).size()) *
           static_cast<double>(e.row_bytes);
  };
  double need = rank_bytes(train_extent, train_rows);
  if (val_rows) need += rank_bytes(train_extent, val_rows);
  if (!opt.val_data.empty()) need += rank_bytes(Shard::extent(opt.val_data, opt.dataset), {});
  if (!opt.test_data.empty()) need += rank_bytes(Shard::extent(opt.test_data, opt.dataset), {});
  const DataBudget budget = data_memory_budget(opt, comm);
  double over[2] = {need > static_cast<double>(budget.bytes) ? 1.0 : 0.0, need};
  comm.allreduce_sum(std::span<double>(over, 2));
  const bool streamed =
      opt.stream == StreamMode::Always || (opt.stream == StreamMode::Auto && over[0] > 0);
  const Residency residency = streamed ? Residency::Streamed : Residency::InMemory;

  if (val_rows)
    d.val =
        Shard::read(opt.data, opt.dataset, comm.rank(), comm.size(), check, val_rows, residency);
  else if (!opt.val_data.empty())
    d.val = Shard::read(opt.val_data, opt.dataset, comm.rank(), comm.size(), check, std::nullopt,
                        residency);
  d.train =
      Shard::read(opt.data, opt.dataset, comm.rank(), comm.size(), check, train_rows, residency);
  const Shape shape = data_shape_of(d.train);
  const std::string training = "the training data '" + opt.data + "' has";
  if (d.val)
    check_sample_shape(*d.val, shape, "validation data", training,
                       "give a validation set of the same shape");
  if (!opt.test_data.empty()) {
    d.test = Shard::read(opt.test_data, opt.dataset, comm.rank(), comm.size(), check, std::nullopt,
                         residency);
    check_sample_shape(*d.test, shape, "test data", training, "give a test set of the same shape");
  }
  if (residency == Residency::Streamed) {
    if (!h5::library_threadsafe())
      throw ConfigError(
          std::string("streaming the data (") +
          (opt.stream == StreamMode::Auto ? "they exceed --data-memory-mb" : "--stream always") +
          ") reads them ahead in a thread, but this HDF5 library is not thread-safe (built "
          "without --enable-threadsafe); build vae_dist with a thread-safe HDF5 (Debian's "
          "libhdf5-dev is one), or hold the data in memory with --stream never on more ranks");
    // Streamed because of the budget: the two windows take at most half of it.
    d.blocks = block_shuffle_for(
        d.train, opt, opt.stream == StreamMode::Auto ? budget.bytes / 2 : int64_t{INT64_MAX});
    // A window never holds more than the shard. The windows must fit the budget the streaming
    // is for: a file of huge chunks (whole chunks make the blocks), or a budget smaller than a
    // few batches, could ask for more than holding the data would.
    const double windows = 2.0 *
                           static_cast<double>(std::min(
                               d.blocks->window_blocks * d.blocks->block_rows, d.train.rows())) *
                           static_cast<double>(d.train.row_bytes());
    if (opt.stream == StreamMode::Auto && windows > static_cast<double>(budget.bytes))
      throw ConfigError(
          "streaming '" + opt.data + "' needs two windows of " +
          std::to_string(d.blocks->window_blocks) + " blocks of " +
          std::to_string(d.blocks->block_rows) + " rows (" + bytes_text(windows) +
          "), more than the memory budget of " + bytes_text(static_cast<double>(budget.bytes)) +
          " per rank (a window holds at least a batch, and blocks are whole HDF5 chunks, here of " +
          std::to_string(d.train.chunk_rows()) +
          " rows); raise --data-memory-mb, use a smaller "
          "--batch-size, or re-chunk the file to about 1 MB per chunk (h5repack -l " +
          opt.dataset + ":CHUNK=...)");
  }
  const std::string held = bytes_text(over[1] / comm.size()) + " per rank";
  const std::string why = opt.stream != StreamMode::Auto
                              ? held + ", --stream " + std::string(stream_mode_name(opt.stream))
                              : held + (streamed ? " is more than" : " fits") + " the budget of " +
                                    bytes_text(static_cast<double>(budget.bytes)) + " (" +
                                    budget.source + ")";
  if (!d.blocks) {
    d.note = "data: in memory: " + why;
  } else {
    const double block_mb = static_cast<double>(d.blocks->block_rows * d.train.row_bytes()) / 1e6;
    d.note =
        "data: streamed from the files (" + why + "); training rows are read ahead in windows of " +
        std::to_string(d.blocks->window_blocks) + " blocks of " +
        std::to_string(d.blocks->block_rows) + " rows (" + number_text(block_mb) +
        " MB), two windows in memory (" +
        bytes_text(2.0 * block_mb * 1e6 * static_cast<double>(d.blocks->window_blocks)) +
        "), shuffled by block order and within each window (docs/data.md: data larger than memory)";
  }
  return d;
}

}  // namespace vd
