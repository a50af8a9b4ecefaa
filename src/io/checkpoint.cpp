// Checkpoint files: atomic HDF5 write, checked read (format, version, model shapes), and the
// checkpoint_step<N>.h5 naming that find_latest_checkpoint and prune_checkpoints rely on.
#include "io/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string_view>
#include <thread>

#include "core/error.hpp"
#include "core/h5.hpp"

namespace vd {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kNamePrefix = "checkpoint_step";
constexpr std::string_view kNameSuffix = ".h5";
constexpr std::string_view kTmpSuffix = ".tmp";

// An IoError whose message already names the checkpoint, so with_path does not wrap it again.
class CheckpointError : public IoError {
 public:
  using IoError::IoError;
};

// Runs f; an IoError from the HDF5 helpers (which do not know the file name) is rethrown as
// one that names the checkpoint and says what to do.
template <class F>
auto with_path(const std::string& prefix, const std::string& advice, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CheckpointError&) {
    throw;
  } catch (const IoError& e) {
    throw CheckpointError(prefix + e.what() + "; " + advice);
  }
}

// Step of "checkpoint_step<digits>.h5", or nothing for any other name (overflow included).
std::optional<int64_t> step_of(std::string_view name) {
  if (!name.starts_with(kNamePrefix) || !name.ends_with(kNameSuffix)) return std::nullopt;
  const std::string_view digits =
      name.substr(kNamePrefix.size(), name.size() - kNamePrefix.size() - kNameSuffix.size());
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return step;
}

struct Listed {
  int64_t step;
  std::string name;
  auto operator<=>(const Listed&) const = default;
};

// Regular files in dir named checkpoint_step<digits>.h5 (or the same + ".tmp" when tmp),
// sorted by step, ties by name so the order never depends on the directory's order.
std::vector<Listed> list_checkpoints(const fs::path& dir, bool tmp) {
  std::vector<Listed> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec)
    throw IoError("cannot list the checkpoint directory '" + dir.string() + "': " + ec.message() +
                  "; check that it exists and is readable");
  for (const fs::directory_entry& entry : it) {
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;
    std::string name = entry.path().filename().string();
    std::string_view base = name;
    if (tmp) {
      if (!base.ends_with(kTmpSuffix)) continue;
      base.remove_suffix(kTmpSuffix.size());
    }
    if (const auto step = step_of(base)) out.push_back({*step, std::move(name)});
  }
  std::sort(out.begin(), out.end());
  return out;
}

