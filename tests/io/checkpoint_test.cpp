// Tests of io/checkpoint: bitwise round trip, file layout, model-mismatch and file errors,
// atomic replacement, and the naming / find-latest / prune rules of a run directory;
// checksums and non-finite values refused, a sweep of damaged and truncated files, and
// read_weights (--init-weights) from checkpoints and plain files of /params.
#include "io/checkpoint.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/h5.hpp"
#include "core/rng.hpp"
#include "support/heap_link_checkpoint.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

namespace fs = std::filesystem;
using testing::heap_block_offsets;
using testing::TempDir;
using testing::write_heap_link_copy;

// The test model: dotted PyTorch-style names and sizes that leave padding between entries.
void add_model(ParamStore& store) {
  store.add("encoder.fc1.weight", {3, 4});
  store.add("encoder.fc1.bias", {3});
  store.add("decoder.out.weight", {5, 3});
  store.finalize();
}

// The entries of an MLP VAE's checkpoint: 10, so a group of them holds more links than HDF5
// keeps in the group's object header by default (8).
void add_mlp_model(ParamStore& store) {
  for (const char* layer : {"encoder.fc1", "encoder.mu", "encoder.logvar", "decoder.fc1"}) {
    store.add(std::string(layer) + ".weight", {3, 4});
    store.add(std::string(layer) + ".bias", {3});
  }
  store.add("decoder.out.weight", {5, 3});
  store.add("decoder.out.bias", {5});
  store.finalize();
}
using Model = void (*)(ParamStore&);

// Buffers with distinct, awkward bit patterns (subnormals, -0, the largest float) so a
// conversion or a shifted offset anywhere shows up.
struct State {
  ParamStore store;
  std::vector<float> m, v;
  CheckpointMeta meta;
  std::vector<Rng> rngs;

  explicit State(uint64_t seed, Model model = add_model, int ranks = 3) {
    model(store);
    m.assign(store.size(), 0.0f);
    v.assign(store.size(), 0.0f);
    Rng fill(seed);
    for (size_t i = 0; i < store.entries().size(); ++i) {
      const auto& e = store.entries()[i];
      for (size_t j = 0; j < e.size; ++j) {
        store.param(i)[j] = static_cast<float>(fill.normal());
        m[e.offset + j] = static_cast<float>(fill.normal()) * 1e-3f;
        v[e.offset + j] = static_cast<float>(fill.uniform()) * 1e-6f;
      }
    }
    store.param(0)[0] = std::numeric_limits<float>::denorm_min();
    store.param(0)[1] = -0.0f;
    store.param(0)[2] = std::numeric_limits<float>::max();
    store.param(0)[3] = -std::numeric_limits<float>::denorm_min();
    meta.config_ini = "# vae_dist configuration\nhidden = 400\nlatent-dim = 20\nlr = 0.001\n";
    meta.cursor.epoch = 3;
    meta.cursor.step_in_epoch = 17;
    meta.cursor.steps_per_epoch = 40;
    meta.step = 1234;
    meta.samples = 1234 * 384;
    meta.world_size = ranks;
    meta.seed = 0xfedcba9876543210ULL;  // above INT64_MAX: the attribute must be unsigned
    meta.adam_steps = 1234;
    meta.data_shape = {1, 28, 28};
    meta.classes = 10;
    for (int r = 0; r < ranks; ++r) {
      rngs.emplace_back(Rng::derive_seed(seed, 7, static_cast<uint64_t>(r)));
      for (int k = 0; k < 100 + r; ++k) rngs.back().normal();
      meta.rng_states.push_back(rngs.back().state());
    }
  }
  void write(const std::string& path) const { write_checkpoint(path, meta, store, m, v); }
};

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// Runs f, which must throw E; returns the message.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw the wrong type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void touch(const std::string& path, const std::string& text = "x") {
  std::ofstream(path) << text;
}

