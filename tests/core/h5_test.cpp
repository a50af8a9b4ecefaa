// Tests of the HDF5 wrapper in core/h5: handle ownership, rows, attributes, listings, errors.
#include "core/h5.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;

// Readers take no file lock (shared file systems where flock fails): a file another process
// holds under an exclusive lock still opens read-only; a writer still takes the lock.
TEST(H5, ReadOnlyOpenTakesNoFileLock) {
  TempDir dir;
  const std::string path = dir.file("locked.h5");
  {
    h5::File f = h5::create_file(path);
    const std::vector<float> v{1, 2, 3};
    const std::vector<int64_t> dims{3};
    h5::write_dataset<float>(f, "/x", v, dims);
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // another open file description: as a process
  {
    h5::File f = h5::open_file(path);
    EXPECT_EQ(h5::read_dataset<float>(f, "/x").data, (std::vector<float>{1, 2, 3}));
  }
  EXPECT_THROW(h5::open_file(path, /*writable=*/true), Error);
  ::close(fd);
}

TEST(H5, HandleMoveTransfersOwnershipAndResetCloses) {
  TempDir dir;
  h5::File file = h5::create_file(dir.file("a.h5"));
  const hid_t id = file.get();
  ASSERT_TRUE(file.valid());
  h5::File moved = std::move(file);
  EXPECT_FALSE(file.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(moved.get(), id);
  EXPECT_GT(H5Iis_valid(id), 0);
  h5::File other;
  other = std::move(moved);
  EXPECT_EQ(other.get(), id);
  other.reset();
  EXPECT_FALSE(other.valid());
  EXPECT_LE(H5Iis_valid(id), 0);
}

TEST(H5, RowsRoundTripAsOneHyperslab) {
  TempDir dir;
  h5::File file = h5::create_file(dir.file("a.h5"));
  const std::vector<int64_t> dims{10, 2, 3};
  h5::Dataset d = h5::create_dataset<float>(file, "/x", dims, {{4, 2, 3}, 4});
  std::vector<float> all(60);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<float>(i) * 0.5f;
  h5::write_rows(d, 0, 10, all.data());
  std::vector<float> part(3 * 6);
  h5::read_rows(d, 5, 3, part.data());
  for (size_t i = 0; i < part.size(); ++i) EXPECT_EQ(part[i], all[30 + i]);
  std::vector<double> as_double(6);
  h5::read_rows(d, 9, 1, as_double.data());  // HDF5 converts float -> double
  EXPECT_EQ(as_double[5], 59 * 0.5);
  EXPECT_THROW(h5::read_rows(d, 8, 3, part.data()), ShapeError);
  EXPECT_EQ(h5::chunk_of(d), (std::vector<int64_t>{4, 2, 3}));
  EXPECT_EQ(h5::deflate_level_of(d), 4);
  EXPECT_EQ(h5::dtype_of(d), h5::DType::Float32);
  EXPECT_EQ(h5::dims_of(d), dims);
}

TEST(H5, WholeDatasetHelpersRoundTrip) {
  TempDir dir;
  h5::File file = h5::create_file(dir.file("a.h5"));
  const std::vector<int64_t> v{1, -2, 3, INT64_MAX, INT64_MIN, 0};
  const std::vector<int64_t> dims{2, 3};
  h5::write_dataset<int64_t>(file, "/v", v, dims);
  const auto back = h5::read_dataset<int64_t>(file, "/v");
  EXPECT_EQ(back.dims, dims);
  EXPECT_EQ(back.data, v);
  EXPECT_EQ(h5::dtype_name(h5::open_dataset(file, "/v")), "int64");
  const std::vector<int64_t> wrong{4};
  EXPECT_THROW(h5::write_dataset<int64_t>(file, "/w", v, wrong), ShapeError);
}

TEST(H5, AttributesRoundTripAndReplace) {
  TempDir dir;
  {
    h5::File file = h5::create_file(dir.file("a.h5"));
    h5::write_attribute(file, "name", "hello world");
    h5::write_attribute(file, "empty", std::string());
    h5::write_attribute(file, "count", int64_t{-42});
    h5::write_attribute(file, "seed", uint64_t{18446744073709551615ULL});
    h5::write_attribute(file, "rate", 0.25);
    h5::write_attribute(file, "count", int64_t{7});  // replaces
  }
  h5::File file = h5::open_file(dir.file("a.h5"));
  EXPECT_EQ(h5::read_string_attribute(file, "name"), "hello world");
  EXPECT_EQ(h5::read_string_attribute(file, "empty"), "");
  EXPECT_EQ(h5::read_int_attribute(file, "count"), 7);
  EXPECT_EQ(h5::read_attribute<uint64_t>(file, "seed"), 18446744073709551615ULL);
  EXPECT_EQ(h5::read_attribute<double>(file, "rate"), 0.25);
  EXPECT_TRUE(h5::has_attribute(file, "rate"));
  EXPECT_FALSE(h5::has_attribute(file, "nope"));
  EXPECT_EQ(h5::list_attributes(file),
            (std::vector<std::string>{"count", "empty", "name", "rate", "seed"}));
  EXPECT_EQ(h5::attribute_text(file, "name"), "\"hello world\"");
  EXPECT_EQ(h5::attribute_text(file, "count"), "7");
  EXPECT_THROW(h5::read_int_attribute(file, "nope"), IoError);
  EXPECT_THROW(h5::read_int_attribute(file, "name"), IoError);
  EXPECT_THROW(h5::read_string_attribute(file, "count"), IoError);
}

TEST(H5, ListsDatasetsAndChecksExistence) {
  TempDir dir;
  h5::File file = h5::create_file(dir.file("a.h5"));
  const std::vector<int64_t> dims{2};
  const std::vector<float> v{1, 2};
  h5::write_dataset<float>(file, "/b", v, dims);
  h5::write_dataset<float>(file, "/a", v, dims);
  h5::Group g = h5::create_group(file, "/grp");
  h5::write_dataset<float>(file, "/grp/c", v, dims);
  EXPECT_EQ(h5::list_datasets(file), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(h5::list_datasets(file, "/", true), (std::vector<std::string>{"/a", "/b", "/grp/c"}));
  EXPECT_EQ(h5::list_datasets(file, "/grp"), (std::vector<std::string>{"/grp/c"}));
  EXPECT_TRUE(h5::exists(file, "/grp/c"));
  EXPECT_FALSE(h5::exists(file, "/missing/c"));  // missing intermediate group: false, no throw
  EXPECT_TRUE(h5::is_dataset(file, "/grp/c"));
  EXPECT_FALSE(h5::is_dataset(file, "/grp"));
  EXPECT_THROW(h5::open_dataset(file, "/zzz"), IoError);
}

// In a checksummed file a group keeps all its links in its object header (HDF5 moves more than
// 8 to a fractal heap by default); in the oldest format groups stay as HDF5 makes them. Either
// way, and for a group with its links in a heap, the listing is in name order.
TEST(H5, GroupsOfChecksummedFilesKeepTheirLinksInTheirHeaderAndListInNameOrder) {
  TempDir dir;
  const std::vector<float> v{1};
  const std::vector<int64_t> dims{1};
  // Appending (not "d" + string&&) dodges a false -Wrestrict in g++ 12's libstdc++.
  const auto name = [](int i) { return std::string("d").append(std::to_string(i)); };
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) expected.push_back(std::string("/g/").append(name(i)));
  std::sort(expected.begin(), expected.end());
  const auto storage = [](hid_t file) {
    H5G_info_t info{};
    EXPECT_GE(H5Gget_info_by_name(file, "/g", &info, H5P_DEFAULT), 0);
    return info.storage_type;
  };
  for (const bool checksummed : {true, false}) {
    h5::File f = h5::create_file(dir.file("a.h5"), checksummed);
    h5::Group g = h5::create_group(f, "/g");
    for (int i = 39; i >= 0; --i) h5::write_dataset<float>(g, name(i), v, dims);
    EXPECT_EQ(storage(f), checksummed ? H5G_STORAGE_TYPE_COMPACT : H5G_STORAGE_TYPE_SYMBOL_TABLE);
    EXPECT_EQ(h5::list_datasets(f, "/g"), expected) << checksummed;
  }
  // HDF5's default group in the 1.10 format: its links in a fractal heap, listed by hash.
  h5::File f = h5::create_file(dir.file("b.h5"), true);
  h5::Group g(H5Gcreate2(f, "/g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  for (int i = 39; i >= 0; --i) h5::write_dataset<float>(g, name(i), v, dims);
  EXPECT_EQ(storage(f), H5G_STORAGE_TYPE_DENSE);
  EXPECT_EQ(h5::list_datasets(f, "/g"), expected);
  EXPECT_EQ(h5::list_datasets(f, "/", true), expected);
}

TEST(H5, OpenFailuresThrowIoErrorWithoutHdf5Dump) {
  TempDir dir;
  std::ofstream(dir.file("text.h5")) << "not hdf5\n";
  EXPECT_FALSE(h5::is_hdf5(dir.file("text.h5")));
  EXPECT_FALSE(h5::is_hdf5(dir.file("missing.h5")));
  ::testing::internal::CaptureStderr();
  try {
    h5::open_file(dir.file("missing.h5"));
    ADD_FAILURE() << "open_file did not throw";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("missing.h5")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("h5.cpp:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(h5::open_file(dir.file("text.h5")), IoError);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace vd
