// Tests of the .npy reader and `import_npy`: files written here byte by byte after numpy's
// published format (versions 1.0 and 2.0), read back value for value, imported into a data set
// file that Shard reads, shuffled with one permutation, and every unsupported file refused.
#include "data/npy.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "data/dataset_file.hpp"
#include "data/shard.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;

// A .npy file: magic, version, header length, the dict literal padded with spaces to a
// multiple of 64 bytes and ending in '\n', then `payload`.
void write_npy(const std::string& path, const std::string& descr, const std::string& shape,
               const std::vector<uint8_t>& payload, int version = 1, bool fortran = false) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                     ", 'shape': " + shape + ", }";
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string head = "\x93NUMPY";
  head += static_cast<char>(version);
  head += '\0';
  const size_t len = dict.size();
  head += static_cast<char>(len & 0xff);
  head += static_cast<char>((len >> 8) & 0xff);
  if (version != 1) {
    head += static_cast<char>((len >> 16) & 0xff);
    head += static_cast<char>((len >> 24) & 0xff);
  }
  std::ofstream out(path, std::ios::binary);
  out << head << dict;
  out.write(reinterpret_cast<const char*>(payload.data()),
            static_cast<std::streamsize>(payload.size()));
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string error_of(const std::string& path) {
  try {
    read_npy(path);
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "read_npy(" << path << ") did not throw";
  return "";
}

TEST(Npy, ReadsEveryVersionShapeAndType) {
  TempDir dir;
  const std::vector<float> f = {0.5f, -1.25f, 3e-8f, 7.0f, 0.0f, 1.0f};
  write_npy(dir.file("f.npy"), "<f4", "(2, 3)", bytes_of(f));
  NpyArray a = read_npy(dir.file("f.npy"));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.type, NpyType::Float32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.value(i), f[static_cast<size_t>(i)]);

  const std::vector<int64_t> l = {3, 0, 9, 1};
  write_npy(dir.file("l.npy"), "<i8", "(4,)", bytes_of(l), 2);
  a = read_npy(dir.file("l.npy"));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{4}));
  EXPECT_TRUE(npy_is_integer(a.type));
  EXPECT_EQ(a.value(2), 9.0);

  write_npy(dir.file("u.npy"), "|u1", "(1, 2, 2)", {1, 2, 250, 255});
  a = read_npy(dir.file("u.npy"));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(a.value(3), 255.0);
  EXPECT_STREQ(npy_type_name(a.type), "uint8");
}