TEST(Checkpoint, RoundTripRestoresEverythingBitwise) {
  TempDir dir;
  const State a(11);
  const std::string path = dir.file("run/ckpt/" + checkpoint_file_name(a.meta.step));
  a.write(path);  // creates run/ckpt
  ASSERT_TRUE(fs::is_regular_file(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  ParamStore store;
  add_model(store);
  // Garbage everywhere, padding included: read must overwrite entries and zero the padding.
  std::fill(store.params().begin(), store.params().end(), 7.0f);
  std::vector<float> m(store.size(), 7.0f), v(store.size(), 7.0f);
  const CheckpointMeta meta = read_checkpoint(path, store, m, v);

  EXPECT_EQ(meta, a.meta);
  EXPECT_EQ(meta.config_ini, a.meta.config_ini);
  EXPECT_EQ(meta.seed, 0xfedcba9876543210ULL);
  ASSERT_EQ(meta.rng_states.size(), 3u);
  EXPECT_TRUE(same_bits(store.params().data(), a.store.params().data(), store.size()));
  EXPECT_TRUE(same_bits(m.data(), a.m.data(), m.size()));
  EXPECT_TRUE(same_bits(v.data(), a.v.data(), v.size()));
  EXPECT_GT(store.size(), store.num_parameters());  // there was padding to zero
  EXPECT_EQ(store.params()[store.entries()[0].size], 0.0f);

  // Each restored generator continues its rank's stream exactly.
  for (int r = 0; r < 3; ++r) {
    Rng restored(999);
    restored.set_state(meta.rng_states[static_cast<size_t>(r)]);
    Rng original = a.rngs[static_cast<size_t>(r)];
    for (int k = 0; k < 50; ++k) ASSERT_EQ(restored.next_u64(), original.next_u64()) << r;
  }
  EXPECT_NE(meta.rng_states[0], meta.rng_states[1]);

  EXPECT_EQ(read_checkpoint_meta(path), a.meta);
}

// The schedules' state round-trips exactly; a file without it (written before it was stored)
// reads as a fresh run's; a state no run could write is refused, naming the file.
TEST(Checkpoint, ScheduleStateRoundTripsAndOlderFilesReadAsFresh) {
  TempDir dir;
  State a(12);
  a.meta.plateau.scale = 0.25;
  a.meta.plateau.best = 101.5;
  a.meta.plateau.bad_evaluations = 2;
  a.meta.plateau.cooldown_left = 1;
  a.meta.early.best = 99.125;
  a.meta.early.best_step = 1200;
  a.meta.early.bad_evaluations = 3;
  a.meta.epoch_loss_sum = 12345.678;
  a.meta.epoch_loss_count = 96;
  const std::string path = dir.file("ckpt.h5");
  a.write(path);
  EXPECT_EQ(read_checkpoint_meta(path), a.meta);

  const char* names[] = {
      "lr_scale",        "plateau_best",  "plateau_bad_evaluations", "plateau_cooldown_left",
      "val_best",        "val_best_step", "val_bad_evaluations",     "epoch_loss_sum",
      "epoch_loss_count"};
  {
    h5::File f = h5::open_file(path, true);
    for (const char* n : names) ASSERT_GE(H5Adelete(f, n), 0) << n;
  }
  const CheckpointMeta old = read_checkpoint_meta(path);
  const CheckpointMeta fresh;
  EXPECT_EQ(old.plateau.scale, 1.0);
  EXPECT_EQ(old.plateau.best, fresh.plateau.best);
  EXPECT_TRUE(std::isinf(old.early.best));
  EXPECT_EQ(old.early.best_step, -1);
  EXPECT_EQ(old.early.bad_evaluations, 0);
  EXPECT_EQ(old.epoch_loss_count, 0);
  EXPECT_EQ(old.step, a.meta.step);

  for (const auto& [name, value] :
       {std::pair{"lr_scale", 2.0}, std::pair{"val_best", std::nan("")}}) {
    SCOPED_TRACE(name);
    a.write(path);
    {
      h5::File f = h5::open_file(path, true);
      ASSERT_GE(H5Adelete(f, name), 0);
      h5::write_attribute(f, name, value);
    }
    const std::string msg = message_of<IoError>([&] { read_checkpoint_meta(path); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "impossible schedule state")) << msg;
  }
}

// The update guard's window and counts and the rollback state (passed-over steps included)
// round-trip exactly; a file without them reads as a fresh run's; a state no run could write is
// refused.
TEST(Checkpoint, UpdateGuardStateRoundTripsAndOlderFilesReadAsFresh) {
  TempDir dir;
  State a(12);
  a.meta.guard.losses = {250.5, 249.25, 1e-300, -3.5};
  a.meta.guard.norms = {61.0, 59.5, 70.25, 0.0};
  a.meta.guard.skipped = 7;
  a.meta.rollbacks = 2;
  a.meta.rollback_lr_scale = 0.01;
  a.meta.skipped_steps = {{3, 5}, {9, 9}};
  const std::string path = dir.file("ckpt.h5");
  a.write(path);
  EXPECT_EQ(read_checkpoint_meta(path), a.meta);

  {
    h5::File f = h5::open_file(path, true);
    for (const char* n : {"guard_consecutive", "guard_first_flagged", "guard_skipped", "rollbacks",
                          "rollback_lr_scale"})
      ASSERT_GE(H5Adelete(f, n), 0) << n;
    ASSERT_GE(H5Ldelete(f, "/guard", H5P_DEFAULT), 0);
    ASSERT_GE(H5Ldelete(f, "/skipped_steps", H5P_DEFAULT), 0);
  }
  const CheckpointMeta old = read_checkpoint_meta(path);
  EXPECT_TRUE(old.skipped_steps.empty());
  EXPECT_EQ(old.guard, UpdateGuardState{});
  EXPECT_EQ(old.rollbacks, 0);
  EXPECT_EQ(old.rollback_lr_scale, 1.0);

  for (const auto& [name, value] :
       {std::pair{"rollback_lr_scale", 0.0}, std::pair{"guard_consecutive", 3.0}}) {
    SCOPED_TRACE(name);
    a.write(path);
    {
      h5::File f = h5::open_file(path, true);
      ASSERT_GE(H5Adelete(f, name), 0);
      if (std::string(name) == "guard_consecutive")
        h5::write_attribute(f, name, int64_t{3});  // a streak without its first step
      else
        h5::write_attribute(f, name, value);
    }
    const std::string msg = message_of<IoError>([&] { read_checkpoint_meta(path); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "impossible update-guard state")) << msg;
  }
}

// The moving average round-trips bitwise under /ema/<name> with its decay, update count and
// the evaluated weights; a file without one leaves the caller's buffer as it was; a mismatch
// between the attributes and /ema is refused.
TEST(Checkpoint, MovingAverageRoundTripsAndOlderFilesHaveNone) {
  TempDir dir;
  State a(21);
  std::vector<float> ema(a.store.size(), 0.0f);
  for (const auto& e : a.store.entries())
    for (size_t j = 0; j < e.size; ++j)
      ema[e.offset + j] = a.store.params()[e.offset + j] * 0.5f + 0x1p-20f * static_cast<float>(j);
  a.meta.ema_decay = 0.999;
  a.meta.ema_updates = 1200;
  a.meta.ema_warmup = true;
  a.meta.eval_weights = Weights::Ema;
  const std::string path = dir.file("ema.h5");
  write_checkpoint(path, a.meta, a.store, a.m, a.v, ema);
  EXPECT_EQ(read_checkpoint_meta(path), a.meta);

  State b(99);
  std::vector<float> got(b.store.size(), -1.0f);
  EXPECT_EQ(read_checkpoint(path, b.store, b.m, b.v, got), a.meta);
  for (const auto& e : a.store.entries())
    for (size_t j = 0; j < e.size; ++j)
      ASSERT_EQ(std::bit_cast<uint32_t>(got[e.offset + j]),
                std::bit_cast<uint32_t>(ema[e.offset + j]))
          << e.name << " " << j;
  {  // h5py's view: f["ema/<name>"] in the parameter's shape
    h5::File f = h5::open_file(path);
    const auto& e = a.store.entries().front();
    const auto d = h5::read_dataset<float>(f, "/ema/" + e.name);
    EXPECT_EQ(d.dims, e.shape);
    EXPECT_EQ(d.data.front(), ema[e.offset]);
  }

  // Without a moving average: the buffer stays, the metadata says none.
  const std::string plain = dir.file("plain.h5");
  a.meta.ema_decay = 0;
  a.meta.ema_updates = 0;
  a.meta.ema_warmup = false;
  a.meta.eval_weights = Weights::Raw;
  a.write(plain);
  std::fill(got.begin(), got.end(), -1.0f);
  const CheckpointMeta none = read_checkpoint(plain, b.store, b.m, b.v, got);
  EXPECT_EQ(none.ema_decay, 0.0);
  EXPECT_EQ(none.eval_weights, Weights::Raw);
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](float x) { return x == -1.0f; }));

  // Writing refuses an average without a decay and a decay without an average.
  EXPECT_THROW(write_checkpoint(plain, a.meta, a.store, a.m, a.v, ema), ShapeError);
  a.meta.ema_decay = 0.9;
  EXPECT_THROW(write_checkpoint(plain, a.meta, a.store, a.m, a.v), ShapeError);
  ema[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(write_checkpoint(plain, a.meta, a.store, a.m, a.v, ema), DivergenceError);

  // An ema_decay whose /ema is gone is a damaged file.
  {
    h5::File f = h5::open_file(path, true);
    ASSERT_GE(H5Ldelete(f, "/ema", H5P_DEFAULT), 0);
  }
  const std::string msg = message_of<IoError>([&] { read_checkpoint_meta(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "impossible moving-average state")) << msg;
}

TEST(Checkpoint, LargeConfigRoundTrips) {
  // Beyond HDF5's 64 KiB attribute limit: the config lives in a data set for this reason.
  TempDir dir;
  State a(12);
  for (int i = 0; i < 5000; ++i) a.meta.config_ini += "# line " + std::to_string(i) + " ü\n";
  ASSERT_GT(a.meta.config_ini.size(), 70000u);
  a.write(dir.file("c.h5"));
  EXPECT_EQ(read_checkpoint_meta(dir.file("c.h5")).config_ini, a.meta.config_ini);
}

TEST(Checkpoint, FileHasPyTorchShapesAndDocumentedLayout) {
  TempDir dir;
  const State a(13);
  a.write(dir.file("c.h5"));
  h5::File file = h5::open_file(dir.file("c.h5"));
  EXPECT_EQ(h5::read_string_attribute(file, "format"), "vae_dist-checkpoint");
  EXPECT_EQ(h5::read_int_attribute(file, "format_version"), kCheckpointFormatVersion);
  EXPECT_EQ(h5::read_int_attribute(file, "step"), 1234);
  EXPECT_EQ(h5::read_int_attribute(file, "world_size"), 3);
  EXPECT_EQ(h5::read_attribute<uint64_t>(file, "seed"), 0xfedcba9876543210ULL);
  EXPECT_EQ(h5::read_int_attribute(file, "num_parameters"), 12 + 3 + 15);
  const std::vector<std::string> names = {"/params/decoder.out.weight", "/params/encoder.fc1.bias",
                                          "/params/encoder.fc1.weight"};
  EXPECT_EQ(h5::list_datasets(file, "/params"), names);
  for (const char* group : {"/params/", "/adam/exp_avg/", "/adam/exp_avg_sq/"}) {
    const std::string g = group;
    EXPECT_EQ(h5::dims_of(h5::open_dataset(file, g + "encoder.fc1.weight")),
              (std::vector<int64_t>{3, 4}));
    EXPECT_EQ(h5::dims_of(h5::open_dataset(file, g + "encoder.fc1.bias")),
              (std::vector<int64_t>{3}));
    EXPECT_EQ(h5::dims_of(h5::open_dataset(file, g + "decoder.out.weight")),
              (std::vector<int64_t>{5, 3}));
    EXPECT_EQ(h5::dtype_name(h5::open_dataset(file, g + "decoder.out.weight")), "float32");
  }
  // Row-major values of exactly one entry, no padding: compare with the store's entry.
  const auto w = h5::read_dataset<float>(file, "/params/decoder.out.weight");
  ASSERT_EQ(w.data.size(), 15u);
  EXPECT_TRUE(same_bits(w.data.data(), a.store.param(2), 15));
  const auto m = h5::read_dataset<float>(file, "/adam/exp_avg_sq/encoder.fc1.bias");
  EXPECT_TRUE(same_bits(m.data.data(), a.v.data() + a.store.entries()[1].offset, 3));
  EXPECT_EQ(h5::dims_of(h5::open_dataset(file, "/rng_states")), (std::vector<int64_t>{3}));
  EXPECT_EQ(h5::dtype_name(h5::open_dataset(file, "/rng_states")), "string");
  EXPECT_EQ(h5::dims_of(h5::open_dataset(file, "/config")), (std::vector<int64_t>{1}));
}

TEST(Checkpoint, ModelMismatchIsShapeErrorNamingEveryDifference) {
  TempDir dir;
  const State a(14);
  const std::string path = dir.file("c.h5");
  a.write(path);

  ParamStore wider;
  wider.add("encoder.fc1.weight", {3, 5});
  wider.add("encoder.fc1.bias", {3});
  wider.add("decoder.out.weight", {5, 3});
  wider.finalize();
  std::vector<float> m(wider.size()), v(wider.size());
  std::string msg = message_of<ShapeError>([&] { read_checkpoint(path, wider, m, v); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "encoder.fc1.weight [3, 4] but this model has [3, 5]")) << msg;
  EXPECT_TRUE(contains(msg, "use the model options of the run that wrote it")) << msg;
  // What the writing run used: its model options, and no others.
  EXPECT_TRUE(contains(msg, "(hidden = 400, latent-dim = 20)")) << msg;
  EXPECT_FALSE(contains(msg, "lr = ")) << msg;
  EXPECT_FALSE(contains(msg, "encoder.fc1.bias")) << msg;
  EXPECT_EQ(wider.params()[0], 0.0f);  // nothing was read

  ParamStore other;
  other.add("encoder.fc1.weight", {3, 4});
  other.add("encoder.fc1.bias", {3});
  other.add("decoder.extra.bias", {2});
  other.finalize();
  std::vector<float> m2(other.size()), v2(other.size());
  msg = message_of<ShapeError>([&] { read_checkpoint(path, other, m2, v2); });
  EXPECT_TRUE(contains(msg, "decoder.extra.bias [2]")) << msg;  // missing from the file
  EXPECT_TRUE(contains(msg, "decoder.out.weight [5, 3] which this model lacks")) << msg;

  // Wrong moment buffer sizes are a caller error, reported before the file is opened.
  ParamStore same;
  add_model(same);
  std::vector<float> small(same.size() - 1);
  std::vector<float> ok(same.size());
  EXPECT_THROW(read_checkpoint(path, same, small, ok), ShapeError);
  EXPECT_THROW(read_checkpoint(dir.file("missing.h5"), same, ok, small), ShapeError);
}

// A file of weights as a PyTorch user writes it (f["params/" + key] = tensor.numpy()): no
// format attribute, no moments, values of type T.
template <class T>
void write_plain_weights(const std::string& path, const ParamStore& from,
                         const std::string& skip = "") {
  h5::File file = h5::create_file(path);
  h5::Group params = h5::create_group(file, "params");
  for (size_t i = 0; i < from.entries().size(); ++i) {
    const ParamStore::Entry& e = from.entries()[i];
    if (e.name == skip) continue;
    std::vector<T> values(from.param(i), from.param(i) + e.size);
    h5::write_dataset<T>(params, e.name, values, e.shape);
  }
}

TEST(Checkpoint, WeightsLoadFromACheckpointOrAPlainFileOfParams) {
  TempDir dir;
  const State a(21);
  const std::string ckpt = dir.file("c.h5"), f32 = dir.file("f32.h5"), f64 = dir.file("f64.h5");
  a.write(ckpt);
  write_plain_weights<float>(f32, a.store);
  write_plain_weights<double>(f64, a.store);
  for (const std::string& path : {ckpt, f32, f64}) {
    ParamStore b;
    add_model(b);
    read_weights(path, b);
    for (size_t i = 0; i < b.entries().size(); ++i)
      EXPECT_TRUE(same_bits(b.param(i), a.store.param(i), b.entries()[i].size))
          << path << " " << b.entries()[i].name;
    // Padding between entries stays zero.
    EXPECT_EQ(std::count(b.params().begin(), b.params().end(), 0.0f),
              std::count(a.store.params().begin(), a.store.params().end(), 0.0f));
  }
}

TEST(Checkpoint, WeightsThatDoNotFitAreErrorsNamingTheFileAndTheDifference) {
  TempDir dir;
  const State a(22);
  ParamStore b;
  add_model(b);
  const std::string partial = dir.file("partial.h5");
  write_plain_weights<float>(partial, a.store, "encoder.fc1.bias");
  std::string msg = message_of<ShapeError>([&] { read_weights(partial, b); });
  EXPECT_TRUE(contains(msg, partial)) << msg;
  EXPECT_TRUE(contains(msg, "it has no encoder.fc1.bias but this model has encoder.fc1.bias [3]"))
      << msg;
  EXPECT_FALSE(contains(msg, "decoder.out.weight")) << msg;

  ParamStore wider;
  wider.add("encoder.fc1.weight", {3, 5});
  wider.add("encoder.fc1.bias", {3});
  wider.add("decoder.out.weight", {5, 3});
  wider.add("decoder.out.bias", {5});
  wider.finalize();
  const std::string full = dir.file("full.h5");
  write_plain_weights<float>(full, a.store);
  msg = message_of<ShapeError>([&] { read_weights(full, wider); });
  EXPECT_TRUE(contains(msg, "encoder.fc1.weight [3, 4] but this model has [3, 5]")) << msg;
  EXPECT_TRUE(contains(msg, "decoder.out.bias [5]")) << msg;

  const std::string empty = dir.file("empty.h5");
  h5::create_file(empty);
  msg = message_of<ShapeError>([&] { read_weights(empty, b); });
  EXPECT_TRUE(contains(msg, "it has no encoder.fc1.weight")) << msg;

  const std::string ints = dir.file("ints.h5");
  write_plain_weights<int32_t>(ints, a.store);
  msg = message_of<IoError>([&] { read_weights(ints, b); });
  EXPECT_TRUE(contains(msg, "int32")) << msg;
  EXPECT_TRUE(contains(msg, "float32")) << msg;

  State bad(23);
  bad.store.param(2)[4] = std::numeric_limits<float>::quiet_NaN();
  const std::string nan = dir.file("nan.h5");
  write_plain_weights<float>(nan, bad.store);
  msg = message_of<IoError>([&] { read_weights(nan, b); });
  EXPECT_TRUE(contains(msg, "/params/decoder.out.weight holds nan")) << msg;

  // A float64 beyond float32's range cannot be a parameter either.
  const std::string huge = dir.file("huge.h5");
  {
    h5::File file = h5::create_file(huge);
    h5::Group params = h5::create_group(file, "params");
    for (size_t i = 0; i < a.store.entries().size(); ++i) {
      const ParamStore::Entry& e = a.store.entries()[i];
      std::vector<double> values(a.store.param(i), a.store.param(i) + e.size);
      if (i == 1) values[0] = 1e300;
      h5::write_dataset<double>(params, e.name, values, e.shape);
    }
  }
  msg = message_of<IoError>([&] { read_weights(huge, b); });
  EXPECT_TRUE(contains(msg, "/params/encoder.fc1.bias")) << msg;

  msg = message_of<IoError>([&] { read_weights(dir.file("missing.h5"), b); });
  EXPECT_TRUE(contains(msg, "--init-weights")) << msg;
  touch(dir.file("text.h5"), "not hdf5");
  msg = message_of<IoError>([&] { read_weights(dir.file("text.h5"), b); });
  EXPECT_TRUE(contains(msg, "not an HDF5 file")) << msg;
}

TEST(Checkpoint, BadFilesAreIoErrorsNamingThePath) {
  TempDir dir;
  ParamStore store;
  add_model(store);
  std::vector<float> m(store.size()), v(store.size());
  auto expect_io_error = [&](const std::string& path, const std::string& part) {
    for (int full = 0; full < 2; ++full) {
      const std::string msg = message_of<IoError>([&] {
        if (full)
          read_checkpoint(path, store, m, v);
        else
          read_checkpoint_meta(path);
      });
      EXPECT_TRUE(contains(msg, path)) << msg;
      EXPECT_TRUE(contains(msg, part)) << msg;
    }
  };
  ::testing::internal::CaptureStderr();
  expect_io_error(dir.file("missing.h5"), "does not exist");

  touch(dir.file("text.h5"), "not hdf5 at all\n");
  expect_io_error(dir.file("text.h5"), "not an HDF5 file");

  { h5::File f = h5::create_file(dir.file("plain.h5")); }
  expect_io_error(dir.file("plain.h5"), "not a vae_dist checkpoint");

  const State a(15);
  a.write(dir.file("foreign.h5"));
  h5::write_attribute(h5::open_file(dir.file("foreign.h5"), true), "format", "something-else");
  expect_io_error(dir.file("foreign.h5"), "something-else");

  a.write(dir.file("newer.h5"));
  h5::write_attribute(h5::open_file(dir.file("newer.h5"), true), "format_version",
                      int64_t{kCheckpointFormatVersion + 1});
  expect_io_error(dir.file("newer.h5"), "newer");

  // Damage below the header: a missing moment data set is reported with the path.
  a.write(dir.file("damaged.h5"));
  {
    h5::File f = h5::open_file(dir.file("damaged.h5"), true);
    ASSERT_GE(H5Ldelete(f, "/adam/exp_avg/encoder.fc1.bias", H5P_DEFAULT), 0);
  }
  const std::string msg =
      message_of<IoError>([&] { read_checkpoint(dir.file("damaged.h5"), store, m, v); });
  EXPECT_TRUE(contains(msg, dir.file("damaged.h5"))) << msg;
  EXPECT_TRUE(contains(msg, "/adam/exp_avg/encoder.fc1.bias")) << msg;
  // A missing counter attribute: the HDF5 helper's error gains the path.
  a.write(dir.file("noattr.h5"));
  ASSERT_GE(H5Adelete(h5::open_file(dir.file("noattr.h5"), true), "samples"), 0);
  expect_io_error(dir.file("noattr.h5"), "samples");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(Checkpoint, WriteRejectsBadArgumentsBeforeTouchingDisk) {
  TempDir dir;
  State a(16);
  const std::string path = dir.file("sub/c.h5");
  std::vector<float> short_m(a.store.size() - 1);
  EXPECT_THROW(write_checkpoint(path, a.meta, a.store, short_m, a.v), ShapeError);
  a.meta.rng_states.pop_back();  // 2 states for 3 ranks
  EXPECT_THROW(a.write(path), ShapeError);
  ParamStore unfinished;
  unfinished.add("w", {2});
  EXPECT_THROW(write_checkpoint(path, a.meta, unfinished, {}, {}), ShapeError);
  EXPECT_FALSE(fs::exists(dir.file("sub")));
}

TEST(Checkpoint, StaleTmpIsReplacedAndOverwriteIsWhole) {
  TempDir dir;
  const std::string path = dir.file("c.h5");
  touch(path + ".tmp", "half-written garbage from a killed run");
  const State a(17);
  a.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(read_checkpoint_meta(path), a.meta);

  // Overwriting an existing checkpoint replaces it whole (a different file, new content).
  State b(18);
  b.meta.step = 99;
  b.meta.world_size = 1;
  b.meta.rng_states = {"1 2 3"};
  b.write(path);
  ParamStore store;
  add_model(store);
  std::vector<float> m(store.size()), v(store.size());
  EXPECT_EQ(read_checkpoint(path, store, m, v), b.meta);
  EXPECT_TRUE(same_bits(store.params().data(), b.store.params().data(), store.size()));
  EXPECT_TRUE(same_bits(m.data(), b.m.data(), m.size()));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Checkpoint, FailedWriteLeavesExistingCheckpointIntact) {
  TempDir dir;
  const std::string path = dir.file("c.h5");
  const State a(19);
  a.write(path);
  const auto size_before = fs::file_size(path);

  // Make the write fail part-way: the .tmp name is taken by a non-empty directory, so the
  // HDF5 create fails, as a full disk or a kill would interrupt it.
  fs::create_directories(path + ".tmp/blocker");
  const State b(20);
  const std::string msg = message_of<IoError>([&] { b.write(path); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_EQ(fs::file_size(path), size_before);
  ParamStore store;
  add_model(store);
  std::vector<float> m(store.size()), v(store.size());
  EXPECT_EQ(read_checkpoint(path, store, m, v), a.meta);
  EXPECT_TRUE(same_bits(store.params().data(), a.store.params().data(), store.size()));

  // A path that is a directory: the rename fails, the .tmp is cleaned up.
  fs::create_directories(dir.file("isdir.h5/x"));
  EXPECT_THROW(b.write(dir.file("isdir.h5")), IoError);
  EXPECT_FALSE(fs::exists(dir.file("isdir.h5.tmp")));
  EXPECT_TRUE(fs::exists(dir.file("isdir.h5/x")));
}

TEST(Checkpoint, FileNamesAreZeroPaddedAndSortByStep) {
  EXPECT_EQ(checkpoint_file_name(1234), "checkpoint_step000001234.h5");
  EXPECT_EQ(checkpoint_file_name(0), "checkpoint_step000000000.h5");
  const std::vector<int64_t> steps = {0, 1, 9, 10, 99, 100, 1000, 54321, 999999999};
  std::vector<std::string> names;
  for (int64_t s : steps) names.push_back(checkpoint_file_name(s));
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, names);
  EXPECT_THROW(checkpoint_file_name(-1), ShapeError);
}

TEST(Checkpoint, FindLatestPicksHighestStepByName) {
  TempDir dir;
  const State a(21);
  for (int64_t step : {20, 3, 100, 7}) a.write(dir.file(checkpoint_file_name(step)));
  // Decoys: a higher-step .tmp, unrelated names, a directory with a checkpoint name.
  touch(dir.file("checkpoint_step000000500.h5.tmp"));
  touch(dir.file("checkpoint_step000000900.h5.bak"));
  touch(dir.file("xcheckpoint_step000000800.h5"));
  touch(dir.file("checkpoint_stepabc.h5"));
  touch(dir.file("checkpoint_step.h5"));
  touch(dir.file("checkpoint_step-700.h5"));
  touch(dir.file("notes.txt"));
  a.write(dir.file(kBestCheckpointFile));  // best.h5 is never "latest"
  fs::create_directories(dir.file("checkpoint_step000000600.h5"));
  EXPECT_EQ(find_latest_checkpoint(dir.path().string()), dir.file("checkpoint_step000000100.h5"));
  // The number decides, not the text: a 10-digit step beats 9-digit names.
  touch(dir.file("checkpoint_step1000000000.h5"));
  EXPECT_EQ(find_latest_checkpoint(dir.path().string()), dir.file("checkpoint_step1000000000.h5"));
}

TEST(Checkpoint, FindLatestInEmptyOrMissingDirIsIoError) {
  TempDir dir;
  touch(dir.file("notes.txt"));
  touch(dir.file("checkpoint_step000000005.h5.tmp"));
  std::string msg = message_of<IoError>([&] { find_latest_checkpoint(dir.path().string()); });
  EXPECT_TRUE(contains(msg, dir.path().string())) << msg;
  EXPECT_TRUE(contains(msg, "nothing to resume")) << msg;
  msg = message_of<IoError>([&] { find_latest_checkpoint(dir.file("nope")); });
  EXPECT_TRUE(contains(msg, dir.file("nope"))) << msg;
}

// A run directory holding only best.h5: "latest" never takes it, and the message says how to.
TEST(Checkpoint, FindLatestWithOnlyBestNamesIt) {
  TempDir dir;
  touch(dir.file(kBestCheckpointFile));
  const std::string msg = message_of<IoError>([&] { find_latest_checkpoint(dir.path().string()); });
  EXPECT_TRUE(contains(msg, "--resume latest never takes " + dir.file("best.h5"))) << msg;
  EXPECT_TRUE(contains(msg, "--resume " + dir.file("best.h5") + " --out ")) << msg;
}

TEST(Checkpoint, PruneKeepsExactlyTheNewestK) {
  TempDir dir;
  for (int64_t step : {40, 10, 50, 20, 30}) touch(dir.file(checkpoint_file_name(step)));
  touch(dir.file("checkpoint_step000000060.h5.tmp"));  // stale leftover: removed
  touch(dir.file("notes.txt"));
  touch(dir.file("model.h5"));
  touch(dir.file(kBestCheckpointFile));  // never pruned
  touch(dir.file("checkpoint_step000000001.h5.bak"));
  auto names = [&] {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir.path()))
      out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  prune_checkpoints(dir.path().string(), 5);  // nothing beyond 5: only the .tmp goes
  EXPECT_EQ(names().size(), 9u);
  EXPECT_FALSE(fs::exists(dir.file("checkpoint_step000000060.h5.tmp")));
  prune_checkpoints(dir.path().string(), 2);
  EXPECT_EQ(names(),
            (std::vector<std::string>{"best.h5", "checkpoint_step000000001.h5.bak",
                                      "checkpoint_step000000040.h5", "checkpoint_step000000050.h5",
                                      "model.h5", "notes.txt"}));
  prune_checkpoints(dir.path().string(), 1);
  EXPECT_TRUE(fs::exists(dir.file("checkpoint_step000000050.h5")));
  EXPECT_FALSE(fs::exists(dir.file("checkpoint_step000000040.h5")));
  EXPECT_EQ(names().size(), 5u);
  EXPECT_THROW(prune_checkpoints(dir.path().string(), 0), ShapeError);
  EXPECT_NO_THROW(prune_checkpoints(dir.file("missing"), 3));
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void put_bytes(const std::string& path, const char* data, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(n));
}

TEST(Checkpoint, WriteRefusesNonFiniteParametersAndMoments) {
  TempDir dir;
  for (int where = 0; where < 3; ++where) {
    State a(3);
    if (where == 0) a.store.param(2)[4] = std::numeric_limits<float>::quiet_NaN();
    if (where == 1) a.m[a.store.entries()[1].offset] = std::numeric_limits<float>::infinity();
    if (where == 2) a.v[0] = -1.0f;
    const std::string path = dir.file(checkpoint_file_name(7));
    const std::string msg = message_of<DivergenceError>([&] { a.write(path); });
    EXPECT_TRUE(contains(msg, path)) << msg;
    EXPECT_TRUE(contains(msg, where == 0   ? "params/decoder.out.weight"
                              : where == 1 ? "adam/exp_avg/encoder.fc1.bias"
                                           : "adam/exp_avg_sq/encoder.fc1.weight"))
        << msg;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
}

TEST(Checkpoint, EveryDataSetCarriesAChecksum) {
  TempDir dir;
  const State a(5);
  const std::string path = dir.file("c.h5");
  a.write(path);
  h5::File f = h5::open_file(path);
  for (const char* group : {"/params", "/adam/exp_avg", "/adam/exp_avg_sq"})
    for (const std::string& name : h5::list_datasets(f, group))
      EXPECT_TRUE(h5::has_fletcher32(h5::open_dataset(f, name))) << name;
  EXPECT_TRUE(h5::has_fletcher32(h5::open_dataset(f, "/data_shape")));
  EXPECT_TRUE(h5::has_fletcher32(h5::open_dataset(f, "/config")));
  EXPECT_TRUE(h5::has_fletcher32(h5::open_dataset(f, "/rng_states")));
}

TEST(Checkpoint, StandardizationStatisticsRoundTripWithChecksums) {
  TempDir dir;
  State a(8);
  a.meta.scaling.mean = {1e4, -3.5, 0.0, 2.5e-7};
  a.meta.scaling.std = {1e-2, 1.0, 1.0, 3.0e-9};
  const std::string path = dir.file("s.h5");
  a.write(path);
  EXPECT_EQ(read_checkpoint_meta(path), a.meta);
  h5::File f = h5::open_file(path);
  for (const char* name : {"/standardize/mean", "/standardize/std"}) {
    EXPECT_TRUE(h5::has_fletcher32(h5::open_dataset(f, name))) << name;
    EXPECT_EQ(h5::dtype_of(h5::open_dataset(f, name)), h5::DType::Float64) << name;
  }
  // Files without them (older ones, or runs without --standardize) read as empty.
  const State b(8);
  b.write(dir.file("plain.h5"));
  const CheckpointMeta plain = read_checkpoint_meta(dir.file("plain.h5"));
  EXPECT_TRUE(plain.scaling.mean.empty());
  EXPECT_TRUE(plain.scaling.std.empty());
  // Statistics of different lengths are refused before the file is touched.
  a.meta.scaling.std.pop_back();
  EXPECT_THROW(a.write(dir.file("bad.h5")), ShapeError);
  EXPECT_FALSE(fs::exists(dir.file("bad.h5")));
}

// As a user would with h5py: one weight set to NaN (HDF5 recomputes the checksum on write).
TEST(Checkpoint, ReadRefusesANonFiniteValueWrittenIntoTheFile) {
  TempDir dir;
  const State a(5);
  const std::string path = dir.file("c.h5");
  a.write(path);
  {
    h5::File f = h5::open_file(path, true);
    h5::Dataset d = h5::open_dataset(f, "/params/encoder.fc1.bias");
    std::vector<float> bias(3);
    h5::read_all(d, H5T_NATIVE_FLOAT, bias.data());
    bias[1] = std::numeric_limits<float>::quiet_NaN();
    h5::write_all(d, H5T_NATIVE_FLOAT, bias.data());
  }
  ParamStore store;
  add_model(store);
  std::vector<float> m(store.size()), v(store.size());
  const std::string msg = message_of<IoError>([&] { read_checkpoint(path, store, m, v); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "params/encoder.fc1.bias holds nan")) << msg;
}

// A flipped bit in a weight's stored bytes: the Fletcher-32 check names the file and data set.
TEST(Checkpoint, ReadRefusesValuesThatDoNotMatchTheirChecksum) {
  TempDir dir;
  const State a(5);
  const std::string path = dir.file("c.h5");
  a.write(path);
  std::vector<char> bytes = file_bytes(path);
  const float needle = a.store.param(2)[7];
  const auto at = std::search(bytes.begin(), bytes.end(), reinterpret_cast<const char*>(&needle),
                              reinterpret_cast<const char*>(&needle) + 4);
  ASSERT_NE(at, bytes.end());
  at[1] ^= 0x01;
  put_bytes(path, bytes.data(), bytes.size());
  ParamStore store;
  add_model(store);
  std::vector<float> m(store.size()), v(store.size());
  const std::string msg = message_of<IoError>([&] { read_checkpoint(path, store, m, v); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "/params/decoder.out.weight")) << msg;
  EXPECT_TRUE(contains(msg, "checksum")) << msg;
}

// Leaves the blocks malloc hands out next, of every size it caches per thread (up to 1 KB),
// full of garbage, as in a long run. HDF5 1.10's crash on a damaged link heap was a free of
// pointers it had never set, which a young process's zeroed memory hides.
void fill_free_memory() {
  void* (*volatile alloc)(size_t) = std::malloc;  // volatile: not optimised away
  std::vector<void*> blocks;
  for (size_t size = 16; size <= 1024; size += 16)
    for (int k = 0; k < 7; ++k) {
      blocks.push_back(alloc(size));
      std::memset(blocks.back(), 0x5a, size);
    }
  for (void* p : blocks) std::free(p);
}

// Loads damaged copies of a checkpoint written from `a`: each must be either a vd::Error naming
// the file or (where the byte carried nothing) a load identical to the original, and leave no
// HDF5 object open (an object left open on a failure path outlives the run, past MPI_Finalize).
// The copy at `bad` is damaged in place, never rewritten whole: a file truncated and written
// again is flushed to disk when closed (ext4), which made a sweep wait on the disk.
// Before each load the freed memory malloc hands out first is garbage, as in a long run.
class DamageCheck {
 public:
  DamageCheck(const State& a, Model model, std::vector<char> bytes, std::string bad)
      : a_(a), model_(model), bytes_(std::move(bytes)), bad_(std::move(bad)) {
    put_bytes(bad_, bytes_.data(), bytes_.size());
  }
  // Flips every bit of the byte at `at` (so even a flag byte changes), checks, restores it.
  void flipped(size_t at) {
    put_byte(at, static_cast<char>(~bytes_[at]));
    check("byte " + std::to_string(at) + " of " + std::to_string(bytes_.size()) + " flipped");
    put_byte(at, bytes_[at]);
  }
  // Cuts the copy to len bytes; lengths must come in decreasing order.
  void truncated(size_t len) {
    fs::resize_file(bad_, len);
    check("truncated to " + std::to_string(len) + " bytes");
  }
  void check(const std::string& what) {
    fill_free_memory();
    ParamStore store;
    model_(store);
    std::vector<float> m(store.size()), v(store.size());
    try {
      const CheckpointMeta meta = read_checkpoint(bad_, store, m, v);
      ++intact;
      ASSERT_EQ(meta, a_.meta) << what;
      ASSERT_TRUE(same_bits(store.params().data(), a_.store.params().data(), store.size())) << what;
      ASSERT_TRUE(same_bits(m.data(), a_.m.data(), m.size())) << what;
      ASSERT_TRUE(same_bits(v.data(), a_.v.data(), v.size())) << what;
    } catch (const Error& e) {
      ++errors;
      ASSERT_TRUE(contains(e.what(), bad_)) << what << ": " << e.what();
    }
    ASSERT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0) << what << " left HDF5 objects open";
  }
  int errors = 0, intact = 0;

 private:
  void put_byte(size_t at, char value) {
    std::fstream f(bad_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(value);
  }
  const State& a_;
  Model model_;
  std::vector<char> bytes_;
  std::string bad_;
};

// Damage anywhere: every flipped byte and every truncation is either a vd::Error naming the
// file, or (where the byte carried nothing) a load identical to the original. Never a crash,
// never silently different values. The model is an MLP's 10 entries, more links per group
// than HDF5 keeps in a group's header by default: the groups' links are checked here too.
// One rank's RNG state, not three: the states are most of the bytes, all under one checksum.
TEST(Checkpoint, DamagedOrTruncatedFilesFailClearlyOrLoadIntact) {
  TempDir dir;
  const State a(9, add_mlp_model, 1);
  const std::string good = dir.file("good.h5");
  a.write(good);
  const std::vector<char> bytes = file_bytes(good);
  ASSERT_GT(bytes.size(), 8192u);
  DamageCheck check(a, add_mlp_model, bytes, dir.file("bad.h5"));
  // Every byte of the last 8 KB, where HDF5 puts the metadata it writes at close (there a
  // damaged link crashed HDF5 1.10 when the groups kept their links in a fractal heap).
  // Elsewhere every fourth byte; the start shifts by one each time so every position within
  // a 4-byte field is hit. (Every byte passes too.)
  const size_t tail = bytes.size() - 8192;
  for (size_t k = 0, at = 0; at < bytes.size(); ++k, at = at < tail ? 4 * k + k % 4 : at + 1) {
    check.flipped(at);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Truncated to many lengths, down to the empty file.
  for (size_t len = (bytes.size() - 1) / 13 * 13;; len -= 13) {
    check.truncated(len);
    if (::testing::Test::HasFatalFailure() || len == 0) break;
  }
  if (::testing::Test::HasFatalFailure()) return;
  EXPECT_GT(check.errors, 0);
  std::printf("%zu-byte checkpoint: %d damaged or truncated copies refused, %d loaded intact\n",
              bytes.size(), check.errors, check.intact);
  RecordProperty("file_bytes", static_cast<int>(bytes.size()));
  RecordProperty("errors", check.errors);
  RecordProperty("intact_loads", check.intact);
}

// The groups of a checkpoint keep every link in their (checksummed) object headers, not in a
// fractal heap (HDF5's default past 8 links), whose damaged blocks HDF5 1.10 mishandles when it
// lists a group in name order, as h5py does too.
TEST(Checkpoint, GroupsKeepTheirLinksInTheirCheckedHeaders) {
  TempDir dir;
  const State a(9, add_mlp_model);
  a.write(dir.file("c.h5"));
  h5::File f = h5::open_file(dir.file("c.h5"));
  for (const char* group : {"/", "/params", "/adam", "/adam/exp_avg", "/adam/exp_avg_sq"}) {
    H5G_info_t info{};
    ASSERT_GE(H5Gget_info_by_name(f, group, &info, H5P_DEFAULT), 0) << group;
    EXPECT_EQ(info.storage_type, H5G_STORAGE_TYPE_COMPACT) << group;
  }
  EXPECT_EQ(h5::list_datasets(f, "/params").size(), 10u);
}

// Checkpoints written before the groups kept their links in their headers hold the links of
// /params and the moments in fractal heaps. A damaged byte in a heap's block is a clear error,
// never a crash: when such a block failed its checksum, HDF5 1.10 listing the group in name
// order freed pointers it had never set (h5::list_datasets lists in native order). With the
// garbage of fill_free_memory, the old listing crashes this test.
TEST(Checkpoint, OlderFilesWithLinksInHeapsFailClearlyWhenTheHeapIsDamaged) {
  TempDir dir;
  const State a(9, add_mlp_model, 1);
  a.write(dir.file("new.h5"));
  const std::string old = dir.file("old.h5");
  write_heap_link_copy(dir.file("new.h5"), old);
  {
    h5::File f = h5::open_file(old);
    H5G_info_t info{};
    ASSERT_GE(H5Gget_info_by_name(f, "/params", &info, H5P_DEFAULT), 0);
    ASSERT_EQ(info.storage_type, H5G_STORAGE_TYPE_DENSE);
  }
  const std::vector<char> bytes = file_bytes(old);
  DamageCheck check(a, add_mlp_model, bytes, dir.file("bad.h5"));
  check.check("the undamaged copy");
  ASSERT_EQ(check.intact, 1);
  // Every byte of every heap block (one per group), 512 bytes each (HDF5's first block size).
  const std::vector<size_t> blocks = heap_block_offsets(bytes);
  ASSERT_EQ(blocks.size(), 3u);
  for (size_t start : blocks)
    for (size_t at = start; at < std::min(start + 512, bytes.size()); ++at) {
      check.flipped(at);
      if (::testing::Test::HasFatalFailure()) return;
    }
  EXPECT_EQ(check.intact, 1);  // the blocks carry checksums: no flip in them loads
  std::printf("%zu-byte older checkpoint: %d damaged copies refused, %d loaded intact\n",
              bytes.size(), check.errors, check.intact);
}

}  // namespace
}  // namespace vd
