// End-to-end refusals at vae_dist's start-up (issue 21, items 7 and 8): sizes too large for
// memory fail before the first step with exit code 2, naming the option, its bytes and the
// memory available; a conditional model's classes come from the training labels alone, so a
// test or validation label beyond them is refused naming the file, row and label (it sized the
// model and the run was OOM-killed).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

// A small run on 1x8x8 images of 4 classes; `extra` adds options or replaces the defaults here.
std::string run_args(const std::string& data, const std::string& test, const std::string& out,
                     const std::string& extra) {
  std::string args = " --data " + shell_quote(data) + " --test-data " + shell_quote(test) +
                     " --out " + shell_quote(out) + " " + extra;
  for (const auto& [key, value] : {std::pair{"--hidden", "16"}, std::pair{"--latent-dim", "2"},
                                   std::pair{"--epochs", "1"}, std::pair{"--batch-size", "8"},
                                   std::pair{"--iw-samples", "0"}, std::pair{"--progress", "false"},
                                   std::pair{"--threads", "1"}, std::pair{"--grid-size", "2"}}) {
    const std::string k = key;
    if (extra.find(k + " ") == std::string::npos) args += " " + k + " " + value;
  }
  return args;
}

// "name<i>": a run directory per case (GCC 12 warns, wrongly, on "literal" + std::string&&).
std::string numbered(std::string name, int i) {
  name += std::to_string(i);
  return name;
}

// Each size too large for memory is refused before training starts, on 1 and 2 ranks. Every
// size needs 160 GB or more, beyond the machines the suite runs on.
TEST(AppStartUp, SizesTooLargeForMemoryAreRefusedBeforeTrainingNamingTheOption) {
  TempDir tmp;
  const std::string data = tmp.file("d.h5");
  write_synthetic(data, 64, 1, 8, 8, 3, SynthDType::UInt8, 4);
  const std::vector<std::pair<std::string, std::string>> cases = {
      // 2e9 rows of noise x 20 floats: 160 GB (with latent-dim 2 it is 16 GB, which fits some
      // machines, and then the run is right to train).
      {"--eval-batch-size 2000000000 --latent-dim 20",
       "--eval-batch-size 2000000000 needs at least 160.0 GB"},
      {"--batch-size 100000000", "--batch-size 100000000 needs at least "},
      {"--encoder 'fc 999999999'", "--encoder 'fc 999999999' needs at least "},
      {"--latent-dim 2000000000", "--latent-dim 2000000000 needs at least "},
      {"--hidden 2000000000", "--hidden 2000000000 needs at least "},
  };
  for (const int ranks : {1, 2})
    for (const auto& [option, said] : cases) {
      const std::string out = tmp.file(numbered("run", ranks));
      const CommandResult r =
          run_command((ranks == 1 ? env_prefix() : mpi_prefix(ranks)) + " " + binary("vae_dist") +
                          run_args(data, data, out, option),
                      120);
      EXPECT_EQ(r.exit_code, 2) << option << "\n" << r.output;
      EXPECT_TRUE(contains(r.output, said)) << option << "\n" << r.output;
      EXPECT_TRUE(contains(r.output, "of memory available to it (")) << r.output;
      EXPECT_TRUE(contains(r.output, "per rank, more than the ")) << r.output;
      EXPECT_FALSE(contains(r.output, "bad_alloc")) << r.output;
      EXPECT_FALSE(contains(r.output, "epoch 1/1")) << "training started:\n" << r.output;
    }
  // A k beyond the option's range (its weights would fit, but the bound would never end).
  const CommandResult r =
      run_command(env_prefix() + " " + binary("vae_dist") +
                      run_args(data, data, tmp.file("iw"), "--iw-samples 2000000000"),
                  60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output,
                       "--iw-samples: 2000000000 is out of range; it must be an "
                       "integer in 0..1000000"))
      << r.output;
}

// The classes of --conditional --classes 0 are the training labels' (0..3 here); a test or
// validation label of 1000000 (or -1) is refused at start-up, naming the file, the row, the
// label and the class count, on 1 and 2 ranks (the bad row in rank 1's half).
TEST(AppStartUp, ATestLabelBeyondTheTrainingClassesIsRefused) {
  TempDir tmp;
  const std::string data = tmp.file("train.h5");
  write_synthetic(data, 64, 1, 8, 8, 3, SynthDType::UInt8, 4);
  const auto with_label = [&](const std::string& path, int64_t row, int32_t label) {
    h5::File in = h5::open_file(data);
    const auto images = h5::read_dataset<uint8_t>(in, "/images");
    std::vector<int32_t> labels = h5::read_dataset<int32_t>(in, "/labels").data;
    labels[static_cast<size_t>(row)] = label;
    h5::File out = h5::create_file(path);
    h5::write_dataset<uint8_t>(out, "/images", images.data, images.dims);
    h5::write_dataset<int32_t>(out, "/labels", labels,
                               std::vector<int64_t>{static_cast<int64_t>(labels.size())});
  };
  const std::string test = tmp.file("test.h5"), negative = tmp.file("negative.h5");
  with_label(test, 50, 1000000);
  with_label(negative, 7, -1);
  for (const int ranks : {1, 2}) {
    const std::string prefix = (ranks == 1 ? env_prefix() : mpi_prefix(ranks)) + " ";
    CommandResult r =
        run_command(prefix + binary("vae_dist") +
                        run_args(data, test, tmp.file(numbered("t", ranks)), "--conditional"),
                    120);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(contains(r.output, "the test data '" + test +
                                       "' has label 1000000 at row 50, but the model has 4 "
                                       "classes (0..3, from the training labels of '" +
                                       data + "')"))
        << r.output;
    EXPECT_FALSE(contains(r.output, "bad_alloc")) << r.output;
    EXPECT_FALSE(contains(r.output, "epoch 1/1")) << r.output;
    r = run_command(prefix + binary("vae_dist") +
                        run_args(data, "", tmp.file(numbered("v", ranks)),
                                 "--conditional --val-data " + shell_quote(negative)),
                    120);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(contains(r.output, "the validation data '" + negative +
                                       "' has label -1 at row 7, but the model has 4 classes"))
        << r.output;
  }
}

}  // namespace
}  // namespace vd::testing
