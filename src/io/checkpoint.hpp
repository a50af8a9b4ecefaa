// Checkpoints: one HDF5 file holding parameters, Adam moments, counters, configuration and
// every rank's RNG state, written atomically; plus naming, finding and pruning them in a run dir.
#pragma once
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "data/epoch_plan.hpp"
#include "data/feature_scaling.hpp"
#include "nn/param_store.hpp"
#include "optim/early_stopping.hpp"
#include "optim/ema.hpp"
#include "optim/lr_schedule.hpp"
#include "optim/update_guard.hpp"

namespace vd {

// One checkpoint = one HDF5 file. Everything a run needs to continue exactly, made of the
// state structs the run keeps: its epoch cursor, the schedules' states and the data scaling.
// Checkpoints written before a part was stored read it as a fresh run's.
struct CheckpointMeta {
  std::string config_ini;  // resolved configuration (format_options text)
  EpochCursor cursor;      // the epoch, its steps done and the writing run's plan
  int64_t step = 0;        // optimizer steps so far
  int64_t samples = 0;     // training samples seen so far (all ranks)
  int world_size = 1;      // ranks of the run that wrote it
  uint64_t seed = 0;
  std::vector<std::string> rng_states;  // one RNG state text (vd::Rng::state()) per rank
  int64_t adam_steps = 0;
  // The model's data shape (one sample, {C, H, W}) and its classes (0 = unconditional):
  // what the stored config alone cannot say, since training derived them from the data.
  // Empty / 0 in checkpoints written before they were stored.
  std::vector<int64_t> data_shape;
  int64_t classes = 0;
  PlateauState plateau;  // optim/lr_schedule.hpp
  EarlyStopState early;  // optim/early_stopping.hpp
  // The reported training loss sum and sample count of the epoch so far (mid-epoch files).
  double epoch_loss_sum = 0;
  int64_t epoch_loss_count = 0;
  // --standardize: the training set's per-feature mean and standard deviation [D] the model
  // was trained with (data/feature_scaling). Empty without --standardize and in older files.
  FeatureScaling scaling;
  // The update guard's window and counts (optim/update_guard.hpp), and the rollbacks of the
  // run with the learning-rate factor they left (1 = none). Fresh in older files.
  UpdateGuardState guard;
  int64_t rollbacks = 0;
  double rollback_lr_scale = 1.0;
  // --rollback-skip-steps: the global steps whose batches the run passes over, as inclusive
  // ranges [first, last], ascending (empty: none).
  std::vector<std::pair<int64_t, int64_t>> skipped_steps;
  // --ema-decay: the moving average's decay and its updates so far (0 and 0: the file holds
  // no average), and which weights the run evaluated (validation, test, grids, best.h5).
  double ema_decay = 0;
  int64_t ema_updates = 0;
  bool ema_warmup = false;
  Weights eval_weights = Weights::Raw;

