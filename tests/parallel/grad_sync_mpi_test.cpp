// MPI tests of vd::GradientSync (run with 2 and 3 ranks, and the world-size-free ones on one):
// every gradient path gives the same update bitwise, and the exchange carries the stop and
// divergence verdicts and clips as torch does.
#include "parallel/grad_sync.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "core/simd.hpp"
#include "nn/param_store.hpp"
#include "optim/adam.hpp"
#include "optim/ema.hpp"
#include "parallel/comm.hpp"

namespace {

// Three updates through GradientSync with the given method (nullptr: its own choice) and
// bucket size; every rank's gradient is integer-valued, so the sums are exact in any order
// and all methods must agree bitwise. Backward is mimicked: the "dec" layer's gradients are
// written and announced first, then "enc"'s, as the VAE's backward does.
std::vector<float> three_updates(const char* method, const char* bucket_kb, std::string* used) {
  if (method) setenv("VAE_DIST_GRAD_SYNC", method, 1);
  if (bucket_kb) {
    setenv("VAE_DIST_OVERLAP", "1", 1);
    setenv("VAE_DIST_BUCKET_KB", bucket_kb, 1);
  }
  vd::Comm comm;
  vd::ParamStore store;
  store.add("enc.weight", {300, 7});
  store.add("enc.bias", {5});
  store.add("dec.weight", {37, 30});
  store.add("dec.bias", {3});
  store.finalize();
  for (size_t i = 0; i < store.size(); ++i) store.params()[i] = 0.01f * static_cast<float>(i);
  vd::Adam adam(store.size(), vd::AdamConfig{});
  std::vector<float> out;
  {
    vd::GradientSync sync(comm, store, adam);
    *used = sync.method();
    const size_t split = store.find("dec.weight").offset;
    for (int step = 0; step < 3; ++step) {
      auto g = store.grads();
      auto fill = [&](size_t lo, size_t hi) {
        for (size_t i = lo; i < hi; ++i)
          g[i] = static_cast<float>((comm.rank() + 1) * (static_cast<int>(i % 7) - 3 + step));
      };
      fill(split, g.size());
      const size_t dec[] = {store.index_of("dec.weight"), store.index_of("dec.bias")};
      const size_t enc[] = {store.index_of("enc.weight"), store.index_of("enc.bias")};
      sync.backward_done(dec);
      fill(0, split);
      sync.backward_done(enc);
      EXPECT_EQ(sync.update(1e-2), 0);
    }
    out.assign(store.params().begin(), store.params().end());
  }
  unsetenv("VAE_DIST_GRAD_SYNC");
  unsetenv("VAE_DIST_OVERLAP");
  unsetenv("VAE_DIST_BUCKET_KB");
  // After the sync object is gone the store holds a private copy of the same values.
  EXPECT_TRUE(std::equal(out.begin(), out.end(), store.params().begin()));
  return out;
}

TEST(GradientSync, EveryMethodGivesTheSameUpdateOnEveryRank) {
  vd::Comm comm;
  std::string own_method, small_method, allreduce_method;
  const std::vector<float> own = three_updates(nullptr, nullptr, &own_method);
  // Overlapped, in 1 KiB buckets: many exchanges across nodes, most started before update().
  const std::vector<float> small = three_updates(nullptr, "1", &small_method);
  const std::vector<float> reduced = three_updates("allreduce", nullptr, &allreduce_method);
  const int64_t local = comm.local_size();
  if (local == comm.size())
    EXPECT_EQ(own_method, "shared memory");
  else if (comm.allreduce_min(local) == comm.allreduce_max(local))
    EXPECT_EQ(own_method.rfind("shared memory + allreduce across", 0), 0u) << own_method;
  else  // nodes with unequal rank counts
    EXPECT_EQ(own_method, "allreduce");
  EXPECT_EQ(allreduce_method, "allreduce");
  ASSERT_EQ(own.size(), reduced.size());
  for (size_t i = 0; i < own.size(); ++i) {
    ASSERT_EQ(own[i], reduced[i]) << "element " << i;
    ASSERT_EQ(small[i], reduced[i]) << "element " << i;
  }
  // Identical on every rank.
  vd::check_replicas(comm, own, "after the updates");
  // The update really happened: Adam moved every parameter against the gradient sign.
  EXPECT_NE(own[1], 0.01f);
}

// The gradient path a test asks for while it lives: "" (GradientSync's own choice), "overlap"
// (VAE_DIST_OVERLAP=1) or "allreduce" (VAE_DIST_GRAD_SYNC=allreduce).
struct SyncPath {
  explicit SyncPath(const std::string& method) {
    if (method == "allreduce") setenv("VAE_DIST_GRAD_SYNC", "allreduce", 1);
    if (method == "overlap") setenv("VAE_DIST_OVERLAP", "1", 1);
  }
  ~SyncPath() {
    unsetenv("VAE_DIST_GRAD_SYNC");
    unsetenv("VAE_DIST_OVERLAP");
  }
  SyncPath(const SyncPath&) = delete;
  SyncPath& operator=(const SyncPath&) = delete;
};

// The stop requests ride in the gradient exchange: every rank gets the same answer, SIGTERM
// over SIGINT, from any rank.
TEST(GradientSync, StopRequestsReachEveryRankWithTheUpdate) {
  for (const std::string method : {"", "overlap", "allreduce"}) {
    SyncPath path(method);
    vd::Comm comm;
    vd::ParamStore store;
    store.add("w", {40});
    store.finalize();
    vd::Adam adam(store.size(), vd::AdamConfig{});
    {
      vd::GradientSync sync(comm, store, adam);
      const int last = comm.size() - 1;
      EXPECT_EQ(sync.update(1e-3, 0), 0) << sync.method();
      EXPECT_EQ(sync.update(1e-3, comm.rank() == last ? SIGTERM : 0), SIGTERM) << sync.method();
      EXPECT_EQ(sync.update(1e-3, comm.rank() == 0 ? SIGINT : 0), SIGINT) << sync.method();
      EXPECT_EQ(sync.update(1e-3, comm.rank() == 0 ? SIGINT : (comm.rank() == last ? SIGTERM : 0)),
                SIGTERM)
          << sync.method();
      EXPECT_EQ(sync.update(1e-3, 0), 0) << sync.method();
    }
  }
}

// A non-finite loss or gradient on any rank is known to every rank after the same update.
TEST(GradientSync, NonFiniteVerdictReachesEveryRankWithTheUpdate) {
  for (const std::string method : {"", "overlap", "allreduce"}) {
    SyncPath path(method);
    vd::Comm comm;
    vd::ParamStore store;
    store.add("w", {40});
    store.finalize();
    vd::Adam adam(store.size(), vd::AdamConfig{});
    {
      vd::GradientSync sync(comm, store, adam);
      const int last = comm.size() - 1;
      auto a = sync.update_checked(1e-3, 0, false);
      EXPECT_EQ(a.non_finite, 0) << sync.method();
      a = sync.update_checked(1e-3, 0, comm.rank() == last);
      EXPECT_EQ(a.non_finite, 1) << sync.method();
      EXPECT_EQ(a.signal, 0) << sync.method();
      a = sync.update_checked(1e-3, comm.rank() == 0 ? SIGTERM : 0, true);
      EXPECT_EQ(a.non_finite, comm.size()) << sync.method();
      EXPECT_EQ(a.signal, SIGTERM) << sync.method();
      EXPECT_EQ(sync.update_checked(1e-3, 0, false).non_finite, 0) << sync.method();
    }
  }
}

// --grad-clip against torch.nn.utils.clip_grad_norm_ over the summed gradient G:
// norm = ||G||_2, G *= min(1, max_norm / (norm + 1e-6)). With beta1 = 0 Adam's first moment
// after one step is the gradient it was given, so it shows the clipped sum on every method.
TEST(GradientSync, GradClipScalesTheSummedGradientAsTorchDoes) {
  for (const std::string method : {"", "overlap", "allreduce"}) {
    for (const double max_norm : {0.5, 1e6}) {
      SyncPath path(method);
      vd::Comm comm;
      vd::ParamStore store;
      store.add("a.weight", {30, 7});
      store.add("a.bias", {5});
      store.add("b.weight", {3, 11});
      store.finalize();
      vd::AdamConfig ac;
      ac.beta1 = 0;
      vd::Adam adam(store.size(), ac);
      // Padding between entries stays zero: only entries carry gradients.
      std::vector<char> in_entry(store.size(), 0);
      for (const auto& e : store.entries())
        std::fill(in_entry.begin() + e.offset, in_entry.begin() + e.offset + e.size, 1);
      const auto grad = [&](int rank, size_t i) {
        if (!in_entry[i]) return 0.0f;
        return 0.01f * static_cast<float>(rank + 1) *
               static_cast<float>(static_cast<int>(i % 13) - 6);
      };
      // The reference, from the formula: the sum in rank order, its norm, the coefficient.
      std::vector<float> want(store.size(), 0.0f);
      double sum_sq = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        for (int r = 0; r < comm.size(); ++r) want[i] += grad(r, i);
        sum_sq += static_cast<double>(want[i]) * want[i];
      }
      const double norm = std::sqrt(sum_sq);
      const float coef = static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
      for (float& w : want) w *= coef;
      {
        vd::GradientSync sync(comm, store, adam);
        sync.set_grad_clip(max_norm);
        auto g = store.grads();
        for (size_t i = 0; i < g.size(); ++i) g[i] = grad(comm.rank(), i);
        sync.update(1e-3);
        const auto m = adam.exp_avg();
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_NEAR(m[i], want[i], 1e-6f * std::max(1.0f, std::abs(want[i])))
              << sync.method() << " element " << i << " max_norm " << max_norm;
      }
    }
  }
}

