// Tests of IDX import (round trip, shuffle, attributes, errors), synthetic data (images, 1-D
// signals, 3-D volumes) and describe.
#include "data/dataset_file.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "data/idx_files.hpp"
#include "data/shard.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;
using testing::write_idx;

// n images of h x w where pixel 0 and 1 encode the row index and the rest a pattern of it;
// label = row % 10. Lets a test recover which source row ended up where.
struct Source {
  std::vector<uint8_t> pixels, labels;
};
Source write_source(const TempDir& dir, uint32_t n, uint32_t h, uint32_t w, bool gzip) {
  Source s;
  s.pixels.resize(size_t{n} * h * w);
  s.labels.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t* p = s.pixels.data() + size_t{i} * h * w;
    p[0] = static_cast<uint8_t>(i % 256);
    p[1] = static_cast<uint8_t>(i / 256);
    for (uint32_t j = 2; j < h * w; ++j) p[j] = static_cast<uint8_t>((i * 31 + j * 7) % 256);
    s.labels[i] = static_cast<uint8_t>(i % 10);
  }
  write_idx(dir.file("img"), {n, h, w}, s.pixels, gzip);
  write_idx(dir.file("lab"), {n}, s.labels, gzip);
  return s;
}

TEST(ImportIdx, RoundTripKeepsValuesShapesLabelsAndWritesAttributes) {
  TempDir dir;
  const Source src = write_source(dir, 2500, 5, 4, true);
  const std::string out = dir.file("sub/train.h5");  // parent directory is created
  const DatasetSummary sum = import_idx(dir.file("img"), dir.file("lab"), out, std::nullopt);
  EXPECT_EQ(sum.rows, 2500);
  EXPECT_EQ(sum.sample_shape, (std::vector<int64_t>{1, 5, 4}));
  EXPECT_EQ(sum.dtype, "uint8");
  EXPECT_TRUE(sum.has_labels);
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));

  h5::File f = h5::open_file(out);
  const auto images = h5::read_dataset<uint8_t>(f, "/images");
  EXPECT_EQ(images.dims, (std::vector<int64_t>{2500, 1, 5, 4}));
  EXPECT_EQ(images.data, src.pixels);
  const auto labels = h5::read_dataset<uint8_t>(f, "/labels");
  EXPECT_EQ(labels.dims, (std::vector<int64_t>{2500}));
  EXPECT_EQ(labels.data, src.labels);
  EXPECT_EQ(h5::dtype_of(h5::open_dataset(f, "/images")), h5::DType::UInt8);
  EXPECT_EQ(h5::dtype_of(h5::open_dataset(f, "/labels")), h5::DType::UInt8);

  h5::Dataset d = h5::open_dataset(f, "/images");
  const auto chunk = h5::chunk_of(d);
  ASSERT_EQ(chunk.size(), 4u);
  EXPECT_LE(chunk[0], 1024);
  EXPECT_GT(h5::deflate_level_of(d), 0);

  EXPECT_EQ(h5::read_string_attribute(f, "format"), "vae_dist-dataset");
  EXPECT_EQ(h5::read_int_attribute(f, "format_version"), 1);
  EXPECT_EQ(h5::read_string_attribute(f, "source_images"), "img");
  EXPECT_EQ(h5::read_string_attribute(f, "source_labels"), "lab");
  EXPECT_EQ(h5::read_int_attribute(f, "shuffled"), 0);
  EXPECT_FALSE(h5::has_attribute(f, "shuffle_seed"));
}

