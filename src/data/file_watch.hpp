// FileWatch: whether a file a run keeps reading (a streamed data set) is still the file it
// opened, by its device and inode, size and modification time. Not a checksum of the contents:
// a stat is cheap enough to ask after every read.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace vd {

// What stat(2) says identifies a file's state.
struct FileStamp {
  uint64_t device = 0, inode = 0;
  int64_t size = 0;      // bytes
  int64_t mtime_ns = 0;  // st_mtim, nanoseconds since 1970
  bool operator==(const FileStamp&) const = default;

  // The stamp of `path` now; nullopt (and errno set) when it cannot be read.
  static std::optional<FileStamp> of(const std::string& path);
};

class FileWatch {
 public:
  FileWatch() = default;
  // Watches `path` from `stamp` (taken before the file was opened), or from now when nullopt.
  // Throws vd::DataError when the file cannot be stat'ed.
  explicit FileWatch(std::string path, std::optional<FileStamp> stamp = std::nullopt);

  // "" while the file is as it was; else what changed: "its size went from 100 to 40 bytes",
  // "it was modified at 2025-01-02 03:04:05.678901234 +0000 (...)", "it was replaced by another
  // file (inode 12 -> 34)", "it no longer exists (No such file or directory)".
  std::string change() const;
  // Throws vd::DataError naming the file, the change and what to do (restore the file, resume)
  // when change() is not empty. Thread-safe.
  void check() const;

  const std::string& path() const { return path_; }
  const FileStamp& stamp() const { return stamp_; }

 private:
  std::string path_;
  FileStamp stamp_;
};

// "2025-01-02 03:04:05.678901234 +0000": a modification time in local time, as `ls
// --full-time` prints it.
std::string time_text(int64_t ns_since_epoch);

}  // namespace vd
