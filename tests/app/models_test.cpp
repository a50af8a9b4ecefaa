// End-to-end runs of the model variants through the vae_dist binary: the conv VAE on
// Fashion-MNIST (1 and 2 ranks), the conditional model with its class grid, RGB data with
// colour grids under the Gaussian likelihood on float data, and the errors a user meets
// (no labels for --conditional, a decoder that does not end in the data's shape), and block
// models with spatial latents on 1-D signals and 3-D volumes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "data/idx_files.hpp"
#include "io/image_grid.hpp"
#include "io/png.hpp"
#include "support/fashion_mnist.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

namespace fs = std::filesystem;

// The Fashion-MNIST conv model of configs/fashion_conv.cfg, 40 steps of batch 32.
std::string conv_run(const std::string& launcher, const std::string& out,
                     const std::string& extra = "") {
  return "cd " + shell_quote(VD_SOURCE_DIR) + " && " + launcher + " " + binary("vae_dist") +
         " --config configs/fashion_conv.cfg --out " + shell_quote(out) +
         " --max-steps 40 --batch-size 32 --log-every 10 --iw-samples 0 --progress false " +
         "--threads 1 --eval-batch-size 500 " + extra;
}

void expect_loss_falls(const std::string& out) {
  const auto train = metrics_rows(out + "/metrics.csv", "train");
  ASSERT_EQ(train.size(), 4u) << read_text(out + "/metrics.csv");
  const double first = std::stod(train.front()[4]), last = std::stod(train.back()[4]);
  EXPECT_LT(last, 0.8 * first) << "the loss fell only from " << first << " to " << last;
  const auto test = metrics_rows(out + "/metrics.csv", "test");
  ASSERT_EQ(test.size(), 1u);
  EXPECT_TRUE(std::isfinite(std::stod(test[0][4])));
}

TEST(AppModels, ConvVaeTrainsOnFashionMnistOnOneAndTwoRanks) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  for (int ranks : {1, 2}) {
    const std::string out = tmp.file("conv" + std::to_string(ranks));
    const CommandResult r =
        run_command(conv_run(ranks == 1 ? env_prefix() : mpi_prefix(2), out), 240);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // The start-up table names the layers and their output shapes.
    EXPECT_TRUE(contains(r.output, "encoder.conv2")) << r.output;
    EXPECT_TRUE(contains(r.output, "64x7x7")) << r.output;
    expect_loss_falls(out);
    const PngImage png = read_png(out + "/samples_epoch001.png");
    EXPECT_EQ(png.width, 242);
    EXPECT_EQ(png.channels, 1);
  }
}

TEST(AppModels, ConditionalConvWritesOneGridRowPerClass) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  const std::string out = tmp.file("cvae");
  const CommandResult r = run_command(conv_run(env_prefix(), out, "--conditional"), 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "encoder.label")) << r.output;
  expect_loss_falls(out);
  // 10 classes x 8 samples: 10 rows of 28 + 2-pixel padding.
  const PngImage png = read_png(out + "/samples_class_epoch001.png");
  EXPECT_EQ(png.width, 8 * 28 + 9 * 2);
  EXPECT_EQ(png.height, 10 * 28 + 11 * 2);
  // A resumed conditional run keeps the classes from its config.ini.
  const CommandResult again = run_command(
      "cd " + shell_quote(VD_SOURCE_DIR) + " && " + env_prefix() + " " + binary("vae_dist") +
          " --config " + shell_quote(out + "/config.ini") + " --resume latest --max-steps 50",
      240);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "checkpoint_step000000040.h5: epoch 1, step 40"))
      << again.output;
  EXPECT_TRUE(contains(again.output, "model conditional on 10 classes")) << again.output;
  // It goes on from step 40 to 50 in the same metrics file, and writes its checkpoint.
  const auto train = metrics_rows(out + "/metrics.csv", "train");
  ASSERT_EQ(train.size(), 5u) << read_text(out + "/metrics.csv");
  EXPECT_EQ(train.back()[2], "50");
  EXPECT_EQ(train.back()[3], std::to_string(50 * 32));
  EXPECT_TRUE(std::isfinite(std::stod(train.back()[4])));
  EXPECT_TRUE(fs::is_regular_file(out + "/checkpoint_step000000050.h5"));
}