TEST(ImportIdx, FourDImagesKeepChannelsAndLabelsAreOptional) {
  TempDir dir;
  std::vector<uint8_t> px(3 * 2 * 2 * 2);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 9);
  write_idx(dir.file("img4"), {3, 2, 2, 2}, px, false);
  const DatasetSummary sum = import_idx(dir.file("img4"), "", dir.file("o.h5"), std::nullopt);
  EXPECT_FALSE(sum.has_labels);
  EXPECT_EQ(sum.sample_shape, (std::vector<int64_t>{2, 2, 2}));
  h5::File f = h5::open_file(dir.file("o.h5"));
  EXPECT_FALSE(h5::exists(f, "/labels"));
  EXPECT_FALSE(h5::has_attribute(f, "source_labels"));
  const auto images = h5::read_dataset<uint8_t>(f, "/images");
  EXPECT_EQ(images.dims, (std::vector<int64_t>{3, 2, 2, 2}));
  EXPECT_EQ(images.data, px);
}

TEST(ImportIdx, ShufflePermutesRowsAndLabelsTogetherDeterministically) {
  TempDir dir;
  const uint32_t n = 700, h = 3, w = 3;
  const Source src = write_source(dir, n, h, w, false);
  import_idx(dir.file("img"), dir.file("lab"), dir.file("a.h5"), 42);
  import_idx(dir.file("img"), dir.file("lab"), dir.file("b.h5"), 42);
  import_idx(dir.file("img"), dir.file("lab"), dir.file("c.h5"), 43);
  auto load = [&](const std::string& name) {
    h5::File f = h5::open_file(dir.file(name));
    return std::make_pair(h5::read_dataset<uint8_t>(f, "/images").data,
                          h5::read_dataset<uint8_t>(f, "/labels").data);
  };
  const auto [ia, la] = load("a.h5");
  const auto [ib, lb] = load("b.h5");
  const auto [ic, lc] = load("c.h5");
  EXPECT_EQ(ia, ib);
  EXPECT_EQ(la, lb);
  EXPECT_NE(ia, ic);
  EXPECT_NE(ia, src.pixels);

  const std::vector<int64_t> perm = shuffle_permutation(n, 42);
  std::set<int64_t> seen;
  const size_t row = h * w;
  for (size_t r = 0; r < n; ++r) {
    const int64_t origin = ia[r * row] + 256 * ia[r * row + 1];
    seen.insert(origin);
    EXPECT_EQ(origin, perm[r]);
    // The whole row and its label came from the same source row.
    EXPECT_TRUE(std::equal(ia.begin() + static_cast<int64_t>(r * row),
                           ia.begin() + static_cast<int64_t>((r + 1) * row),
                           src.pixels.begin() + origin * static_cast<int64_t>(row)));
    EXPECT_EQ(la[r], src.labels[static_cast<size_t>(origin)]);
  }
  EXPECT_EQ(seen.size(), n);  // a permutation: every source row exactly once

  h5::File f = h5::open_file(dir.file("a.h5"));
  EXPECT_EQ(h5::read_int_attribute(f, "shuffled"), 1);
  EXPECT_EQ(h5::read_attribute<uint64_t>(f, "shuffle_seed"), 42u);
}

