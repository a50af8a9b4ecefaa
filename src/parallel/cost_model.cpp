// Cost model: ping-pong and allreduce timings, the link fit, and the ring-allreduce projection.
#include "parallel/cost_model.hpp"

#include <mpi.h>

#include <algorithm>

namespace vd {

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
}  // namespace

double pingpong_seconds(const Comm& comm, int a, int b, size_t bytes, int reps) {
  std::vector<char> buf(std::max<size_t>(bytes, 1));
  std::vector<double> times;
  const int count = static_cast<int>(bytes);
  for (int i = 0; i < reps + 2; ++i) {  // two warm-up round trips (connection set-up)
    comm.barrier();
    const double t0 = MPI_Wtime();
    if (comm.rank() == a) {
      VD_MPI_CHECK(MPI_Send(buf.data(), count, MPI_BYTE, b, 0, comm.raw()));
      VD_MPI_CHECK(MPI_Recv(buf.data(), count, MPI_BYTE, b, 0, comm.raw(), MPI_STATUS_IGNORE));
    } else if (comm.rank() == b) {
      VD_MPI_CHECK(MPI_Recv(buf.data(), count, MPI_BYTE, a, 0, comm.raw(), MPI_STATUS_IGNORE));
      VD_MPI_CHECK(MPI_Send(buf.data(), count, MPI_BYTE, a, 0, comm.raw()));
    }
    if (i >= 2) times.push_back((MPI_Wtime() - t0) / 2);
  }
  return comm.rank() == a ? median(times) : 0.0;
}

double allreduce_seconds(const Comm& comm, size_t floats, int reps) {
  std::vector<float> buf(std::max<size_t>(floats, 1), 1.0f);
  std::vector<double> times;
  for (int i = 0; i < reps + 2; ++i) {
    comm.barrier();
    const double t0 = MPI_Wtime();
    VD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(floats), MPI_FLOAT,
                               MPI_SUM, comm.raw()));
    double t = MPI_Wtime() - t0;
    // The slowest rank's time, so every rank reports the same figure.
    VD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm.raw()));
    if (i >= 2) times.push_back(t);
  }
  return median(times);
}

Link fit_link(double t_small, size_t bytes_large, double t_large) {
  Link link;
  link.latency_s = t_small;
  link.bandwidth_bytes_per_s =
      static_cast<double>(bytes_large) / std::max(1e-12, t_large - t_small);
  return link;
}

double ring_allreduce_seconds(int p, double bytes, const Link& link) {
  if (p <= 1) return 0;
  const double steps = 2.0 * (p - 1);
  return steps / p * bytes / link.bandwidth_bytes_per_s + steps * link.latency_s;
}

std::vector<Projection> project(const std::vector<int>& nodes, double bytes, double compute_s,
                                double forward_s, const Link& link) {
  std::vector<Projection> out;
  for (int p : nodes) {
    Projection pr;
    pr.nodes = p;
    pr.comm_s = ring_allreduce_seconds(p, bytes, link);
    pr.step_serial_s = compute_s + pr.comm_s;
    pr.step_overlap_s = std::max(compute_s, forward_s + pr.comm_s);
    pr.efficiency_serial = compute_s / pr.step_serial_s;
    pr.efficiency_overlap = compute_s / pr.step_overlap_s;
    out.push_back(pr);
  }
  return out;
}

}  // namespace vd
