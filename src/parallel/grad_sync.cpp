// GradientSync: sharded update through node-shared memory, across nodes a bucketed allreduce
// overlapped with backward, or one MPI_Allreduce as the fallback.
#include "parallel/grad_sync.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.hpp"
#include "core/simd.hpp"

namespace vd {

namespace {
constexpr size_t kAlign = 16;  // floats: 64 bytes, so slices never share a cache line
size_t round_up(size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}
// Per local rank in the window's header: the counts at [0, 4), a sum of squares (a double)
// at [4, 6), the progress counter at [16, 18) (its own cache line, as it is polled by the
// other ranks during backward).
constexpr size_t kRankHeader = 32;
constexpr size_t kSumSqAt = 4;
constexpr size_t kProgressAt = 16;
constexpr size_t kCounts = 4;

// The stop requests, the divergence verdict and the loss as figures that add up across
// ranks: [SIGTERM, any other stop signal, non-finite loss or gradient, loss sum].
void encode_counts(int signal, bool non_finite, double loss_sum, float* counts) {
  counts[0] = signal == SIGTERM ? 1.0f : 0.0f;
  counts[1] = signal != 0 && signal != SIGTERM ? 1.0f : 0.0f;
  counts[2] = non_finite ? 1.0f : 0.0f;
  counts[3] = static_cast<float>(loss_sum);
}
GradientSync::Agreed decode_counts(const float* counts) {
  GradientSync::Agreed a;
  a.signal = counts[0] > 0.0f ? SIGTERM : counts[1] > 0.0f ? SIGINT : 0;
  a.non_finite = static_cast<int>(counts[2]);
  a.loss_sum = counts[3];
  return a;
}

size_t bucket_floats() {
  long kb = 256;
  if (const char* env = std::getenv("VAE_DIST_BUCKET_KB")) {
    char* end = nullptr;
    kb = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || kb < 1)
      throw ConfigError("VAE_DIST_BUCKET_KB must be a positive number of KiB, got '" +
                        std::string(env) + "'");
  }
  return std::max(kAlign, static_cast<size_t>(kb) * 1024 / sizeof(float) / kAlign * kAlign);
}
}  // namespace

