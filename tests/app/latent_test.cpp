// End-to-end runs of vae_latent on checkpoints that vae_dist trains in a few steps on synthetic
// data: encode on 2 and 3 ranks equals encode on 1 rank bit for bit; arithmetic's class means
// equal the means of the encoded rows of each class; every picture has its grid's size; the
// conditional model works; the errors a user meets are clear. Also vae_dist's test rows
// carry the active units and the KL per dimension.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "io/png.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

// Synthetic 1 x 8 x 8 images of 4 classes, and two models trained on them for 30 steps:
// an MLP with latent-dim 2 and a conditional MLP with latent-dim 3.
class AppLatent : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    data_ = dir_->file("synth.h5");
    const CommandResult made =
        run_command(binary("vae_data") + " synth --out " + shell_quote(data_) +
                        " --n 203 --channels 1 --height 8 --width 8 "
                        "--classes 4 --seed 2",
                    60);
    ASSERT_EQ(made.exit_code, 0) << made.output;
    for (const auto& [name, extra] :
         {std::pair{"mlp2", "--latent-dim 2"}, std::pair{"cvae3", "--latent-dim 3 --conditional"},
          std::pair{"ema2", "--latent-dim 2 --ema-decay 0.9 --eval-weights ema"}}) {
      const std::string out = dir_->file(name);
      const CommandResult r =
          run_command(env_prefix() + " " + binary("vae_dist") + " --data " + shell_quote(data_) +
                          " --test-data " + shell_quote(data_) + " --out " + shell_quote(out) +
                          " --hidden 32 --epochs 5 --max-steps 30 --batch-size 32 --log-every 10"
                          " --iw-samples 0 --progress false --threads 1 --grid-size 2 " +
                          extra,
                      120);
      ASSERT_EQ(r.exit_code, 0) << r.output;
      log_ += r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string checkpoint(const std::string& model) {
    return dir_->file(model) + "/checkpoint_step000000030.h5";
  }
  // vae_latent SUB --checkpoint (model) ARGS, on `ranks` ranks.
  static CommandResult latent(const std::string& sub, const std::string& model,
                              const std::string& args, int ranks = 1) {
    return run_command((ranks == 1 ? env_prefix() : mpi_prefix(ranks)) + " " +
                           binary("vae_latent") + " " + sub + " --checkpoint " +
                           shell_quote(checkpoint(model)) + " --threads 1 " + args,
                       120);
  }
  static std::string file(const std::string& name) { return dir_->file(name); }

  static TempDir* dir_;
  static std::string data_, log_;
};
TempDir* AppLatent::dir_ = nullptr;
std::string AppLatent::data_, AppLatent::log_;

template <class T>
std::vector<T> read_all(const std::string& path, const std::string& name) {
  h5::File f = h5::open_file(path);
  return h5::read_dataset<T>(f, name).data;
}

TEST_F(AppLatent, TestRowsCarryActiveUnitsAndKlPerDimension) {
  EXPECT_TRUE(contains(log_, "active units ")) << log_;
  const auto rows = metrics_rows(file("mlp2") + "/metrics.csv", "test");
  ASSERT_FALSE(rows.empty());
  const int active = std::stoi(rows.back().at(9));
  EXPECT_GE(active, 0);
  EXPECT_LE(active, 2);
  // Two KL values, which sum to the row's KL.
  const std::string& kl = rows.back().at(10);
  const size_t space = kl.find(' ');
  ASSERT_NE(space, std::string::npos) << kl;
  const double sum = std::stod(kl.substr(0, space)) + std::stod(kl.substr(space + 1));
  EXPECT_NEAR(sum, std::stod(rows.back().at(6)), 1e-4 * std::max(1.0, sum));
}

