// MPI test (2 and 3 ranks) of the sums behind active units and class means: each rank adds
// its shard of one data set and an allreduce gives what one process gets from all of it.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.hpp"
#include "data/shard.hpp"
#include "parallel/comm.hpp"
#include "vae/latent.hpp"

namespace {

TEST(LatentMpi, ShardSumsEqualTheWholeDataSet) {
  const vd::Comm comm;
  const int n = 101, L = 5, K = 3;
  std::vector<float> mu(n * L), logvar(n * L);
  std::vector<int32_t> labels(n);
  vd::Rng rng(11);  // the same data on every rank
  rng.fill_normal(mu.data(), mu.size());
  rng.fill_normal(logvar.data(), logvar.size());
  for (int i = 0; i < n; ++i) labels[i] = i % K;
  for (int j = 0; j < n; ++j) mu[j * L + 4] *= 0.01f;  // an inactive unit

  vd::PosteriorStats whole(L), part(L);
  whole.add(n, mu.data(), logvar.data());
  vd::ClassSums whole_c(K, L), part_c(K, L);
  whole_c.add(n, mu.data(), labels.data());
  const vd::RowRange r = vd::shard_rows(n, comm.rank(), comm.size());
  part.add(r.size(), mu.data() + r.begin * L, logvar.data() + r.begin * L);
  part_c.add(r.size(), mu.data() + r.begin * L, labels.data() + r.begin);
  comm.allreduce_sum(part.data());
  comm.allreduce_sum(part_c.data());

  EXPECT_EQ(part.count(), n);
  EXPECT_EQ(part.active_units(), whole.active_units());
  EXPECT_EQ(whole.active_units(), 4);
  for (int j = 0; j < L; ++j) {
    EXPECT_NEAR(part.kl_per_dim()[j], whole.kl_per_dim()[j], 1e-12);
    EXPECT_NEAR(part.mu_variance()[j], whole.mu_variance()[j], 1e-12);
  }
  const auto a = part_c.means(), b = whole_c.means();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6);
}

}  // namespace