GradientSync::GradientSync(const Comm& comm, ParamStore& store, Adam& adam, Ema* ema)
    : comm_(comm), store_(store), adam_(adam), ema_(ema) {
  if (ema != nullptr && ema->size() != store.size())
    throw ShapeError("GradientSync: the moving average holds " + std::to_string(ema->size()) +
                     " floats but the parameters " + std::to_string(store.size()));
  n_ = store.size();
  n_pad_ = round_up(n_);
  stride_ = n_pad_ + kHead;
  if (comm.size() == 1) {
    method_ = "single rank";
    return;
  }
  const char* env = std::getenv("VAE_DIST_GRAD_SYNC");
  const bool forced_allreduce = env != nullptr && std::string(env) == "allreduce";
  const bool even = comm.allreduce_min(static_cast<int64_t>(comm.local_size())) ==
                    comm.allreduce_max(static_cast<int64_t>(comm.local_size()));
  if (forced_allreduce || !even) {
    mode_ = Mode::Allreduce;
    method_ = "allreduce";
    own_grads_ = static_cast<float*>(std::aligned_alloc(64, stride_ * sizeof(float)));
    if (own_grads_ == nullptr) throw Error("out of memory for the gradient buffer");
    std::memset(own_grads_, 0, stride_ * sizeof(float));
    store_.use_external_grads(own_grads_ + kHead);
    return;
  }
  const size_t P = static_cast<size_t>(comm.local_size());
  local_ = P;
  const int nodes = comm.size() / comm.local_size();
  mode_ = nodes > 1 ? Mode::Nodes : Mode::Node;
  const size_t header = round_up(P * kRankHeader + kAlign);
  // P slots, sum, params, exp_avg, exp_avg_sq (and the moving average)
  const size_t regions = P + 4 + (ema_ != nullptr ? 1 : 0);
  const size_t floats = header + regions * stride_ + kAlign;
  // Local rank 0 allocates the whole window so that the regions are contiguous.
  const MPI_Aint bytes = comm.local_rank() == 0 ? static_cast<MPI_Aint>(floats * sizeof(float)) : 0;
  void* mine = nullptr;
  try {
    VD_MPI_CHECK(MPI_Win_allocate_shared(bytes, sizeof(float), MPI_INFO_NULL, comm.local_raw(),
                                         &mine, &win_));
  } catch (const DistError& e) {
    throw DistError(std::string(e.what()) + "; the node-shared model needs " +
                    std::to_string((floats * sizeof(float)) >> 20) +
                    " MiB of shared memory (/dev/shm): free some, or set "
                    "VAE_DIST_GRAD_SYNC=allreduce");
  }
  MPI_Aint size = 0;
  int disp = 0;
  VD_MPI_CHECK(MPI_Win_shared_query(win_, 0, &size, &disp, &header_));
  // The segment is mapped page-aligned in every process, so rounding up to 64 bytes moves
  // the base by the same amount everywhere.
  const uintptr_t misalign = reinterpret_cast<uintptr_t>(header_) % (kAlign * sizeof(float));
  if (misalign != 0) header_ += (kAlign * sizeof(float) - misalign) / sizeof(float);
  base_ = header_ + header;
  VD_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_));
  const size_t blocks = n_pad_ / kAlign;
  const size_t r = static_cast<size_t>(comm.local_rank());
  slice_begin_ = std::min(n_, blocks * r / P * kAlign);
  slice_end_ = std::min(n_, blocks * (r + 1) / P * kAlign);
  // Local rank 0 moves its parameters and moments into the window (all zero there); the
  // others switch to that one copy without writing it.
  float* params = base_ + (P + 1) * stride_ + kHead;
  float* exp_avg = params + stride_;
  float* exp_avg_sq = exp_avg + stride_;
  float* average = exp_avg_sq + stride_;
  const bool copy = comm.local_rank() == 0;
  if (copy) {
    std::memset(header_, 0, header * sizeof(float));
    store_.use_external_params(params, true);
    adam_.use_external_moments(exp_avg, exp_avg_sq, true);
    if (ema_ != nullptr) ema_->use_external(average, true);
  }
  barrier();
  if (!copy) {
    store_.use_external_params(params, false);
    adam_.use_external_moments(exp_avg, exp_avg_sq, false);
    if (ema_ != nullptr) ema_->use_external(average, false);
  }
  store_.use_external_grads(slot(r));
  barrier();
  if (mode_ == Mode::Node) {
    method_ = "shared memory";
    return;
  }

  VD_MPI_CHECK(MPI_Comm_split(comm.raw(), comm.local_rank(), comm.rank(), &cross_));
  const char* overlap = std::getenv("VAE_DIST_OVERLAP");
  overlap_ = overlap != nullptr && std::string(overlap) == "1";
  method_ = "shared memory + allreduce across " + std::to_string(nodes) + " nodes";
  if (!overlap_) return;
  const size_t bucket = bucket_floats();
  for (size_t b = slice_begin_; b < slice_end_; b += bucket)
    buckets_.push_back(Bucket{b, std::min(slice_end_, b + bucket)});
  // Local rank 0 always has the bucket at offset 0, which carries the node's counts.
  if (r == 0 && buckets_.empty()) buckets_.push_back(Bucket{0, 0});
  std::reverse(buckets_.begin(), buckets_.end());
  requests_.assign(buckets_.size(), MPI_REQUEST_NULL);
  arrived_.assign(buckets_.size(), 0);
  indices_.resize(buckets_.size());
  for (const auto& entry : store_.entries()) entry_offsets_.push_back(entry.offset);
  entry_done_.assign(entry_offsets_.size(), 0);
  frontier_entry_ = entry_offsets_.size();
  method_ += " (buckets of " + std::to_string(bucket * sizeof(float) / 1024) +
             " KiB, overlapped with backward)";
}