// A run with --eval-weights ema: vae_latent takes the moving average by default and says so,
// its encodings equal those of a checkpoint whose /params were overwritten with the /ema data
// sets, and --weights raw takes the optimizer's; a checkpoint without an average refuses ema.
TEST_F(AppLatent, MovingAverageIsTheDefaultWhereTheRunEvaluatedItAndSaysSo) {
  EXPECT_TRUE(contains(log_, "test loss")) << log_;
  EXPECT_TRUE(contains(log_, "images, ema weights)")) << log_;
  const std::string avg = file("enc_ema.h5"), raw = file("enc_raw.h5");
  CommandResult r = latent("encode", "ema2", "--out " + shell_quote(avg));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "using the moving average's weights (decay 0.9, 30 updates)"))
      << r.output;
  r = latent("encode", "ema2", "--weights raw --out " + shell_quote(raw));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "the optimizer's weights (not the moving average)")) << r.output;
  {
    h5::File f = h5::open_file(avg);
    EXPECT_EQ(h5::read_string_attribute(f, "weights"), "ema");
    h5::File g = h5::open_file(raw);
    EXPECT_EQ(h5::read_string_attribute(g, "weights"), "raw");
  }
  EXPECT_NE(read_all<float>(avg, "/mu"), read_all<float>(raw, "/mu"));

  // The average by hand: its data sets written over the parameters of a copy.
  const std::string copy = file("ema_as_params.h5");
  std::filesystem::copy_file(checkpoint("ema2"), copy,
                             std::filesystem::copy_options::overwrite_existing);
  {
    h5::File f = h5::open_file(copy, true);
    for (const std::string& name : h5::list_datasets(f, "/ema")) {
      const auto values = h5::read_dataset<float>(f, name).data;
      h5::Dataset d = h5::open_dataset(f, "/params" + name.substr(4));
      h5::write_all(d, H5T_NATIVE_FLOAT, values.data());
    }
  }
  const std::string by_hand = file("enc_by_hand.h5");
  r = run_command(env_prefix() + " " + binary("vae_latent") + " encode --checkpoint " +
                      shell_quote(copy) + " --threads 1 --weights raw --out " +
                      shell_quote(by_hand),
                  120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_all<float>(by_hand, "/mu"), read_all<float>(avg, "/mu"));
  EXPECT_EQ(read_all<float>(by_hand, "/logvar"), read_all<float>(avg, "/logvar"));

  r = latent("encode", "mlp2", "--weights ema --out " + shell_quote(file("no.h5")));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "holds no moving average of the weights")) << r.output;
  r = latent("encode", "mlp2", "--out " + shell_quote(file("plain.h5")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, "using ")) << r.output;
  r = latent("encode", "mlp2", "--weights best --out " + shell_quote(file("no.h5")));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "use auto, raw or ema")) << r.output;
}

TEST_F(AppLatent, EncodeOnTwoAndThreeRanksEqualsOneRankBitForBit) {
  const std::string one = file("enc1.h5");
  CommandResult r = latent("encode", "mlp2", "--batch-size 16 --out " + shell_quote(one));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto mu = read_all<float>(one, "/mu"), logvar = read_all<float>(one, "/logvar");
  ASSERT_EQ(mu.size(), 203u * 2);
  EXPECT_EQ(read_all<int32_t>(one, "/labels").size(), 203u);
  for (int ranks : {2, 3}) {
    const std::string many = file("enc" + std::to_string(ranks) + ".h5");
    r = latent("encode", "mlp2", "--batch-size 16 --out " + shell_quote(many), ranks);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(read_all<float>(many, "/mu"), mu) << ranks << " ranks";
    EXPECT_EQ(read_all<float>(many, "/logvar"), logvar) << ranks << " ranks";
    EXPECT_EQ(read_all<int32_t>(many, "/labels"), read_all<int32_t>(one, "/labels"));
  }
}

