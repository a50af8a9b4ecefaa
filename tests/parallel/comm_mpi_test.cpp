// MPI tests of vd::Comm (run with 2 and 3 ranks): sums, broadcasts and gathers give the
// values computed by hand, a replica mismatch is detected on every rank, and the node-local
// ranks and default threads.
#include "parallel/comm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "nn/param_store.hpp"
#include "optim/adam.hpp"

namespace {

TEST(Comm, AllreduceSumsEveryElementOverRanks) {
  vd::Comm comm;
  const int P = comm.size(), r = comm.rank();
  ASSERT_GE(P, 2) << "run this test under mpiexec with 2 or more ranks";
  std::vector<float> f(1001);
  std::vector<double> d(7);
  std::vector<int64_t> i(3);
  for (size_t k = 0; k < f.size(); ++k) f[k] = static_cast<float>(r + 1) * static_cast<float>(k);
  for (size_t k = 0; k < d.size(); ++k) d[k] = 0.5 * r + static_cast<double>(k);
  for (size_t k = 0; k < i.size(); ++k) i[k] = int64_t{1} << (40 + r);
  comm.allreduce_sum(f);
  comm.allreduce_sum(d);
  comm.allreduce_sum(i);
  const float ranks_sum = static_cast<float>(P * (P + 1) / 2);  // sum of (r + 1)
  for (size_t k = 0; k < f.size(); ++k) ASSERT_EQ(f[k], ranks_sum * static_cast<float>(k));
  for (size_t k = 0; k < d.size(); ++k)
    ASSERT_DOUBLE_EQ(d[k], 0.5 * P * (P - 1) / 2 + static_cast<double>(P) * k);
  int64_t expect = 0;
  for (int q = 0; q < P; ++q) expect += int64_t{1} << (40 + q);
  for (int64_t v : i) ASSERT_EQ(v, expect);
  EXPECT_EQ(comm.allreduce_max(int64_t{r}), P - 1);
  EXPECT_EQ(comm.allreduce_min(int64_t{r} + 5), 5);
}

TEST(Comm, BroadcastAndGatherMoveRankData) {
  vd::Comm comm;
  std::vector<float> v(5, static_cast<float>(comm.rank()));
  comm.broadcast(v, 1);
  for (float x : v) EXPECT_EQ(x, 1.0f);
  std::string text = comm.rank() == 0 ? "from rank zero" : "";
  comm.broadcast(text, 0);
  EXPECT_EQ(text, "from rank zero");
  const auto all = comm.gather_strings(std::string(static_cast<size_t>(comm.rank()), 'x'), 0);
  if (comm.is_root()) {
    ASSERT_EQ(static_cast<int>(all.size()), comm.size());
    for (int r = 0; r < comm.size(); ++r) EXPECT_EQ(all[static_cast<size_t>(r)].size(), size_t(r));
  } else {
    EXPECT_TRUE(all.empty());
  }
}

TEST(Comm, GatherConcatenatesInRankOrder) {
  vd::Comm comm;
  // Rank r sends r + 1 values r * 10 + i.
  std::vector<double> mine;
  std::vector<float> mine_f;
  for (int i = 0; i <= comm.rank(); ++i) {
    mine.push_back(comm.rank() * 10 + i);
    mine_f.push_back(static_cast<float>(comm.rank() * 10 + i) + 0.5f);
  }
  const auto all = comm.gather(std::span<const double>(mine), 0);
  const auto all_f = comm.gather(std::span<const float>(mine_f), 0);
  if (!comm.is_root()) {
    EXPECT_TRUE(all.empty());
    return;
  }
  std::vector<double> want;
  for (int r = 0; r < comm.size(); ++r)
    for (int i = 0; i <= r; ++i) want.push_back(r * 10 + i);
  EXPECT_EQ(all, want);
  ASSERT_EQ(all_f.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) EXPECT_EQ(all_f[j], static_cast<float>(want[j]) + 0.5f);
}

TEST(Comm, ReplicaMismatchIsDetectedOnEveryRank) {
  vd::Comm comm;
  std::vector<float> params(100);
  std::iota(params.begin(), params.end(), 0.0f);
  EXPECT_NO_THROW(vd::check_replicas(comm, params, "in the test"));
  // One bit of one parameter on the last rank.
  if (comm.rank() == comm.size() - 1) params[37] = std::nextafter(params[37], 1e9f);
  try {
    vd::check_replicas(comm, params, "in the test");
    ADD_FAILURE() << "rank " << comm.rank() << " did not detect the mismatch";
  } catch (const vd::DistError& e) {
    EXPECT_NE(std::string(e.what()).find("differ across ranks in the test"), std::string::npos);
  }
}

TEST(Comm, NodeLocalRanksAndDefaultThreads) {
  vd::Comm comm;
  // All ranks of the test run on this machine, unless tests/multi_host runs it across hosts.
  if (std::getenv("VD_TEST_HOSTS") == nullptr) {
    EXPECT_EQ(comm.local_size(), comm.size());
  }
  EXPECT_GE(vd::default_threads_per_rank(comm), 1);
  EXPECT_EQ(vd::resolve_threads(3, comm), 3);
}

}  // namespace
