// block_stop_signals / poll_stop_signal: synchronous handling of SIGTERM and SIGINT.
#include "train/stop_signals.hpp"

#include <pthread.h>

#include <csignal>
#include <ctime>

namespace vd {

namespace {
sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int poll_stop_signal() {
  const sigset_t set = stop_set();
  const timespec zero{0, 0};
  const int sig = sigtimedwait(&set, nullptr, &zero);
  if (sig <= 0) return 0;
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  return sig;
}

int agreed_stop_signal(const Comm& comm, int signal) {
  const int64_t mine = signal == SIGTERM ? 2 : signal != 0 ? 1 : 0;
  const int64_t all = comm.size() == 1 ? mine : comm.allreduce_max(mine);
  return all == 2 ? SIGTERM : all == 1 ? SIGINT : 0;
}

}  // namespace vd