TEST(ImportIdx, DropLabelsLeavesOutTheirRowsInTheOrderOfTheFullImport) {
  TempDir dir;
  const uint32_t n = 300, h = 2, w = 2;
  const Source src = write_source(dir, n, h, w, false);  // label = row % 10
  for (const std::optional<uint64_t> seed :
       {std::optional<uint64_t>{}, std::optional<uint64_t>{5}}) {
    import_idx(dir.file("img"), dir.file("lab"), dir.file("all.h5"), seed);
    const DatasetSummary s =
        import_idx(dir.file("img"), dir.file("lab"), dir.file("some.h5"), seed, 4, {9, 3});
    EXPECT_EQ(s.rows, 240);
    h5::File fa = h5::open_file(dir.file("all.h5")), fs = h5::open_file(dir.file("some.h5"));
    const auto ia = h5::read_dataset<uint8_t>(fa, "/images"),
               is = h5::read_dataset<uint8_t>(fs, "/images");
    const auto la = h5::read_dataset<uint8_t>(fa, "/labels").data;
    const auto ls = h5::read_dataset<uint8_t>(fs, "/labels").data;
    EXPECT_EQ(is.dims, (std::vector<int64_t>{240, 1, 2, 2}));
    // The full import's rows without labels 3 and 9, in its order.
    std::vector<uint8_t> want_img, want_lab;
    for (size_t r = 0; r < n; ++r)
      if (la[r] != 3 && la[r] != 9) {
        want_img.insert(want_img.end(), ia.data.begin() + static_cast<int64_t>(r * 4),
                        ia.data.begin() + static_cast<int64_t>((r + 1) * 4));
        want_lab.push_back(la[r]);
      }
    EXPECT_EQ(is.data, want_img);
    EXPECT_EQ(ls, want_lab);
    EXPECT_EQ(h5::read_string_attribute(fs, "dropped_labels"), "9,3");
  }
  // A label the file does not hold, every label, or no labels at all: clear errors, no file.
  const auto message = [&](const std::string& labels, const std::vector<int64_t>& drop) {
    try {
      import_idx(dir.file("img"), labels, dir.file("bad.h5"), std::nullopt, 4, drop);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(dir.file("lab"), {12}).find("label 12 does not occur in"), std::string::npos);
  EXPECT_NE(message(dir.file("lab"), {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}).find("drops every row"),
            std::string::npos);
  EXPECT_NE(message("", {1}).find("--drop-labels needs the labels"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.h5")));
}

TEST(ImportIdx, ShufflePermutationIsAPermutation) {
  for (int64_t n : {0, 1, 2, 17, 1000}) {
    auto p = shuffle_permutation(n, 7);
    EXPECT_EQ(p, shuffle_permutation(n, 7));
    std::sort(p.begin(), p.end());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(p[static_cast<size_t>(i)], i);
  }
  EXPECT_NE(shuffle_permutation(50, 1), shuffle_permutation(50, 2));
}

TEST(ImportIdx, LabelCountMismatchFailsAndLeavesNoFile) {
  TempDir dir;
  write_source(dir, 10, 2, 2, false);
  write_idx(dir.file("lab9"), {9}, std::vector<uint8_t>(9, 1), false);
  try {
    import_idx(dir.file("img"), dir.file("lab9"), dir.file("o.h5"), std::nullopt);
    FAIL() << "no error for 9 labels and 10 images";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("9 labels"), std::string::npos) << msg;
    EXPECT_NE(msg.find("10 images"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir.file("lab9")), std::string::npos) << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("o.h5")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("o.h5.tmp")));
}

TEST(ImportIdx, WrongShapesAreDataErrors) {
  TempDir dir;
  write_source(dir, 10, 2, 2, false);
  // Labels passed as images: 1-D.
  EXPECT_THROW(import_idx(dir.file("lab"), "", dir.file("o.h5"), std::nullopt), DataError);
  // Images passed as labels: not 1-D.
  EXPECT_THROW(import_idx(dir.file("img"), dir.file("img"), dir.file("o.h5"), std::nullopt),
               DataError);
  EXPECT_THROW(import_idx(dir.file("missing"), "", dir.file("o.h5"), std::nullopt), DataError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("o.h5")));
}

