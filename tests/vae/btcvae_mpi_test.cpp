// MPI test (2 and 3 ranks) of beta-TCVAE: P ranks, each with its slice of a batch, every
// rank's mu and logvar gathered and the estimator's gradient of them summed by
// MpiBatchReducer, give the loss, the terms and the gradient of one process on the union
// batch, also when a rank has no rows at all.
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
#include "vae/btcvae.hpp"

namespace {

struct Model {
  vd::ParamStore store;
  std::unique_ptr<vd::BtcVae> vae;
  vd::Context ctx;
  explicit Model(const vd::ModelConfig& cfg) {
    vae = std::make_unique<vd::BtcVae>(cfg, store);
    store.finalize();
    vd::Rng rng(9);  // the same parameters on every rank
    vae->init(rng);
  }
};

void check_union(int N) {
  const vd::Comm comm;
  const int L = 4, D = 10;
  vd::ModelConfig cfg = vd::ModelConfig::mlp(D, {12}, L);
  cfg.model = "btcvae";
  cfg.likelihood = vd::Likelihood::Gaussian;
  cfg.dataset_rows = 600;
  std::vector<float> x(static_cast<size_t>(N) * D), eps(static_cast<size_t>(N) * L);
  vd::Rng rng(21);  // the same union batch on every rank
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1.0, 2.0));
  rng.fill_normal(eps.data(), eps.size());
  const vd::RowRange mine = vd::shard_rows(N, comm.rank(), comm.size());
  const float beta = 5.0f, scale = 1.0f / static_cast<float>(N);

  Model dist(cfg);
  vd::MpiBatchReducer reducer(comm);
  dist.ctx.batch_reducer = &reducer;
  const int n = static_cast<int>(mine.size());
  const vd::LossSums s = dist.vae->train_step(
      dist.ctx, vd::Batch{n, x.data() + mine.begin * D, nullptr, eps.data() + mine.begin * L}, beta,
      scale);
  std::vector<double> sums = {s.loss};
  sums.insert(sums.end(), s.term.begin(), s.term.begin() + 5);
  comm.allreduce_sum(std::span<double>(sums));
  comm.allreduce_sum(dist.store.grads());

  Model one(cfg);
  const vd::LossSums w =
      one.vae->train_step(one.ctx, vd::Batch{N, x.data(), nullptr, eps.data()}, beta, scale);
  EXPECT_NEAR(sums[0], w.loss, 1e-6 * std::abs(w.loss));
  for (int t = 0; t < 5; ++t)
    EXPECT_NEAR(sums[1 + t], w.term[t], 1e-6 * std::abs(w.term[t]) + 1e-9) << "term " << t;
  ASSERT_GT(std::abs(w.term[vd::BtcVae::kTc]), 1e-3);
  vd::testing::expect_union_gradient(dist.store.grads(), one.store.grads(), comm.size());
}

TEST(BtcVaeMpi, RanksEqualOneProcessOnTheUnionBatch) {
  check_union(13);
}

TEST(BtcVaeMpi, ARankWithoutRowsStillJoinsTheExchanges) {
  const vd::Comm comm;
  check_union(comm.size() - 1);  // rank 0 has no rows
}

}  // namespace
