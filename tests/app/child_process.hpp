// Helpers for end-to-end tests that run the real binaries as child processes: a timed
// command runner, a background process with a deadline, pgrep lookups and file polling.
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace vd::testing {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The built binaries, e.g. binary("vae_dist").
inline std::string binary(const std::string& name) {
  return std::string(VD_BINARY_DIR) + "/" + name;
}

// Single-quotes s for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// Escapes s for use as a literal inside a POSIX extended regular expression (pgrep -f).
inline std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

// The environment every child run gets: root is allowed to run OpenMPI, one OpenMP thread, and
// no hwloc probe of X displays in mpiexec (vae_dist skips it itself; see MpiSession).
inline std::string env_prefix() {
  return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
         "HWLOC_COMPONENTS=-gl";
}

// env_prefix() plus mpiexec with ranks ranks (oversubscribed: the machine has 2 cores).
inline std::string mpi_prefix(int ranks) {
  return env_prefix() + " mpiexec -n " + std::to_string(ranks) + " --oversubscribe";
}

// Exit code of a wait() status; a death by signal N is reported as 128 + N like the shell.
inline int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// True when a wait() status is a normal exit with exactly code (not a death by signal).
inline bool exited_with(int status, int code) {
  return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

struct CommandResult {
  int exit_code = -1;  // 124 when timeout ended the command
  std::string output;  // stdout and stderr, interleaved
  double seconds = 0;
};

inline constexpr int kTimedOut = 124;

// Runs command through /bin/sh under `timeout`, so a hang fails the test instead of blocking
// ctest; captures stdout + stderr together.
inline CommandResult run_command(const std::string& command, int timeout_seconds) {
  const std::string line = "timeout -k 5 " + std::to_string(timeout_seconds) + " /bin/sh -c " +
                           shell_quote(command) + " 2>&1";
  CommandResult result;
  const auto t0 = Clock::now();
  std::FILE* pipe = ::popen(line.c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed for: " + line;
    return result;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  const int status = ::pclose(pipe);
  result.seconds = seconds_since(t0);
  result.exit_code = status == -1 ? -1 : exit_code_of(status);
  return result;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// PIDs of processes whose full command line matches the extended regex pattern.
inline std::vector<pid_t> pids_matching(const std::string& pattern) {
  std::vector<pid_t> pids;
  const CommandResult r = run_command("pgrep -f " + shell_quote(pattern), 10);
  for (const std::string& line : split_lines(r.output))
    if (!line.empty()) pids.push_back(static_cast<pid_t>(std::stol(line)));
  return pids;
}

// A pgrep pattern matching only processes of binary `bin` (argv[0] as given) run with
// `out_dir` on their command line; the shell, timeout and mpiexec wrappers do not match.
inline std::string process_pattern(const std::string& bin, const std::string& out_dir) {
  std::string pattern = "^";
  pattern += regex_escape(bin);
  pattern += " .*";
  pattern += regex_escape(out_dir);
  return pattern;
}

// Polls pred every 20 ms until it is true (returns true) or seconds pass (returns false).
inline bool wait_until(const std::function<bool()>& pred, double seconds) {
  const auto t0 = Clock::now();
  while (true) {
    if (pred()) return true;
    if (seconds_since(t0) > seconds) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Kills (SIGKILL), one PID at a time, every process matching pattern, when destroyed: no
// child of a failed test outlives it.
class KillMatchingOnExit {
 public:
  explicit KillMatchingOnExit(std::string pattern) : pattern_(std::move(pattern)) {}
  ~KillMatchingOnExit() {
    for (pid_t pid : pids_matching(pattern_)) ::kill(pid, SIGKILL);
  }
  KillMatchingOnExit(const KillMatchingOnExit&) = delete;
  KillMatchingOnExit& operator=(const KillMatchingOnExit&) = delete;

 private:
  std::string pattern_;
};

// A command started in the background (fork + /bin/sh -c "exec command"), so pid() is the
// command's own process; stdout and stderr go to log_path. The child gets SIGKILL if the test
// process dies, and is killed and reaped when this object is destroyed while it still runs.
class ChildProcess {
 public:
  ChildProcess(const std::string& command, const std::string& log_path) : log_path_(log_path) {
    const std::string script = "exec " + command + " >" + shell_quote(log_path) + " 2>&1";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::setpgid(0, 0);
      ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~ChildProcess() {
    if (pid_ > 0 && !status_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string output() const { return read_text(log_path_); }

  // True while the process has not ended (reaps it when it has).
  bool running() {
    if (status_) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) status_ = status;
    return !status_;
  }

  // The wait() status once the process has ended, or nullopt if it still runs after seconds.
  std::optional<int> wait_for(double seconds) {
    wait_until([this] { return !running(); }, seconds);
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// The comma-separated fields of a CSV line, empty ones included ("a,," has three).
inline std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  for (char c : line) {
    if (c == ',')
      fields.emplace_back();
    else
      fields.back() += c;
  }
  return fields;
}

// Complete data rows of a metrics.csv (header skipped) whose split column is split; columns
// split,epoch,step,samples,loss,recon,kl,lr,images_per_s[,active_units,kl_per_dim].
inline std::vector<std::vector<std::string>> metrics_rows(const std::string& csv_path,
                                                          const std::string& split) {
  std::vector<std::vector<std::string>> rows;
  const std::vector<std::string> lines = split_lines(read_text(csv_path));
  if (lines.empty()) return rows;
  const size_t columns = csv_fields(lines[0]).size();
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = csv_fields(lines[i]);
    // A row still being written has fewer columns than the header.
    if (fields.size() == columns && fields[0] == split) rows.push_back(fields);
  }
  return rows;
}

// Success once the long run of `job`, writing metrics to csv_path, has logged a train row and
// still runs: the point where a test may kill or signal it mid-training. Fails, with the job's
// output, if no row comes within `seconds` or the run ended on its own.
inline ::testing::AssertionResult training_started(ChildProcess& job, const std::string& csv_path,
                                                   double seconds) {
  if (!wait_until([&] { return !metrics_rows(csv_path, "train").empty() || !job.running(); },
                  seconds))
    return ::testing::AssertionFailure() << "no train row after " << seconds << " s:\n"
                                         << job.output();
  if (!job.running())
    return ::testing::AssertionFailure() << "the run ended on its own:\n" << job.output();
  return ::testing::AssertionSuccess();
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace vd::testing