TEST(AppModels, RgbFloatDataTrainsAConvGaussianVaeWithColourGrids) {
  TempDir tmp;
  const std::string data = tmp.file("rgb.h5");
  const CommandResult made =
      run_command(binary("vae_data") + " synth --out " + shell_quote(data) +
                      " --n 256 --channels 3 --height 16 --width 16 --dtype float32 --seed 3",
                  60);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string out = tmp.file("rgb");
  const CommandResult r = run_command(
      env_prefix() + " " + binary("vae_dist") + " --data " + shell_quote(data) + " --test-data " +
          shell_quote(data) + " --out " + shell_quote(out) +
          " --likelihood gaussian --gaussian-sigma 0.1 --latent-dim 8 --epochs 2 --batch-size 32"
          " --log-every 4 --iw-samples 0 --progress false --threads 1"
          " --encoder 'conv 16 k4 s2 p1, relu, conv 32 k4 s2 p1, relu, flatten, fc 64, relu'"
          " --decoder 'fc 64, relu, fc 512, relu, reshape 32x4x4, convt 16 k4 s2 p1, relu,"
          " convt 3 k4 s2 p1'",
      240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto train = metrics_rows(out + "/metrics.csv", "train");
  ASSERT_GE(train.size(), 2u);
  EXPECT_LT(std::stod(train.back()[4]), std::stod(train.front()[4]));
  for (const char* name : {"samples_epoch002.png", "recon_epoch002.png"}) {
    const PngImage png = read_png(out + "/" + name);
    EXPECT_EQ(png.channels, 3) << name;
    EXPECT_EQ(png.width, 8 * 16 + 9 * 2) << name;
  }
}

// vae_data synth's 1-D signals and 3-D volumes train block models with spatial latents (the
// 1-D run on 2 ranks), their grids drawn as curves and as middle slices, and say so.
TEST(AppModels, SignalsAndVolumesTrainBlockModelsWithSpatialLatents) {
  TempDir tmp;
  struct Case {
    std::string name, synth, model, note;
    int ranks, cell_w, cell_h, channels;
  };
  const Case cases[] = {
      {"signals", "--channels 2 --length 32",
       " --encoder 'conv 16 k3 p1, res 16 g4, conv 16 k3 s2 p1, attn g4, gn 4, silu'"
       " --latent-shape 2x16"
       " --decoder 'conv 16 k3 p1, res 16 g4, up 2, conv 16 k3 p1, gn 4, silu, conv 2 k3 p1'",
       "pictures: 1-D samples drawn as curves", 2, curve_width(32), kCurveHeight, 3},
      {"volumes", "--depth 8 --height 8 --width 8",
       " --encoder 'conv 8 k3 p1, res 8 g4, conv 8 k3 s2 p1, attn g4, gn 4, silu'"
       " --latent-shape 2x4x4x4"
       " --decoder 'conv 8 k3 p1, res 8 g4, up 2, conv 8 k3 p1, gn 4, silu, conv 1 k3 p1'",
       "pictures: 3-D samples drawn as their middle slices (depth 4 of 0..7)", 1, 8, 8, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string data = tmp.file(c.name + ".h5");
    const CommandResult made = run_command(
        binary("vae_data") + " synth --out " + shell_quote(data) + " --n 256 --seed 4 " + c.synth,
        60);
    ASSERT_EQ(made.exit_code, 0) << made.output;
    const std::string out = tmp.file(c.name);
    const CommandResult r = run_command(
        (c.ranks == 1 ? env_prefix() : mpi_prefix(c.ranks)) + " " + binary("vae_dist") +
            " --data " + shell_quote(data) + " --test-data " + shell_quote(data) + " --out " +
            shell_quote(out) + " --epochs 2 --batch-size 16 --lr 2e-3 --log-every 4" +
            " --iw-samples 0 --progress false --threads 1 --grid-size 4" + c.model,
        300);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, c.note)) << r.output;
    const auto train = metrics_rows(out + "/metrics.csv", "train");
    ASSERT_GE(train.size(), 4u);
    EXPECT_LT(std::stod(train.back()[4]), std::stod(train.front()[4]));
    for (const char* name : {"samples_epoch002.png", "recon_epoch002.png"}) {
      const PngImage png = read_png(out + "/" + name);
      EXPECT_EQ(png.channels, c.channels) << name;
      EXPECT_EQ(png.width, 4 * c.cell_w + 5 * 2) << name;
      EXPECT_EQ(png.height, 4 * c.cell_h + 5 * 2) << name;
      EXPECT_TRUE(contains(png.description, c.note.substr(10))) << png.description;
    }
  }
}

TEST(AppModels, ConditionalWithoutLabelsAndMisfitDecoderAreClearErrors) {
  TempDir tmp;
  const std::string data = tmp.file("nolabels.h5");
  // An HDF5 file with /images only: 8 images of 4 x 4, imported from IDX without labels.
  std::vector<uint8_t> pixels(8 * 16);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  write_idx(tmp.file("img.idx"), {8, 4, 4}, pixels, false);
  const CommandResult made =
      run_command(binary("vae_data") + " import-idx --images " + shell_quote(tmp.file("img.idx")) +
                      " --out " + shell_quote(data),
                  60);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string base = env_prefix() + " " + binary("vae_dist") + " --data " +
                           shell_quote(data) + " --test-data '' --out " +
                           shell_quote(tmp.file("o")) + " --progress false --epochs 1";
  const CommandResult no_labels = run_command(base + " --conditional", 60);
  EXPECT_NE(no_labels.exit_code, 0);
  EXPECT_TRUE(contains(no_labels.output, "/labels")) << no_labels.output;
  EXPECT_TRUE(contains(no_labels.output, "--conditional")) << no_labels.output;
  const CommandResult misfit =
      run_command(base + " --encoder 'conv 2 k3 s1 p1, relu' --decoder 'fc 16, reshape 1x4x2'", 60);
  EXPECT_EQ(misfit.exit_code, 2) << misfit.output;
  EXPECT_TRUE(contains(misfit.output, "reshape 1x4x2")) << misfit.output;
  const CommandResult wrong_out =
      run_command(base + " --encoder 'conv 2 k3 s1 p1, relu' --decoder 'fc 9, reshape 1x3x3'", 60);
  EXPECT_EQ(wrong_out.exit_code, 2) << wrong_out.output;
  EXPECT_TRUE(contains(wrong_out.output, "1x3x3")) << wrong_out.output;
  EXPECT_TRUE(contains(wrong_out.output, "1x4x4")) << wrong_out.output;
}

}  // namespace
}  // namespace vd::testing
