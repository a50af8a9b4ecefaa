// The MPI layer: process start/finish (MpiSession) and a communicator wrapper (Comm) whose
// every call is checked and turned into vd::DistError, so no MPI failure passes silently.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vd {

// MPI_Init_thread / MPI_Finalize for the lifetime of main(). Errors on MPI_COMM_WORLD
// return codes (MPI_ERRORS_RETURN) so Comm can throw instead of MPI aborting silently.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

class Comm {
 public:
  explicit Comm(MPI_Comm comm = MPI_COMM_WORLD);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ranks of this job on this node, and this rank's index among them (MPI_COMM_TYPE_SHARED).
  int local_size() const { return local_size_; }
  int local_rank() const { return local_rank_; }
  bool is_root() const { return rank_ == 0; }
  MPI_Comm raw() const { return comm_; }
  MPI_Comm local_raw() const { return local_comm_; }

  // In-place element-wise sums over all ranks.
  void allreduce_sum(std::span<float> data) const;
  void allreduce_sum(std::span<double> data) const;
  void allreduce_sum(std::span<int64_t> data) const;
  int64_t allreduce_max(int64_t value) const;
  int64_t allreduce_min(int64_t value) const;
  uint64_t allreduce_min(uint64_t value) const;
  uint64_t allreduce_max(uint64_t value) const;

  // Every rank's `text`, in rank order, on `root` (empty vector on the other ranks).
  std::vector<std::string> gather_strings(const std::string& text, int root) const;
  // Every rank's values concatenated in rank order on `root` (empty on the other ranks);
  // throws vd::DistError beyond 2^31 - 1 values in all.
  std::vector<double> gather(std::span<const double> local, int root) const;
  std::vector<float> gather(std::span<const float> local, int root) const;
  void broadcast(std::span<float> data, int root) const;
  void broadcast(std::span<double> data, int root) const;  // small counts (< 2^31)
  void broadcast(std::string& text, int root) const;
  void barrier() const;

 private:
  MPI_Comm comm_;
  MPI_Comm local_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// Throws vd::DistError naming the call when an MPI function did not return MPI_SUCCESS.
void mpi_check(int code, const char* call, const char* file, int line);
#define VD_MPI_CHECK(call) ::vd::mpi_check((call), #call, __FILE__, __LINE__)

// OpenMP threads a rank should use by default: the node's cores shared among its ranks.
int default_threads_per_rank(const Comm& comm);
// Threads for this rank: `requested` if > 0, else OMP_NUM_THREADS if the user set it, else
// default_threads_per_rank().
int resolve_threads(int requested, const Comm& comm);

// Order-sensitive 64-bit hash of a float buffer's bytes (FNV-1a), to compare replicas.
uint64_t checksum(std::span<const float> data);

// Collective: throws vd::DistError on every rank when the ranks' `params` differ (their
// checksums disagree); `when` completes the sentence ("after start-up").
void check_replicas(const Comm& comm, std::span<const float> params, const std::string& when);

}  // namespace vd
