// MpiSession and Comm: checked MPI calls for the data-parallel trainer.
#include "parallel/comm.hpp"

#include <sched.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.hpp"

namespace vd {

void mpi_check(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  throw DistError(source_location_prefix(file, line) + call +
                  " failed: " + std::string(text, static_cast<size_t>(len)));
}

namespace {
// True when a launcher started this process as a rank of a job: mpirun (OMPI_COMM_WORLD_SIZE),
// or srun and others through PMIx or PMI-2. Otherwise MPI_Init makes it a one-rank job alone.
bool started_by_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}
}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // Start-up settings, each only where the user has not set the variable (measured in a bare
    // Debian root: MPI_Init of a process started alone went from 0.3-5.5 s to 0.05 s).
    // hwloc's gl component opens X displays :0 to :9 to find GPUs; without an X server each
    // attempt falls back to TCP on "localhost", a DNS query where /etc/hosts lacks the name,
    // and one unanswered query costs the resolver's 5 s timeout. Nothing here needs GPUs.
    ::setenv("HWLOC_COMPONENTS", "-gl", 0);
    if (!started_by_launcher()) {
      // Open MPI 4 forks a daemon (orted, which loads the topology again) for a process
      // started alone, only so that it could spawn more processes; nothing here spawns.
      ::setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
      // A one-rank job talks only to itself, so no network transport: the default selection
      // loads Omni-Path's and InfiniPath's libraries (PSM2, PSM), which spend 100 ms each
      // calibrating a timer even where that hardware is absent. Other MPIs ignore both names.
      ::setenv("OMPI_MCA_pml", "ob1", 0);
    }
    int provided = 0;
    VD_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  }
  VD_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

Comm::Comm(MPI_Comm comm) : comm_(comm) {
  VD_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  VD_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  VD_MPI_CHECK(
      MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local_comm_));
  VD_MPI_CHECK(MPI_Comm_rank(local_comm_, &local_rank_));
  VD_MPI_CHECK(MPI_Comm_size(local_comm_, &local_size_));
}

Comm::~Comm() {
  // Not while an exception unwinds: MPI_Comm_free is collective, and main() aborts the job.
  if (local_comm_ != MPI_COMM_NULL && std::uncaught_exceptions() == 0) MPI_Comm_free(&local_comm_);
}

namespace {
// MPI counts are int: split very large buffers into pieces that fit.
template <typename T>
void allreduce_chunks(MPI_Comm comm, T* data, size_t n, MPI_Datatype type, MPI_Op op) {
  constexpr size_t kMax = size_t{1} << 30;
  for (size_t off = 0; off < n; off += kMax) {
    const int count = static_cast<int>(std::min(kMax, n - off));
    VD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, op, comm));
  }
}
}  // namespace

void Comm::allreduce_sum(std::span<float> data) const {
  if (size_ > 1) allreduce_chunks(comm_, data.data(), data.size(), MPI_FLOAT, MPI_SUM);
}
void Comm::allreduce_sum(std::span<double> data) const {
  if (size_ > 1) allreduce_chunks(comm_, data.data(), data.size(), MPI_DOUBLE, MPI_SUM);
}
void Comm::allreduce_sum(std::span<int64_t> data) const {
  if (size_ > 1) allreduce_chunks(comm_, data.data(), data.size(), MPI_INT64_T, MPI_SUM);
}

namespace {
template <typename T>
T reduce_scalar(MPI_Comm comm, T value, MPI_Datatype type, MPI_Op op) {
  VD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, type, op, comm));
  return value;
}
}  // namespace

int64_t Comm::allreduce_max(int64_t value) const {
  return reduce_scalar(comm_, value, MPI_INT64_T, MPI_MAX);
}
int64_t Comm::allreduce_min(int64_t value) const {
  return reduce_scalar(comm_, value, MPI_INT64_T, MPI_MIN);
}
uint64_t Comm::allreduce_min(uint64_t value) const {
  return reduce_scalar(comm_, value, MPI_UINT64_T, MPI_MIN);
}
uint64_t Comm::allreduce_max(uint64_t value) const {
  return reduce_scalar(comm_, value, MPI_UINT64_T, MPI_MAX);
}