TEST(Synthetic, DeterministicPerSeedWithRequestedShape) {
  TempDir dir;
  write_synthetic(dir.file("a.h5"), 1500, 3, 8, 6, 5, SynthDType::UInt8, 4);
  write_synthetic(dir.file("b.h5"), 1500, 3, 8, 6, 5, SynthDType::UInt8, 4);
  write_synthetic(dir.file("c.h5"), 1500, 3, 8, 6, 6, SynthDType::UInt8, 4);
  h5::File a = h5::open_file(dir.file("a.h5")), b = h5::open_file(dir.file("b.h5")),
           c = h5::open_file(dir.file("c.h5"));
  const auto ia = h5::read_dataset<uint8_t>(a, "/images");
  EXPECT_EQ(ia.dims, (std::vector<int64_t>{1500, 3, 8, 6}));
  EXPECT_EQ(ia.data, h5::read_dataset<uint8_t>(b, "/images").data);
  EXPECT_NE(ia.data, h5::read_dataset<uint8_t>(c, "/images").data);
  const auto la = h5::read_dataset<uint8_t>(a, "/labels");
  EXPECT_EQ(la.dims, (std::vector<int64_t>{1500}));
  EXPECT_EQ(la.data, h5::read_dataset<uint8_t>(b, "/labels").data);
  std::set<uint8_t> classes(la.data.begin(), la.data.end());
  EXPECT_EQ(classes, (std::set<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(h5::read_string_attribute(a, "format"), "vae_dist-dataset");
  EXPECT_EQ(h5::read_int_attribute(a, "format_version"), 1);
}

// The share of the second half of x [n, d] that the nearest class mean of the first half
// classifies right: well above chance only when the classes have structure of their own.
template <class Label>
double nearest_mean_accuracy(const std::vector<float>& x, const std::vector<Label>& labels,
                             int64_t n, int64_t d, int64_t k) {
  std::vector<double> mean(static_cast<size_t>(k * d), 0.0);
  std::vector<int64_t> count(static_cast<size_t>(k), 0);
  for (int64_t i = 0; i < n / 2; ++i) {
    const int64_t c = labels[static_cast<size_t>(i)];
    ++count[static_cast<size_t>(c)];
    for (int64_t j = 0; j < d; ++j)
      mean[static_cast<size_t>(c * d + j)] += x[static_cast<size_t>(i * d + j)];
  }
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < d; ++j)
      mean[static_cast<size_t>(c * d + j)] /=
          static_cast<double>(std::max<int64_t>(1, count[static_cast<size_t>(c)]));
  int64_t right = 0;
  for (int64_t i = n / 2; i < n; ++i) {
    int64_t best = -1;
    double best_dist = 1e300;
    for (int64_t c = 0; c < k; ++c) {
      double dist = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double diff =
            x[static_cast<size_t>(i * d + j)] - mean[static_cast<size_t>(c * d + j)];
        dist += diff * diff;
      }
      if (dist < best_dist) best_dist = dist, best = c;
    }
    right += best == labels[static_cast<size_t>(i)];
  }
  return static_cast<double>(right) / static_cast<double>(n - n / 2);
}

TEST(Synthetic, Float32InUnitIntervalAndClassesAreSeparable) {
  TempDir dir;
  const int64_t n = 2000, k = 5, d = 16 * 16;
  const DatasetSummary sum =
      write_synthetic(dir.file("f.h5"), n, 1, 16, 16, 3, SynthDType::Float32, int(k));
  EXPECT_EQ(sum.dtype, "float32");
  // Reads back through the training reader, which also enforces [0, 1].
  const Shard s = Shard::read(dir.file("f.h5"), "/images", 0, 1, ValueCheck::UnitInterval);
  ASSERT_EQ(s.rows(), n);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::vector<float> x(static_cast<size_t>(n * d));
  s.gather(idx, x.data());
  float lo = 1, hi = 0;
  for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, 0.0f);
  EXPECT_LE(hi, 1.0f);
  EXPECT_GT(hi - lo, 0.5f);
  // Not pure noise: the nearest class mean (from the first half) classifies the second half.
  std::set<int32_t> first_half(s.labels().begin(), s.labels().begin() + n / 2);
  EXPECT_EQ(first_half.size(), static_cast<size_t>(k));
  EXPECT_GT(nearest_mean_accuracy(x, s.labels(), n, d, k), 0.95);
}