h5::Datatype vlen_string_type() {
  h5::Datatype type(VD_H5(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  VD_H5(H5Tset_size(type, H5T_VARIABLE), "cannot make a variable-length string type");
  VD_H5(H5Tset_cset(type, H5T_CSET_UTF8), "cannot set a string type's character set");
  return type;
}

// Strings as one 1-D data set of fixed-length UTF-8 strings (NUL-padded to the longest), in
// one chunk with a Fletcher-32 checksum. Not variable-length strings: those live in HDF5's
// global heap, which has no checksum, and HDF5 1.10 crashes reading a damaged one.
void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  size_t longest = 1;
  for (const std::string& v : values) longest = std::max(longest, v.size());
  h5::Datatype type(VD_H5(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  VD_H5(H5Tset_size(type, longest), "cannot size a string type");
  VD_H5(H5Tset_strpad(type, H5T_STR_NULLPAD), "cannot set a string type's padding");
  VD_H5(H5Tset_cset(type, H5T_CSET_UTF8), "cannot set a string type's character set");
  std::string buf(longest * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) buf.replace(i * longest, values[i].size(), values[i]);
  const int64_t count = static_cast<int64_t>(values.size());
  h5::Dataset dset = h5::create_dataset(loc, name, type, std::span<const int64_t>(&count, 1),
                                        h5::CreateOptions{{count}, 0, true});
  h5::write_all(dset, type, buf.data());
}

// All strings of a string data set (scalar or 1-D; variable or fixed length).
std::vector<std::string> read_strings(hid_t loc, const std::string& name) {
  h5::Dataset dset = h5::open_dataset(loc, name);
  h5::Datatype ftype(VD_H5(H5Dget_type(dset), "cannot read the type of '" + name + "'"));
  if (H5Tget_class(ftype) != H5T_STRING)
    throw IoError("data set '" + name + "' is a " + h5::type_name(ftype) + ", not a string");
  size_t count = 1;
  for (int64_t d : h5::dims_of(dset)) count *= static_cast<size_t>(d);
  if (count > (1u << 20))
    throw IoError("data set '" + name + "' holds " + std::to_string(count) +
                  " strings, far more than a checkpoint has");
  std::vector<std::string> out;
  out.reserve(count);
  if (VD_H5(H5Tis_variable_str(ftype), "cannot inspect a string type") > 0) {
    h5::Datatype mtype = vlen_string_type();
    std::vector<char*> ptrs(count, nullptr);
    if (count > 0) h5::read_all(dset, mtype, ptrs.data());
    // HDF5 allocated each string; free them even if copying throws.
    struct Release {
      std::vector<char*>& p;
      ~Release() {
        for (char* s : p) H5free_memory(s);
      }
    } release{ptrs};
    for (const char* s : ptrs) out.emplace_back(s ? s : "");
  } else {
    const size_t size = H5Tget_size(ftype);
    std::string buf(size * count, '\0');
    if (count > 0) h5::read_all(dset, ftype, buf.data());
    for (size_t i = 0; i < count; ++i) {
      std::string s = buf.substr(i * size, size);
      s.resize(std::min(s.find('\0'), s.size()));
      out.push_back(std::move(s));
    }
  }
  return out;
}

// Opens path and checks that it is one of our checkpoints in a version this build reads.
h5::File open_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw CheckpointError("checkpoint '" + path +
                          "' does not exist; check the path given to --resume");
  if (!h5::is_hdf5(path))
    throw CheckpointError("checkpoint '" + path +
                          "' is not an HDF5 file (damaged, truncated or not a checkpoint); "
                          "resume from another checkpoint");
  const std::string prefix = "checkpoint '" + path + "': ";
  const std::string advice = "the file is damaged or not a vae_dist checkpoint";
  return with_path(prefix, advice, [&] {
    h5::File file = h5::open_file(path);
    if (!h5::has_attribute(file, "format"))
      throw CheckpointError("'" + path +
                            "' is an HDF5 file but not a vae_dist checkpoint (it has no 'format' "
                            "attribute); pass a file written by vae_dist");
    const std::string format = h5::read_string_attribute(file, "format");
    if (format != kCheckpointFormat)
      throw CheckpointError("'" + path + "' is not a vae_dist checkpoint: its format is '" +
                            format + "', expected '" + kCheckpointFormat +
                            "'; pass a file written by vae_dist");
    const int64_t version = h5::read_int_attribute(file, "format_version");
    if (version > kCheckpointFormatVersion)
      throw CheckpointError(
          "checkpoint '" + path + "' has format version " + std::to_string(version) +
          ", newer than this build of vae_dist reads (up to " +
          std::to_string(kCheckpointFormatVersion) + "); resume it with a newer vae_dist build");
    if (version < 1)
      throw CheckpointError("checkpoint '" + path + "' has an invalid format version " +
                            std::to_string(version) + "; " + advice);
    return file;
  });
}

CheckpointMeta read_meta(hid_t file, const std::string& path) {
  CheckpointMeta meta;
  meta.cursor.epoch = h5::read_int_attribute(file, "epoch");
  meta.cursor.step_in_epoch = h5::read_int_attribute(file, "step_in_epoch");
  if (h5::has_attribute(file, "steps_per_epoch"))
    meta.cursor.steps_per_epoch = h5::read_int_attribute(file, "steps_per_epoch");
  meta.step = h5::read_int_attribute(file, "step");
  if (h5::has_attribute(file, "shuffle_block_rows")) {
    meta.cursor.shuffle_block_rows = h5::read_int_attribute(file, "shuffle_block_rows");
    meta.cursor.shuffle_window_blocks = h5::read_int_attribute(file, "shuffle_window_blocks");
  }
  meta.samples = h5::read_int_attribute(file, "samples");
  meta.adam_steps = h5::read_int_attribute(file, "adam_steps");
  meta.seed = h5::read_attribute<uint64_t>(file, "seed");
  const int64_t world_size = h5::read_int_attribute(file, "world_size");
  if (world_size < 1 || world_size > INT_MAX)
    throw CheckpointError("checkpoint '" + path + "' has an invalid world_size " +
                          std::to_string(world_size) + "; the file is damaged");
  meta.world_size = static_cast<int>(world_size);
  std::vector<std::string> config = read_strings(file, "/config");
  if (config.size() != 1)
    throw CheckpointError("checkpoint '" + path + "': /config holds " +
                          std::to_string(config.size()) +
                          " strings instead of one; the file is damaged");
  meta.config_ini = std::move(config.front());
  // Optional, but a link that is there must open: a damaged header is not an absent one.
  if (h5::exists(file, "/data_shape")) {
    meta.data_shape = h5::read_dataset<int64_t>(file, "/data_shape").data;
    if (h5::has_attribute(file, "classes")) meta.classes = h5::read_int_attribute(file, "classes");
  }
  // The schedules' state: optional (older files), and refused when no run could have written
  // it (a NaN best, a negative count, a rate scale outside (0, 1]).
  const auto real = [&](const char* name, double& v) {
    if (h5::has_attribute(file, name)) v = h5::read_attribute<double>(file, name);
  };
  const auto count = [&](const char* name, int64_t& v) {
    if (h5::has_attribute(file, name)) v = h5::read_int_attribute(file, name);
  };
  real("lr_scale", meta.plateau.scale);
  real("plateau_best", meta.plateau.best);
  count("plateau_bad_evaluations", meta.plateau.bad_evaluations);
  count("plateau_cooldown_left", meta.plateau.cooldown_left);
  real("val_best", meta.early.best);
  count("val_best_step", meta.early.best_step);
  count("val_bad_evaluations", meta.early.bad_evaluations);
  real("epoch_loss_sum", meta.epoch_loss_sum);
  count("epoch_loss_count", meta.epoch_loss_count);
  if (!(meta.plateau.scale > 0 && meta.plateau.scale <= 1) || std::isnan(meta.plateau.best) ||
      std::isnan(meta.early.best) || !std::isfinite(meta.epoch_loss_sum) ||
      meta.plateau.bad_evaluations < 0 || meta.plateau.cooldown_left < 0 ||
      meta.early.best_step < -1 || meta.early.bad_evaluations < 0 || meta.epoch_loss_count < 0)
    throw CheckpointError("checkpoint '" + path +
                          "' holds an impossible schedule state (lr_scale, plateau_*, val_*, "
                          "epoch_loss_*); the file is damaged");
  if (h5::exists(file, "/standardize")) {
    // Checked as the parameters are: a file that says it has checksums must have them here.
    const bool checksums = h5::has_attribute(file, "checksums");
    for (const char* name : {"/standardize/mean", "/standardize/std"})
      if (checksums && !h5::has_fletcher32(h5::open_dataset(file, name)))
        throw CheckpointError("checkpoint '" + path + "': " + name +
                              " has lost its checksum; the file is damaged");
    meta.scaling.mean = h5::read_dataset<double>(file, "/standardize/mean").data;
    meta.scaling.std = h5::read_dataset<double>(file, "/standardize/std").data;
    bool usable = !meta.scaling.mean.empty() && meta.scaling.mean.size() == meta.scaling.std.size();
    for (size_t i = 0; usable && i < meta.scaling.mean.size(); ++i)
      usable = std::isfinite(meta.scaling.mean[i]) && std::isfinite(meta.scaling.std[i]) &&
               meta.scaling.std[i] > 0;
    if (!usable)
      throw CheckpointError("checkpoint '" + path +
                            "': /standardize holds unusable statistics (sizes differ, a value "
                            "is not finite or a std is not positive); the file is damaged");
  }
  count("guard_consecutive", meta.guard.consecutive);
  count("guard_first_flagged", meta.guard.first_flagged);
  count("guard_skipped", meta.guard.skipped);
  count("rollbacks", meta.rollbacks);
  real("rollback_lr_scale", meta.rollback_lr_scale);
  if (h5::exists(file, "/guard")) {
    const bool checksums = h5::has_attribute(file, "checksums");
    for (const char* name : {"/guard/losses", "/guard/norms"})
      if (checksums && !h5::has_fletcher32(h5::open_dataset(file, name)))
        throw CheckpointError("checkpoint '" + path + "': " + name +
                              " has lost its checksum; the file is damaged");
    meta.guard.losses = h5::read_dataset<double>(file, "/guard/losses").data;
    meta.guard.norms = h5::read_dataset<double>(file, "/guard/norms").data;
  }
  const auto finite = [](const std::vector<double>& v) {
    return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
  };
  if (meta.guard.losses.size() != meta.guard.norms.size() || !finite(meta.guard.losses) ||
      !finite(meta.guard.norms) || meta.guard.consecutive < 0 ||
      meta.guard.skipped < meta.guard.consecutive || meta.guard.first_flagged < -1 ||
      (meta.guard.consecutive > 0) != (meta.guard.first_flagged >= 0) || meta.rollbacks < 0 ||
      !(meta.rollback_lr_scale > 0 && meta.rollback_lr_scale <= 1))
    throw CheckpointError("checkpoint '" + path +
                          "' holds an impossible update-guard state (guard_*, /guard, "
                          "rollbacks, rollback_lr_scale); the file is damaged");
  real("ema_decay", meta.ema_decay);
  count("ema_updates", meta.ema_updates);
  int64_t warmup = 0;
  count("ema_warmup", warmup);
  meta.ema_warmup = warmup != 0;
  if (h5::has_attribute(file, "eval_weights")) {
    const std::string w = h5::read_string_attribute(file, "eval_weights");
    if (w != "raw" && w != "ema")
      throw CheckpointError("checkpoint '" + path + "' names eval_weights '" + w +
                            "' (expected raw or ema); the file is damaged");
    meta.eval_weights = w == "ema" ? Weights::Ema : Weights::Raw;
  }
  if (!(meta.ema_decay >= 0 && meta.ema_decay < 1) || meta.ema_updates < 0 ||
      (meta.ema_decay == 0 &&
       (meta.ema_updates != 0 || meta.ema_warmup || meta.eval_weights == Weights::Ema)) ||
      (meta.ema_decay > 0) != h5::exists(file, "/ema"))
    throw CheckpointError("checkpoint '" + path +
                          "' holds an impossible moving-average state (ema_decay, ema_updates, "
                          "eval_weights, /ema); the file is damaged");
  if (h5::exists(file, "/skipped_steps")) {
    const h5::Dataset d = h5::open_dataset(file, "/skipped_steps");
    if (h5::has_attribute(file, "checksums") && !h5::has_fletcher32(d))
      throw CheckpointError("checkpoint '" + path +
                            "': /skipped_steps has lost its checksum; the file is damaged");
    const auto ranges = h5::read_dataset<int64_t>(file, "/skipped_steps");
    bool usable = ranges.dims.size() == 2 && ranges.dims[1] == 2;
    for (size_t i = 0; usable && i + 1 < ranges.data.size(); i += 2) {
      const int64_t first = ranges.data[i], last = ranges.data[i + 1];
      usable = first >= 1 && first <= last &&
               (meta.skipped_steps.empty() || first > meta.skipped_steps.back().second);
      meta.skipped_steps.emplace_back(first, last);
    }
    if (!usable)
      throw CheckpointError("checkpoint '" + path +
                            "': /skipped_steps is not a list of ascending, disjoint step ranges; "
                            "the file is damaged");
  }
  meta.rng_states = read_strings(file, "/rng_states");
  if (meta.rng_states.size() != static_cast<size_t>(meta.world_size))
    throw CheckpointError("checkpoint '" + path + "' holds " +
                          std::to_string(meta.rng_states.size()) + " RNG states for " +
                          std::to_string(meta.world_size) + " ranks; the file is damaged");
  return meta;
}

// "hidden = 512, latent-dim = 20, ..." from the stored configuration: the options that shape
// the model (those with a value), to say what the writer used.
std::string model_options_of(const std::string& config_ini) {
  std::string out;
  size_t pos = 0;
  while (pos < config_ini.size()) {
    size_t end = config_ini.find('\n', pos);
    if (end == std::string::npos) end = config_ini.size();
    const std::string line = config_ini.substr(pos, end - pos);
    for (const char* key : {"model", "hidden", "latent-dim", "latent-shape", "encoder", "decoder",
                            "conditional", "classes", "gaussian-sigma"}) {
      const std::string k = key;
      const size_t eq = line.find('=');
      const bool empty =
          eq == std::string::npos || line.find_first_not_of(' ', eq + 1) == std::string::npos;
      if (line.starts_with(k) && !empty && line.find_first_not_of(' ', k.size()) == eq) {
        if (!out.empty()) out += ", ";
        out += line;
      }
    }
    pos = end + 1;
  }
  return out;
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string reason = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw IoError("cannot flush '" + path + "' to disk: " + reason);
  }
  ::close(fd);
}

// Makes the rename itself durable; not every file system can sync a directory, so best effort.
void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

// Test hook: VAE_DIST_TEST_SLOW_CHECKPOINT_MS=N sleeps N ms inside the write, with the .tmp
// created and half written, so a test can kill the writer there.
void test_pause_in_write() {
  const char* env = std::getenv("VAE_DIST_TEST_SLOW_CHECKPOINT_MS");
  if (env == nullptr || *env == '\0') return;
  const long ms = std::strtol(env, nullptr, 10);
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

h5::CreateOptions checked(size_t n) {
  return h5::CreateOptions{{static_cast<int64_t>(n)}, 0, true};
}

// "params/encoder.fc1.weight holds nan" for the first value that a resumed run could not use:
// a NaN or infinity anywhere, or a negative second moment (Adam takes its square root).
std::string unusable_value(const ParamStore& store, std::span<const float> exp_avg,
                           std::span<const float> exp_avg_sq, std::span<const float> ema) {
  const auto& entries = store.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const ParamStore::Entry& e = entries[i];
    const struct {
      const char* group;
      const float* data;
    } parts[] = {{"params/", store.param(i)},
                 {"adam/exp_avg/", exp_avg.data() + e.offset},
                 {"adam/exp_avg_sq/", exp_avg_sq.data() + e.offset},
                 {"ema/", ema.empty() ? nullptr : ema.data() + e.offset}};
    for (const auto& part : parts)
      for (size_t k = 0; part.data != nullptr && k < e.size; ++k) {
        const float x = part.data[k];
        const bool negative_v = part.data == exp_avg_sq.data() + e.offset && x < 0;
        if (!std::isfinite(x) || negative_v)
          return std::string(part.group) + e.name + " holds " + std::to_string(x);
      }
  }
  return "";
}

// How the /params/ of a file differ from the store's entries, one text per entry that is
// missing, extra or differently shaped, so one error tells the whole story.
std::vector<std::string> model_mismatch(hid_t file, const ParamStore& store) {
  std::map<std::string, std::vector<int64_t>> in_file;
  if (h5::exists(file, "/params"))
    for (const std::string& full : h5::list_datasets(file, "/params"))
      in_file[full.substr(std::string("/params/").size())] =
          h5::dims_of(h5::open_dataset(file, full));
  std::vector<std::string> problems;
  for (const ParamStore::Entry& e : store.entries()) {
    const auto it = in_file.find(e.name);
    if (it == in_file.end())
      problems.push_back("it has no " + e.name + " but this model has " + e.name + " " +
                         shape_text(e.shape));
    else if (it->second != e.shape)
      problems.push_back("it was written for a model with " + e.name + " " +
                         shape_text(it->second) + " but this model has " + shape_text(e.shape));
  }
  // Not a structured binding: clang before 16 cannot capture one in the lambda (fuzz build).
  for (const auto& item : in_file)
    if (std::none_of(store.entries().begin(), store.entries().end(),
                     [&](const ParamStore::Entry& e) { return e.name == item.first; }))
      problems.push_back("it has " + item.first + " " + shape_text(item.second) +
                         " which this model lacks");
  return problems;
}

void write_file(const std::string& tmp, const CheckpointMeta& meta, const ParamStore& store,
                std::span<const float> exp_avg, std::span<const float> exp_avg_sq,
                std::span<const float> ema) {
  h5::File file = h5::create_file(tmp, true);
  {
    h5::write_attribute(file, "format", kCheckpointFormat);
    h5::write_attribute(file, "format_version", int64_t{kCheckpointFormatVersion});
    h5::write_attribute(file, "epoch", meta.cursor.epoch);
    h5::write_attribute(file, "step_in_epoch", meta.cursor.step_in_epoch);
    if (meta.cursor.steps_per_epoch > 0)
      h5::write_attribute(file, "steps_per_epoch", meta.cursor.steps_per_epoch);
    h5::write_attribute(file, "step", meta.step);
    if (meta.cursor.shuffle_block_rows > 0) {
      h5::write_attribute(file, "shuffle_block_rows", meta.cursor.shuffle_block_rows);
      h5::write_attribute(file, "shuffle_window_blocks", meta.cursor.shuffle_window_blocks);
    }
    h5::write_attribute(file, "samples", meta.samples);
    h5::write_attribute(file, "world_size", int64_t{meta.world_size});
    h5::write_attribute(file, "seed", meta.seed);
    h5::write_attribute(file, "adam_steps", meta.adam_steps);
    h5::write_attribute(file, "num_parameters", static_cast<int64_t>(store.num_parameters()));
    // Every data set carries a checksum (Fletcher-32, or a CRC-32 attribute for strings).
    h5::write_attribute(file, "checksums", int64_t{1});
    test_pause_in_write();
    write_strings(file, "/config", {meta.config_ini});
    write_strings(file, "/rng_states", meta.rng_states);
    if (!meta.data_shape.empty()) {
      const int64_t rank = static_cast<int64_t>(meta.data_shape.size());
      h5::write_dataset<int64_t>(file, "/data_shape", meta.data_shape,
                                 std::span<const int64_t>(&rank, 1),
                                 checked(meta.data_shape.size()));
      h5::write_attribute(file, "classes", meta.classes);
    }
    h5::write_attribute(file, "lr_scale", meta.plateau.scale);
    h5::write_attribute(file, "plateau_best", meta.plateau.best);
    h5::write_attribute(file, "plateau_bad_evaluations", meta.plateau.bad_evaluations);
    h5::write_attribute(file, "plateau_cooldown_left", meta.plateau.cooldown_left);
    h5::write_attribute(file, "val_best", meta.early.best);
    h5::write_attribute(file, "val_best_step", meta.early.best_step);
    h5::write_attribute(file, "val_bad_evaluations", meta.early.bad_evaluations);
    h5::write_attribute(file, "epoch_loss_sum", meta.epoch_loss_sum);
    h5::write_attribute(file, "epoch_loss_count", meta.epoch_loss_count);
    if (!meta.scaling.mean.empty()) {
      h5::Group st = h5::create_group(file, "/standardize");
      const int64_t d = static_cast<int64_t>(meta.scaling.mean.size());
      h5::write_dataset<double>(st, "mean", meta.scaling.mean, std::span<const int64_t>(&d, 1),
                                checked(meta.scaling.mean.size()));
      h5::write_dataset<double>(st, "std", meta.scaling.std, std::span<const int64_t>(&d, 1),
                                checked(meta.scaling.std.size()));
    }

    h5::write_attribute(file, "guard_consecutive", meta.guard.consecutive);
    h5::write_attribute(file, "guard_first_flagged", meta.guard.first_flagged);
    h5::write_attribute(file, "guard_skipped", meta.guard.skipped);
    h5::write_attribute(file, "rollbacks", meta.rollbacks);
    h5::write_attribute(file, "rollback_lr_scale", meta.rollback_lr_scale);
    if (!meta.guard.losses.empty()) {
      h5::Group g = h5::create_group(file, "/guard");
      const int64_t w = static_cast<int64_t>(meta.guard.losses.size());
      h5::write_dataset<double>(g, "losses", meta.guard.losses, std::span<const int64_t>(&w, 1),
                                checked(meta.guard.losses.size()));
      h5::write_dataset<double>(g, "norms", meta.guard.norms, std::span<const int64_t>(&w, 1),
                                checked(meta.guard.norms.size()));
    }

    if (!meta.skipped_steps.empty()) {
      std::vector<int64_t> flat;
      for (const auto& [first, last] : meta.skipped_steps) {
        flat.push_back(first);
        flat.push_back(last);
      }
      const int64_t dims[2] = {static_cast<int64_t>(meta.skipped_steps.size()), 2};
      h5::write_dataset<int64_t>(file, "/skipped_steps", flat, dims,
                                 h5::CreateOptions{{dims[0], 2}, 0, true});
    }
    h5::write_attribute(file, "eval_weights", weights_name(meta.eval_weights));
    if (meta.ema_decay > 0) {
      h5::write_attribute(file, "ema_decay", meta.ema_decay);
      h5::write_attribute(file, "ema_updates", meta.ema_updates);
      h5::write_attribute(file, "ema_warmup", int64_t{meta.ema_warmup ? 1 : 0});
    }

    h5::Group params = h5::create_group(file, "/params");
    h5::Group adam = h5::create_group(file, "/adam");
    h5::Group m = h5::create_group(adam, "exp_avg");
    h5::Group v = h5::create_group(adam, "exp_avg_sq");
    const auto& entries = store.entries();
    for (size_t i = 0; i < entries.size(); ++i) {
      const ParamStore::Entry& e = entries[i];
      // One chunk per data set, so HDF5 keeps one Fletcher-32 checksum for it.
      const h5::CreateOptions opt{e.shape, 0, true};
      h5::write_dataset<float>(params, e.name, {store.param(i), e.size}, e.shape, opt);
      h5::write_dataset<float>(m, e.name, exp_avg.subspan(e.offset, e.size), e.shape, opt);
      h5::write_dataset<float>(v, e.name, exp_avg_sq.subspan(e.offset, e.size), e.shape, opt);
    }
    if (!ema.empty()) {
      h5::Group a = h5::create_group(file, "/ema");
      for (const ParamStore::Entry& e : entries)
        h5::write_dataset<float>(a, e.name, ema.subspan(e.offset, e.size), e.shape,
                                 h5::CreateOptions{e.shape, 0, true});
    }
  }  // every object closed, so closing the file really closes it
  VD_H5(H5Fflush(file, H5F_SCOPE_GLOBAL), "cannot flush the HDF5 file (disk full?)");
  VD_H5(H5Fclose(file.release()), "cannot close the HDF5 file (disk full?)");
  sync_file(tmp);
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointMeta& meta, const ParamStore& store,
                      std::span<const float> exp_avg, std::span<const float> exp_avg_sq,
                      std::span<const float> ema) {
  // Every argument check comes before the first file operation.
  if (!store.finalized())
    throw ShapeError("cannot write checkpoint '" + path +
                     "': the parameter store is not finalized");
  if (exp_avg.size() != store.size() || exp_avg_sq.size() != store.size())
    throw ShapeError("cannot write checkpoint '" + path + "': the Adam moments hold " +
                     std::to_string(exp_avg.size()) + " and " + std::to_string(exp_avg_sq.size()) +
                     " floats but the parameter buffer holds " + std::to_string(store.size()));
  if (ema.size() != (meta.ema_decay > 0 ? store.size() : 0) ||
      !(meta.ema_decay >= 0 && meta.ema_decay < 1) ||
      (meta.ema_decay == 0 && meta.eval_weights == Weights::Ema))
    throw ShapeError("cannot write checkpoint '" + path + "': the moving average holds " +
                     std::to_string(ema.size()) + " floats for ema_decay " +
                     std::to_string(meta.ema_decay) + " and a parameter buffer of " +
                     std::to_string(store.size()) +
                     "; pass store.size() floats with a decay in (0, 1), or none with 0");
  if (meta.scaling.mean.size() != meta.scaling.std.size())
    throw ShapeError("cannot write checkpoint '" + path +
                     "': " + std::to_string(meta.scaling.mean.size()) + " feature means but " +
                     std::to_string(meta.scaling.std.size()) + " standard deviations");
  if (meta.world_size < 1 || meta.rng_states.size() != static_cast<size_t>(meta.world_size))
    throw ShapeError("cannot write checkpoint '" + path + "': " +
                     std::to_string(meta.rng_states.size()) + " RNG states given for world_size " +
                     std::to_string(meta.world_size) + "; pass one state per rank");
  for (const ParamStore::Entry& e : store.entries())
    if (e.name.find('/') != std::string::npos || e.name == "." || e.name == "..")
      throw ShapeError("cannot write checkpoint '" + path + "': parameter name '" + e.name +
                       "' cannot be an HDF5 data set name (no '/', not '.' or '..')");

  if (const std::string bad = unusable_value(store, exp_avg, exp_avg_sq, ema); !bad.empty())
    throw DivergenceError("refusing to write checkpoint '" + path + "': " + bad +
                          " (the training diverged); the earlier checkpoints are kept");

  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec)
      throw IoError("cannot create directory '" + target.parent_path().string() +
                    "' for checkpoint '" + path + "': " + ec.message() +
                    "; check the --out path and its permissions");
  }
  const std::string tmp = path + std::string(kTmpSuffix);
  try {
    with_path("cannot write checkpoint '" + path + "' (via '" + tmp + "'): ",
              "check free disk space and write permission",
              [&] { write_file(tmp, meta, store, exp_avg, exp_avg_sq, ema); });
    fs::rename(tmp, path, ec);
    if (ec)
      throw IoError("cannot rename '" + tmp + "' to checkpoint '" + path + "': " + ec.message() +
                    "; check that '" + path + "' is not a directory and is writable");
  } catch (...) {
    // The .tmp is incomplete or orphaned; any checkpoint already at path is untouched.
    std::error_code ignore;
    fs::remove(tmp, ignore);
    throw;
  }
  sync_dir(target.parent_path());
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  h5::File file = open_checkpoint(path);
  return with_path("checkpoint '" + path + "': ",
                   "the file is damaged or incomplete; resume from another checkpoint",
                   [&] { return read_meta(file, path); });
}