void Comm::broadcast(std::span<float> data, int root) const {
  constexpr size_t kMax = size_t{1} << 30;
  for (size_t off = 0; off < data.size(); off += kMax) {
    const int count = static_cast<int>(std::min(kMax, data.size() - off));
    VD_MPI_CHECK(MPI_Bcast(data.data() + off, count, MPI_FLOAT, root, comm_));
  }
}

void Comm::broadcast(std::span<double> data, int root) const {
  VD_MPI_CHECK(MPI_Bcast(data.data(), static_cast<int>(data.size()), MPI_DOUBLE, root, comm_));
}

void Comm::broadcast(std::string& text, int root) const {
  int64_t n = static_cast<int64_t>(text.size());
  VD_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_));
  if (n > INT_MAX) throw DistError("broadcast of a string longer than 2 GiB is not supported");
  text.resize(static_cast<size_t>(n));
  VD_MPI_CHECK(MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, root, comm_));
}

std::vector<std::string> Comm::gather_strings(const std::string& text, int root) const {
  if (text.size() > INT_MAX) throw DistError("gather of a string longer than 2 GiB");
  int len = static_cast<int>(text.size());
  std::vector<int> lens(rank_ == root ? static_cast<size_t>(size_) : 0);
  VD_MPI_CHECK(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, comm_));
  std::vector<int> offsets(lens.size());
  std::string all;
  if (rank_ == root) {
    int64_t total = 0;
    for (size_t r = 0; r < lens.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += lens[r];
    }
    if (total > INT_MAX) throw DistError("gathered strings exceed 2 GiB");
    all.resize(static_cast<size_t>(total));
  }
  VD_MPI_CHECK(MPI_Gatherv(text.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(),
                           MPI_CHAR, root, comm_));
  std::vector<std::string> out;
  for (size_t r = 0; r < lens.size(); ++r)
    out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lens[r])));
  return out;
}

namespace {

template <class T>
std::vector<T> gather_values(MPI_Comm comm, int rank, int size, std::span<const T> local, int root,
                             MPI_Datatype type) {
  if (local.size() > INT_MAX) throw DistError("gather of more than 2^31 - 1 values from one rank");
  int count = static_cast<int>(local.size());
  std::vector<int> counts(rank == root ? static_cast<size_t>(size) : 0);
  VD_MPI_CHECK(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm));
  std::vector<int> offsets(counts.size());
  std::vector<T> all;
  if (rank == root) {
    int64_t total = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      if (total > INT_MAX) break;
      offsets[r] = static_cast<int>(total);
      total += counts[r];
    }
    if (total > INT_MAX) throw DistError("gather of more than 2^31 - 1 values in all");
    all.resize(static_cast<size_t>(total));
  }
  VD_MPI_CHECK(MPI_Gatherv(local.data(), count, type, all.data(), counts.data(), offsets.data(),
                           type, root, comm));
  return all;
}

}  // namespace

std::vector<double> Comm::gather(std::span<const double> local, int root) const {
  return gather_values(comm_, rank_, size_, local, root, MPI_DOUBLE);
}
std::vector<float> Comm::gather(std::span<const float> local, int root) const {
  return gather_values(comm_, rank_, size_, local, root, MPI_FLOAT);
}

void Comm::barrier() const {
  VD_MPI_CHECK(MPI_Barrier(comm_));
}

int default_threads_per_rank(const Comm& comm) {
  const int node = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  const int allowed = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : node;
  // A rank bound to some cores (mpirun --bind-to, srun --cpu-bind) owns exactly those;
  // an unbound rank shares the node's cores with the other ranks on the node.
  if (allowed > 0 && allowed < node) return allowed;
  return std::max(1, node / std::max(1, comm.local_size()));
}

int resolve_threads(int requested, const Comm& comm) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return default_threads_per_rank(comm);
}

uint64_t checksum(std::span<const float> data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size_bytes();
  for (size_t i = 0; i < n; ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

void check_replicas(const Comm& comm, std::span<const float> params, const std::string& when) {
  const uint64_t h = checksum(params);
  if (comm.allreduce_min(h) != comm.allreduce_max(h))
    throw DistError("the model replicas differ across ranks " + when +
                    " (parameter checksums disagree), so the ranks no longer train one model; "
                    "check that every rank runs the same binary and configuration");
}

}  // namespace vd
