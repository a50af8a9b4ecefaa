// vae_dist: trains a VAE on one or more MPI ranks (`mpirun -np P vae_dist --config F`).
// Parses options (--help, --version and usage errors answer before MPI starts), starts MPI,
// locks the run directory, runs the Trainer; any error ends every rank with a message.
#include <cmath>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "app/main_support.hpp"
#include "config/options.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "io/run_lock.hpp"
#include "parallel/comm.hpp"
#include "train/memory_check.hpp"
#include "train/stop_signals.hpp"
#include "train/trainer.hpp"

namespace {

// The command line as one string, arguments quoted where a shell needs it (--test-data ''):
// the lock file's record of what holds the run directory, which a user can paste.
std::string command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i > 0) line += ' ';
    if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_./=:,+@%") == std::string::npos) {
      line += arg;
      continue;
    }
    line += '\'';
    for (const char c : arg) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

// Rank 0's lock on the run directory (none on the other ranks), or the exit code of a refusal.
struct RunDirectory {
  std::optional<vd::RunLock> lock;
  int refused = 0;
};

// Rank 0 locks --out before anything is written in it, and every rank learns the verdict: a
// refused run ends every rank with the same exit code (2 when another run holds the directory,
// 1 when it cannot be made), one message, and no rank left waiting in a collective.
RunDirectory lock_run_directory(const std::string& out, const std::string& command,
                                const vd::Comm& comm) {
  RunDirectory dir;
  std::string verdict;  // empty: go on; else the exit code's digit, then rank 0's message
  if (comm.is_root()) {
    try {
      dir.lock.emplace(vd::RunLock::acquire(out, command));
    } catch (const vd::ConfigError& e) {
      verdict = std::string("2") + e.what();
    } catch (const std::exception& e) {
      verdict = std::string("1") + e.what();
    }
  }
  comm.broadcast(verdict, 0);
  if (verdict.empty()) {
    if (dir.lock && !dir.lock->note().empty()) {
      // Unheld: the file system gives no locks, a warning; held: a lock taken over, a note.
      std::fprintf(dir.lock->held() ? stdout : stderr, "%s\n", dir.lock->note().c_str());
      std::fflush(dir.lock->held() ? stdout : stderr);
    }
    return dir;
  }
  if (comm.is_root()) std::fprintf(stderr, "error: %s\n", verdict.c_str() + 1);
  dir.refused = verdict[0] - '0';
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  // Before MPI and OpenMP start threads, so that every thread inherits the blocked mask and
  // SIGTERM/SIGINT only ever arrive through the trainer's poll between steps.
  vd::block_stop_signals();
  // Options first: every rank parses the same arguments to the same answer, so --help,
  // --version and a usage error need no MPI (whose start takes longer than all of these).
  if (vd::app::asks_for_version(argc, argv)) {
    vd::app::print_once(vd::version_text("vae_dist"));
    return 0;
  }
  vd::ParseResult parsed;
  try {
    parsed = vd::parse_options(argc, argv);
  } catch (const vd::ConfigError& e) {
    const std::string what = e.what();
    vd::app::usage_error(what.find("--help") == std::string::npos ? what + " (see vae_dist --help)"
                                                                  : what);
  }
  if (parsed.help) {
    vd::app::print_once(vd::app::with_version_option(parsed.help_text));
    return 0;
  }
  const std::string command = command_line(argc, argv);
  return vd::app::run_with_mpi(&argc, &argv, " (see vae_dist --help)", [&](const vd::Comm& comm) {
    // Held until this body returns or throws: one run per run directory.
    const RunDirectory dir = lock_run_directory(parsed.options.out, command, comm);
    if (dir.refused != 0) return dir.refused;
    if (comm.is_root()) {
      std::printf("%s\n", vd::format_options(parsed.options).c_str());
      std::fflush(stdout);
    }
    // The start-up memory check refuses the sizes it can foresee; an allocation that fails
    // anyway while the run starts is named by the option that most likely caused it.
    std::optional<vd::Trainer> trainer;
    try {
      trainer.emplace(parsed.options, comm);
    } catch (const std::bad_alloc&) {
      throw vd::ConfigError(vd::start_up_out_of_memory(parsed.options));
    }
    vd::TrainSummary s;
    try {
      s = trainer->run();
    } catch (const vd::DivergenceError& e) {
      // Every rank stops here at the same step: one message, and an orderly exit code 3.
      if (comm.is_root()) std::fprintf(stderr, "error: %s\n", e.what());
      return 3;
    }
    if (s.signal != 0) {
      if (comm.is_root())
        std::printf(
            "stopped by signal %d after step %lld; checkpoint %s\n"
            "continue with: vae_dist --config %s/config.ini --resume latest\n",
            s.signal, static_cast<long long>(s.steps), s.last_checkpoint.c_str(),
            parsed.options.out.c_str());
      return 128 + s.signal;
    }
    if (comm.is_root()) {
      std::printf("done: %d epoch(s), %lld steps, %lld samples in %.1f s; %.0f training images/s",
                  s.epochs, static_cast<long long>(s.steps), static_cast<long long>(s.samples),
                  s.seconds, s.train_images_per_s);
      if (std::isfinite(s.val_loss)) std::printf("; final validation loss %.4f", s.val_loss);
      if (std::isfinite(s.test_loss)) std::printf("; final test loss %.4f", s.test_loss);
      if (parsed.options.eval_weights == vd::Weights::Ema &&
          (std::isfinite(s.val_loss) || std::isfinite(s.test_loss)))
        std::printf(" (the moving average's weights)");
      if (s.early_stopped) std::printf("; stopped early");
      std::printf("; peak RSS %.0f MB per rank", s.peak_rss_mb);
      if (s.data_wait_seconds > 0.05)
        std::printf(" (steps waited %.1f s for streamed data)", s.data_wait_seconds);
      std::printf("\nrun directory: %s (last checkpoint %s", parsed.options.out.c_str(),
                  s.last_checkpoint.c_str());
      if (!s.best_checkpoint.empty())
        std::printf("; best validation loss %.4f at step %lld: %s", s.best_val_loss,
                    static_cast<long long>(s.best_val_step), s.best_checkpoint.c_str());
      std::printf(")\n");
    }
    return 0;
  });
}