  friend bool operator==(const CheckpointMeta&, const CheckpointMeta&) = default;
};

// Bumped whenever the layout changes incompatibly; readers refuse newer versions.
inline constexpr int kCheckpointFormatVersion = 1;
// Value of the root attribute "format" that marks a file as ours.
inline constexpr const char* kCheckpointFormat = "vae_dist-checkpoint";

// File layout (readable with h5py, e.g. f["params/encoder.fc1.weight"][...]):
//   root attributes   format, format_version, epoch, step_in_epoch, step, samples, world_size,
//                     seed (uint64), adam_steps, num_parameters (informational),
//                     steps_per_epoch (optional: older files lack it),
//                     shuffle_block_rows, shuffle_window_blocks (only with a block shuffle)
//   /config           fixed-length UTF-8 strings [1] (NUL-padded; h5py reads bytes: .decode())
//   /rng_states       fixed-length UTF-8 strings [world_size], rank order
//                     (files written before checksums hold variable-length strings: still read)
//   /data_shape       int64 [3]: C, H, W of one sample; root attribute classes (both optional)
//   root attributes   lr_scale, plateau_best, plateau_bad_evaluations, plateau_cooldown_left,
//                     val_best, val_best_step, val_bad_evaluations, epoch_loss_sum,
//                     epoch_loss_count: the schedules' state (optional: older files lack them;
//                     the bests are inf before the first evaluation)
//   /standardize/mean, /standardize/std   float64 [D], with --standardize only (optional)
//   root attributes   guard_consecutive, guard_first_flagged, guard_skipped, rollbacks,
//                     rollback_lr_scale; /guard/losses, /guard/norms float64 [W]: the update
//                     guard's healthy steps, oldest first; /skipped_steps int64 [K, 2], the
//                     step ranges passed over after rollbacks (all optional: older files lack
//                     them)
//   /params/<name>    float32, the entry's PyTorch shape, row-major; padding is not saved
//   /adam/exp_avg/<name>, /adam/exp_avg_sq/<name>   the moments, same shapes
//   /ema/<name>       the moving average of the parameters, same shapes, with root attributes
//                     ema_decay, ema_updates and ema_warmup (0/1) (only from runs with
//                     --ema-decay)
//   root attribute    eval_weights: "raw" or "ema", the weights the run evaluated (optional)
// Every data set is one chunk with a Fletcher-32 checksum (root attribute checksums = 1), and
// the file uses HDF5's 1.10 format, whose metadata carries checksums too: a damaged file is a
// clear error at load, never silently different values. Non-finite parameters or moments (or
// a negative exp_avg_sq) are refused when writing (vd::DivergenceError) and when reading.
//
// Writes path + ".tmp" (creating parent directories), flushes and closes it, fsyncs it and
// renames it over path, so an interrupted write never damages an existing checkpoint at path.
// exp_avg and exp_avg_sq span the whole flat buffer (store.size() floats, store.params()'s
// layout), and so does ema when meta.ema_decay > 0 (else it is empty). Throws vd::ShapeError
// when the store is not finalized, a span has the wrong size,
// rng_states does not hold world_size (>= 1) texts or an entry name contains '/'; vd::IoError
// when the file cannot be written (the .tmp is removed then).
void write_checkpoint(const std::string& path, const CheckpointMeta& meta, const ParamStore& store,
                      std::span<const float> exp_avg, std::span<const float> exp_avg_sq,
                      std::span<const float> ema = {});

// Reads a checkpoint into a finalized store whose entries match the file's by name and shape,
// and the moments into the spans (store.size() floats each; padding is set to zero). Throws
// vd::ShapeError listing every missing, extra or differently shaped entry on a model mismatch,
// and vd::IoError naming path for a missing, non-HDF5, foreign, newer-version or damaged file.
// A non-empty `ema` (store.size() floats) receives the moving average when the file holds one
// (meta.ema_decay > 0), and is left as it is when the file has none.
// Everything is checked before any value is read; if reading the values then fails the store
// and spans hold a partial copy. Returns the metadata.
CheckpointMeta read_checkpoint(const std::string& path, ParamStore& store, std::span<float> exp_avg,
                               std::span<float> exp_avg_sq, std::span<float> ema = {});

// Reads only the parameters of an HDF5 file into a finalized store, converting to float32:
// /params/<name> of a vae_dist checkpoint, or of any file holding them in PyTorch's layout
// (a state_dict written with h5py as f["params/" + key] = tensor.numpy()). The file must hold
// exactly the store's entries with their shapes, as float32 or float64, and only finite values.
// Throws vd::ShapeError listing every missing, extra or differently shaped entry, and
// vd::IoError naming path for a missing, non-HDF5, damaged or non-float file or a non-finite
// value (the store then holds a partial copy).
void read_weights(const std::string& path, ParamStore& store);

// Reads and checks only the metadata (for --resume decisions before the model exists).
CheckpointMeta read_checkpoint_meta(const std::string& path);

// "checkpoint_step000001234.h5": zero-padded to 9 digits so names sort by step (up to 10^9
// steps; find_latest_checkpoint compares numbers, so longer names still work). step >= 0.
std::string checkpoint_file_name(int64_t step);
// The steps of the checkpoint_step*.h5 files in `dir`, ascending (none when it is missing).
std::vector<int64_t> checkpoint_steps(const std::string& dir);

// The run directory's copy of the model with the lowest validation loss: a full checkpoint
// (resumable, readable by vae_latent), written like the others; its name never matches
// checkpoint_step<digits>.h5, so find_latest_checkpoint and prune_checkpoints pass it by.
inline constexpr const char* kBestCheckpointFile = "best.h5";

// Path of the checkpoint with the highest step in dir, chosen by file name
// (checkpoint_step<digits>.h5; other files and *.tmp leftovers are ignored). Throws vd::IoError
// naming dir when it does not exist or holds no checkpoint.
std::string find_latest_checkpoint(const std::string& dir);

// Deletes all but the `keep` (>= 1) highest-step checkpoint_step<digits>.h5 files in dir, and
// removes stale checkpoint_step<digits>.h5.tmp leftovers of interrupted writes (never resumable,
// so they only waste disk). Other files are never touched. Call it only when no
// write_checkpoint into dir is in progress. A missing dir is not an error (nothing to prune).
void prune_checkpoints(const std::string& dir, int keep);

// When a run writes checkpoints: after every `every_epochs` epochs (0 = never on a schedule),
// always at the end and when a stop signal arrives; the newest `keep` stay on disk.
struct CheckpointPolicy {
  int every_epochs = 1;
  int keep = 3;
  bool due_after_epoch(int64_t epoch, bool last) const {
    return last || (every_epochs > 0 && epoch % every_epochs == 0);
  }
};

}  // namespace vd
