// FileWatch: the stamp from stat(2) and the sentence that says how a file changed.
#include "data/file_watch.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/error.hpp"

namespace vd {

std::optional<FileStamp> FileStamp::of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileStamp s;
  s.device = static_cast<uint64_t>(st.st_dev);
  s.inode = static_cast<uint64_t>(st.st_ino);
  s.size = static_cast<int64_t>(st.st_size);
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

FileWatch::FileWatch(std::string path, std::optional<FileStamp> stamp) : path_(std::move(path)) {
  if (!stamp) stamp = FileStamp::of(path_);
  if (!stamp)
    throw DataError("data file '" + path_ + "' cannot be examined (" + std::strerror(errno) +
                    "); check the path and its permissions");
  stamp_ = *stamp;
}

std::string time_text(int64_t ns_since_epoch) {
  const std::time_t sec = static_cast<std::time_t>(ns_since_epoch / 1000000000);
  std::tm tm{};
  ::localtime_r(&sec, &tm);
  char date[64], zone[16], out[112];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
  std::strftime(zone, sizeof zone, "%z", &tm);
  std::snprintf(out, sizeof out, "%s.%09lld %s", date,
                static_cast<long long>(ns_since_epoch % 1000000000), zone);
  return out;
}

std::string FileWatch::change() const {
  errno = 0;
  const std::optional<FileStamp> now = FileStamp::of(path_);
  if (!now) return std::string("it no longer exists (") + std::strerror(errno) + ")";
  if (*now == stamp_) return "";
  std::string what;
  // A new inode: the path names another file (renamed over it, or deleted and re-created).
  if (now->device != stamp_.device || now->inode != stamp_.inode)
    what = "it was replaced by another file (inode " + std::to_string(stamp_.inode) + " -> " +
           std::to_string(now->inode) + ")";
  if (now->size != stamp_.size)
    what += std::string(what.empty() ? "its" : ", and its") + " size went from " +
            std::to_string(stamp_.size) + " to " + std::to_string(now->size) + " bytes";
  if (what.empty())  // the same size, written over (or only touched)
    what = "it was modified at " + time_text(now->mtime_ns) + " (it was last modified at " +
           time_text(stamp_.mtime_ns) + " when the run opened it)";
  return what;
}

void FileWatch::check() const {
  const std::string what = change();
  if (what.empty()) return;
  // HDF5 reads past a truncated file's end as zeros, and an overwritten file's bytes as the old
  // rows: training on would be silently wrong.
  throw DataError("data file '" + path_ + "' changed while the run was reading it: " + what +
                  "; the rows read from it now could be zeros or another file's rows, so the run "
                  "stops (the checkpoints written so far were made from the file as it was, and "
                  "stay); restore the file, then resume with --resume latest");
}

}  // namespace vd
