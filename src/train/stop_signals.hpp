// Graceful stop on SIGTERM/SIGINT without asynchronous signal handlers: oneDNN 2.6's AVX-512
// JIT GEMM kernels point the stack pointer into the heap, so a signal delivered while one runs
// writes its frame over heap memory (oneDNN issue #4845, fixed in 3.11). We block the signals
// in every thread instead and poll for them between training steps.
#pragma once
#include "parallel/comm.hpp"

namespace vd {

// Blocks SIGTERM and SIGINT in the calling thread; threads created later inherit the mask.
// Call first thing in main(), before MPI_Init and before OpenMP starts its threads.
void block_stop_signals();

// Returns a pending SIGTERM/SIGINT (consuming it) or 0; one system call. After the first
// stop request the signals are unblocked in this thread, so a second one ends the process
// at once (the default action) for a user who does not want to wait for the checkpoint.
int poll_stop_signal();

// Collective: the stop request every rank agrees on, from each rank's `signal` (0, SIGTERM or
// SIGINT): SIGTERM if any rank had one, else SIGINT if any had one, else 0. One small
// allreduce; for the places between steps (evaluation), where no gradient exchange carries it.
int agreed_stop_signal(const Comm& comm, int signal);

}  // namespace vd
