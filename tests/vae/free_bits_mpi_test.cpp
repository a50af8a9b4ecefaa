// MPI test (2 and 3 ranks) of free bits: P ranks, each with its slice of a batch and the
// per-dimension KL sums exchanged by MpiBatchReducer, give the gradient and loss of one process
// on the union batch, also when the floor decision of a rank's own slice would differ from the
// global batch's, and when a rank has no rows at all.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.hpp"
#include "data/shard.hpp"
#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "parallel/batch_reducer.hpp"
#include "parallel/comm.hpp"
#include "support/gradcheck.hpp"
#include "vae/loss.hpp"
#include "vae/model.hpp"

namespace {

struct Model {
  vd::ParamStore store;
  std::unique_ptr<vd::Vae> vae;
  vd::Context ctx;
  explicit Model(const vd::ModelConfig& cfg) {
    vae = std::make_unique<vd::Vae>(cfg, store);
    store.finalize();
    vd::Rng rng(9);  // the same parameters on every rank
    vae->init(rng);
  }
};

// Mean KL per dimension of rows [begin, end) of x, through the model's encoder.
std::vector<double> mean_kl(Model& m, int L, int D, const std::vector<float>& x, int64_t begin,
                            int64_t end) {
  const int n = static_cast<int>(end - begin);
  std::vector<float> mu(static_cast<size_t>(n) * L), lv(mu.size());
  m.vae->encode(m.ctx, vd::Batch{n, x.data() + begin * D, nullptr, nullptr}, mu.data(), lv.data());
  std::vector<double> sums(static_cast<size_t>(L));
  vd::kl_per_dim_sums(n, L, mu.data(), lv.data(), sums.data());
  for (auto& v : sums) v /= n;
  return sums;
}

void check_union(int N) {
  const vd::Comm comm;
  const int L = 6, D = 10;
  vd::ModelConfig cfg = vd::ModelConfig::mlp(D, {12}, L);
  cfg.likelihood = vd::Likelihood::Gaussian;
  std::vector<float> x(static_cast<size_t>(N) * D), eps(static_cast<size_t>(N) * L);
  vd::Rng rng(21);  // the same union batch on every rank
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1.0, 2.0));
  rng.fill_normal(eps.data(), eps.size());
  const vd::RowRange mine = vd::shard_rows(N, comm.rank(), comm.size());

  // lambda between rank 0's slice mean and the union mean of the dimension where they differ
  // most: there rank 0's own slice would decide the floor the other way.
  Model probe(cfg);
  const std::vector<double> u = mean_kl(probe, L, D, x, 0, N);
  const vd::RowRange first = vd::shard_rows(N, 0, comm.size());
  double lambda = 0.5 * (u[0] + u[1]);
  if (first.size() > 0) {
    const std::vector<double> a = mean_kl(probe, L, D, x, first.begin, first.end);
    int j = 0;
    for (int k = 1; k < L; ++k)
      if (std::abs(a[k] - u[k]) > std::abs(a[j] - u[j])) j = k;
    lambda = 0.5 * (a[j] + u[j]);
    std::vector<uint8_t> local(L), global(L);
    vd::free_bits_kl(L, a.data(), lambda, local.data());
    vd::free_bits_kl(L, u.data(), lambda, global.data());
    ASSERT_NE(local[j], global[j]) << "the test needs a dimension the slice decides differently";
  }
  for (double v : u) ASSERT_GT(std::abs(v - lambda), 1e-9);
  cfg.free_bits = lambda;
  const float beta = 0.9f, scale = 1.0f / static_cast<float>(N);

  // P ranks: each its slice, the KL sums exchanged, the gradients summed.
  Model dist(cfg);
  vd::MpiBatchReducer reducer(comm);
  dist.ctx.batch_reducer = &reducer;
  const int n = static_cast<int>(mine.size());
  vd::LossSums s = dist.vae->train_step(
      dist.ctx, vd::Batch{n, x.data() + mine.begin * D, nullptr, eps.data() + mine.begin * L}, beta,
      scale);
  double sums[3] = {s.loss, s.term[vd::Vae::kRecon], s.term[vd::Vae::kKl]};
  comm.allreduce_sum(std::span<double>(sums, 3));
  comm.allreduce_sum(dist.store.grads());

  // One process on the union batch.
  Model one(cfg);
  const vd::LossSums w =
      one.vae->train_step(one.ctx, vd::Batch{N, x.data(), nullptr, eps.data()}, beta, scale);
  EXPECT_NEAR(sums[0], w.loss, 1e-6 * std::abs(w.loss));
  EXPECT_NEAR(sums[1], w.term[vd::Vae::kRecon], 1e-6 * std::abs(w.term[vd::Vae::kRecon]));
  EXPECT_NEAR(sums[2], w.term[vd::Vae::kKl], 1e-6 * std::abs(w.term[vd::Vae::kKl]));
  vd::testing::expect_union_gradient(dist.store.grads(), one.store.grads(), comm.size());
}

TEST(FreeBitsMpi, RanksEqualOneProcessOnTheUnionBatch) {
  check_union(13);
}

TEST(FreeBitsMpi, ARankWithoutRowsStillJoinsTheExchange) {
  const vd::Comm comm;
  check_union(comm.size() - 1);  // rank 0 has no rows
}

}  // namespace