GradientSync::~GradientSync() {
  // During an exception the other ranks are elsewhere: a collective here would wait for them
  // forever, while main() is about to end the whole job with MPI_Abort anyway.
  if (std::uncaught_exceptions() > 0) return;
  if (own_grads_ != nullptr) {
    store_.use_external_grads(nullptr);
    std::free(own_grads_);
  }
  if (cross_ != MPI_COMM_NULL) MPI_Comm_free(&cross_);
  if (win_ == MPI_WIN_NULL) return;
  // Leave every rank with private copies again (the window is about to go).
  store_.use_external_grads(nullptr);
  store_.use_external_params(nullptr);
  adam_.use_external_moments(nullptr, nullptr);
  if (ema_ != nullptr) ema_->use_external(nullptr);
  MPI_Barrier(comm_.local_raw());
  MPI_Win_unlock_all(win_);
  MPI_Win_free(&win_);
}

float* GradientSync::sum() const {
  // One rank per node sums nothing: its own slot is the node's sum.
  return local_ == 1 ? slot(0) : base_ + local_ * stride_ + kHead;
}

int64_t* GradientSync::progress(size_t r) const {
  return reinterpret_cast<int64_t*>(header_ + r * kRankHeader + kProgressAt);
}

void GradientSync::barrier() {
  if (win_ == MPI_WIN_NULL) {
    comm_.barrier();
    return;
  }
  // Unified memory model: sync the window, meet, sync again, so stores before the barrier
  // are visible to loads after it on every rank.
  VD_MPI_CHECK(MPI_Win_sync(win_));
  VD_MPI_CHECK(MPI_Barrier(comm_.local_raw()));
  VD_MPI_CHECK(MPI_Win_sync(win_));
}

void GradientSync::share_initial_state() {
  switch (mode_) {
    case Mode::Single:
      return;
    case Mode::Allreduce:
      comm_.broadcast(store_.params(), 0);
      if (ema_ != nullptr) comm_.broadcast(ema_->values(), 0);
      return;
    case Mode::Node:
      barrier();
      return;
    case Mode::Nodes:
      barrier();
      // The node leaders (local rank 0; world rank 0 is cross rank 0) take rank 0's values.
      if (comm_.local_rank() == 0) {
        const auto params = store_.params();
        VD_MPI_CHECK(
            MPI_Bcast(params.data(), static_cast<int>(params.size()), MPI_FLOAT, 0, cross_));
        if (ema_ != nullptr) {
          const auto average = ema_->values();
          VD_MPI_CHECK(
              MPI_Bcast(average.data(), static_cast<int>(average.size()), MPI_FLOAT, 0, cross_));
        }
      }
      barrier();
      return;
  }
}

// Progress counts up by n+1 per step, so a value from an earlier step never reads as ready:
// step * (n + 1) + (n - frontier), where all gradients at offsets >= frontier are final.
void GradientSync::publish_progress(size_t frontier) {
  const int64_t value = step_ * static_cast<int64_t>(n_ + 1) + static_cast<int64_t>(n_ - frontier);
  // Release: the gradients (and stop counts) written before are visible to whoever sees it.
  __atomic_store_n(progress(static_cast<size_t>(comm_.local_rank())), value, __ATOMIC_RELEASE);
}

bool GradientSync::node_ready(size_t begin) const {
  const int64_t need = step_ * static_cast<int64_t>(n_ + 1) + static_cast<int64_t>(n_ - begin);
  for (size_t r = 0; r < local_; ++r)
    if (__atomic_load_n(progress(r), __ATOMIC_ACQUIRE) < need) return false;
  return true;
}

