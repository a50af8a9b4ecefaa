// Tests of parallel/placement's pure part: the CPU list notation and when ranks that share CPUs
// under OpenMP binding draw a warning (the end-to-end runs are in tests/app/placement_test.cpp).
#include "parallel/placement.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace vd {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(CpuListText, CompressesRunsLikeTheKernel) {
  EXPECT_EQ(cpu_list_text({}), "");
  EXPECT_EQ(cpu_list_text({3}), "3");
  EXPECT_EQ(cpu_list_text({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
}

TEST(SharedCpusWarning, NamesHostRanksCpusAndTheRemedies) {
  const std::string w =
      shared_cpus_warning("node7", {{0, true, {0, 1}}, {1, true, {0, 1}}}, "OMP_PROC_BIND=close");
  EXPECT_TRUE(contains(w, "warning: on host node7, ranks 0 and 1")) << w;
  EXPECT_TRUE(contains(w, "rank 0: CPUs 0-1; rank 1: CPUs 0-1")) << w;
  EXPECT_TRUE(contains(w, "OMP_PROC_BIND=close")) << w;
  EXPECT_TRUE(contains(w, "srun --cpu-bind=cores")) << w;
  EXPECT_TRUE(contains(w, "mpirun --bind-to core")) << w;
  EXPECT_TRUE(contains(w, "unset OMP_PROC_BIND")) << w;
}

TEST(SharedCpusWarning, SilentForDisjointRanksOrWithoutBinding) {
  // Bound ranks on cores of their own.
  EXPECT_EQ(shared_cpus_warning("h", {{0, true, {0, 1}}, {1, true, {2, 3}}}, ""), "");
  // Overlapping but unbound: the OS spreads the threads.
  EXPECT_EQ(shared_cpus_warning("h", {{0, false, {0, 1}}, {1, false, {0, 1}}}, ""), "");
  // One rank alone.
  EXPECT_EQ(shared_cpus_warning("h", {{0, true, {0}}}, ""), "");
}

TEST(SharedCpusWarning, ListsOnlyTheRanksThatOverlapInRankOrder) {
  const std::string w = shared_cpus_warning(
      "h", {{6, true, {4}}, {2, true, {0, 1}}, {4, true, {1}}, {5, true, {2}}}, "");
  EXPECT_TRUE(contains(w, "ranks 2 and 4 ")) << w;
  EXPECT_FALSE(contains(w, "rank 5")) << w;
  EXPECT_FALSE(contains(w, "rank 6")) << w;
}

TEST(ThisRankPlacement, ReportsTheRankAndSomeCpus) {
  const RankPlacement p = this_rank_placement(3);
  EXPECT_EQ(p.rank, 3);
  EXPECT_FALSE(p.cpus.empty());
  EXPECT_TRUE(std::is_sorted(p.cpus.begin(), p.cpus.end()));
}

}  // namespace
}  // namespace vd
