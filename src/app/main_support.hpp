// What every binary's main() shares: printing an error and ending the whole MPI job, so a
// failure on one rank never leaves the others waiting in a collective.
#pragma once
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace vd::app {

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

}  // namespace vd::app