void GradientSync::backward_done(std::span<const size_t> entries) {
  if (!overlap_) return;
  for (size_t e : entries) entry_done_.at(e) = 1;
  while (frontier_entry_ > 0 && entry_done_[frontier_entry_ - 1]) --frontier_entry_;
  const size_t frontier =
      frontier_entry_ == entry_offsets_.size() ? n_ : entry_offsets_[frontier_entry_];
  // Offset 0 waits for update(): its bucket carries the stop counts, written there.
  publish_progress(std::max<size_t>(frontier, 1));
  start_ready_buckets();
}

void GradientSync::sum_slots(size_t begin, size_t end, bool with_counts) {
  float* s = sum();
  if (with_counts)
    for (size_t c = 0; c < kCounts; ++c) {
      float count = 0;
      for (size_t r = 0; r < local_; ++r) count += header_[r * kRankHeader + c];
      (s - kCounts)[c] = count;
    }
  if (local_ == 1) return;
  // In rank order, so the sum does not depend on which rank computes it.
  std::memcpy(s + begin, slot(0) + begin, (end - begin) * sizeof(float));
  for (size_t r = 1; r < local_; ++r) {
    const float* g = slot(r);
#pragma omp simd
    for (size_t i = begin; i < end; ++i) s[i] += g[i];
  }
}

void GradientSync::start_ready_buckets() {
  const bool leader = comm_.local_rank() == 0;
  while (next_bucket_ < buckets_.size() && node_ready(buckets_[next_bucket_].begin)) {
    const Bucket& b = buckets_[next_bucket_];
    const bool with_counts = leader && next_bucket_ + 1 == buckets_.size();
    sum_slots(b.begin, b.end, with_counts);
    float* data = sum() + b.begin - (with_counts ? kCounts : 0);
    const int count = static_cast<int>(b.end - b.begin + (with_counts ? kCounts : 0));
    VD_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_FLOAT, MPI_SUM, cross_,
                                &requests_[next_bucket_]));
    ++next_bucket_;
  }
  poll_arrivals();
}

void GradientSync::poll_arrivals() {
  // Drives the transfers already started (MPI progresses them only inside MPI calls), and
  // notes which sums have arrived.
  if (next_bucket_ == 0) return;
  int count = 0;
  VD_MPI_CHECK(MPI_Testsome(static_cast<int>(next_bucket_), requests_.data(), &count,
                            indices_.data(), MPI_STATUSES_IGNORE));
  for (int i = 0; i < count && count != MPI_UNDEFINED; ++i)
    arrived_[static_cast<size_t>(indices_[static_cast<size_t>(i)])] = 1;
}

// Waiting without spinning: a rank that busy-polls MPI holds its core, and over TCP the
// kernel's network work (softirqs, run by ksoftirqd under load) needs a core too; where every
// core trains, spinning delays the very transfer it waits for. Measured on 2 cores, 2 hosts
// x 1 rank, a 2.6 MB exchange: with a build running beside it, busy-wait median 13.6 ms and
// sleeping 20 us between polls 5.3 ms; on a quiet machine both 2.5 ms, sleeping with a fifth
// less CPU (2.1 against 2.7 ms per exchange).
void GradientSync::pause() {
  std::this_thread::sleep_for(std::chrono::microseconds(20));
}

void GradientSync::clip_range(float* grads, size_t begin, size_t end, double sum_sq) const {
  // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1, and the
  // gradients multiplied by it (a float, as torch's tensor is).
  const double norm = std::sqrt(sum_sq);
  const float coef = static_cast<float>(std::min(1.0, clip_ / (norm + 1e-6)));
#pragma omp simd
  for (size_t i = begin; i < end; ++i) grads[i] *= coef;
}

double GradientSync::slice_sum_sq() {
  const size_t me = static_cast<size_t>(comm_.local_rank());
  const double mine = sum_of_squares(sum() + slice_begin_, slice_end_ - slice_begin_);
  std::memcpy(header_ + me * kRankHeader + kSumSqAt, &mine, sizeof mine);
  barrier();
  // Every rank adds the same partial sums in rank order: one figure for all.
  double total = 0;
  for (size_t r = 0; r < local_; ++r) {
    double part = 0;
    std::memcpy(&part, header_ + r * kRankHeader + kSumSqAt, sizeof part);
    total += part;
  }
  return total;
}