TEST(Npy, RefusesWhatItDoesNotReadNamingTheFileAndTheFix) {
  TempDir dir;
  const std::vector<uint8_t> four(16, 0);
  struct Case {
    std::string name, descr, shape;
    std::vector<uint8_t> payload;
    bool fortran;
    std::string says;
  } cases[] = {
      {"fortran.npy", "<f4", "(2, 2)", four, true, "Fortran order"},
      {"big.npy", ">f4", "(2, 2)", four, false, "big-endian"},
      {"object.npy", "|O", "(2,)", four, false, "Python objects"},
      {"complex.npy", "<c8", "(2,)", four, false, "not read"},
      {"short.npy", "<f4", "(2, 3)", four, false, "truncated"},
      {"long.npy", "<f4", "(1, 3)", four, false, "trailing bytes"},
      // A byte count beyond size_t: refused, not multiplied out.
      {"huge.npy", "<f4", "(4611686018427387904, 4)", four, false, "needs more"},
  };
  for (const Case& c : cases) {
    write_npy(dir.file(c.name), c.descr, c.shape, c.payload, 1, c.fortran);
    const std::string msg = error_of(dir.file(c.name));
    EXPECT_NE(msg.find(dir.file(c.name)), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
  }
  { std::ofstream(dir.file("not.npy")) << "P6 not numpy at all"; }
  EXPECT_NE(error_of(dir.file("not.npy")).find("not a .npy file"), std::string::npos);
  EXPECT_NE(error_of(dir.file("missing.npy")).find("cannot open"), std::string::npos);
}

TEST(Npy, ImportedImagesAndLabelsAreWhatShardReadsAndShuffleTogether) {
  TempDir dir;
  // 5 grayscale images of 2 x 3, pixel value 10 * row + index, labels 4 - row.
  std::vector<uint8_t> px;
  for (int r = 0; r < 5; ++r)
    for (int i = 0; i < 6; ++i) px.push_back(static_cast<uint8_t>(10 * r + i));
  write_npy(dir.file("x.npy"), "|u1", "(5, 2, 3)", px);
  const std::vector<int16_t> lab = {4, 3, 2, 1, 0};
  write_npy(dir.file("y.npy"), "<i2", "(5,)", bytes_of(lab));
  const DatasetSummary s =
      import_npy(dir.file("x.npy"), dir.file("y.npy"), dir.file("d.h5"), std::nullopt);
  EXPECT_EQ(s.rows, 5);
  EXPECT_EQ(s.sample_shape, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(s.has_labels);
  const Shard shard = Shard::read(dir.file("d.h5"), "/images", 0, 1, ValueCheck::UnitInterval);
  ASSERT_EQ(shard.rows(), 5);
  std::vector<float> x(6);
  for (int64_t r = 0; r < 5; ++r) {
    shard.gather(std::vector<int64_t>{r}, x.data());
    for (int i = 0; i < 6; ++i)
      EXPECT_EQ(x[static_cast<size_t>(i)], static_cast<float>(10 * r + i) / 255.0f);
    EXPECT_EQ(shard.labels()[static_cast<size_t>(r)], 4 - r);
  }

  // Shuffled: row r holds input row perm[r], with its own label.
  import_npy(dir.file("x.npy"), dir.file("y.npy"), dir.file("s.h5"), uint64_t{7});
  const std::vector<int64_t> perm = shuffle_permutation(5, 7);
  const Shard shuffled = Shard::read(dir.file("s.h5"), "/images", 0, 1, ValueCheck::None);
  for (int64_t r = 0; r < 5; ++r) {
    shuffled.gather(std::vector<int64_t>{r}, x.data());
    const int64_t from = perm[static_cast<size_t>(r)];
    EXPECT_EQ(x[0], static_cast<float>(10 * from) / 255.0f) << r;
    EXPECT_EQ(shuffled.labels()[static_cast<size_t>(r)], 4 - from) << r;
  }

  // float32 vectors, and 1-D signals with --signals.
  const std::vector<float> v = {0.25f, 0.5f, 0.75f, 1.0f};
  write_npy(dir.file("v.npy"), "<f4", "(2, 2)", bytes_of(v));
  EXPECT_EQ(import_npy(dir.file("v.npy"), "", dir.file("v.h5"), std::nullopt).sample_shape,
            (std::vector<int64_t>{2}));
  write_npy(dir.file("sig.npy"), "<f4", "(1, 2, 2)", bytes_of(v));
  EXPECT_EQ(
      import_npy(dir.file("sig.npy"), "", dir.file("sig.h5"), std::nullopt, 4, true).sample_shape,
      (std::vector<int64_t>{2, 2}));
  {
    h5::File f = h5::open_file(dir.file("sig.h5"));
    EXPECT_EQ(h5::read_string_attribute(h5::open_dataset(f, "/images"), "layout"), "NCL");
  }

  // Sizes that do not fit, and dtypes that are not images or labels.
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  write_npy(dir.file("y4.npy"), "<i2", "(4,)", bytes_of(std::vector<int16_t>{0, 1, 2, 3}));
  EXPECT_NE(message([&] {
              import_npy(dir.file("x.npy"), dir.file("y4.npy"), dir.file("e.h5"), std::nullopt);
            }).find("has 4 labels but"),
            std::string::npos);
  EXPECT_NE(message([&] {
              import_npy(dir.file("x.npy"), dir.file("v.npy"), dir.file("e.h5"), std::nullopt);
            }).find("labels must be a 1-D array of integers"),
            std::string::npos);
  write_npy(dir.file("d8.npy"), "<f8", "(1, 1)", std::vector<uint8_t>(8, 0));
  EXPECT_NE(message([&] {
              import_npy(dir.file("d8.npy"), "", dir.file("e.h5"), std::nullopt);
            }).find("must be uint8 or float32"),
            std::string::npos);
  write_npy(dir.file("neg.npy"), "<i2", "(5,)", bytes_of(std::vector<int16_t>{0, 1, -2, 3, 4}));
  EXPECT_NE(message([&] {
              import_npy(dir.file("x.npy"), dir.file("neg.npy"), dir.file("e.h5"), std::nullopt);
            }).find("at row 2"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("e.h5")));
}

}  // namespace
}  // namespace vd
