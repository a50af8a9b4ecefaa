// Evaluation: the validation and test loss terms, the IWAE bound and the sample grids, each
// rank over its rows of the set, summed over the ranks.
#include "train/evaluation.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <numeric>
#include <vector>

#include "data/epoch_plan.hpp"
#include "train/memory_check.hpp"
#include "train/stop_signals.hpp"
#include "vae/latent.hpp"

namespace vd {

namespace {

// Calls fn(batch) for consecutive batches of at most `batch` rows of the shard (x, labels).
template <typename Fn>
void for_each_batch(const Shard& shard, int64_t batch, Fn&& fn) {
  const int64_t n = shard.rows();
  std::vector<float> x(static_cast<size_t>(std::min(n, batch)) * shard.sample_size());
  std::vector<int32_t> labels;
  std::vector<int64_t> rows;
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t b = std::min(batch, n - b0);
    rows.resize(static_cast<size_t>(b));
    std::iota(rows.begin(), rows.end(), b0);
    shard.gather(rows, x.data());
    Batch bt;
    bt.n = static_cast<int>(b);
    bt.x = x.data();
    if (shard.has_labels()) {
      labels.assign(shard.labels().begin() + b0, shard.labels().begin() + b0 + b);
      bt.labels = labels.data();
    }
    fn(bt);
  }
}

}  // namespace

// The sums over every rank, in the report's terms: the loss, the model's `terms` terms, the
// count, in one exchange.
ReportSums reduce(const Comm& comm, const LossSums& local, int terms) {
  std::array<double, kMaxLossTerms + 2> v{};
  v[0] = local.loss;
  std::copy_n(local.term.begin(), terms, v.begin() + 1);
  v[static_cast<size_t>(terms) + 1] = static_cast<double>(local.count);
  comm.allreduce_sum(std::span<double>(v.data(), static_cast<size_t>(terms) + 2));
  ReportSums r;
  r.loss = v[0];
  r.terms.assign(v.begin() + 1, v.begin() + 1 + terms);
  r.count = static_cast<int64_t>(v[static_cast<size_t>(terms) + 1]);
  return r;
}

Evaluator::Evaluator(const Options& opt, const Comm& comm, Context& ctx, LatentModel& model,
                     const Shard& train, const Shard* val, const Shard* test,
                     const FeatureScaling& scaling, SampleGrids& grids, std::string out)
    : opt_(opt),
      comm_(comm),
      ctx_(ctx),
      model_(model),
      train_(train),
      val_(val),
      test_(test),
      scaling_(scaling),
      grids_(grids),
      out_(std::move(out)) {}

// The test set's loss terms and posterior-collapse diagnostics. Active units need the
// variance of mu over the whole test set, so the ranks sum exact per-dimension moments.
ReportSums Evaluator::test(int64_t epoch) {
  if (test_ == nullptr) return ReportSums{};
  Rng rng = make_rng(opt_.seed, RngStream::EvalEps, static_cast<uint64_t>(epoch),
                     static_cast<uint64_t>(comm_.rank()));
  const int L = model_.eval_noise_per_sample();
  return evaluate_shard(
      *test_, [&](int n, float* eps) { rng.fill_normal(eps, static_cast<size_t>(n) * L); });
}

// The validation rows' loss terms. Every row draws its noise from its own stream (seed, epoch,
// row of the validation set), so the sums are the same however the ranks split the rows.
ReportSums Evaluator::validate(int64_t epoch) {
  const int L = model_.eval_noise_per_sample();
  int64_t row = val_->range().begin - val_->selection().begin;  // this rank's first row
  return evaluate_shard(*val_, [&](int n, float* eps) {
    for (int i = 0; i < n; ++i, ++row)
      make_rng(opt_.seed, RngStream::ValEps, static_cast<uint64_t>(epoch),
               static_cast<uint64_t>(row))
          .fill_normal(eps + static_cast<ptrdiff_t>(i) * L, static_cast<size_t>(L));
  });
}

// Sums over the shard's rows on every rank, in double, under the full beta (as at test time).
ReportSums Evaluator::evaluate_shard(const Shard& shard,
                                     const std::function<void(int n, float* eps)>& draw_eps) {
  LossSums sums;
  const int L = model_.config().latent_dim;
  const bool gaussian = model_.capabilities().gaussian_posterior;
  std::vector<float> eps(static_cast<size_t>(opt_.eval_batch_size) *
                         static_cast<size_t>(model_.eval_noise_per_sample()));
  PosteriorStats stats(L);
  for_each_batch(shard, opt_.eval_batch_size, [&](Batch b) {
    draw_eps(b.n, eps.data());
    b.eps = eps.data();
    sums += model_.evaluate(ctx_, b, static_cast<float>(opt_.beta), gaussian ? &stats : nullptr);
  });
  ReportSums result = reduce(comm_, sums, static_cast<int>(model_.term_names().size()));
  if (!gaussian) return result;
  comm_.allreduce_sum(stats.data());
  const Shape latent = model_.config().latent_shape();
  if (latent.flat()) {
    result.active_units = stats.active_units();
    result.kl_per_dim = stats.kl_per_dim();
  } else {
    result.active_units = stats.active_channels(latent.c);
    result.kl_per_dim = stats.kl_per_channel(latent.c);
    result.per_channel = true;
  }
  return result;
}

void Evaluator::write_grids(int64_t epoch) {
  if (!comm_.is_root()) return;
  // Reconstructions of the first test images (training images without a test set).
  const Shard& src = test_ != nullptr ? *test_ : train_;
  const int n = static_cast<int>(std::min<int64_t>(grids_.reconstruction_count(), src.rows()));
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> x(static_cast<size_t>(n) * src.sample_size());
  src.gather(rows, x.data());
  grids_.write(ctx_, model_, out_, epoch, n, x.data(),
               src.has_labels() ? src.labels().data() : nullptr, &scaling_);
}

double Evaluator::iw_nll(int* signal) {
  *signal = 0;
  if (test_ == nullptr || opt_.iw_samples <= 0 || !model_.capabilities().likelihood_bound)
    return std::numeric_limits<double>::quiet_NaN();
  Rng rng = make_rng(opt_.seed, RngStream::Iw, static_cast<uint64_t>(comm_.rank()));
  double v[2] = {0, 0};
  // k decoder passes per batch: a moderate batch keeps the [B, k] weights small (at most
  // kIwWeightsBytes: a large k takes fewer rows per batch, never one allocation of all). Every
  // rank asks for a stop before each of its batches and as often again as the rank with the
  // most batches, so the ranks agree at the same boundary however their rows split.
  const int64_t batch = iw_rows_per_batch(opt_.eval_batch_size, opt_.iw_samples);
  const int64_t mine = (test_->rows() + batch - 1) / batch;
  const int64_t most = comm_.allreduce_max(mine);
  int64_t done = 0;
  bool stopped = false;
  for_each_batch(*test_, batch, [&](const Batch& b) {
    if (stopped) return;
    ++done;
    if ((*signal = agreed_stop_signal(comm_, poll_stop_signal())) != 0) {
      stopped = true;
      return;
    }
    v[0] += model_.iw_log_likelihood_sum(ctx_, b, opt_.iw_samples, rng);
    v[1] += b.n;
  });
  for (; !stopped && done < most; ++done)
    stopped = (*signal = agreed_stop_signal(comm_, poll_stop_signal())) != 0;
  if (stopped) return std::numeric_limits<double>::quiet_NaN();
  comm_.allreduce_sum(std::span<double>(v, 2));
  return -v[0] / v[1];
}

}  // namespace vd
