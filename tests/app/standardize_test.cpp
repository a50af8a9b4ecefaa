// End-to-end runs of --standardize, free bits, the cyclical KL schedule and the logvar clamp:
// vae_dist trains on float data with --standardize; the reconstruction grid and vae_latent's
// pictures show the data in its own units; vae_latent encode standardises its input with the
// checkpoint's statistics; a resumed run keeps them. Bad combinations are clear errors.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "core/rng.hpp"
#include "io/png.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

constexpr int kRows = 200, kD = 16;  // 16 features: drawn as 4 x 4 tiles

// Features with means 0.3..0.7 and stds 0.05..0.15, clamped to [0, 1] so a PNG shows them
// exactly; standardised they spread over about +-3, which a PNG would clip.
std::vector<float> make_data() {
  Rng rng(4);
  std::vector<float> x(kRows * kD);
  for (int r = 0; r < kRows; ++r) {
    const double common = rng.normal();
    for (int d = 0; d < kD; ++d) {
      const double v = 0.3 + 0.4 * d / (kD - 1) +
                       (0.05 + 0.1 * d / (kD - 1)) * (0.7 * common + 0.7 * rng.normal());
      x[r * kD + d] = static_cast<float>(std::clamp(v, 0.0, 1.0));
    }
  }
  return x;
}

uint8_t pixel_of(float v) {
  return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
}

// Tile `tile` of a grid of 4 x 4 tiles with padding 2 in `cols` columns equals row `r` of x
// in data units (within one grey level: float rounding of the scaling's round trip).
void expect_tile_shows_row(const PngImage& img, int tile, int cols, const std::vector<float>& x,
                           int r) {
  const int x0 = 2 + (tile % cols) * 6, y0 = 2 + (tile / cols) * 6;
  for (int d = 0; d < kD; ++d) {
    const int px = img.pixels[static_cast<size_t>((y0 + d / 4) * img.width + x0 + d % 4)];
    EXPECT_NEAR(px, pixel_of(x[r * kD + d]), 1) << "tile " << tile << ", feature " << d;
  }
}

class AppStandardize : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    data_ = dir_->file("features.h5");
    x_ = make_data();
    {
      h5::File f = h5::create_file(data_);
      const int64_t dims[2] = {kRows, kD};
      h5::write_dataset<float>(f, "/images", x_, dims);
    }
    const CommandResult r = vae_dist("--out " + shell_quote(dir_->file("run")) +
                                     " --max-steps 20 --standardize "
                                     "--free-bits 0.05 --kl-schedule cyclical --kl-cycles 2");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    log_ = r.output;
  }
  static void TearDownTestSuite() { delete dir_; }

  static CommandResult vae_dist(const std::string& args) {
    return run_command(env_prefix() + " " + binary("vae_dist") + " --data " + shell_quote(data_) +
                           " --test-data " + shell_quote(data_) +
                           " --likelihood gaussian --gaussian-sigma 0.5 --hidden 24 "
                           "--latent-dim 3 --epochs 4 --batch-size 32 --log-every 10 "
                           "--progress false --threads 1 --grid-size 2 " +
                           args,
                       120);
  }
  static std::string checkpoint() { return dir_->file("run") + "/checkpoint_step000000020.h5"; }
  static CommandResult latent(const std::string& sub, const std::string& ckpt,
                              const std::string& args) {
    return run_command(env_prefix() + " " + binary("vae_latent") + " " + sub + " --checkpoint " +
                           shell_quote(ckpt) + " --threads 1 " + args,
                       120);
  }

  static TempDir* dir_;
  static std::string data_, log_;
  static std::vector<float> x_;
};
TempDir* AppStandardize::dir_ = nullptr;
std::string AppStandardize::data_, AppStandardize::log_;
std::vector<float> AppStandardize::x_;

TEST_F(AppStandardize, TrainingSaysSoAndStoresTheStatistics) {
  EXPECT_NE(log_.find("standardised 16 features to mean 0, std 1 with the statistics of the "
                      "training set"),
            std::string::npos)
      << log_;
  h5::File f = h5::open_file(checkpoint());
  const auto mean = h5::read_dataset<double>(f, "/standardize/mean").data;
  const auto sd = h5::read_dataset<double>(f, "/standardize/std").data;
  ASSERT_EQ(mean.size(), static_cast<size_t>(kD));
  ASSERT_EQ(sd.size(), static_cast<size_t>(kD));
  double m0 = 0;
  for (int r = 0; r < kRows; ++r) m0 += x_[r * kD];
  EXPECT_NEAR(mean[0], m0 / kRows, 1e-12);
}

TEST_F(AppStandardize, ReconstructionGridShowsTheInputsInDataUnits) {
  // Grid size 2: tiles 0 and 1 are test rows 0 and 1, tiles 2 and 3 their reconstructions.
  const PngImage img = read_png(dir_->file("run") + "/recon_epoch001.png");
  ASSERT_EQ(img.channels, 1);
  expect_tile_shows_row(img, 0, 2, x_, 0);
  expect_tile_shows_row(img, 1, 2, x_, 1);
}

