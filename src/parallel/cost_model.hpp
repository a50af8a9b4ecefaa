// The communication cost model behind the cluster projections of docs/clusters.md: a link's latency
// and bandwidth measured by ping-pong, the ring allreduce formula, and the step time and scaling
// efficiency it predicts for N nodes with and without overlapping the sum with backward.
#pragma once
#include <cstddef>
#include <vector>

#include "parallel/comm.hpp"

namespace vd {

// t(bytes) = latency + bytes / bandwidth for one message between two ranks.
struct Link {
  double latency_s = 0;
  double bandwidth_bytes_per_s = 0;
};

// Median one-way time (half a round trip) of a `bytes` message between ranks a and b of
// comm, over `reps` round trips; collective over comm (the other ranks wait). Rank a gets the
// figure; the others get 0.
double pingpong_seconds(const Comm& comm, int a, int b, size_t bytes, int reps);
// Median time of an in-place MPI_Allreduce (sum) of `floats` floats over comm, each rep after
// a barrier; the same figure on every rank.
double allreduce_seconds(const Comm& comm, size_t floats, int reps);
// The link from two ping-pong points: latency from a tiny message, bandwidth from a large
// one (bytes_large / (t_large - latency)).
Link fit_link(double t_small, size_t bytes_large, double t_large);

// Ring allreduce of `bytes` over p nodes: 2(p-1)/p * bytes / bandwidth + 2(p-1) * latency
// (a reduce-scatter and an allgather, each p-1 steps of bytes/p). 0 for p = 1.
double ring_allreduce_seconds(int p, double bytes, const Link& link);

struct Projection {
  int nodes = 1;
  double comm_s = 0;             // the ring allreduce of the gradient
  double step_serial_s = 0;      // compute, then the sum: compute + comm
  double step_overlap_s = 0;     // the sum from the start of backward: max(compute, fwd + comm)
  double efficiency_serial = 0;  // compute / step
  double efficiency_overlap = 0;
};
// The step of one rank per node computing `compute_s` per step (forward `forward_s` of it)
// with a gradient of `bytes`, on each node count of `nodes`.
std::vector<Projection> project(const std::vector<int>& nodes, double bytes, double compute_s,
                                double forward_s, const Link& link);

}  // namespace vd
