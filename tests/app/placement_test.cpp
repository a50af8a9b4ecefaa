// End-to-end: 2 ranks of vae_dist warn at start-up when OpenMP binding is on but mpirun does not
// bind the ranks (both pin their threads to the first core), and stay quiet when it does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "app/child_process.hpp"
#include "support/fashion_mnist.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

const char* kWarning = "may run on the same CPUs";

// A one-step 2-rank run of configs/smoke.cfg with extra mpirun options.
CommandResult run_two_ranks(const std::string& mpirun_options, const TempDir& dir) {
  return run_command("cd " + shell_quote(VD_SOURCE_DIR) + " && " + mpi_prefix(2) + " " +
                         mpirun_options + " " + binary("vae_dist") +
                         " --config configs/smoke.cfg --max-steps 1 --iw-samples 0 --out " +
                         shell_quote(dir.file("run")),
                     120);
}

TEST(Placement, UnboundRanksWithOpenMpBindingDrawAWarningOnRankZero) {
  VD_REQUIRE_FASHION_MNIST();
  TempDir dir;
  const CommandResult r = run_two_ranks("--bind-to none -x OMP_PROC_BIND=close", dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(
      r.output, std::string("warning: on host ") +
                    [] {
                      char h[256] = {};
                      gethostname(h, sizeof h - 1);
                      return std::string(h);
                    }() +
                    ", ranks 0 and 1 " + kWarning))
      << r.output;
  EXPECT_TRUE(contains(r.output, "OMP_PROC_BIND=close")) << r.output;
  // Printed once, by rank 0.
  EXPECT_EQ(r.output.find(kWarning), r.output.rfind(kWarning)) << r.output;
}

TEST(Placement, RanksBoundToTheirOwnCoresOrUnpinnedThreadsDrawNone) {
  VD_REQUIRE_FASHION_MNIST();
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 CPUs to bind 2 ranks apart";
  TempDir dir;
  CommandResult r = run_two_ranks("--bind-to core -x OMP_PROC_BIND=close -x OMP_PLACES=cores", dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, kWarning)) << r.output;
  TempDir dir2;
  r = run_two_ranks("--bind-to none -x OMP_PROC_BIND=false", dir2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, kWarning)) << r.output;
}

}  // namespace
}  // namespace vd::testing