TEST_F(AppStandardize, VaeLatentPicturesAreInDataUnits) {
  const std::string png = dir_->file("similar.png");
  const CommandResult r =
      latent("similar", checkpoint(),
             "--data " + shell_quote(data_) + " --index 3 --count 1 --out " + shell_quote(png));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const PngImage img = read_png(png);
  expect_tile_shows_row(img, 0, 3, x_, 3);  // the image itself, drawn from standardised values
  // The samples and manifold-like pictures decode to data units too: their mean grey level is
  // that of the data (about 0.5), not of standardised values (about 0, clipped to black).
  const std::string sample = dir_->file("sample.png");
  ASSERT_EQ(latent("sample", checkpoint(), "--size 4 --out " + shell_quote(sample)).exit_code, 0);
  const PngImage s = read_png(sample);
  double sum = 0;
  int count = 0;
  for (int t = 0; t < 16; ++t)
    for (int d = 0; d < kD; ++d) {
      const int x0 = 2 + (t % 4) * 6 + d % 4, y0 = 2 + (t / 4) * 6 + d / 4;
      sum += s.pixels[static_cast<size_t>(y0 * s.width + x0)];
      ++count;
    }
  EXPECT_NEAR(sum / count / 255.0, 0.5, 0.15);
}

TEST_F(AppStandardize, EncodeStandardisesItsInputWithTheCheckpointStatistics) {
  // The same model without /standardize, given data standardised here by hand, must give the
  // same encodings bit for bit.
  const std::string plain = dir_->file("plain.h5");
  std::filesystem::copy_file(checkpoint(), plain);
  std::vector<double> mean, sd;
  {
    h5::File f = h5::open_file(checkpoint());
    mean = h5::read_dataset<double>(f, "/standardize/mean").data;
    sd = h5::read_dataset<double>(f, "/standardize/std").data;
  }
  {
    const hid_t f = H5Fopen(plain.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "/standardize", H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  std::vector<float> z = x_;
  for (int r = 0; r < kRows; ++r)
    for (int d = 0; d < kD; ++d)
      z[r * kD + d] = static_cast<float>((static_cast<double>(x_[r * kD + d]) - mean[d]) / sd[d]);
  const std::string zfile = dir_->file("standardised.h5");
  {
    h5::File f = h5::create_file(zfile);
    const int64_t dims[2] = {kRows, kD};
    h5::write_dataset<float>(f, "/images", z, dims);
  }
  const std::string a = dir_->file("a.h5"), b = dir_->file("b.h5");
  ASSERT_EQ(
      latent("encode", checkpoint(), "--data " + shell_quote(data_) + " --out " + a).exit_code, 0);
  // Without the statistics the run's config still says standardize; vae_latent only reads
  // the checkpoint's statistics, so this model now takes its input as it is.
  ASSERT_EQ(latent("encode", plain, "--data " + shell_quote(zfile) + " --out " + b).exit_code, 0);
  h5::File fa = h5::open_file(a), fb = h5::open_file(b);
  const auto mu_a = h5::read_dataset<float>(fa, "/mu").data;
  const auto mu_b = h5::read_dataset<float>(fb, "/mu").data;
  ASSERT_EQ(mu_a.size(), static_cast<size_t>(kRows * 3));
  EXPECT_EQ(mu_a, mu_b);
}

TEST_F(AppStandardize, ResumeKeepsTheStatisticsAndNeedsTheFlag) {
  const std::string out = dir_->file("resume");
  ASSERT_EQ(vae_dist("--out " + shell_quote(out) + " --max-steps 7 --standardize").exit_code, 0);
  CommandResult r =
      vae_dist("--out " + shell_quote(out) + " --max-steps 12 --standardize --resume latest");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("with the statistics of the checkpoint"), std::string::npos) << r.output;
  r = vae_dist("--out " + shell_quote(out) + " --max-steps 14 --resume latest");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("add --standardize"), std::string::npos) << r.output;
}

TEST_F(AppStandardize, BadCombinationsAreClearErrors) {
  const auto expect_error = [](const CommandResult& r, const std::string& part) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << r.output;
  };
  const std::string out = " --out " + shell_quote(dir_->file("bad"));
  const std::string bin = env_prefix() + " " + binary("vae_dist") + " --data " +
                          shell_quote(data_) + " --test-data ''" + out;
  expect_error(run_command(bin + " --standardize", 60),
               "--standardize needs --likelihood gaussian");
  expect_error(run_command(bin + " --free-bits -1", 60), "--free-bits: -1 is out of range");
  expect_error(run_command(bin + " --logvar-clamp 20,-30", 60),
               "is not a range 'lo,hi' of two finite numbers with lo < hi");
  expect_error(run_command(bin + " --logvar-clamp=-30", 60), "is not a range 'lo,hi'");
  expect_error(run_command(bin + " --kl-schedule cyclical --kl-warmup-epochs 2", 60),
               "--kl-warmup-epochs belongs to --kl-schedule linear");
  expect_error(run_command(bin + " --kl-cycle-ratio 0", 60), "--kl-cycle-ratio: 0 is out of range");
  // uint8 images cannot be standardised.
  const std::string u8 = dir_->file("u8.h5");
  ASSERT_EQ(run_command(binary("vae_data") + " synth --out " + shell_quote(u8) +
                            " --n 20 --height 4 --width 4",
                        60)
                .exit_code,
            0);
  expect_error(
      run_command(env_prefix() + " " + binary("vae_dist") + " --data " + shell_quote(u8) +
                      " --test-data ''" + out + " --likelihood gaussian --standardize --threads 1",
                  60),
      "--standardize needs float data");
  // A clamp range written with a leading minus works as --key=value and in a config file.
  const CommandResult ok =
      vae_dist("--out " + shell_quote(dir_->file("clamp")) + " --max-steps 2 --logvar-clamp=-8,4");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

}  // namespace
}  // namespace vd::testing
