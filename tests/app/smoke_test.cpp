// End-to-end smoke runs on the real Fashion-MNIST files (configs/smoke.cfg), with 1 and with
// 2 MPI ranks: the loss falls, the test row, grids, checkpoint and config.ini are written;
// and a run started from another's parameters (--init-weights).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "config/options.hpp"
#include "io/png.hpp"
#include "support/fashion_mnist.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

namespace fs = std::filesystem;

std::string smoke_command(const std::string& launcher, const std::string& out) {
  return "cd " + shell_quote(VD_SOURCE_DIR) + " && " + launcher + " " + binary("vae_dist") +
         " --config configs/smoke.cfg --out " + shell_quote(out);
}

// The checks every smoke run must pass, whatever the number of ranks.
void check_smoke_outputs(const std::string& out, int ranks) {
  const std::string csv = out + "/metrics.csv";
  const auto train = metrics_rows(csv, "train");
  // 50 steps logged every 10 steps.
  ASSERT_EQ(train.size(), 5u) << read_text(csv);
  EXPECT_EQ(train.back()[2], "50") << read_text(csv);
  // 50 steps of a global batch of ranks x 64 images.
  EXPECT_EQ(train.back()[3], std::to_string(50 * 64 * ranks)) << read_text(csv);
  const double first = std::stod(train.front()[4]);
  const double last = std::stod(train.back()[4]);
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << read_text(csv);
  EXPECT_GT(first, 0.0);
  EXPECT_LT(last, 0.8 * first) << "train loss fell only from " << first << " to " << last;

  const auto test = metrics_rows(csv, "test");
  ASSERT_EQ(test.size(), 1u) << read_text(csv);
  const double test_loss = std::stod(test[0][4]);
  EXPECT_TRUE(std::isfinite(test_loss)) << read_text(csv);
  EXPECT_GT(test_loss, 0.0);
  // The test loss is of the same order as the last train loss, not a stale or garbage value.
  EXPECT_LT(test_loss, 1.5 * last) << read_text(csv);

  // 8 x 8 grid of 28 x 28 gray tiles with 2-pixel padding: 8 * 28 + 9 * 2 = 242.
  for (const char* name : {"samples_epoch001.png", "recon_epoch001.png"}) {
    const std::string path = out + "/" + name;
    ASSERT_TRUE(fs::is_regular_file(path)) << path;
    const PngImage png = read_png(path);
    EXPECT_EQ(png.width, 242) << path;
    EXPECT_EQ(png.height, 242) << path;
    EXPECT_EQ(png.channels, 1) << path;
    ASSERT_EQ(png.pixels.size(), 242u * 242u * static_cast<size_t>(png.channels)) << path;
    int lo = 255, hi = 0;
    for (uint8_t p : png.pixels) lo = std::min<int>(lo, p), hi = std::max<int>(hi, p);
    EXPECT_LT(lo, hi) << path << " is a flat image";
  }

  EXPECT_TRUE(fs::is_regular_file(out + "/checkpoint_step000000050.h5"));

  // config.ini re-parses to the same settings as smoke.cfg with this --out.
  const std::string cfg = out + "/config.ini";
  ASSERT_TRUE(fs::is_regular_file(cfg));
  const std::string smoke_cfg = std::string(VD_SOURCE_DIR) + "/configs/smoke.cfg";
  const char* original_argv[] = {"vae_dist", "--config", smoke_cfg.c_str(), "--out", out.c_str()};
  const char* reparsed_argv[] = {"vae_dist", "--config", cfg.c_str()};
  Options original, reparsed;
  ASSERT_NO_THROW(original = parse_options(5, original_argv).options);
  ASSERT_NO_THROW(reparsed = parse_options(3, reparsed_argv).options) << read_text(cfg);
  EXPECT_EQ(reparsed.out, out);
  EXPECT_EQ(reparsed.max_steps, 50);
  EXPECT_EQ(reparsed.hidden, std::vector<int>{128});
  reparsed.config = original.config;  // the only field that names the file itself
  EXPECT_TRUE(reparsed == original) << read_text(cfg);
}

TEST(AppSmoke, FashionMnistOneRank) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  const std::string out = tmp.file("smoke1");
  const CommandResult r = run_command(smoke_command(env_prefix(), out), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "1 rank(s)")) << r.output;
  EXPECT_TRUE(contains(r.output, "done: 1 epoch(s), 50 steps")) << r.output;
  check_smoke_outputs(out, 1);
}

TEST(AppSmoke, FashionMnistTwoRanks) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  const std::string out = tmp.file("smoke2");
  const CommandResult r = run_command(smoke_command(mpi_prefix(2), out), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 rank(s)")) << r.output;
  EXPECT_TRUE(contains(r.output, "done: 1 epoch(s), 50 steps")) << r.output;
  check_smoke_outputs(out, 2);
}

// --init-weights: a run started from another run's checkpoint evaluates like that run. One
// step at lr 1e-30 moves no parameter by a float's rounding, and the evaluation noise depends
// on the seed and the epoch alone, so the two test losses agree; a model of another size is
// refused, naming the difference.
TEST(AppSmoke, InitWeightsStartsFromAnotherRunsParameters) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir tmp;
  const std::string a = tmp.file("a"), b = tmp.file("b"), c = tmp.file("c");
  const std::string quiet = " --iw-samples 0 --checksum-every 0";
  CommandResult r = run_command(smoke_command(env_prefix(), a) + quiet, 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ckpt = a + "/checkpoint_step000000050.h5";
  r = run_command(smoke_command(env_prefix(), b) + quiet + " --seed 1 --max-steps 1 --lr 1e-30" +
                      " --init-weights " + shell_quote(ckpt),
                  120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "initial parameters: " + ckpt)) << r.output;
  const auto test_a = metrics_rows(a + "/metrics.csv", "test");
  const auto test_b = metrics_rows(b + "/metrics.csv", "test");
  ASSERT_EQ(test_a.size(), 1u);
  ASSERT_EQ(test_b.size(), 1u);
  const double la = std::stod(test_a[0][4]), lb = std::stod(test_b[0][4]);
  EXPECT_NEAR(lb, la, 1e-6 * la);
  // The trained model is far from the seed's draw (about 544 nats).
  EXPECT_LT(la, 400.0);

  r = run_command(
      smoke_command(env_prefix(), c) + quiet + " --hidden 64 --init-weights " + shell_quote(ckpt),
      120);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "weights file '" + ckpt + "' does not match this model"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "encoder.fc1.weight [128, 784] but this model has [64, 784]"))
      << r.output;
  EXPECT_FALSE(fs::exists(c + "/metrics.csv"));
}

}  // namespace
}  // namespace vd::testing
