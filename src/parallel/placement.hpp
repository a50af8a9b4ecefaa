// Start-up check of where the ranks of one node run: a warning when OpenMP binding is on and
// ranks on the node may use the same CPUs. Reports only; it changes no affinity.
#pragma once
#include <string>
#include <vector>

namespace vd {

class Comm;

// What one rank reports: its rank in the job, whether OpenMP binding is on in it, and the CPUs
// its threads may use (the union of its OpenMP places when binding is on, else its affinity
// mask), sorted.
struct RankPlacement {
  int rank = 0;
  bool binding = false;
  std::vector<int> cpus;
};

// This process's placement (rank filled in by the caller). OpenMP decides binding when the
// runtime starts: libgomp pins the initial thread to the first place at load time already.
RankPlacement this_rank_placement(int rank);

// "0-3,8,10-11": a sorted CPU list in the kernel's cpulist notation.
std::string cpu_list_text(const std::vector<int>& cpus);

// The warning for one host, or "" when no two ranks there share a CPU while at least one of
// them binds its threads. `binding_env` describes the settings ("OMP_PROC_BIND=close ...").
std::string shared_cpus_warning(const std::string& host, const std::vector<RankPlacement>& ranks,
                                const std::string& binding_env);

// Collective over comm: each node's ranks compare their placements over the node communicator
// (Comm::local_raw); rank 0 prints every node's warning to stderr. Binding is decided in the
// OpenMP runtime's start-up, before vae_dist runs, so spreading the ranks here is not reliable;
// the warning says what to change instead.
void warn_if_ranks_share_cpus(const Comm& comm);

}  // namespace vd
