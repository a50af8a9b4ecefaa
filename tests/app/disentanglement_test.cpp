// End-to-end runs of `vae_latent disentanglement` on a tiny model that vae_dist trains for 60
// steps on every combination of a small `vae_data shapes` grid: the JSON is the same on 1, 2 and
// 3 ranks, holds every metric, and the errors for data without every combination or without
// /factors, and for an unknown metric, are clear.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "app/child_process.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

// 384 images of 16 x 16: shape 3, scale 2, orientation 4, x 4, y 4.
const char* kGrid =
    " --size 16 --scales 2 --orientations 4 --positions-x 4 --positions-y 4"
    " --supersample 2";

class AppDisentanglement : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    for (const std::string& args :
         {"shapes --out " + file("all.h5") + " --all --shuffle-seed 0" + kGrid,
          "shapes --out " + file("some.h5") + " --count 200 --seed 1" + kGrid,
          "synth --out " + file("synth.h5") + " --n 50 --channels 1 --height 16 --width 16"}) {
      const CommandResult made = run_command(binary("vae_data") + " " + args, 60);
      ASSERT_EQ(made.exit_code, 0) << made.output;
    }
    const CommandResult r = run_command(
        env_prefix() + " " + binary("vae_dist") + " --data " + file("all.h5") + " --test-data " +
            file("all.h5") + " --out " + file("run") +
            " --hidden 32 --latent-dim 4 --epochs 5 --max-steps 60 --batch-size 32 --log-every 20"
            " --iw-samples 0 --progress false --threads 1 --grid-size 2",
        120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string file(const std::string& name) { return dir_->file(name); }

  // vae_latent disentanglement on `ranks` ranks with small sample counts.
  static CommandResult metrics(const std::string& args, int ranks = 1) {
    return run_command((ranks == 1 ? env_prefix() : mpi_prefix(ranks)) + " " +
                           binary("vae_latent") + " disentanglement --checkpoint " +
                           shell_quote(file("run") + "/checkpoint_step000000060.h5") +
                           " --threads 1 --batch-size 64 --train-points 2000 --test-points 1000"
                           " --group-size 32 " +
                           args,
                       120);
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static TempDir* dir_;
};
TempDir* AppDisentanglement::dir_ = nullptr;

TEST_F(AppDisentanglement, TheJsonIsTheSameOnOneTwoAndThreeRanks) {
  CommandResult r = metrics("--data " + file("all.h5") + " --seed 3 --out " + file("r1.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row :
       {"beta-VAE score (eval accuracy)", "FactorVAE score (eval accuracy)", "MIG", "SAP",
        "DCI disentanglement", "DCI completeness", "DCI informativeness (test RMSE)",
        "against the factors shape 3, "
        "scale 2, orientation 4, x 4, y 4"})
    EXPECT_TRUE(contains(r.output, row)) << row << "\n" << r.output;
  const std::string one = read(file("r1.json"));
  for (const char* key :
       {"\"mig\": {\"score\": ", "\"sap\": {\"score\": ", "\"dci\": {\"disentanglement\": ",
        "\"beta_vae\": {\"train_accuracy\": ", "\"factor_vae\": {\"train_accuracy\": ",
        "\"seed\": 3,", "\"rows\": 384,", "\"combinations_present\": 384", "\"train_points\": 2000",
        "\"batch_size\": 32"})
    EXPECT_TRUE(contains(one, key)) << key << "\n" << one;
  for (int ranks : {2, 3}) {
    std::string name = "r";  // appended, not "r" + ...: GCC 12 warns falsely on that
    name += std::to_string(ranks);
    const std::string out = file(name + ".json");
    r = metrics("--data " + file("all.h5") + " --seed 3 --out " + out, ranks);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(read(out), one) << ranks << " ranks";
  }
  // Another seed draws other points.
  r = metrics("--data " + file("all.h5") + " --seed 4 --out " + file("r4.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read(file("r4.json")), one);
}

TEST_F(AppDisentanglement, DataWithoutEveryCombinationGetsOnlyMigSapAndDci) {
  CommandResult r = metrics("--data " + file("some.h5") + " --out " + file("some.json"), 2);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "the beta-VAE score draws observations for given factor values"))
      << r.output;
  EXPECT_TRUE(contains(r.output,
                       "of the 384 combinations; write the data with 'vae_data shapes "
                       "--all', or leave the score out with --metrics mig,sap,dci"))
      << r.output;
  r = metrics("--data " + file("some.h5") + " --metrics mig,sap,dci --out " + file("some.json"), 2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(read(file("some.json")), "beta_vae"));
}

TEST_F(AppDisentanglement, BadInputIsAClearError) {
  CommandResult r = metrics("--data " + file("synth.h5") + " --out " + file("x.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "has no /factors data set")) << r.output;
  r = metrics("--data " + file("all.h5") + " --metrics mig,irs --out " + file("x.json"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--metrics: 'irs' is not a metric")) << r.output;
  r = metrics("--data " + file("all.h5") + " --dci-alpha -1 --out " + file("x.json"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--dci-alpha: -1.000000 must be a number >= 0")) << r.output;
}

}  // namespace
}  // namespace vd::testing
