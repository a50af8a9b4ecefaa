// Tests of FileWatch: an unchanged file passes, and a truncated, written-over, replaced or
// removed one is named with what changed and what to do.
#include "data/file_watch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(FileWatch, AnUnchangedFilePassesAndAShorterOneNamesBothSizes) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  write_file(path, std::string(1000, 'a'));
  const FileWatch watch(path);
  EXPECT_EQ(watch.change(), "");
  EXPECT_NO_THROW(watch.check());
  {
    std::ifstream in(path);  // reading changes nothing
    std::string s;
    in >> s;
  }
  EXPECT_NO_THROW(watch.check());
  fs::resize_file(path, 400);
  EXPECT_EQ(watch.change(), "its size went from 1000 to 400 bytes");
  try {
    watch.check();
    ADD_FAILURE() << "no error for a truncated file";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(has(msg, "data file '" + path +
                             "' changed while the run was reading it: its size went from 1000 "
                             "to 400 bytes"))
        << msg;
    EXPECT_TRUE(has(msg, "restore the file, then resume with --resume latest")) << msg;
  }
}

TEST(FileWatch, AWriteOfTheSameSizeIsNamedByItsModificationTime) {
  TempDir dir;
  const std::string path = dir.file("d.h5");
  write_file(path, std::string(1000, 'a'));
  const FileWatch watch(path);
  // The kernel stamps writes with a clock that ticks every few ms: let it tick.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::fstream h(path, std::ios::in | std::ios::out | std::ios::binary);
    h.seekp(100);
    h.write("bbbb", 4);
  }
  const std::optional<FileStamp> now = FileStamp::of(path);
  ASSERT_TRUE(now);
  ASSERT_NE(now->mtime_ns, watch.stamp().mtime_ns) << "the file system did not stamp the write";
  EXPECT_EQ(watch.change(), "it was modified at " + time_text(now->mtime_ns) +
                                " (it was last modified at " + time_text(watch.stamp().mtime_ns) +
                                " when the run opened it)");
  EXPECT_THROW(watch.check(), DataError);
}

TEST(FileWatch, AFileRenamedOverThePathOrRemovedIsNamedSo) {
  TempDir dir;
  const std::string path = dir.file("d.h5"), other = dir.file("new.h5");
  write_file(path, std::string(1000, 'a'));
  write_file(other, std::string(1000, 'b'));
  const FileWatch watch(path);
  const auto old_inode = watch.stamp().inode, new_inode = FileStamp::of(other)->inode;
  fs::rename(other, path);  // as a writer that writes a temporary file, then renames it
  EXPECT_EQ(watch.change(), "it was replaced by another file (inode " + std::to_string(old_inode) +
                                " -> " + std::to_string(new_inode) + ")");
  write_file(path, std::string(10, 'c'));
  EXPECT_TRUE(has(watch.change(), ", and its size went from 1000 to 10 bytes")) << watch.change();
  fs::remove(path);
  EXPECT_EQ(watch.change(), "it no longer exists (No such file or directory)");
  EXPECT_THROW(watch.check(), DataError);
  // A file that is not there cannot be watched.
  EXPECT_THROW(FileWatch{path}, DataError);
}

TEST(FileWatch, TimesAreWrittenToTheNanosecondWithTheirZone) {
  const std::string t = time_text(int64_t{1700000000} * 1000000000 + 5);
  EXPECT_TRUE(
      std::regex_match(t, std::regex(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.000000005 [+-]\d{4})")))
      << t;
}

}  // namespace
}  // namespace vd