// decode: /mean [N, C, H, W] of encode's codes, in [0, 1] for the Bernoulli model, equal to the
// pixels of similar's reconstructions (row 0's second image decodes mu of row 0); a
// conditional model decodes with the codes' labels or --class. The Python package's test
// (tests/python/vae_dist_test.py) compares the values with torch's on every model variant.
TEST_F(AppLatent, DecodeWritesTheMeanOfEveryCode) {
  const std::string enc = file("dec_codes.h5"), dec = file("decoded.h5");
  ASSERT_EQ(latent("encode", "mlp2", "--out " + shell_quote(enc)).exit_code, 0);
  CommandResult r =
      latent("decode", "mlp2", "--latent " + shell_quote(enc) + " --out " + shell_quote(dec));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "/mean [203, 1, 8, 8]")) << r.output;
  {
    h5::File f = h5::open_file(dec);
    const auto mean = h5::read_dataset<float>(f, "/mean");
    ASSERT_EQ(mean.dims, (std::vector<int64_t>{203, 1, 8, 8}));
    for (float v : mean.data) ASSERT_TRUE(v > 0.0f && v < 1.0f) << v;
    const PngImage png = [&] {
      EXPECT_EQ(
          latent("similar", "mlp2", "--index 0 --count 1 --out " + shell_quote(file("sim.png")))
              .exit_code,
          0);
      return read_png(file("sim.png"));
    }();
    // The grid pads every cell by 2 pixels; the reconstruction is the second cell.
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const float v = mean.data[static_cast<size_t>(y * 8 + x)];
        const int pixel = png.pixels[static_cast<size_t>((2 + y) * png.width + 2 + 8 + 2 + x)];
        EXPECT_NEAR(pixel, v * 255.0f, 0.5f + 1e-3f) << y << " " << x;
      }
  }
  const std::string cenc = file("dec_ccodes.h5"), cdec = file("cdecoded.h5");
  ASSERT_EQ(latent("encode", "cvae3", "--out " + shell_quote(cenc)).exit_code, 0);
  r = latent("decode", "cvae3", "--latent " + shell_quote(cenc) + " --out " + shell_quote(cdec));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_all<int32_t>(cdec, "/labels"), read_all<int32_t>(cenc, "/labels"));
  r = latent("decode", "cvae3",
             "--latent " + shell_quote(cenc) + " --class 1 --out " + shell_quote(cdec));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_all<int32_t>(cdec, "/labels"), std::vector<int32_t>(203, 1));

  // Codes of another width, a missing data set, a file that is not HDF5.
  r = latent("decode", "mlp2", "--latent " + shell_quote(cenc) + " --out " + shell_quote(dec));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "/mu has shape [203, 3] but the model's codes are [N, 2]"))
      << r.output;
  r = latent("decode", "mlp2", "--latent " + shell_quote(enc) + " --z z --out " + shell_quote(dec));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "has no data set 'z'")) << r.output;
  r = latent("decode", "mlp2",
             "--latent " + shell_quote(file("sim.png")) + " --out " + shell_quote(dec));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "is not a readable HDF5 file")) << r.output;
  r = latent("decode", "cvae3",
             "--latent " + shell_quote(cenc) + " --class 7 --out " + shell_quote(cdec));
  EXPECT_EQ(r.exit_code, 2) << r.output;  // a ConfigError
  EXPECT_TRUE(contains(r.output, "--class: 7 is not a class of this model")) << r.output;
}

TEST_F(AppLatent, ClassMeansAreTheMeansOfTheEncodedRowsOfEachClass) {
  const std::string enc = file("enc_means.h5"), out = file("arith");
  ASSERT_EQ(latent("encode", "mlp2", "--out " + shell_quote(enc)).exit_code, 0);
  const CommandResult r =
      latent("arithmetic", "mlp2",
             "--out " + shell_quote(out) + " --from 1 --to 2 --count 3 --steps 4", 2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto mu = read_all<float>(enc, "/mu");
  const auto labels = read_all<int32_t>(enc, "/labels");
  const auto means = read_all<float>(out + "/class_means.h5", "/class_means");
  const auto counts = read_all<int64_t>(out + "/class_means.h5", "/class_counts");
  ASSERT_EQ(means.size(), 4u * 2);
  for (int k = 0; k < 4; ++k) {
    double s[2] = {0, 0};
    int64_t c = 0;
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == k) s[0] += mu[2 * i], s[1] += mu[2 * i + 1], ++c;
    EXPECT_EQ(counts[k], c);
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(means[2 * k + j], s[j] / c, 1e-5) << k << " " << j;
  }
  // 4 classes x 3 samples; 3 images each followed by 4 steps.
  const PngImage samples = read_png(out + "/class_samples.png");
  EXPECT_EQ(samples.width, 3 * 8 + 4 * 2);
  EXPECT_EQ(samples.height, 4 * 8 + 5 * 2);
  const PngImage transfer = read_png(out + "/transfer.png");
  EXPECT_EQ(transfer.width, 5 * 8 + 6 * 2);
  EXPECT_EQ(transfer.height, 3 * 8 + 4 * 2);
}

