// GradientSync: sharded update through node-shared memory, or MPI_Allreduce across nodes.
#include "parallel/grad_sync.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "core/error.hpp"

namespace vd {

namespace {
constexpr size_t kAlign = 16;  // floats: 64 bytes, so slices never share a cache line
size_t round_up(size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}
}  // namespace

GradientSync::GradientSync(const Comm& comm, ParamStore& store, Adam& adam)
    : comm_(comm), store_(store), adam_(adam) {
  n_ = store.size();
  if (comm.size() == 1) {
    method_ = "single rank";
    return;
  }
  const char* env = std::getenv("VAE_DIST_GRAD_SYNC");
  const bool forced_allreduce = env != nullptr && std::string(env) == "allreduce";
  if (forced_allreduce || comm.local_size() != comm.size()) {
    method_ = "allreduce";
    return;
  }
  method_ = "shared memory";
  const size_t P = static_cast<size_t>(comm.size());
  n_pad_ = round_up(n_);
  const size_t regions = P + 4;  // P slots, sum, params, exp_avg, exp_avg_sq
  // Rank 0 allocates the whole window so that the regions are contiguous.
  const MPI_Aint bytes =
      comm.rank() == 0 ? static_cast<MPI_Aint>((regions * n_pad_ + kAlign) * sizeof(float)) : 0;
  void* mine = nullptr;
  try {
    VD_MPI_CHECK(MPI_Win_allocate_shared(bytes, sizeof(float), MPI_INFO_NULL, comm.local_raw(),
                                         &mine, &win_));
  } catch (const DistError& e) {
    throw DistError(std::string(e.what()) + "; the node-shared model needs " +
                    std::to_string(((P + 4) * n_pad_ * sizeof(float)) >> 20) +
                    " MiB of shared memory (/dev/shm): free some, or set "
                    "VAE_DIST_GRAD_SYNC=allreduce");
  }
  MPI_Aint size = 0;
  int disp = 0;
  VD_MPI_CHECK(MPI_Win_shared_query(win_, 0, &size, &disp, &base_));
  // The segment is mapped page-aligned in every process, so rounding up to 64 bytes moves
  // the base by the same amount everywhere.
  const uintptr_t misalign = reinterpret_cast<uintptr_t>(base_) % (kAlign * sizeof(float));
  if (misalign != 0) base_ += (kAlign * sizeof(float) - misalign) / sizeof(float);
  VD_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_));
  const size_t blocks = n_pad_ / kAlign;
  const size_t r = static_cast<size_t>(comm.local_rank());
  slice_begin_ = std::min(n_, blocks * r / P * kAlign);
  slice_end_ = std::min(n_, blocks * (r + 1) / P * kAlign);
  // Rank 0 moves its parameters and moments into the window; the others switch to that one
  // copy without writing it.
  float* params = base_ + (P + 1) * n_pad_;
  const bool copy = comm.rank() == 0;
  if (copy) {
    store_.use_external_params(params, true);
    adam_.use_external_moments(params + n_pad_, params + 2 * n_pad_, true);
  }
  barrier();
  if (!copy) {
    store_.use_external_params(params, false);
    adam_.use_external_moments(params + n_pad_, params + 2 * n_pad_, false);
  }
  store_.use_external_grads(base_ + r * n_pad_);
  barrier();
}

GradientSync::~GradientSync() {
  // During an exception the other ranks are elsewhere: a collective here would wait for them
  // forever, while main() is about to end the whole job with MPI_Abort anyway.
  if (win_ == MPI_WIN_NULL || std::uncaught_exceptions() > 0) return;
  // Leave every rank with private copies again (the window is about to go).
  store_.use_external_grads(nullptr);
  store_.use_external_params(nullptr);
  adam_.use_external_moments(nullptr, nullptr);
  MPI_Barrier(comm_.local_raw());
  MPI_Win_unlock_all(win_);
  MPI_Win_free(&win_);
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

void GradientSync::update(double lr) {
  if (method_ == "single rank") {
    adam_.step(store_.params(), store_.grads(), lr);
    return;
  }
  if (method_ == "allreduce") {
    comm_.allreduce_sum(store_.grads());
    adam_.step(store_.params(), store_.grads(), lr);
    return;
  }
  // Every slot is written once all ranks arrive. Each rank sums its slice over the slots in
  // rank order (so the sum does not depend on which rank computes it) and updates that slice
  // of the shared parameters and moments.
  barrier();
  const size_t P = static_cast<size_t>(comm_.size());
  float* sum = base_ + P * n_pad_;
  const size_t lo = slice_begin_, hi = slice_end_;
  std::memcpy(sum + lo, base_ + lo, (hi - lo) * sizeof(float));
  for (size_t r = 1; r < P; ++r) {
    const float* slot = base_ + r * n_pad_;
#pragma omp simd
    for (size_t i = lo; i < hi; ++i) sum[i] += slot[i];
  }
  adam_.step_range(store_.params(), std::span<const float>(sum, n_), lo, hi, lr);
  // All slices are updated before any rank starts the next forward pass; the next backward
  // overwrites the slots only after every rank has passed this point.
  barrier();
}

}  // namespace vd
