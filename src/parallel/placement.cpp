// The start-up check of the ranks' CPUs on each node: gather, compare, warn on rank 0.
#include "parallel/placement.hpp"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "parallel/comm.hpp"

namespace vd {

namespace {

// CPU ids the exchanged bitmask can hold; larger ids are left out of the comparison.
constexpr int kMaxCpus = 8192;
constexpr int kWords = kMaxCpus / 64;
// One rank's record on the wire: rank, binding flag, then the CPU bitmask.
constexpr int kRecord = 2 + kWords;

std::vector<uint64_t> pack(const RankPlacement& p) {
  std::vector<uint64_t> rec(kRecord, 0);
  rec[0] = static_cast<uint64_t>(p.rank);
  rec[1] = p.binding ? 1 : 0;
  for (int c : p.cpus)
    if (c >= 0 && c < kMaxCpus) rec[2 + c / 64] |= uint64_t{1} << (c % 64);
  return rec;
}

RankPlacement unpack(const uint64_t* rec) {
  RankPlacement p;
  p.rank = static_cast<int>(rec[0]);
  p.binding = rec[1] != 0;
  for (int c = 0; c < kMaxCpus; ++c)
    if (rec[2 + c / 64] >> (c % 64) & 1) p.cpus.push_back(c);
  return p;
}

bool overlap(const std::vector<int>& a, const std::vector<int>& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) return true;
    a[i] < b[j] ? ++i : ++j;
  }
  return false;
}

std::string env_text(const char* name) {
  const char* v = std::getenv(name);
  return std::string(name) + "=" + (v != nullptr ? v : "(unset)");
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

}  // namespace

RankPlacement this_rank_placement(int rank) {
  RankPlacement p;
  p.rank = rank;
  p.binding = omp_get_proc_bind() != omp_proc_bind_false;
  std::set<int> cpus;
  if (p.binding && omp_get_num_places() > 0) {
    // With binding on, libgomp has already pinned this (initial) thread to the first place, so
    // the affinity mask says less than the places, which span every CPU the rank's threads use.
    for (int place = 0; place < omp_get_num_places(); ++place) {
      std::vector<int> ids(static_cast<size_t>(omp_get_place_num_procs(place)));
      if (!ids.empty()) omp_get_place_proc_ids(place, ids.data());
      cpus.insert(ids.begin(), ids.end());
    }
  } else {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof mask, &mask) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &mask)) cpus.insert(c);
  }
  p.cpus.assign(cpus.begin(), cpus.end());
  return p;
}

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) {
      out += '-';
      out += std::to_string(cpus[j]);
    }
    i = j + 1;
  }
  return out;
}

std::string shared_cpus_warning(const std::string& host, const std::vector<RankPlacement>& ranks,
                                const std::string& binding_env) {
  std::set<size_t> involved;
  for (size_t a = 0; a < ranks.size(); ++a)
    for (size_t b = a + 1; b < ranks.size(); ++b)
      if ((ranks[a].binding || ranks[b].binding) && overlap(ranks[a].cpus, ranks[b].cpus)) {
        involved.insert(a);
        involved.insert(b);
      }
  if (involved.empty()) return "";
  std::vector<size_t> order(involved.begin(), involved.end());
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t y) { return ranks[x].rank < ranks[y].rank; });
  std::string names, lists;
  for (size_t k = 0; k < order.size(); ++k) {
    const RankPlacement& r = ranks[order[k]];
    if (k > 0) {
      names += k + 1 == order.size() ? " and " : ", ";
      lists += "; ";
    }
    names += std::to_string(r.rank);
    lists += "rank ";
    lists += std::to_string(r.rank);
    lists += ": CPUs ";
    lists += cpu_list_text(r.cpus);
  }
  return "warning: on host " + host + ", ranks " + names + " may run on the same CPUs (" + lists +
         ") while OpenMP binding is on (" + binding_env +
         "): each rank pins its threads from the first of those CPUs on, so they share cores "
         "and train several times slower. Give each rank cores of its own (srun "
         "--cpu-bind=cores on a cluster whose TaskPlugin binds tasks, or mpirun --bind-to core), "
         "or unset OMP_PROC_BIND and OMP_PLACES.\n";
}

void warn_if_ranks_share_cpus(const Comm& comm) {
  if (comm.size() == 1) return;
  const std::vector<uint64_t> mine = pack(this_rank_placement(comm.rank()));
  const bool local_root = comm.local_rank() == 0;
  std::vector<uint64_t> all(local_root ? static_cast<size_t>(kRecord) * comm.local_size() : 0);
  VD_MPI_CHECK(MPI_Gather(mine.data(), kRecord, MPI_UINT64_T, all.data(), kRecord, MPI_UINT64_T, 0,
                          comm.local_raw()));
  std::string warning;
  if (local_root) {
    std::vector<RankPlacement> ranks;
    for (int r = 0; r < comm.local_size(); ++r)
      ranks.push_back(unpack(all.data() + static_cast<size_t>(r) * kRecord));
    warning = shared_cpus_warning(host_name(), ranks,
                                  env_text("OMP_PROC_BIND") + " " + env_text("OMP_PLACES"));
  }
  const std::vector<std::string> warnings = comm.gather_strings(warning, 0);
  for (const std::string& w : warnings) std::fputs(w.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace vd