// FNV-1a of a buffer's bytes: a golden value for a whole data set in one line.
template <class T>
uint64_t fnv1a(const std::vector<T>& v) {
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(T); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

TEST(Synthetic, ImagesAreBitwiseWhatTheyWereBeforeSignalsAndVolumes) {
  // Golden hashes of the 2-D writer as it was before 1-D and 3-D data (glibc's exp/sin, no
  // FMA contraction): a run that regenerates old synthetic files gets the same bytes.
  TempDir dir;
  write_synthetic(dir.file("u.h5"), 1500, 3, 8, 6, 5, SynthDType::UInt8, 4);
  write_synthetic(dir.file("f.h5"), 300, std::vector<int64_t>{1, 16, 16}, 3, SynthDType::Float32,
                  5);
  h5::File u = h5::open_file(dir.file("u.h5")), f = h5::open_file(dir.file("f.h5"));
  EXPECT_EQ(fnv1a(h5::read_dataset<uint8_t>(u, "/images").data), 0xc4b320a966cb279dull);
  EXPECT_EQ(fnv1a(h5::read_dataset<uint8_t>(u, "/labels").data), 0x51953012c128c7e7ull);
  EXPECT_EQ(fnv1a(h5::read_dataset<float>(f, "/images").data), 0x6b0abed0536a48a0ull);
  EXPECT_EQ(fnv1a(h5::read_dataset<uint8_t>(f, "/labels").data), 0x29e50bbe0ec6c641ull);
  EXPECT_EQ(h5::read_string_attribute(h5::open_dataset(u, "/images"), "layout"), "NCHW");
}

TEST(Synthetic, SignalsHaveTheirShapeAreDeterministicAndInTheUnitInterval) {
  TempDir dir;
  const DatasetSummary sum = write_synthetic(dir.file("a.h5"), 1200, std::vector<int64_t>{2, 96}, 7,
                                             SynthDType::Float32, 4);
  EXPECT_EQ(sum.sample_shape, (std::vector<int64_t>{2, 96}));
  EXPECT_EQ(sum.dtype, "float32");
  write_synthetic(dir.file("b.h5"), 1200, std::vector<int64_t>{2, 96}, 7, SynthDType::Float32, 4);
  write_synthetic(dir.file("c.h5"), 1200, std::vector<int64_t>{2, 96}, 8, SynthDType::Float32, 4);
  h5::File a = h5::open_file(dir.file("a.h5")), b = h5::open_file(dir.file("b.h5")),
           c = h5::open_file(dir.file("c.h5"));
  const auto ia = h5::read_dataset<float>(a, "/images");
  EXPECT_EQ(ia.dims, (std::vector<int64_t>{1200, 2, 96}));
  EXPECT_EQ(ia.data, h5::read_dataset<float>(b, "/images").data);
  EXPECT_NE(ia.data, h5::read_dataset<float>(c, "/images").data);
  const auto la = h5::read_dataset<uint8_t>(a, "/labels");
  EXPECT_EQ(la.dims, (std::vector<int64_t>{1200}));
  EXPECT_EQ(la.data, h5::read_dataset<uint8_t>(b, "/labels").data);
  EXPECT_EQ(std::set<uint8_t>(la.data.begin(), la.data.end()), (std::set<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(h5::read_string_attribute(h5::open_dataset(a, "/images"), "layout"), "NCL");
  const auto [lo, hi] = std::minmax_element(ia.data.begin(), ia.data.end());
  EXPECT_GE(*lo, 0.0f);
  EXPECT_LE(*hi, 1.0f);
  EXPECT_GT(*hi - *lo, 0.6f);
}

TEST(Synthetic, SignalsAreSmoothPerClassCurvesWithDifferentChannels) {
  TempDir dir;
  const int64_t n = 2000, k = 5, C = 2, L = 128, d = C * L;
  write_synthetic(dir.file("s.h5"), n, std::vector<int64_t>{C, L}, 11, SynthDType::Float32, int(k));
  h5::File f = h5::open_file(dir.file("s.h5"));
  const std::vector<float> x = h5::read_dataset<float>(f, "/images").data;
  const std::vector<uint8_t> labels = h5::read_dataset<uint8_t>(f, "/labels").data;
  EXPECT_GT(nearest_mean_accuracy(x, labels, n, d, k), 0.95);
  // Smooth: neighbouring values differ far less than values half a signal apart.
  double step = 0, far = 0, channels = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j + 1 < L; ++j) {
      const float* s = x.data() + i * d;
      step += std::abs(s[j + 1] - s[j]);
      far += std::abs(s[(j + L / 2) % L] - s[j]);
      channels += std::abs(s[L + j] - s[j]);
    }
  EXPECT_LT(step, far / 8) << "signals look like noise";
  EXPECT_GT(channels, step) << "the two channels are (nearly) the same";
  // uint8 holds the same signals, rounded.
  write_synthetic(dir.file("u.h5"), n, std::vector<int64_t>{C, L}, 11, SynthDType::UInt8, int(k));
  h5::File u = h5::open_file(dir.file("u.h5"));
  const std::vector<uint8_t> xu = h5::read_dataset<uint8_t>(u, "/images").data;
  ASSERT_EQ(xu.size(), x.size());
  for (size_t i = 0; i < x.size(); i += 97) EXPECT_NEAR(xu[i] / 255.0f, x[i], 0.5f / 255 + 1e-6f);
}

TEST(Synthetic, VolumesHaveTheirShapeAreDeterministicAndSeparable) {
  TempDir dir;
  const int64_t n = 600, k = 4, C = 1, D = 8, H = 10, W = 12, d = C * D * H * W;
  const std::vector<int64_t> sample{C, D, H, W};
  const DatasetSummary sum =
      write_synthetic(dir.file("a.h5"), n, sample, 2, SynthDType::Float32, int(k));
  EXPECT_EQ(sum.sample_shape, sample);
  write_synthetic(dir.file("b.h5"), n, sample, 2, SynthDType::Float32, int(k));
  write_synthetic(dir.file("c.h5"), n, sample, 3, SynthDType::Float32, int(k));
  h5::File a = h5::open_file(dir.file("a.h5")), b = h5::open_file(dir.file("b.h5")),
           c = h5::open_file(dir.file("c.h5"));
  const auto ia = h5::read_dataset<float>(a, "/images");
  EXPECT_EQ(ia.dims, (std::vector<int64_t>{n, C, D, H, W}));
  EXPECT_EQ(ia.data, h5::read_dataset<float>(b, "/images").data);
  EXPECT_NE(ia.data, h5::read_dataset<float>(c, "/images").data);
  EXPECT_EQ(h5::read_string_attribute(h5::open_dataset(a, "/images"), "layout"), "NCDHW");
  const auto [lo, hi] = std::minmax_element(ia.data.begin(), ia.data.end());
  EXPECT_GE(*lo, 0.0f);
  EXPECT_LE(*hi, 1.0f);
  EXPECT_GT(*hi - *lo, 0.5f);
  const std::vector<uint8_t> labels = h5::read_dataset<uint8_t>(a, "/labels").data;
  EXPECT_EQ(std::set<uint8_t>(labels.begin(), labels.end()), (std::set<uint8_t>{0, 1, 2, 3}));
  EXPECT_GT(nearest_mean_accuracy(ia.data, labels, n, d, k), 0.95);
  // The blob is a bright region: each volume's brightest voxel is well above its mean.
  for (int64_t i = 0; i < n; i += 50) {
    const float* v = ia.data.data() + i * d;
    double sum_v = 0;
    float top = 0;
    for (int64_t j = 0; j < d; ++j) sum_v += v[j], top = std::max(top, v[j]);
    EXPECT_GT(top - sum_v / d, 0.3) << i;
  }
}

TEST(Synthetic, VolumesInChunksEqualOneChunk) {
  // 40 float volumes of 32 KiB: chunks of 32 rows, so the file is written in two blocks; the
  // first 30 rows equal a 30-row file written in one (a row depends on the seed alone).
  TempDir dir;
  const std::vector<int64_t> sample{2, 16, 16, 16};
  write_synthetic(dir.file("v.h5"), 40, sample, 9, SynthDType::Float32, 3);
  write_synthetic(dir.file("w.h5"), 30, sample, 9, SynthDType::Float32, 3);
  h5::File v = h5::open_file(dir.file("v.h5")), w = h5::open_file(dir.file("w.h5"));
  EXPECT_EQ(h5::chunk_of(h5::open_dataset(v, "/images"))[0], 32);
  const auto iv = h5::read_dataset<float>(v, "/images"), iw = h5::read_dataset<float>(w, "/images");
  EXPECT_TRUE(std::equal(iw.data.begin(), iw.data.end(), iv.data.begin()));
  // Rows past 30 (the second block) hold volumes too, not the buffer's zeros.
  EXPECT_GT(*std::max_element(iv.data.begin() + 39 * 8192, iv.data.end()), 0.3f);
}

TEST(Synthetic, RejectsBadSampleShapes) {
  TempDir dir;
  const auto write = [&](std::vector<int64_t> sample, int64_t n = 5) {
    write_synthetic(dir.file("x.h5"), n, sample, 0, SynthDType::UInt8, 2);
  };
  EXPECT_THROW(write({16}), DataError);
  EXPECT_THROW(write({1, 2, 3, 4, 5}), DataError);
  EXPECT_THROW(write({1, 0}), DataError);
  EXPECT_THROW(write({1, 4, 0, 4}), DataError);
  EXPECT_THROW(write({1, 16}, 0), DataError);
  EXPECT_THROW(
      write_synthetic(dir.file("x.h5"), 5, std::vector<int64_t>{1, 16}, 0, SynthDType::UInt8, 0),
      DataError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.h5")));
}

TEST(Synthetic, RejectsBadArguments) {
  TempDir dir;
  EXPECT_THROW(write_synthetic(dir.file("x.h5"), 0, 1, 2, 2, 0, SynthDType::UInt8, 2), DataError);
  EXPECT_THROW(write_synthetic(dir.file("x.h5"), 5, 1, 2, 2, 0, SynthDType::UInt8, 0), DataError);
  EXPECT_THROW(write_synthetic(dir.file("x.h5"), 5, 1, 2, 2, 0, SynthDType::UInt8, 257), DataError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.h5")));
}

TEST(Describe, ReportsShapesRangesAttributesAndHistogram) {
  TempDir dir;
  write_source(dir, 30, 2, 3, false);
  import_idx(dir.file("img"), dir.file("lab"), dir.file("o.h5"), 1);
  const std::string text = describe(dir.file("o.h5"));
  for (const char* want :
       {"/images: uint8 [30, 1, 2, 3]", "/labels: uint8 [30]", "min 0, max 9",
        "@format = \"vae_dist-dataset\"", "@format_version = 1", "@shuffle_seed = 1",
        "label histogram (10 classes): 0:3 1:3 2:3 3:3 4:3 5:3 6:3 7:3 8:3 9:3", "gzip"})
    EXPECT_NE(text.find(want), std::string::npos) << "'" << want << "' not in:\n" << text;
  EXPECT_THROW(describe(dir.file("missing.h5")), DataError);
  EXPECT_THROW(describe(dir.file("img")), DataError);
}

TEST(ChunkRows, AboutOneMebibyteCappedAt1024AndN) {
  EXPECT_EQ(chunk_rows_for(784, 60000), 1024);
  EXPECT_EQ(chunk_rows_for(784 * 4, 60000), (1 << 20) / (784 * 4));
  EXPECT_EQ(chunk_rows_for(784, 10), 10);
  EXPECT_EQ(chunk_rows_for(int64_t{1} << 30, 10), 1);
}

}  // namespace
}  // namespace vd