// The update guard's gate: every rank sees the same figures before the update (the loss sums
// added, the norm of the summed gradient, taken here in double from the formula), and a gate
// that says no leaves the parameters, the moments and Adam's step count as they were, on
// every rank and every method.
TEST(GradientSync, GateSeesTheGlobalFiguresAndSkipsTheUpdateEverywhere) {
  for (const std::string method : {"", "overlap", "allreduce"}) {
    SyncPath path(method);
    vd::Comm comm;
    vd::ParamStore store;
    store.add("a.weight", {30, 7});
    store.add("b.bias", {5});
    store.finalize();
    vd::Adam adam(store.size(), vd::AdamConfig{});
    std::vector<char> in_entry(store.size(), 0);
    for (const auto& e : store.entries())
      std::fill(in_entry.begin() + e.offset, in_entry.begin() + e.offset + e.size, 1);
    const auto grad = [&](int rank, size_t i) {
      return in_entry[i] ? 0.25f * static_cast<float>(rank + 1) *
                               static_cast<float>(static_cast<int>(i % 11) - 5)
                         : 0.0f;
    };
    double sum_sq = 0, loss = 0;
    for (size_t i = 0; i < store.size(); ++i) {
      float g = 0;
      for (int r = 0; r < comm.size(); ++r) g += grad(r, i);
      sum_sq += static_cast<double>(g) * g;
    }
    for (int r = 0; r < comm.size(); ++r) loss += 10.5 * (r + 1);
    {
      vd::GradientSync sync(comm, store, adam);
      std::vector<vd::GradientSync::Figures> seen;
      bool allow = true;
      sync.set_gate([&](const vd::GradientSync::Figures& f) {
        seen.push_back(f);
        return allow;
      });
      const auto step = [&] {
        auto g = store.grads();
        for (size_t i = 0; i < g.size(); ++i) g[i] = grad(comm.rank(), i);
        return sync.update_checked(1e-2, 0, false, 10.5 * (comm.rank() + 1));
      };
      vd::GradientSync::Agreed a = step();
      EXPECT_TRUE(a.applied) << sync.method();
      const std::vector<float> after_one(store.params().begin(), store.params().end());
      const std::vector<float> m_one(adam.exp_avg().begin(), adam.exp_avg().end());
      allow = false;
      a = step();
      EXPECT_FALSE(a.applied) << sync.method();
      EXPECT_EQ(adam.steps(), 1) << sync.method();
      EXPECT_TRUE(std::equal(after_one.begin(), after_one.end(), store.params().begin()))
          << sync.method();
      EXPECT_TRUE(std::equal(m_one.begin(), m_one.end(), adam.exp_avg().begin())) << sync.method();
      ASSERT_EQ(seen.size(), 2u) << sync.method();
      for (const auto& f : seen) {
        EXPECT_EQ(f.loss_sum, loss) << sync.method();
        EXPECT_NEAR(f.grad_norm, std::sqrt(sum_sq), 1e-12 * std::sqrt(sum_sq)) << sync.method();
        EXPECT_EQ(f.non_finite, 0);
      }
      EXPECT_EQ(a.grad_norm, seen[1].grad_norm) << sync.method();
      EXPECT_EQ(a.loss_sum, loss) << sync.method();
      // The same bits on every rank.
      const int64_t bits = std::bit_cast<int64_t>(seen[1].grad_norm);
      EXPECT_EQ(comm.allreduce_min(bits), comm.allreduce_max(bits)) << sync.method();
      allow = true;
      EXPECT_TRUE(step().applied) << sync.method();
      EXPECT_EQ(adam.steps(), 2) << sync.method();
    }
  }
}

