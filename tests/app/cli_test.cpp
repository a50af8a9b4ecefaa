// End-to-end tests of vae_dist's command line: --help, usage errors (exit 2) and unusable
// data files (exit 1), each run as a real child process.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "app/child_process.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

std::string vae_dist() {
  return env_prefix() + " " + binary("vae_dist");
}

TEST(AppCli, HelpExitsZeroAndListsTheMainOptions) {
  const CommandResult r = run_command(vae_dist() + " --help", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "Usage: vae_dist")) << r.output;
  for (const char* option : {"--config", "--data", "--resume", "--out", "--epochs"})
    EXPECT_TRUE(contains(r.output, option)) << "--help does not list " << option << ":\n"
                                            << r.output;
  // --help only prints: no configuration dump, no training.
  EXPECT_FALSE(contains(r.output, "resolved configuration")) << r.output;
}

TEST(AppCli, UnknownOptionExitsTwoNamingIt) {
  TempDir tmp;
  const CommandResult r =
      run_command(vae_dist() + " --no-such-option 3 --out " + tmp.file("run"), 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "error:")) << r.output;
  EXPECT_TRUE(contains(r.output, "--no-such-option")) << r.output;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("run"))) << "a usage error created --out";
}

TEST(AppCli, MissingDataFileExitsOneNamingTheFile) {
  TempDir tmp;
  const std::string missing = tmp.file("missing_train.h5");
  const CommandResult r = run_command(
      vae_dist() + " --data " + shell_quote(missing) + " --test-data '' --out " + tmp.file("run"),
      60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error:")) << r.output;
  EXPECT_TRUE(contains(r.output, missing)) << r.output;
  EXPECT_TRUE(contains(r.output, "does not exist")) << r.output;
}

TEST(AppCli, NonHdf5DataFileExitsOneNamingTheProblem) {
  TempDir tmp;
  const std::string text = tmp.file("train.h5");
  std::ofstream(text) << "this is plain text, not HDF5\n";
  const CommandResult r = run_command(
      vae_dist() + " --data " + shell_quote(text) + " --test-data '' --out " + tmp.file("run"), 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "error:")) << r.output;
  EXPECT_TRUE(contains(r.output, text)) << r.output;
  EXPECT_TRUE(contains(r.output, "not an HDF5 file")) << r.output;
}

}  // namespace
}  // namespace vd::testing