CheckpointMeta read_checkpoint(const std::string& path, ParamStore& store, std::span<float> exp_avg,
                               std::span<float> exp_avg_sq, std::span<float> ema) {
  if (!store.finalized())
    throw ShapeError("cannot read checkpoint '" + path + "': the parameter store is not finalized");
  if (exp_avg.size() != store.size() || exp_avg_sq.size() != store.size())
    throw ShapeError("cannot read checkpoint '" + path + "': the Adam moment buffers hold " +
                     std::to_string(exp_avg.size()) + " and " + std::to_string(exp_avg_sq.size()) +
                     " floats but the parameter buffer holds " + std::to_string(store.size()));
  if (!ema.empty() && ema.size() != store.size())
    throw ShapeError("cannot read checkpoint '" + path + "': the moving-average buffer holds " +
                     std::to_string(ema.size()) + " floats but the parameter buffer holds " +
                     std::to_string(store.size()));
  h5::File file = open_checkpoint(path);
  const std::string prefix = "checkpoint '" + path + "': ";
  const std::string advice = "the file is damaged or incomplete; resume from another checkpoint";
  return with_path(prefix, advice, [&] {
    CheckpointMeta meta = read_meta(file, path);

    const std::vector<std::string> problems = model_mismatch(file, store);
    if (!problems.empty()) {
      std::string msg = "checkpoint '" + path + "' does not match this model: ";
      for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
      msg += "; use the model options of the run that wrote it";
      const std::string used = model_options_of(meta.config_ini);
      if (!used.empty()) msg += " (" + used + ")";
      throw ShapeError(msg);
    }

    // The moments must mirror the parameters, and values must be float32 to restore bitwise.
    const auto& entries = store.entries();
    const bool with_ema = meta.ema_decay > 0 && !ema.empty();
    std::vector<const char*> groups = {"/params/", "/adam/exp_avg/", "/adam/exp_avg_sq/"};
    if (with_ema) groups.push_back("/ema/");
    for (const ParamStore::Entry& e : entries)
      for (const char* group : groups) {
        const std::string name = std::string(group) + e.name;
        if (!h5::is_dataset(file, name))
          throw CheckpointError("checkpoint '" + path + "' lacks " + name + "; " + advice);
        h5::Dataset dset = h5::open_dataset(file, name);
        if (h5::dims_of(dset) != e.shape)
          throw CheckpointError("checkpoint '" + path + "': " + name + " is " +
                                shape_text(h5::dims_of(dset)) + " but its parameter is " +
                                shape_text(e.shape) + "; " + advice);
        if (h5::dtype_of(dset) != h5::DType::Float32)
          throw CheckpointError("checkpoint '" + path + "': " + name + " holds " +
                                h5::dtype_name(dset) + " values, expected float32; " + advice);
      }

    // Padding between entries is not stored; it must be zero (see ParamStore).
    std::fill(store.params().begin(), store.params().end(), 0.0f);
    std::fill(exp_avg.begin(), exp_avg.end(), 0.0f);
    std::fill(exp_avg_sq.begin(), exp_avg_sq.end(), 0.0f);
    if (with_ema) std::fill(ema.begin(), ema.end(), 0.0f);
    const bool checksums = h5::has_attribute(file, "checksums");
    const auto read_values = [&](const std::string& name, float* dst, size_t count) {
      h5::Dataset dset = h5::open_dataset(file, name);
      // A file that says it has checksums must have one on every data set (a damaged filter
      // list must not turn the check off).
      if (checksums && count > 0 && !h5::has_fletcher32(dset))
        throw CheckpointError("checkpoint '" + path + "': " + name + " has lost its checksum; " +
                              advice);
      try {
        h5::read_all(dset, H5T_NATIVE_FLOAT, dst);
      } catch (const IoError& e) {
        throw CheckpointError("checkpoint '" + path + "': cannot read " + name +
                              (checksums ? " (its values do not match their checksum, or the "
                                           "file is damaged around them)"
                                         : "") +
                              ": " + e.what() + "; " + advice);
      }
    };
    for (size_t i = 0; i < entries.size(); ++i) {
      const ParamStore::Entry& e = entries[i];
      read_values("/params/" + e.name, store.param(i), e.size);
      read_values("/adam/exp_avg/" + e.name, exp_avg.data() + e.offset, e.size);
      read_values("/adam/exp_avg_sq/" + e.name, exp_avg_sq.data() + e.offset, e.size);
      if (with_ema) read_values("/ema/" + e.name, ema.data() + e.offset, e.size);
    }
    const std::span<const float> avg = with_ema ? ema : std::span<float>();
    if (const std::string bad = unusable_value(store, exp_avg, exp_avg_sq, avg); !bad.empty())
      throw CheckpointError("checkpoint '" + path + "': " + bad +
                            "; a model with such values cannot train (was the run diverging, "
                            "or was the file edited?); resume from an earlier checkpoint");
    return meta;
  });
}

