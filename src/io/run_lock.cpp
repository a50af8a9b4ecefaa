// RunLock: the flock on <out>/.vae_dist.lock, the holder's record in it, and the messages for a
// directory in use, a lock taken over from a run that is gone, and a file system without locks.
#include "io/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>
#include <thread>
#include <utility>

#include "core/error.hpp"

namespace vd {

namespace {

namespace fs = std::filesystem;

// The holder locks first and writes its record just after, and empties it just before it
// unlocks: a refused run that reads an empty record waits this long for the record (or the
// lock) before it gives up on naming the holder.
constexpr std::chrono::milliseconds kRecordWait{2000};

std::string read_all(int fd) {
  std::string text;
  char buf[4096];
  off_t at = 0;
  while (true) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return text;
}

bool write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        ::pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Errors of a file system that gives no locks at all (NFS without a lock daemon: ENOLCK; some
// FUSE and parallel file systems: EOPNOTSUPP, which is ENOTSUP on Linux, or ENOSYS).
bool no_lock_support(int err) {
  return err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS;
}

std::string busy_message(const std::string& dir, const std::string& path,
                         const std::optional<RunLockRecord>& holder) {
  std::string m = "the run directory '" + dir + "' is in use by another vae_dist run";
  if (!holder)
    return m + " (its lock file " + path +
           " names no holder); wait for that run to end, stop it, or choose another --out";
  m += " (" + holder->describe();
  if (!holder->command.empty()) {
    // A config's long command line would bury the advice that follows.
    constexpr size_t kMax = 200;
    m += ": " + (holder->command.size() > kMax ? holder->command.substr(0, kMax) + " ..."
                                               : holder->command);
  }
  m += "); wait for it to end, stop it";
  if (holder->pid > 0)
    m += " (kill " + std::to_string(holder->pid) +
         (holder->host.empty() ? std::string() : " on " + holder->host) + ")";
  return m + ", or choose another --out";
}

// Closes a descriptor on every way out of acquire() that does not hand it to the RunLock.
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

}  // namespace

std::string RunLockRecord::describe() const {
  return "host " + (host.empty() ? std::string("?") : host) + ", pid " +
         (pid > 0 ? std::to_string(pid) : std::string("?")) + ", started " +
         (started.empty() ? std::string("?") : started);
}

std::string RunLockRecord::text() const {
  return "# vae_dist run lock: the run below holds an flock on this file while it runs; the file "
         "is emptied when it ends\nhost=" +
         host + "\npid=" + std::to_string(pid) + "\nstarted=" + started + "\ncommand=" + command +
         "\n";
}

std::optional<RunLockRecord> parse_run_lock_record(const std::string& text) {
  RunLockRecord r;
  bool any = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "host") {
      r.host = value;
    } else if (key == "pid") {
      char* end = nullptr;
      const long long pid = std::strtoll(value.c_str(), &end, 10);
      r.pid = end != value.c_str() && *end == '\0' && pid > 0 ? pid : 0;
    } else if (key == "started") {
      r.started = value;
    } else if (key == "command") {
      r.command = value;
    } else {
      continue;
    }
    any = true;
  }
  if (!any) return std::nullopt;
  return r;
}

RunLockRecord this_process_record(const std::string& command) {
  RunLockRecord r;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) r.host = host;
  r.pid = static_cast<long long>(::getpid());
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  char when[32] = {};
  if (::gmtime_r(&now, &utc) != nullptr)
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  r.started = when;
  r.command = command;
  // One line per field: a command line with newlines in an argument stays on its line.
  for (char& c : r.command)
    if (c == '\n' || c == '\r') c = ' ';
  return r;
}

RunLock RunLock::acquire(const std::string& dir, const std::string& command, LockCall lock_call) {
  if (lock_call == nullptr) lock_call = ::flock;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw IoError("cannot create the run directory '" + dir + "': " + ec.message() +
                  "; choose another --out");
  RunLock lock;
  lock.path_ = (fs::path(dir) / kFileName).string();
  // No O_TRUNC: the file may hold a running holder's record. O_CLOEXEC: a program this process
  // starts must not inherit the lock and keep it after the run ended.
  FdGuard fd{::open(lock.path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
  if (fd.fd < 0)
    throw IoError("cannot open the lock file '" + lock.path_ + "': " + std::strerror(errno) +
                  "; choose a writable --out");

  const auto deadline = std::chrono::steady_clock::now() + kRecordWait;
  while (lock_call(fd.fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (no_lock_support(err)) {
      lock.note_ = "warning: cannot lock " + lock.path_ + " (" + std::strerror(err) +
                   "): its file system gives no file locks, so vae_dist trains without one and "
                   "would not refuse a second run on this --out; make sure only one run uses it";
      return lock;  // fd closed by the guard: held() is false
    }
    if (err != EWOULDBLOCK)
      throw IoError("cannot lock " + lock.path_ + ": " + std::strerror(err) +
                    "; choose another --out");
    const std::optional<RunLockRecord> holder = parse_run_lock_record(read_all(fd.fd));
    if (holder || std::chrono::steady_clock::now() > deadline)
      throw ConfigError(busy_message(dir, lock.path_, holder));
    // Locked with no record yet (or emptied): the holder is starting or ending.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // A record under a lock nobody held: its run ended without releasing (killed, crashed), and
  // the kernel dropped its lock with its last descriptor.
  lock.previous_ = parse_run_lock_record(read_all(fd.fd));
  if (lock.previous_)
    lock.note_ = "note: took over the lock of a run that is gone: " + lock.previous_->describe();
  const std::string record = this_process_record(command).text();
  // fsync: on NFS a run on another host reads the record from the server, not this cache.
  if (::ftruncate(fd.fd, 0) != 0 || !write_all(fd.fd, record) || ::fsync(fd.fd) != 0)
    throw IoError("cannot write the lock file " + lock.path_ + ": " + std::strerror(errno) +
                  "; choose a writable --out");
  lock.fd_ = fd.release();
  return lock;
}

RunLock::RunLock(RunLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      note_(std::move(other.note_)),
      previous_(std::move(other.previous_)) {}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    note_ = std::move(other.note_);
    previous_ = std::move(other.previous_);
  }
  return *this;
}

RunLock::~RunLock() {
  release();
}

void RunLock::release() noexcept {
  if (fd_ < 0) return;
  // Emptied while still locked, so nobody takes the lock and finds this run's record.
  [[maybe_unused]] const int truncated = ::ftruncate(fd_, 0);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace vd
