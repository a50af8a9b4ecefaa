// Tests of vd::RunLock: the record it writes, a second lock refused with the holder named, the
// release, a lock taken over from a process that is gone, and file systems without locks.
#include "io/run_lock.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "core/error.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using vd::RunLock;
using vd::testing::TempDir;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string lock_file(const TempDir& tmp) {
  return (tmp.path() / "run" / RunLock::kFileName).string();
}

// The message of the vd::ConfigError that acquire throws, or "" when it does not throw it.
std::string refusal(const std::string& dir) {
  try {
    RunLock again = RunLock::acquire(dir, "vae_dist --second");
  } catch (const vd::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RunLock, AcquireCreatesTheDirectoryAndRecordsTheHolder) {
  TempDir tmp;
  const std::string dir = (tmp.path() / "run" / "nested").string();
  const RunLock lock = RunLock::acquire(dir, "vae_dist --out x\n--epochs 3");
  EXPECT_TRUE(lock.held());
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(lock.path(), (fs::path(dir) / ".vae_dist.lock").string());
  EXPECT_EQ(lock.note(), "");
  EXPECT_FALSE(lock.previous().has_value());

  const std::optional<vd::RunLockRecord> r = vd::parse_run_lock_record(read_text(lock.path()));
  ASSERT_TRUE(r.has_value()) << read_text(lock.path());
  EXPECT_EQ(r->host, host_name());
  EXPECT_EQ(r->pid, static_cast<long long>(getpid()));
  EXPECT_TRUE(std::regex_match(r->started, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << r->started;
  EXPECT_EQ(r->command, "vae_dist --out x --epochs 3");  // one line
}

TEST(RunLock, SecondLockIsRefusedNamingTheHolder) {
  TempDir tmp;
  const std::string dir = tmp.file("run");
  const RunLock first = RunLock::acquire(dir, "vae_dist --first");
  const std::string record = read_text(first.path());
  const std::optional<vd::RunLockRecord> r = vd::parse_run_lock_record(record);
  ASSERT_TRUE(r.has_value());

  // flock locks belong to the open file description: a second open in this process conflicts.
  const std::string m = refusal(dir);
  EXPECT_NE(m, "") << "a second lock on a locked directory was not refused";
  EXPECT_NE(m.find("the run directory '" + dir + "' is in use by another vae_dist run"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("host " + host_name() + ", pid " + std::to_string(getpid()) + ", started " +
                   r->started + ": vae_dist --first"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("wait for it to end, stop it (kill " + std::to_string(getpid()) + " on " +
                   host_name() + "), or choose another --out"),
            std::string::npos)
      << m;
  // The refused attempt leaves the holder's record as it was.
  EXPECT_EQ(read_text(first.path()), record);
  EXPECT_TRUE(first.held());
}

TEST(RunLock, ReleaseEmptiesTheRecordAndLetsANewLockSucceed) {
  TempDir tmp;
  const std::string dir = tmp.file("run");
  {
    RunLock first = RunLock::acquire(dir, "vae_dist --first");
    RunLock moved = std::move(first);  // the moved-to object holds the lock, the other nothing
    EXPECT_TRUE(moved.held());
    EXPECT_FALSE(first.held());
    EXPECT_NE(refusal(dir), "");
    // A move assignment releases the lock the target held before.
    RunLock other = RunLock::acquire(tmp.file("other"), "vae_dist --other");
    other = std::move(moved);
    EXPECT_EQ(fs::file_size(tmp.file("other") + "/" + RunLock::kFileName), 0u);
    EXPECT_TRUE(RunLock::acquire(tmp.file("other"), "vae_dist").held());
    EXPECT_NE(refusal(dir), "") << "the moved lock was released";
  }
  EXPECT_EQ(fs::file_size(lock_file(tmp)), 0u) << read_text(lock_file(tmp));
  const RunLock next = RunLock::acquire(dir, "vae_dist --next");
  EXPECT_TRUE(next.held());
  EXPECT_EQ(next.note(), "") << "a clean release must not read as a run that is gone";
  EXPECT_EQ(vd::parse_run_lock_record(read_text(next.path()))->command, "vae_dist --next");
}

TEST(RunLock, RecordOfAProcessThatIsGoneIsReportedAsTakenOver) {
  TempDir tmp;
  const std::string dir = tmp.file("run");
  // A child takes the lock and ends without releasing it, like a killed run: the kernel drops
  // the lock, the record stays.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      RunLock lock = RunLock::acquire(dir, "vae_dist --killed");
      _exit(lock.held() ? 0 : 1);  // no destructor: the record is not emptied
    } catch (...) {
      _exit(2);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::optional<vd::RunLockRecord> left =
      vd::parse_run_lock_record(read_text(lock_file(tmp)));
  ASSERT_TRUE(left.has_value());
  ASSERT_EQ(left->pid, static_cast<long long>(child));

  const RunLock lock = RunLock::acquire(dir, "vae_dist --next");
  EXPECT_TRUE(lock.held());
  EXPECT_EQ(lock.note(), "note: took over the lock of a run that is gone: host " + host_name() +
                             ", pid " + std::to_string(child) + ", started " + left->started);
  ASSERT_TRUE(lock.previous().has_value());
  EXPECT_EQ(lock.previous()->command, "vae_dist --killed");
  // The file now names this process.
  EXPECT_EQ(vd::parse_run_lock_record(read_text(lock.path()))->pid,
            static_cast<long long>(getpid()));
}

TEST(RunLock, LockedFileWithoutARecordIsRefusedAfterAWait) {
  TempDir tmp;
  const std::string dir = tmp.file("run");
  fs::create_directories(dir);
  // Locked by someone who never writes a record (a holder that is just starting waits out).
  const int fd = open(lock_file(tmp).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string m = refusal(dir);
  close(fd);
  EXPECT_NE(m.find("is in use by another vae_dist run (its lock file " + lock_file(tmp) +
                   " names no holder); wait for that run to end, stop it, or choose another "
                   "--out"),
            std::string::npos)
      << m;
}

int lock_fails_with_enolck(int, int) {
  errno = ENOLCK;
  return -1;
}
int lock_fails_with_eopnotsupp(int, int) {
  errno = EOPNOTSUPP;
  return -1;
}
int lock_fails_with_eio(int, int) {
  errno = EIO;
  return -1;
}

TEST(RunLock, FileSystemWithoutLocksWarnsAndGoesOnUnlocked) {
  for (RunLock::LockCall call : {&lock_fails_with_enolck, &lock_fails_with_eopnotsupp}) {
    TempDir tmp;
    const std::string dir = tmp.file("run");
    const RunLock lock = RunLock::acquire(dir, "vae_dist", call);
    EXPECT_FALSE(lock.held());
    EXPECT_EQ(lock.note().rfind("warning: cannot lock " + lock_file(tmp) + " (", 0), 0u)
        << lock.note();
    EXPECT_NE(lock.note().find("trains without one and would not refuse a second run on this "
                               "--out; make sure only one run uses it"),
              std::string::npos)
        << lock.note();
    // An unenforced record would claim what nobody checks.
    EXPECT_EQ(fs::file_size(lock_file(tmp)), 0u);
  }
  TempDir tmp;
  EXPECT_NE(RunLock::acquire(tmp.file("a"), "vae_dist", &lock_fails_with_enolck)
                .note()
                .find(std::strerror(ENOLCK)),
            std::string::npos);
}

TEST(RunLock, OtherLockFailuresAreIoErrors) {
  TempDir tmp;
  try {
    RunLock lock = RunLock::acquire(tmp.file("run"), "vae_dist", &lock_fails_with_eio);
    FAIL() << "no error";
  } catch (const vd::ConfigError& e) {
    FAIL() << "a ConfigError (busy) for EIO: " << e.what();
  } catch (const vd::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot lock " + lock_file(tmp) + ": " +
                                         std::strerror(EIO) + "; choose another --out"),
              std::string::npos)
        << e.what();
  }
}

TEST(RunLock, UncreatableRunDirectoryIsAnIoError) {
  TempDir tmp;
  const std::string file = tmp.file("plain_file");
  std::ofstream(file) << "x";
  for (const std::string& dir : {file, file + "/run"}) {
    try {
      RunLock lock = RunLock::acquire(dir, "vae_dist");
      FAIL() << "no error for " << dir;
    } catch (const vd::IoError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("cannot create the run directory '" + dir + "': ", 0),
                0u)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("; choose another --out"), std::string::npos)
          << e.what();
    }
  }
}

TEST(RunLock, RecordTextRoundTripsAndEmptyMeansReleased) {
  vd::RunLockRecord r;
  r.host = "node07";
  r.pid = 4242;
  r.started = "2026-12-04T10:11:12Z";
  r.command = "vae_dist --config a=b.cfg";  // '=' in a value
  const std::optional<vd::RunLockRecord> back = vd::parse_run_lock_record(r.text());
  ASSERT_TRUE(back.has_value()) << r.text();
  EXPECT_EQ(back->host, r.host);
  EXPECT_EQ(back->pid, r.pid);
  EXPECT_EQ(back->started, r.started);
  EXPECT_EQ(back->command, r.command);
  EXPECT_EQ(r.describe(), "host node07, pid 4242, started 2026-12-04T10:11:12Z");

  EXPECT_FALSE(vd::parse_run_lock_record("").has_value());
  EXPECT_FALSE(vd::parse_run_lock_record("# only a comment\n\nno equals sign\n").has_value());
  // A damaged record still names what it can.
  const auto partial = vd::parse_run_lock_record("pid=12x\nhost=n1\n");
  ASSERT_TRUE(partial.has_value());
  EXPECT_EQ(partial->describe(), "host n1, pid ?, started ?");
}

}  // namespace