void read_weights(const std::string& path, ParamStore& store) {
  if (!store.finalized())
    throw ShapeError("cannot read weights from '" + path +
                     "': the parameter store is not finalized");
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw CheckpointError("weights file '" + path +
                          "' does not exist; check the path given to --init-weights");
  if (!h5::is_hdf5(path))
    throw CheckpointError("weights file '" + path +
                          "' is not an HDF5 file; pass a vae_dist checkpoint or an HDF5 file "
                          "of /params/<name> data sets");
  const std::string advice = "the file is damaged or not a file of weights";
  with_path("weights file '" + path + "': ", advice, [&] {
    h5::File file = h5::open_file(path);
    const std::vector<std::string> problems = model_mismatch(file, store);
    if (!problems.empty()) {
      std::string msg = "weights file '" + path + "' does not match this model: ";
      for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
      msg +=
          "; it needs exactly this model's parameters as /params/<name> in PyTorch's layout "
          "(h5ls -r on a checkpoint of this config lists them)";
      throw ShapeError(msg);
    }
    for (size_t i = 0; i < store.entries().size(); ++i) {
      const ParamStore::Entry& e = store.entries()[i];
      const std::string name = "/params/" + e.name;
      h5::Dataset dset = h5::open_dataset(file, name);
      const h5::DType t = h5::dtype_of(dset);
      if (t != h5::DType::Float32 && t != h5::DType::Float64)
        throw CheckpointError("weights file '" + path + "': " + name + " holds " +
                              h5::dtype_name(dset) + " values; write it as float32 (or float64)");
      // Read as double so a float64 beyond float32's range is seen, not clamped or made inf.
      std::vector<double> values(e.size);
      h5::read_all(dset, H5T_NATIVE_DOUBLE, values.data());
      for (size_t k = 0; k < e.size; ++k) {
        if (!std::isfinite(values[k]) ||
            std::abs(values[k]) > double{std::numeric_limits<float>::max()})
          throw CheckpointError("weights file '" + path + "': " + name + " holds " +
                                std::to_string(values[k]) + " at index " + std::to_string(k) +
                                ", which is not a finite float32; a model with such values "
                                "cannot train");
        // Padding between entries is left as it is (zero, see ParamStore).
        store.param(i)[k] = static_cast<float>(values[k]);
      }
    }
  });
}