void GradientSync::step_update(std::span<const float> grads, size_t begin, size_t end, double lr) {
  adam_.begin_step();
  if (ema_ != nullptr) ema_->begin_update();
  apply_update(grads, begin, end, lr);
}

void GradientSync::apply_update(std::span<const float> grads, size_t begin, size_t end, double lr) {
  if (ema_ == nullptr) {
    adam_.apply(store_.params(), grads, begin, end, lr);
    return;
  }
  // 64 KiB of each of Adam's four buffers: the block stays in L2 for the average's pass.
  constexpr size_t kBlock = 16384;
  for (size_t b = begin; b < end; b += kBlock) {
    const size_t e = std::min(end, b + kBlock);
    adam_.apply(store_.params(), grads, b, e, lr);
    ema_->apply(store_.params(), b, e);
  }
}

bool GradientSync::admit(Agreed& a, double sum_sq) const {
  a.grad_norm = std::sqrt(sum_sq);
  if (gate_) a.applied = gate_(Figures{a.loss_sum, a.grad_norm, a.non_finite});
  return a.applied;
}

GradientSync::Agreed GradientSync::update_checked(double lr, int signal, bool non_finite,
                                                  double loss_sum) {
  switch (mode_) {
    case Mode::Single: {
      float counts[kCounts];
      encode_counts(signal, non_finite, loss_sum, counts);
      Agreed a = decode_counts(counts);
      if (!needs_norm()) {
        step_update(store_.grads(), 0, n_, lr);
        return a;
      }
      const auto g = store_.grads();
      const double sum_sq = sum_of_squares(g.data(), n_);
      if (!admit(a, sum_sq)) return a;
      if (clip_ > 0) clip_range(g.data(), 0, n_, sum_sq);
      step_update(store_.grads(), 0, n_, lr);
      return a;
    }
    case Mode::Allreduce: {
      float* counts = own_grads_ + kHead - kCounts;
      encode_counts(signal, non_finite, loss_sum, counts);
      comm_.allreduce_sum(std::span<float>(counts, n_ + kCounts));
      Agreed a = decode_counts(counts);
      if (needs_norm()) {
        const double sum_sq = sum_of_squares(own_grads_ + kHead, n_);
        if (!admit(a, sum_sq)) return a;
        if (clip_ > 0) clip_range(own_grads_ + kHead, 0, n_, sum_sq);
      }
      step_update(store_.grads(), 0, n_, lr);
      return a;
    }
    case Mode::Node:
    case Mode::Nodes: {
      const size_t me = static_cast<size_t>(comm_.local_rank());
      encode_counts(signal, non_finite, loss_sum, header_ + me * kRankHeader);
      return mode_ == Mode::Node ? update_node(lr) : update_nodes(lr);
    }
  }
  return Agreed{};
}

GradientSync::Agreed GradientSync::update_node(double lr) {
  // Every slot is written once all ranks arrive. Each rank sums its slice over the slots in
  // rank order (so the sum does not depend on which rank computes it) and updates that slice
  // of the shared parameters and moments.
  barrier();
  float counts[kCounts] = {0, 0, 0, 0};
  for (size_t r = 0; r < local_; ++r)
    for (size_t c = 0; c < kCounts; ++c) counts[c] += header_[r * kRankHeader + c];
  Agreed a = decode_counts(counts);
  sum_slots(slice_begin_, slice_end_, false);
  if (needs_norm()) {
    const double sum_sq = slice_sum_sq();
    if (admit(a, sum_sq) && clip_ > 0) clip_range(sum(), slice_begin_, slice_end_, sum_sq);
  }
  if (a.applied) step_update(std::span<const float>(sum(), n_), slice_begin_, slice_end_, lr);
  // All slices are updated before any rank starts the next forward pass; the next backward
  // overwrites the slots (and counts) only after every rank has passed this point.
  barrier();
  return a;
}

