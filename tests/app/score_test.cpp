// End-to-end runs of `vae_latent score` on an MLP that vae_dist trains for 30 steps on
// synthetic 1 x 8 x 8 images of 4 classes: every score is the same bit for bit on 1, 2 and 3
// ranks, the mean negative ELBO is the trainer's test loss (within the noise of one z sample
// per row, the KL exactly), known anomalies give the detection table, and bad input is a clear
// error (exit 2 for usage errors).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

class AppScore : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // 192 training rows: 6 steps of 32 per epoch, so the 5th epoch's test row is evaluated
    // with the weights of the last checkpoint (step 30).
    for (const std::string& args :
         {"synth --out " + file("train.h5") +
              " --n 192 --channels 1 --height 8 --width 8 "
              "--classes 4 --seed 2",
          "synth --out " + file("test.h5") +
              " --n 150 --channels 1 --height 8 --width 8 "
              "--classes 4 --seed 3",
          "synth --out " + file("other.h5") +
              " --n 40 --channels 1 --height 8 --width 8 "
              "--classes 2 --seed 4",
          "synth --out " + file("big.h5") + " --n 20 --channels 1 --height 16 --width 16"}) {
      const CommandResult made = run_command(binary("vae_data") + " " + args, 60);
      ASSERT_EQ(made.exit_code, 0) << made.output;
    }
    {  // images without labels
      h5::File in = h5::open_file(file("test.h5"));
      const auto images = h5::read_dataset<uint8_t>(in, "/images");
      h5::File out = h5::create_file(file("nolabels.h5"));
      h5::write_dataset<uint8_t>(out, "/images", images.data, images.dims);
    }
    const CommandResult r =
        run_command(env_prefix() + " " + binary("vae_dist") + " --data " + file("train.h5") +
                        " --test-data " + file("test.h5") + " --out " + file("run") +
                        " --hidden 32 --latent-dim 2 --epochs 5 --batch-size 32 --log-every 10"
                        " --iw-samples 0 --progress false --threads 1 --grid-size 2",
                    120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string file(const std::string& name) { return dir_->file(name); }

  static CommandResult score(const std::string& args, int ranks = 1) {
    return run_command((ranks == 1 ? env_prefix() : mpi_prefix(ranks)) + " " +
                           binary("vae_latent") + " score --checkpoint " +
                           shell_quote(file("run") + "/checkpoint_step000000030.h5") +
                           " --threads 1 --batch-size 32 " + args,
                       120);
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::vector<double> column(const std::string& path, const std::string& name) {
    h5::File f = h5::open_file(path);
    return h5::read_dataset<double>(f, name).data;
  }

  static TempDir* dir_;
};
TempDir* AppScore::dir_ = nullptr;

TEST_F(AppScore, EveryScoreIsTheSameOnOneTwoAndThreeRanks) {
  const std::string args = "--data " + file("test.h5") +
                           " --iw-samples 4 --per-pixel --labels-normal 0,1,2 --seed 5 --out ";
  CommandResult r = score(args + file("s1.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* line :
       {"scored 150 rows of", "neg_elbo", "iw_nll", "recon_nll_mu", "sq_error_mu", "psnr", "ssim",
        "anomaly detection on", "ROC-AUC", "threshold at FPR 0.05"})
    EXPECT_TRUE(contains(r.output, line)) << line << "\n" << r.output;
  const std::vector<std::string> names = {"neg_elbo",     "recon",       "kl",   "iw_nll",
                                          "recon_nll_mu", "sq_error_mu", "psnr", "ssim"};
  h5::File one = h5::open_file(file("s1.h5"));
  EXPECT_EQ(h5::read_dataset<float>(one, "pixel_loglik").dims, (std::vector<int64_t>{150, 64}));
  EXPECT_EQ(h5::read_string_attribute(one, "labels_normal"), "0,1,2");
  for (int ranks : {2, 3}) {
    std::string name = "s";
    name += std::to_string(ranks);
    r = score(args + file(name + ".h5"), ranks);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    h5::File f = h5::open_file(file(name + ".h5"));
    for (const std::string& n : names) {
      const auto a = h5::read_dataset<double>(one, n), b = h5::read_dataset<double>(f, n);
      ASSERT_EQ(a.dims, (std::vector<int64_t>{150})) << n;
      EXPECT_EQ(0, std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(double)))
          << n << " on " << ranks << " ranks";
    }
    EXPECT_EQ(h5::read_dataset<float>(one, "pixel_loglik").data,
              h5::read_dataset<float>(f, "pixel_loglik").data);
    EXPECT_EQ(h5::read_dataset<uint8_t>(one, "held_out").data,
              h5::read_dataset<uint8_t>(f, "held_out").data);
    EXPECT_EQ(read(file(name + ".json")), read(file("s1.json"))) << ranks << " ranks";
  }
}

TEST_F(AppScore, MeanNegativeElboIsTheTrainersTestLoss) {
  CommandResult r = score("--data " + file("test.h5") + " --out " + file("e0.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = score("--data " + file("test.h5") + " --seed 1 --out " + file("e1.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = metrics_rows(file("run") + "/metrics.csv", "test");
  ASSERT_EQ(rows.size(), 5u);
  ASSERT_EQ(rows.back().at(2), "30");  // the step of the checkpoint
  const double loss = std::stod(rows.back().at(4)), kl = std::stod(rows.back().at(6));
  const auto a = column(file("e0.h5"), "neg_elbo"), b = column(file("e1.h5"), "neg_elbo");
  const auto kl_rows = column(file("e0.h5"), "kl");
  double mean = 0, mean_kl = 0, diff2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mean += a[i] / a.size();
    mean_kl += kl_rows[i] / a.size();
    diff2 += (a[i] - b[i]) * (a[i] - b[i]);
  }
  // Two seeds' rows differ by the noise of two z samples: sum_i (a_i - b_i)^2 / N^2 estimates
  // the variance of the difference of two means, as between this mean and the trainer's.
  const double sd = std::sqrt(diff2) / static_cast<double>(a.size());
  EXPECT_GT(sd, 0.0);
  EXPECT_NEAR(mean, loss, 5 * sd + 1e-3) << "sd " << sd;
  EXPECT_NEAR(mean_kl, kl, 1e-4 * kl);  // the KL needs no noise
}

TEST_F(AppScore, AFileOfKnownAnomaliesAndAFileOfNormalRows) {
  const CommandResult r = score("--data " + file("test.h5") + " --anomalies " + file("other.h5") +
                                " --normal-val " + file("train.h5") + " --out " + file("a.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "anomaly detection on 190 rows: 40 known anomalies")) << r.output;
  EXPECT_TRUE(contains(r.output, "threshold at FPR 0.05 from 192 the rows of")) << r.output;
  h5::File f = h5::open_file(file("a.h5"));
  EXPECT_EQ(h5::read_dataset<double>(f, "anomalies/neg_elbo").dims, (std::vector<int64_t>{40}));
  EXPECT_EQ(h5::read_dataset<double>(f, "normal_val/ssim").dims, (std::vector<int64_t>{192}));
  const std::string json = read(file("a.json"));
  for (const char* key : {"\"anomalies\": {\"data\": ", "\"detection\": {\"evaluated_rows\": 190",
                          "\"held_out_normal\": 192", "\"roc_auc\": "})
    EXPECT_TRUE(contains(json, key)) << key << "\n" << json;
}

TEST_F(AppScore, BadInputIsAClearError) {
  const std::string d = "--data " + file("test.h5") + " --out " + file("x.h5") + " ";
  struct Case {
    std::string args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--data " + file("big.h5") + " --out " + file("x.h5"), 1,
       "has samples of shape [1, 16, 16]"},
      {d + "--labels-normal 7", 2, "--labels-normal 7 names none of the labels of"},
      {d + "--labels-normal 3,2,1,0", 2, "names every label of"},
      {"--data " + file("nolabels.h5") + " --out " + file("x.h5") + " --labels-normal 0", 1,
       "has no /labels data set; give --anomalies FILE instead"},
      {d + "--iw-samples -1", 2, "--iw-samples: -1 is out of range"},
      {d + "--iw-samples 100001", 2, "--iw-samples: 100001 is out of range"},
      {d + "--fpr 0", 2, "--fpr: 0.000000 is outside (0, 1)"},
      {d + "--fpr 1.5", 2, "--fpr: 1.500000 is outside (0, 1)"},
      {d + "--normal-val 1.5", 2, "--normal-val: 1.5 is not a fraction in (0, 1)"},
      {d + "--normal-val nothere.h5", 2, "neither a fraction in (0, 1) nor an existing file"},
      {d + "--labels-normal 0 --anomalies " + file("other.h5"), 2, "not both"},
      {d + "--labels-normal 0,x", 2, "is not a comma-separated list of labels"},
  };
  for (const Case& c : cases) {
    const CommandResult r = score(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.message)) << c.args << "\n" << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(file("x.h5")));
  EXPECT_FALSE(std::filesystem::exists(file("x.h5.tmp")));
}

}  // namespace
}  // namespace vd::testing
