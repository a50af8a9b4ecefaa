// End-to-end tests of the binaries' command lines: --help, --version and usage errors (exit 2),
// answered without starting MPI and printed once on several ranks, and unusable data files
// (exit 1), each run as a real child process.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>

#include "app/child_process.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

std::string vae_dist() {
  return env_prefix() + " " + binary("vae_dist");
}

// Runs binary `name` where MPI cannot start: Open MPI looks for its components in a directory
// that does not exist, so MPI_Init fails. A command that succeeds here never started MPI.
std::string without_mpi(const std::string& name) {
  return env_prefix() + " OMPI_MCA_mca_base_component_path=/nonexistent " + binary(name);
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size()))
    ++n;
  return n;
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

TEST(AppCli, WithoutMpiComponentsATrainingRunFails) {
  // The premise of the tests below: in this environment anything that starts MPI fails.
  TempDir tmp;
  const CommandResult r =
      run_command(without_mpi("vae_dist") + " --data " + shell_quote(tmp.file("missing.h5")) +
                      " --test-data '' --out " + tmp.file("run"),
                  60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, "does not exist")) << "MPI started after all:\n" << r.output;
}

TEST(AppCli, VersionNamesTheLibrariesWithoutStartingMpi) {
  for (const std::string name : {"vae_dist", "vae_data", "vae_bench"}) {
    const CommandResult r = run_command(without_mpi(name) + " --version", 60);
    EXPECT_EQ(r.exit_code, 0) << name << ":\n" << r.output;
    const std::regex first_line("^" + name + " [0-9]+\\.[0-9]+\\.[0-9]+\n");
    EXPECT_TRUE(std::regex_search(r.output, first_line)) << name << ":\n" << r.output;
    for (const char* library : {"\noneDNN ", "\nHDF5 ", "\nMPI "})
      EXPECT_TRUE(contains(r.output, library))
          << name << " --version does not name" << library << ":\n"
          << r.output;
  }
}

TEST(AppCli, HelpAndUsageErrorsDoNotStartMpi) {
  CommandResult r = run_command(without_mpi("vae_dist") + " --help", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "--version")) << r.output;
  r = run_command(without_mpi("vae_dist") + " --epochs 0", 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "error: --epochs")) << r.output;
  r = run_command(without_mpi("vae_bench") + " --help", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_command(without_mpi("vae_bench") + " --no-such-option", 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--no-such-option")) << r.output;
}

TEST(AppCli, OptionsPageIsTheHelpOutput) {
  const CommandResult r = run_command(vae_dist() + " --help", 60);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string page = read_text(std::string(VD_SOURCE_DIR) + "/docs/options.md");
  EXPECT_TRUE(contains(page, "```text\n" + r.output + "```\n"))
      << "docs/options.md is not the output of `vae_dist --help`; regenerate it from "
         "`build/vae_dist --help` with the command at the top of docs/options.md:\n"
      << r.output;
}

TEST(AppCli, OnTwoRanksHelpVersionAndUsageErrorsPrintOnce) {
  const std::string two_ranks = mpi_prefix(2) + " " + binary("vae_dist");
  CommandResult r = run_command(two_ranks + " --version", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "oneDNN "), 1u) << r.output;
  r = run_command(two_ranks + " --help", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "Usage: vae_dist"), 1u) << r.output;
  // Every rank exits 2 at once; mpirun reports it and ends nonzero rather than waiting.
  r = run_command(two_ranks + " --no-such-option 3", 60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, kTimedOut) << r.output;
  EXPECT_EQ(count(r.output, "error: unknown option '--no-such-option'"), 1u) << r.output;
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