TEST_F(AppLatent, PicturesHaveTheirGridsSizes) {
  struct Case {
    std::string sub, args;
    int cols, rows;
  };
  const std::vector<Case> cases = {
      {"interpolate", "--pairs 3 --steps 5", 7, 3},
      {"interpolate", "--pairs 2 --steps 4 --spherical", 6, 2},
      {"similar", "--index 0,5 --count 4", 6, 2},
      {"manifold", "--size 6", 6, 6},
      {"sample", "--size 3 --temperature 0.5", 3, 3},
  };
  for (const Case& c : cases) {
    const std::string png = file(c.sub + std::to_string(c.cols) + ".png");
    const CommandResult r = latent(
        c.sub, "mlp2", c.args + " --data " + shell_quote(data_) + " --out " + shell_quote(png));
    if (c.sub == "manifold" || c.sub == "sample") {
      // No data needed: --data is not an option of theirs.
      EXPECT_EQ(r.exit_code, 2) << r.output;
      ASSERT_EQ(latent(c.sub, "mlp2", c.args + " --out " + shell_quote(png)).exit_code, 0);
    } else {
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    const PngImage img = read_png(png);
    EXPECT_EQ(img.width, c.cols * 8 + (c.cols + 1) * 2) << c.sub;
    EXPECT_EQ(img.height, c.rows * 8 + (c.rows + 1) * 2) << c.sub;
  }
}

TEST_F(AppLatent, ConditionalModelDecodesWithTheLabel) {
  const std::string out = file("carith");
  CommandResult r = latent("arithmetic", "cvae3", "--out " + shell_quote(out) + " --count 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Transfer rows of a conditional model: image, decoded with --from, decoded with --to.
  EXPECT_EQ(read_png(out + "/transfer.png").width, 3 * 8 + 4 * 2);
  r = latent("sample", "cvae3", "--size 4 --out " + shell_quote(file("cs.png")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = latent("interpolate", "cvae3", "--pairs 2 --out " + shell_quote(file("ci.png")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = latent("sample", "cvae3", "--class 7 --out " + shell_quote(file("cs7.png")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--class: 7 is not a class of this model (0..3)")) << r.output;
}

TEST_F(AppLatent, BadInputIsAClearError) {
  // The manifold needs two latent dimensions.
  CommandResult r = latent("manifold", "cvae3", "--out " + shell_quote(file("m.png")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "error: the manifold needs a model with latent-dim 2"))
      << r.output;
  r = run_command(env_prefix() + " " + binary("vae_latent") +
                      " encode --checkpoint /no/such.h5 --out " + shell_quote(file("x.h5")),
                  60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error: checkpoint '/no/such.h5' does not exist")) << r.output;
  r = latent("interpolate", "mlp2", "--steps 1 --out " + shell_quote(file("i.png")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--steps: 1 is out of range")) << r.output;
  EXPECT_TRUE(contains(r.output, "(see vae_latent interpolate --help)")) << r.output;
  r = latent("encode", "mlp2", "--data /no/data.h5 --out " + shell_quote(file("y.h5")), 2);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "/no/data.h5")) << r.output;
  r = run_command(binary("vae_latent") + " encode --chekpoint x", 30);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "chekpoint")) << r.output;
  r = run_command(binary("vae_latent") + " --help", 30);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "vae_latent manifold --checkpoint C --out F.png")) << r.output;
}

// Data are checked by shape, as vae_dist checks its test data: the training rows as 1x4x16
// images or [N, 64] vectors hold the 64 values of the model's 1x8x8 but are refused, naming both
// shapes. A conditional model refuses a label beyond its classes, naming the row.
TEST_F(AppLatent, DataOfAnotherShapeOrLabelIsRefused) {
  // The training file's rows, reshaped.
  const std::string wide = file("wide.h5"), flat = file("flat.h5");
  {
    h5::File in = h5::open_file(data_);
    const auto images = h5::read_dataset<uint8_t>(in, "/images");
    const int64_t n = images.dims[0];
    h5::File w = h5::create_file(wide);
    h5::write_dataset<uint8_t>(w, "/images", images.data, std::vector<int64_t>{n, 1, 4, 16});
    h5::File f = h5::create_file(flat);
    h5::write_dataset<uint8_t>(f, "/images", images.data, std::vector<int64_t>{n, 64});
  }
  for (const auto& [data, shape] : {std::pair{wide, "[1, 4, 16]"}, std::pair{flat, "[64]"}}) {
    const CommandResult r =
        latent("encode", "mlp2",
               "--data " + shell_quote(data) + " --out " + shell_quote(file("shape.h5")));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(contains(r.output, "error: the data '" + data + "' has samples of shape " + shape +
                                       " but the model of checkpoint '" + checkpoint("mlp2") +
                                       "' takes [1, 8, 8]; give --data of the shape"))
        << r.output;
  }
  // Row 5's label 1000000 for a model of 4 classes.
  const std::string labelled = file("label.h5");
  {
    h5::File in = h5::open_file(data_);
    const auto images = h5::read_dataset<uint8_t>(in, "/images");
    std::vector<int32_t> labels = h5::read_dataset<int32_t>(in, "/labels").data;
    labels[5] = 1000000;
    h5::File out = h5::create_file(labelled);
    h5::write_dataset<uint8_t>(out, "/images", images.data, images.dims);
    h5::write_dataset<int32_t>(out, "/labels", labels,
                               std::vector<int64_t>{static_cast<int64_t>(labels.size())});
  }
  const CommandResult r =
      latent("encode", "cvae3",
             "--data " + shell_quote(labelled) + " --out " + shell_quote(file("label_out.h5")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error: the data '" + labelled +
                                     "' has label 1000000 at row 5, but the model has 4 classes"))
      << r.output;
}

// encode --out of an existing directory is refused before anything is computed, and leaves no
// <dir>.tmp behind (it did: the rename over the directory failed after the write).
TEST_F(AppLatent, EncodeIntoADirectoryIsRefusedAndLeavesNoTemporaryFile) {
  const std::string dir = file("a_directory");
  std::filesystem::create_directories(dir);
  const CommandResult r = latent("encode", "mlp2", "--out " + shell_quote(dir));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "error: --out '" + dir + "' is a directory; give a file name"))
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + ".tmp"));
  const CommandResult png = latent("sample", "mlp2", "--out " + shell_quote(dir));
  EXPECT_EQ(png.exit_code, 2) << png.output;
  EXPECT_TRUE(contains(png.output, "is a directory")) << png.output;
}

// --temperature and --spread are finite and at most 1000: 1e300 drew a grey picture, exit 0.
TEST_F(AppLatent, TemperatureAndSpreadAreBounded) {
  for (const std::string bad : {"1e300", "inf", "nan", "1000.5", "-1"}) {
    const std::string png = file("t.png");
    CommandResult r = latent("sample", "mlp2", "--temperature " + bad + " --out " + png);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_TRUE(contains(r.output, "--temperature: ")) << r.output;
    EXPECT_TRUE(contains(r.output, "is out of range; it must be a number in 0..1000")) << r.output;
    EXPECT_FALSE(std::filesystem::exists(png));
    r = latent("similar", "mlp2", "--spread " + bad + " --out " + png);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_TRUE(contains(r.output, "--spread: ")) << r.output;
  }
  const CommandResult ok = latent("sample", "mlp2", "--temperature 1000 --out " + file("t.png"));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

}  // namespace
}  // namespace vd::testing