std::string checkpoint_file_name(int64_t step) {
  if (step < 0)
    throw ShapeError("checkpoint_file_name: the step must not be negative (got " +
                     std::to_string(step) + ")");
  char buf[64];
  std::snprintf(buf, sizeof buf, "checkpoint_step%09lld.h5", static_cast<long long>(step));
  return buf;
}

std::string find_latest_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError("checkpoint directory '" + dir +
                  "' does not exist; nothing to resume — start without --resume");
  const std::vector<Listed> found = list_checkpoints(dir, false);
  if (found.empty()) {
    const fs::path best = fs::path(dir) / kBestCheckpointFile;
    if (fs::exists(best, ec))
      throw IoError("no checkpoint_step*.h5 in " + dir + " (--resume latest never takes " +
                    best.string() + ", the best validation model); resume it by name into a " +
                    "new directory: --resume " + best.string() + " --out " + dir + "_from_best");
    throw IoError("no checkpoint_step*.h5 in " + dir +
                  "; nothing to resume — start without --resume");
  }
  return (fs::path(dir) / found.back().name).string();
}

std::vector<int64_t> checkpoint_steps(const std::string& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return steps;  // a new run directory
  for (const Listed& f : list_checkpoints(dir, false)) steps.push_back(f.step);
  return steps;
}

void prune_checkpoints(const std::string& dir, int keep) {
  if (keep < 1)
    throw ShapeError("prune_checkpoints: keep must be at least 1 (got " + std::to_string(keep) +
                     "); the newest checkpoint is never deleted");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<Listed> doomed = list_checkpoints(dir, true);  // stale .tmp leftovers
  std::vector<Listed> found = list_checkpoints(dir, false);
  if (found.size() > static_cast<size_t>(keep))
    doomed.insert(doomed.end(), found.begin(), found.end() - keep);
  for (const Listed& f : doomed) {
    const fs::path p = fs::path(dir) / f.name;
    fs::remove(p, ec);
    if (ec)
      throw IoError("cannot delete old checkpoint '" + p.string() + "': " + ec.message() +
                    "; check the run directory's permissions");
  }
}

}  // namespace vd