// The moving average rides with every applied update on every path, each rank averaging its
// slice of the one shared copy, and stays put when the gate skips an update: the same bits as
// Adam and Ema run in one process on the summed gradient. The store is larger than one block
// of the fused update (16384 floats), and 1 KiB buckets make the overlapped path apply many
// pieces as their sums arrive.
TEST(GradientSync, MovingAverageFollowsEveryAppliedUpdateOnEveryPath) {
  for (const std::string method : {"", "overlap", "overlap-small", "allreduce"}) {
    SyncPath path(method == "overlap-small" ? "overlap" : method);
    if (method == "overlap-small") setenv("VAE_DIST_BUCKET_KB", "1", 1);
    vd::Comm comm;
    vd::ParamStore store;
    store.add("a.weight", {300, 70});
    store.add("b.bias", {5});
    store.finalize();
    const size_t n = store.size();
    for (size_t i = 0; i < n; ++i) store.params()[i] = 0.001f * static_cast<float>(i % 1000);
    std::vector<char> in_entry(n, 0);
    for (const auto& e : store.entries())
      std::fill(in_entry.begin() + e.offset, in_entry.begin() + e.offset + e.size, 1);
    // Integer-valued gradients: their sum over the ranks is exact in any order.
    const auto grad = [&](int rank, size_t i, int step) {
      return in_entry[i] ? static_cast<float>((rank + 1) * (static_cast<int>(i % 11) - 5 + step))
                         : 0.0f;
    };
    // The reference: one process, the summed gradient.
    std::vector<float> ref_p(store.params().begin(), store.params().end()), ref_g(n);
    vd::Adam ref_adam(n, vd::AdamConfig{});
    vd::Ema ref_ema(n, 0.9);
    ref_ema.reset(ref_p);

    vd::Adam adam(n, vd::AdamConfig{});
    vd::Ema ema(n, 0.9);
    ema.reset(store.params());
    {
      vd::GradientSync sync(comm, store, adam, &ema);
      bool allow = true;
      sync.set_gate([&](const vd::GradientSync::Figures&) { return allow; });
      for (int step = 0; step < 4; ++step) {
        allow = step != 2;
        auto g = store.grads();
        for (size_t i = 0; i < n; ++i) g[i] = grad(comm.rank(), i, step);
        EXPECT_EQ(sync.update_checked(1e-2, 0, false).applied, allow) << method;
        if (allow) {
          for (size_t i = 0; i < n; ++i) {
            ref_g[i] = 0;
            for (int r = 0; r < comm.size(); ++r) ref_g[i] += grad(r, i, step);
          }
          ref_adam.step(ref_p, ref_g, 1e-2);
          ref_ema.begin_update();
          ref_ema.apply(ref_p, 0, n);
        }
        ASSERT_TRUE(std::equal(ref_p.begin(), ref_p.end(), store.params().begin()))
            << method << " step " << step;
        const auto avg = ema.values();
        for (size_t i = 0; i < n; ++i)
          ASSERT_EQ(avg[i], ref_ema.values()[i]) << method << " step " << step << " element " << i;
      }
      EXPECT_EQ(ema.updates(), 3) << method;
    }
    // After the sync object is gone every rank holds a private copy of the same average.
    EXPECT_TRUE(std::equal(ref_ema.values().begin(), ref_ema.values().end(), ema.values().begin()))
        << method;
    // The average moved (the third update is not the second's copy).
    EXPECT_NE(ema.values()[3], store.params()[3]) << method;
    unsetenv("VAE_DIST_BUCKET_KB");
  }
}

// sum_of_squares: the double sum of squares, for lengths around its 16 lanes.
TEST(GradientSync, SumOfSquaresMatchesTheDoubleSum) {
  for (size_t n : {0, 1, 15, 16, 17, 1000}) {
    std::vector<float> x(n);
    double want = 0;
    for (size_t i = 0; i < n; ++i) {
      x[i] = 0.1f * static_cast<float>(static_cast<int>(i % 23) - 11);
      want += static_cast<double>(x[i]) * x[i];
    }
    EXPECT_NEAR(vd::sum_of_squares(x.data(), n), want, 1e-12 * std::max(1.0, want)) << n;
  }
  const float inf[] = {1.0f, INFINITY};
  EXPECT_TRUE(std::isinf(vd::sum_of_squares(inf, 2)));
}

}  // namespace
