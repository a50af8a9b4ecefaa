// What every binary's main() shares: answering --help, --version and usage errors before MPI
// starts, and printing an error and ending the whole MPI job, so a failure on one rank never
// leaves the others waiting in a collective.
#pragma once
#include <mpi.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "parallel/comm.hpp"

namespace vd::app {

// "0,1,2" -> {0, 1, 2}: a comma-separated list of integers >= 0 (--index, --labels-normal,
// --drop-labels); nullopt when an item is empty, not a number or negative.
inline std::optional<std::vector<int64_t>> nonnegative_list(const std::string& text) {
  std::vector<int64_t> out;
  for (size_t pos = 0; pos <= text.size();) {
    const size_t end = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, end - pos);
    int64_t v = -1;
    const auto res = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || res.ec != std::errc() || res.ptr != item.data() + item.size() || v < 0)
      return std::nullopt;
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

// The rank a launcher gave this process, read from its environment because MPI has not started
// (Open MPI, PMIx, MPICH's Hydra, Slurm); nullopt for a process started on its own.
inline std::optional<int> launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    char* end = nullptr;
    const long rank = std::strtol(value, &end, 10);
    if (*end == '\0' && rank >= 0) return static_cast<int>(rank);
  }
  return std::nullopt;
}

// Before MPI starts every rank sees the same arguments and reaches the same answer; only this
// one process prints it: rank 0 of a launched job, or a process started on its own.
inline bool speaks_before_mpi() {
  return launcher_rank().value_or(0) == 0;
}

// Prints text on stdout from the one process that speaks before MPI starts.
inline void print_once(const std::string& text) {
  if (!speaks_before_mpi()) return;
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

// A usage mistake found before MPI starts (exit code 2). Every rank finds the same mistake, so
// each simply exits, none waits for another, and one prints the message.
[[noreturn]] inline void usage_error(const std::string& message) {
  if (speaks_before_mpi()) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    std::fflush(stderr);
  }
  std::exit(2);
}

// True when argv asks for --version (before any --help, which then wins).
inline bool asks_for_version(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--version") == 0) return true;
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return false;
  }
  return false;
}

// The --version line for a help text, in the same column as the line of --help it follows.
inline std::string with_version_option(const std::string& help) {
  const std::string what = "print the versions of vae_dist, oneDNN, HDF5 and MPI and exit";
  const size_t at = help.find("--help ]");
  if (at == std::string::npos) return help + "  --version  " + what + "\n";
  const size_t line = help.rfind('\n', at) + 1;  // npos + 1 == 0 on the first line
  const size_t column = help.find_first_not_of(' ', help.find(']', at) + 1) - line;
  const size_t end = help.find('\n', at);
  std::string entry = "  --version";
  entry.append(column > entry.size() ? column - entry.size() : 2, ' ');
  entry += what + "\n";
  if (end == std::string::npos) return help + "\n" + entry;
  return help.substr(0, end + 1) + entry + help.substr(end + 1);
}

// Prints "error: ..." (with the rank when there are several) and ends every rank.
[[noreturn]] inline void fail(const std::string& message, int code = 1) {
  int initialized = 0, finalized = 0, rank = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const bool mpi_up = initialized && !finalized;
  if (mpi_up) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  if (size > 1)
    std::fprintf(stderr, "error (rank %d): %s\n", rank, message.c_str());
  else
    std::fprintf(stderr, "error: %s\n", message.c_str());
  std::fflush(stderr);
  if (mpi_up && size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  if (mpi_up) MPI_Finalize();
  std::exit(code);
}

// Starts MPI, runs body(comm) and returns its exit code. An error on any rank ends every rank
// with its message: a vd::ConfigError with exit code 2 and `see` appended ("(see ... --help)"),
// any other exception with exit code 1.
template <class Body>
int run_with_mpi(int* argc, char*** argv, const std::string& see, Body&& body) {
  std::optional<MpiSession> mpi;
  try {
    mpi.emplace(argc, argv);
    const Comm comm;
    return body(comm);
  } catch (const ConfigError& e) {
    fail(std::string(e.what()) + see, 2);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

}  // namespace vd::app