GradientSync::Agreed GradientSync::update_nodes(double lr) {
  const size_t me = static_cast<size_t>(comm_.local_rank());
  const bool leader = me == 0;
  float* result = header_ + local_ * kRankHeader;
  // With a norm to take, the leader shares the global counts before the norm's node barrier,
  // so every rank has the figures before the update (else they come with the last barrier).
  Agreed gated;
  const auto judge = [&] {
    if (leader) std::memcpy(result, sum() - kCounts, kCounts * sizeof(float));
    const double sum_sq = slice_sum_sq();
    gated = decode_counts(result);
    if (admit(gated, sum_sq) && clip_ > 0) clip_range(sum(), slice_begin_, slice_end_, sum_sq);
  };
  const auto agreed = [&] {
    Agreed a = decode_counts(result);
    if (needs_norm()) {
      a.applied = gated.applied;
      a.grad_norm = gated.grad_norm;
    }
    return a;
  };
  if (!overlap_) {
    // After backward: the node's sum of this rank's slice, one allreduce of it among the
    // ranks owning the same slice on the other nodes (the leader's carries the counts in
    // front), and the slice's Adam update.
    barrier();
    sum_slots(slice_begin_, slice_end_, leader);
    float* data = sum() + slice_begin_ - (leader ? kCounts : 0);
    const int count = static_cast<int>(slice_end_ - slice_begin_ + (leader ? kCounts : 0));
    VD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_FLOAT, MPI_SUM, cross_));
    // The slice is the global sum now, identical on every node: the node's slices make the norm.
    if (needs_norm()) judge();
    if (gated.applied) step_update(std::span<const float>(sum(), n_), slice_begin_, slice_end_, lr);
    if (leader) std::memcpy(result, sum() - kCounts, kCounts * sizeof(float));
    barrier();
    return agreed();
  }
  publish_progress(0);
  // The rest of the buckets, as the other ranks of the node finish their backward.
  while (next_bucket_ < buckets_.size()) {
    start_ready_buckets();
    if (next_bucket_ < buckets_.size()) pause();
  }
  const std::span<const float> grads(sum(), n_);
  if (needs_norm()) {
    // The norm needs every sum: wait for all buckets, then judge and clip the slice as above.
    while (std::find(arrived_.begin(), arrived_.end(), 0) != arrived_.end()) {
      pause();
      poll_arrivals();
    }
    judge();
  }
  if (gated.applied) {
    adam_.begin_step();
    if (ema_ != nullptr) ema_->begin_update();
    // Each bucket's update as soon as its sum is here, while later ones are still in flight.
    std::vector<char> applied(buckets_.size(), 0);
    for (size_t left = buckets_.size(); left > 0;) {
      bool any = false;
      for (size_t i = 0; i < buckets_.size(); ++i)
        if (arrived_[i] && !applied[i]) {
          apply_update(grads, buckets_[i].begin, buckets_[i].end, lr);
          applied[i] = 1;
          --left;
          any = true;
        }
      if (left == 0) break;
      if (!any) pause();
      poll_arrivals();
    }
  } else {
    while (std::find(arrived_.begin(), arrived_.end(), 0) != arrived_.end()) {
      pause();
      poll_arrivals();
    }
  }
  if (leader) std::memcpy(result, sum() - kCounts, kCounts * sizeof(float));
  barrier();
  const Agreed a = agreed();
  // Ready for the next step: no bucket started, no layer final.
  std::fill(arrived_.begin(), arrived_.end(), 0);
  next_bucket_ = 0;
  std::fill(entry_done_.begin(), entry_done_.end(), 0);
  frontier_entry_ = entry_offsets_.size();
  ++step_;
  // No second barrier: the leader overwrites `result` (and reads the counts again) only once
  // every rank of the node has published its next step's progress, which each does after
  // reading `result` here.
  return a;
}

}  // namespace vd
