// Tests of vd::EpochPlan, built for every rank of a world in one process: the ranks' batches
// cover the data set exactly once per epoch, all ranks run the same number of steps, and the
// global sample count of each step is the sum of the ranks' batch sizes.
#include "data/epoch_plan.hpp"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/error.hpp"

namespace {

struct World {
  std::vector<vd::EpochPlan> plans;
  World(int64_t n, int world, int batch) {
    for (int r = 0; r < world; ++r) plans.emplace_back(n, r, world, batch);
  }
};

TEST(EpochPlan, EveryRowIsVisitedOncePerEpochAcrossAllRanks) {
  for (int64_t n : {10, 97, 128, 1000}) {
    for (int world : {1, 2, 3, 7}) {
      for (int batch : {1, 8, 33, 128}) {
        World w(n, world, batch);
        const int64_t steps = w.plans[0].steps_per_epoch();
        std::multiset<int64_t> seen;
        for (auto& p : w.plans) {
          EXPECT_EQ(p.steps_per_epoch(), steps) << "ranks disagree on the step count";
          p.shuffle(5, 1);
        }
        for (int64_t st = 0; st < steps; ++st) {
          int64_t count = 0;
          for (auto& p : w.plans) {
            const auto rows = p.local_rows(st);
            EXPECT_LE(static_cast<int64_t>(rows.size()), batch);
            count += static_cast<int64_t>(rows.size());
            for (int64_t r : rows) {
              ASSERT_GE(r, 0);
              ASSERT_LT(r, p.shard().size());
              seen.insert(p.shard().begin + r);
            }
          }
          EXPECT_EQ(count, w.plans[0].global_count(st));
          EXPECT_GT(count, 0) << "a step with no samples on any rank";
        }
        ASSERT_EQ(static_cast<int64_t>(seen.size()), n);
        int64_t expect = 0;
        for (int64_t r : seen) EXPECT_EQ(r, expect++) << "n=" << n << " world=" << world;
      }
    }
  }
}

TEST(EpochPlan, ShuffleIsAPureFunctionOfSeedEpochAndRank) {
  vd::EpochPlan a(1000, 1, 3, 16), b(1000, 1, 3, 16), c(1000, 2, 3, 16);
  a.shuffle(9, 4);
  b.shuffle(9, 4);
  c.shuffle(9, 4);
  const auto ra = a.local_rows(0), rb = b.local_rows(0), rc = c.local_rows(0);
  EXPECT_TRUE(std::equal(ra.begin(), ra.end(), rb.begin(), rb.end()));
  EXPECT_FALSE(std::equal(ra.begin(), ra.end(), rc.begin(), rc.end()));
  b.shuffle(9, 5);
  const auto rb5 = b.local_rows(0);
  EXPECT_FALSE(std::equal(ra.begin(), ra.end(), rb5.begin(), rb5.end()));
  // The eps stream depends on epoch and rank too.
  EXPECT_EQ(a.eps_rng(9, 4).next_u64(), b.eps_rng(9, 4).next_u64());
  EXPECT_NE(a.eps_rng(9, 4).next_u64(), a.eps_rng(9, 5).next_u64());
  EXPECT_NE(a.eps_rng(9, 4).next_u64(), c.eps_rng(9, 4).next_u64());
}

TEST(EpochPlan, SmallerShardGetsAShortOrEmptyLastStep) {
  // 7 rows over 2 ranks: shards of 3 and 4 rows; batch 2 -> 2 steps each.
  World w(7, 2, 2);
  ASSERT_EQ(w.plans[0].steps_per_epoch(), 2);
  EXPECT_EQ(w.plans[0].shard().size() + w.plans[1].shard().size(), 7);
  EXPECT_EQ(w.plans[0].global_count(0), 4);
  EXPECT_EQ(w.plans[0].global_count(1), 3);
  // 5 rows over 2 ranks with batch 2: shards 2 and 3; rank 0 has nothing in step 1.
  World v(5, 2, 2);
  const vd::EpochPlan& small = v.plans[0].shard().size() == 2 ? v.plans[0] : v.plans[1];
  EXPECT_TRUE(small.local_rows(1).empty());
  EXPECT_EQ(v.plans[0].global_count(1), 1);
}

TEST(EpochPlan, RejectsImpossibleWorlds) {
  EXPECT_THROW(vd::EpochPlan(3, 0, 4, 8), vd::ShapeError);
  EXPECT_THROW(vd::EpochPlan(10, 2, 2, 8), vd::ShapeError);
  EXPECT_THROW(vd::EpochPlan(10, 0, 1, 0), vd::ShapeError);
}

}  // namespace
