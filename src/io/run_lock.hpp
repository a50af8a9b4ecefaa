// RunLock: one training run per run directory. An exclusive flock on <out>/.vae_dist.lock,
// held for the life of the object, whose content names the holder (host, pid, start time).
#pragma once
#include <optional>
#include <string>

namespace vd {

// Who holds (or last held) a run directory's lock, as the lock file records it.
struct RunLockRecord {
  std::string host;
  long long pid = 0;
  std::string started;  // UTC, ISO 8601: 2026-12-04T10:11:12Z
  std::string command;  // the holder's command line, as one line

  // "host H, pid P, started T": how messages name the holder.
  std::string describe() const;
  // The file's content: a comment line, then key=value lines.
  std::string text() const;
};

// The record in a lock file's content; nullopt when it holds none (empty: released cleanly).
// Unknown lines are skipped, so a damaged record still yields what it has.
std::optional<RunLockRecord> parse_run_lock_record(const std::string& text);

// The record of this process: gethostname, getpid, the time now, and `command`.
RunLockRecord this_process_record(const std::string& command);

class RunLock {
 public:
  // The file in the run directory that carries the lock.
  static constexpr const char* kFileName = ".vae_dist.lock";
  // flock(2) by default; tests pass a stand-in to play a file system without locks.
  using LockCall = int (*)(int fd, int operation);

  // Creates `dir` if needed and takes the lock without waiting. Throws vd::ConfigError naming
  // the holder when another run holds it, and vd::IoError when the directory or the lock file
  // cannot be made. On a file system that gives no locks (ENOLCK, EOPNOTSUPP, ENOSYS) it does
  // not throw: the run goes on unlocked, held() is false and note() is the warning to print.
  static RunLock acquire(const std::string& dir, const std::string& command,
                         LockCall lock_call = nullptr);

  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  // Empties the record (a clean release leaves no holder behind), then closes, which unlocks.
  ~RunLock();

  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  // One line for rank 0 to print, or empty: the lock of a run that is gone was taken over, or
  // the file system gives no locks.
  const std::string& note() const { return note_; }
  // The record left by an earlier holder that ended without releasing (killed, crashed).
  const std::optional<RunLockRecord>& previous() const { return previous_; }

 private:
  RunLock() = default;
  void release() noexcept;

  int fd_ = -1;
  std::string path_;
  std::string note_;
  std::optional<RunLockRecord> previous_;
};

}  // namespace vd
