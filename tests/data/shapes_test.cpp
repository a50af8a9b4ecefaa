// Tests of the dSprites-like shapes data: determinism, the --all grid and its order, geometry
// against hand-computed values, the file layout read back through HDF5, and the CLI.
#include "data/shapes.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <set>

#include "app/child_process.hpp"
#include "core/error.hpp"
#include "core/h5.hpp"
#include "data/shard.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

using testing::TempDir;

// One image [C, S, S] as floats.
std::vector<float> render(const ShapesSpec& spec, const ShapeParams& p) {
  std::vector<float> img(static_cast<size_t>(spec.channels) * spec.size * spec.size);
  render_shape(spec, p, img.data());
  return img;
}

double mass(const std::vector<float>& img) {
  double m = 0;
  for (float v : img) m += v;
  return m;
}

// Centre of mass (x, y) of a gray image, in pixel coordinates (pixel centres at i + 0.5).
std::pair<double, double> centre_of_mass(const std::vector<float>& img, int S) {
  double m = 0, mx = 0, my = 0;
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const double v = img[static_cast<size_t>(y * S + x)];
      m += v, mx += v * (x + 0.5), my += v * (y + 0.5);
    }
  return {mx / m, my / m};
}

double abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::abs(a[i] - b[i]);
  return d;
}

ShapeParams at_centre(const ShapesSpec& spec, ShapeKind shape, double scale, double angle = 0) {
  ShapeParams p;
  p.shape = shape, p.scale = scale, p.angle = angle;
  p.cx = p.cy = 0.5 * spec.size;  // on a pixel corner: the sample grid is symmetric about it
  return p;
}

ShapesSpec small_grid() {
  ShapesSpec spec;
  spec.size = 16, spec.shapes = 3, spec.scales = 2, spec.orientations = 3;
  spec.positions_x = 2, spec.positions_y = 2;
  return spec;
}

template <class T>
h5::Array<T> read(const std::string& file, const std::string& name) {
  h5::File f = h5::open_file(file);
  return h5::read_dataset<T>(f, name);
}

// The int64 array attribute `name` of dataset `dset`.
std::vector<int64_t> read_int64_array_attribute(hid_t dset, const std::string& name) {
  h5::Attribute attr(VD_H5(H5Aopen(dset, name.c_str(), H5P_DEFAULT), "open attribute " + name));
  h5::Dataspace space(VD_H5(H5Aget_space(attr), "attribute space " + name));
  std::vector<int64_t> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  VD_H5(H5Aread(attr, H5T_NATIVE_INT64, v.data()), "read attribute " + name);
  return v;
}

// ---- determinism ----

TEST(Shapes, SameSeedGivesIdenticalImagesAndAnotherSeedDifferentOnes) {
  TempDir dir;
  ShapesSpec spec;
  spec.size = 32;
  const auto write = [&](const std::string& name, uint64_t seed) {
    ShapesDraw draw;
    draw.count = 64, draw.seed = seed;
    write_shapes(dir.file(name), spec, draw);
    return std::pair{read<uint8_t>(dir.file(name), "/images").data,
                     read<int32_t>(dir.file(name), "/factors").data};
  };
  const auto a = write("a.h5", 7), b = write("b.h5", 7), c = write("c.h5", 8);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
  EXPECT_NE(a.first, c.first);
  EXPECT_NE(a.second, c.second);
  EXPECT_EQ(a.second, shapes_random_factors(spec, 64, 7));
}

TEST(Shapes, RandomDrawsCoverEveryValueOfEveryFactor) {
  ShapesSpec spec;
  spec.channels = 3;
  const int64_t n = 20000;
  const std::vector<int32_t> f = shapes_random_factors(spec, n, 3);
  const std::vector<int64_t> sizes = shapes_factor_sizes(spec);
  ASSERT_EQ(sizes, (std::vector<int64_t>{3, 6, 40, 32, 32, 6}));
  for (size_t j = 0; j < sizes.size(); ++j) {
    std::vector<int64_t> count(static_cast<size_t>(sizes[j]), 0);
    for (int64_t r = 0; r < n; ++r) ++count[static_cast<size_t>(f[r * sizes.size() + j])];
    const double expected = static_cast<double>(n) / sizes[j];
    for (int64_t c : count)  // about 5 standard deviations for the 40- and 32-value factors
      EXPECT_NEAR(c, expected, 5 * std::sqrt(expected)) << "factor " << j;
  }
}

// ---- the --all grid ----

TEST(Shapes, AllWritesEveryCombinationOnceInRowMajorOrder) {
  TempDir dir;
  for (const int channels : {1, 3}) {
    ShapesSpec spec = small_grid();
    spec.channels = channels, spec.colours = 2;
    ShapesDraw draw;
    draw.all = true;
    const std::string file = dir.file("grid" + std::to_string(channels) + ".h5");
    const DatasetSummary sum = write_shapes(file, spec, draw);
    const std::vector<int64_t> sizes = shapes_factor_sizes(spec);
    const int64_t expected_rows = channels == 3 ? 3 * 2 * 3 * 2 * 2 * 2 : 3 * 2 * 3 * 2 * 2;
    EXPECT_EQ(sum.rows, expected_rows);
    const auto factors = read<int32_t>(file, "/factors");
    const auto labels = read<int32_t>(file, "/labels");
    const auto images = read<uint8_t>(file, "/images");
    const auto F = static_cast<int64_t>(sizes.size());
    ASSERT_EQ(factors.dims, (std::vector<int64_t>{expected_rows, F}));
    ASSERT_EQ(images.dims, (std::vector<int64_t>{expected_rows, channels, 16, 16}));
    // Row-major: nested loops with the last factor innermost give the rows in order.
    std::vector<std::vector<int32_t>> expected;
    for (int32_t s = 0; s < 3; ++s)
      for (int32_t sc = 0; sc < 2; ++sc)
        for (int32_t o = 0; o < 3; ++o)
          for (int32_t x = 0; x < 2; ++x)
            for (int32_t y = 0; y < 2; ++y)
              for (int32_t c = 0; c < (channels == 3 ? 2 : 1); ++c) {
                expected.push_back({s, sc, o, x, y});
                if (channels == 3) expected.back().push_back(c);
              }
    std::set<std::vector<int32_t>> seen;
    const int64_t row = int64_t{channels} * 16 * 16;
    std::vector<float> img(static_cast<size_t>(row));
    for (int64_t r = 0; r < expected_rows; ++r) {
      const std::vector<int32_t> got(factors.data.begin() + r * F,
                                     factors.data.begin() + (r + 1) * F);
      EXPECT_EQ(got, expected[static_cast<size_t>(r)]) << "row " << r;
      seen.insert(got);
      EXPECT_EQ(labels.data[static_cast<size_t>(r)], got[0]);
      render_factors(spec, got, img.data());
      for (int64_t i = 0; i < row; ++i)
        ASSERT_EQ(images.data[static_cast<size_t>(r * row + i)],
                  static_cast<uint8_t>(img[static_cast<size_t>(i)] * 255.0f + 0.5f))
            << "row " << r << " pixel " << i;
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), expected_rows);
  }
}

TEST(Shapes, ShuffledGridHoldsTheSameRowsInAnotherOrder) {
  TempDir dir;
  const ShapesSpec spec = small_grid();
  ShapesDraw draw;
  draw.all = true;
  write_shapes(dir.file("a.h5"), spec, draw);
  draw.shuffle_seed = 5;
  write_shapes(dir.file("b.h5"), spec, draw);
  const auto a = read<int32_t>(dir.file("a.h5"), "/factors").data;
  const auto b = read<int32_t>(dir.file("b.h5"), "/factors").data;
  EXPECT_NE(a, b);
  const size_t F = 5;
  std::multiset<std::vector<int32_t>> ra, rb;
  for (size_t r = 0; r < a.size() / F; ++r) {
    ra.insert({a.begin() + r * F, a.begin() + (r + 1) * F});
    rb.insert({b.begin() + r * F, b.begin() + (r + 1) * F});
  }
  EXPECT_EQ(ra, rb);
}

TEST(Shapes, AllRefusesAGridAboveTheLimitAndBadDrawsNameTheOption) {
  TempDir dir;
  ShapesSpec spec;
  spec.channels = 3;  // 3 * 6 * 40 * 32 * 32 * 6 = 4423680 rows
  ASSERT_GT(shapes_grid_rows(spec), kMaxShapesGridRows);
  ShapesDraw draw;
  draw.all = true;
  try {
    write_shapes(dir.file("x.h5"), spec, draw);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("4423680"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--count"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.h5")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.h5.tmp")));
  spec.channels = 1;  // the dSprites grid, 737280 rows, is allowed
  EXPECT_LE(shapes_grid_rows(spec), kMaxShapesGridRows);
  draw.count = 5;  // both
  EXPECT_THROW(write_shapes(dir.file("x.h5"), spec, draw), ConfigError);
  spec.scales = 0;
  draw.all = false;
  try {
    write_shapes(dir.file("x.h5"), spec, draw);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--scales"), std::string::npos) << e.what();
  }
}

// ---- geometry ----

TEST(Shapes, SquareAtTheCentreCoversItsArea) {
  const ShapesSpec spec;  // 64 x 64, 4 x 4 samples per pixel
  const double R = shapes_bounding_radius(spec), k = spec.supersample;
  EXPECT_DOUBLE_EQ(R, 12.8);
  for (const double scale : {0.5, 0.8, 1.0}) {
    const double side = std::numbers::sqrt2 * scale * R;  // corners on the bounding circle
    // Along each axis the square holds side * k sample columns, give or take one.
    const double lo = (side - 1 / k) * (side - 1 / k), hi = (side + 1 / k) * (side + 1 / k);
    const double m = mass(render(spec, at_centre(spec, ShapeKind::Square, scale)));
    EXPECT_GE(m, lo) << "scale " << scale;
    EXPECT_LE(m, hi) << "scale " << scale;
    EXPECT_NEAR(m, side * side, 0.02 * side * side) << "scale " << scale;
  }
}

TEST(Shapes, EllipseCoversPiAB) {
  ShapesSpec spec;
  spec.supersample = 8;
  const double R = shapes_bounding_radius(spec);
  for (const double scale : {0.5, 1.0})
    for (const double angle : {0.0, 0.3, 1.2}) {
      const double a = scale * R, b = scale * R / 2;
      const double m = mass(render(spec, at_centre(spec, ShapeKind::Ellipse, scale, angle)));
      // Each sample row's chord is exact to one sample (1/k pixel): at most 2a k rows of 1/k.
      EXPECT_NEAR(m, std::numbers::pi * a * b, 2 * a / spec.supersample)
          << "scale " << scale << " angle " << angle;
    }
}

TEST(Shapes, EllipseTurnsCounterClockwiseOnScreen) {
  const ShapesSpec spec;
  const std::vector<float> img =
      render(spec, at_centre(spec, ShapeKind::Ellipse, 1.0, std::numbers::pi / 4));
  const int S = spec.size, c = S / 2, d = 7;
  // At +45 degrees the long axis runs to the upper right (smaller row index) of the screen.
  EXPECT_EQ(img[static_cast<size_t>((c - d) * S + c + d)], 1.0f);
  EXPECT_EQ(img[static_cast<size_t>((c + d) * S + c - d - 1)], 1.0f);
  EXPECT_EQ(img[static_cast<size_t>((c + d) * S + c + d)], 0.0f);
  EXPECT_EQ(img[static_cast<size_t>((c - d - 1) * S + c - d - 1)], 0.0f);
}

TEST(Shapes, MovingXOrYOneStepMovesTheCentreOfMassByTheStep) {
  const ShapesSpec spec;
  const double R = shapes_bounding_radius(spec);
  const double step = (spec.size - 2 * (R + 1)) / (spec.positions_x - 1);  // 1.1742 px
  EXPECT_NEAR(shapes_position_value(spec, 32, 1) - shapes_position_value(spec, 32, 0), step, 1e-12);
  const auto com = [&](int32_t shape, int32_t x, int32_t y) {
    std::vector<float> img(static_cast<size_t>(spec.size * spec.size));
    const std::vector<int32_t> f{shape, 2, 0, x, y};
    render_factors(spec, f, img.data());
    return centre_of_mass(img, spec.size);
  };
  for (const int32_t x : {0, 10, 30}) {
    const auto [ax, ay] = com(0, x, 12);
    const auto [bx, by] = com(0, x + 1, 12);
    // A square's sample columns start and end within 1/(2k) of its edges.
    EXPECT_NEAR(bx - ax, step, 1.0 / spec.supersample) << "x " << x;
    EXPECT_NEAR(by, ay, 1e-9);
    EXPECT_NEAR(ax, shapes_position_value(spec, 32, x), 0.5 / spec.supersample);
  }
  const auto [ax, ay] = com(2, 7, 20);  // a heart, down one row of positions
  const auto [bx, by] = com(2, 7, 21);
  EXPECT_NEAR(by - ay, step, 1.0 / spec.supersample);  // rows grow downwards
  EXPECT_NEAR(bx, ax, 1.0 / spec.supersample);
}

TEST(Shapes, SquareTurnedAQuarterIsUnchangedButNotAnEighth) {
  const ShapesSpec spec;  // 40 orientations: index 10 is pi/2, index 5 is pi/4
  const double quarter = shapes_orientation_value(spec, 10);
  EXPECT_DOUBLE_EQ(quarter, std::numbers::pi / 2);
  const std::vector<float> base = render(spec, at_centre(spec, ShapeKind::Square, 0.9));
  const std::vector<float> turned = render(spec, at_centre(spec, ShapeKind::Square, 0.9, quarter));
  const std::vector<float> eighth =
      render(spec, at_centre(spec, ShapeKind::Square, 0.9, shapes_orientation_value(spec, 5)));
  // Samples lying exactly on an edge may fall either side after the rounding in cos(pi/2).
  EXPECT_LE(abs_difference(base, turned), 0.5);
  // The square turned by 45 degrees differs by its four corner triangles: about 0.34 of its area.
  EXPECT_GT(abs_difference(base, eighth), 0.25 * mass(base));
}

TEST(Shapes, HeartIsUprightAndMirrorSymmetricLeftRightOnly) {
  const ShapesSpec spec;
  const int S = spec.size;
  const std::vector<float> img = render(spec, at_centre(spec, ShapeKind::Heart, 1.0));
  std::vector<float> mirror(img.size()), flipped(img.size());
  double top = 0, bottom = 0;
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const float v = img[static_cast<size_t>(y * S + x)];
      mirror[static_cast<size_t>(y * S + (S - 1 - x))] = v;
      flipped[static_cast<size_t>((S - 1 - y) * S + x)] = v;
      (y < S / 2 ? top : bottom) += v;
    }
  EXPECT_LE(abs_difference(img, mirror), 1e-6);
  EXPECT_GT(abs_difference(img, flipped), 0.1 * mass(img));
  EXPECT_GT(top, bottom) << "the lobes (the wider part) belong at the top of the screen";
}

// ---- inside the image ----

TEST(Shapes, LargestShapesAtExtremePositionsStayInsideTheImage) {
  for (const int size : {64, 28}) {
    ShapesSpec spec;
    spec.size = size;
    const int S = size;
    const double R = shapes_bounding_radius(spec);
    for (int32_t shape = 0; shape < 3; ++shape)
      for (int32_t o = 0; o < spec.orientations; o += 3) {
        std::vector<float> img(static_cast<size_t>(S * S));
        render_factors(spec, std::vector<int32_t>{shape, 5, o, 15, 16}, img.data());
        const double inner = mass(img);
        for (const int32_t x : {0, 31})
          for (const int32_t y : {0, 31}) {
            const std::vector<int32_t> f{shape, 5, o, x, y};
            render_factors(spec, f, img.data());
            const ShapeParams p = shape_params(spec, f);
            double border = 0;
            for (int i = 0; i < S; ++i)
              border += img[static_cast<size_t>(i)] + img[static_cast<size_t>((S - 1) * S + i)] +
                        img[static_cast<size_t>(i * S)] + img[static_cast<size_t>(i * S + S - 1)];
            EXPECT_EQ(border, 0.0) << "shape " << shape << " orientation " << o;
            // Nothing clipped: the mass of an interior copy, up to sampling. Each sample row
            // that crosses the outline is off by at most one sample (1/k^2 pixels), and the
            // outline (the heart's is 5.44 R) is at most the circle's 2 pi R long.
            EXPECT_NEAR(mass(img), inner, 2 * std::numbers::pi * R / spec.supersample)
                << "shape " << shape << " orientation " << o;
            // Every covered pixel meets the bounding circle (the heart's radius constant).
            for (int py = 0; py < S; ++py)
              for (int px = 0; px < S; ++px)
                if (img[static_cast<size_t>(py * S + px)] > 0) {
                  ASSERT_LE(std::hypot(px + 0.5 - p.cx, py + 0.5 - p.cy),
                            R + std::numbers::sqrt2 / 2)
                      << "shape " << shape << " orientation " << o;
                }
          }
      }
  }
}

// ---- the file ----

TEST(Shapes, FileRoundTripsImagesLabelsFactorsAndAttributes) {
  TempDir dir;
  ShapesSpec spec;
  spec.size = 20, spec.channels = 3, spec.colours = 4;
  ShapesDraw draw;
  draw.count = 40, draw.seed = 11;
  const std::string file = dir.file("sub/shapes.h5");  // parent directory is created
  const DatasetSummary sum = write_shapes(file, spec, draw);
  EXPECT_EQ(sum.rows, 40);
  EXPECT_EQ(sum.sample_shape, (std::vector<int64_t>{3, 20, 20}));
  EXPECT_EQ(sum.dtype, "uint8");
  EXPECT_FALSE(std::filesystem::exists(file + ".tmp"));

  h5::File f = h5::open_file(file);
  EXPECT_EQ(h5::read_string_attribute(f, "format"), kDatasetFormat);
  EXPECT_EQ(h5::read_string_attribute(f, "created_by"), "vae_data shapes");
  EXPECT_EQ(h5::read_string_attribute(f, "shapes_mode"), "random");
  EXPECT_EQ(h5::read_attribute<uint64_t>(f, "shapes_seed"), 11u);
  const auto images = h5::read_dataset<uint8_t>(f, "/images");
  const auto labels = h5::read_dataset<int32_t>(f, "/labels");
  const auto factors = h5::read_dataset<int32_t>(f, "/factors");
  ASSERT_EQ(images.dims, (std::vector<int64_t>{40, 3, 20, 20}));
  ASSERT_EQ(labels.dims, (std::vector<int64_t>{40}));
  ASSERT_EQ(factors.dims, (std::vector<int64_t>{40, 6}));
  {
    h5::Dataset d = h5::open_dataset(f, "/labels");
    EXPECT_EQ(h5::dtype_of(d), h5::DType::Int32);
  }
  h5::Dataset dfac = h5::open_dataset(f, "/factors");
  EXPECT_EQ(h5::dtype_of(dfac), h5::DType::Int32);
  EXPECT_EQ(h5::read_string_attribute(dfac, "names"), "shape,scale,orientation,x,y,colour");
  EXPECT_EQ(read_int64_array_attribute(dfac, "sizes"), (std::vector<int64_t>{3, 6, 40, 32, 32, 4}));
  EXPECT_EQ(h5::read_string_attribute(dfac, "shape_names"), "square,ellipse,heart");
  EXPECT_EQ(factors.data, shapes_random_factors(spec, 40, 11));

  const auto scales = h5::read_dataset<double>(f, "/factor_values_scale");
  ASSERT_EQ(scales.data.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(scales.data[i], 0.5 + 0.1 * i, 1e-12);
  const auto xs = h5::read_dataset<double>(f, "/factor_values_x");
  ASSERT_EQ(xs.data.size(), 32u);
  EXPECT_DOUBLE_EQ(xs.data.front(), 5.0);  // R + 1 = 0.2 * 20 + 1
  EXPECT_DOUBLE_EQ(xs.data.back(), 15.0);
  EXPECT_EQ(h5::read_dataset<double>(f, "/factor_values_orientation").data.size(), 40u);
  EXPECT_EQ(h5::read_dataset<float>(f, "/factor_values_colour").dims, (std::vector<int64_t>{4, 3}));

  const int64_t row = 3 * 20 * 20;
  std::vector<float> img(static_cast<size_t>(row));
  for (int64_t r = 0; r < 40; ++r) {
    const std::span<const int32_t> fr(factors.data.data() + r * 6, 6);
    EXPECT_EQ(labels.data[static_cast<size_t>(r)], fr[0]);
    render_factors(spec, fr, img.data());
    for (int64_t i = 0; i < row; ++i)
      ASSERT_EQ(images.data[static_cast<size_t>(r * row + i)],
                static_cast<uint8_t>(img[static_cast<size_t>(i)] * 255.0f + 0.5f));
  }

  // The trainer's reader takes the file as Bernoulli data (values in [0, 1]) with labels.
  const Shard s = Shard::read(file, "/images", 0, 1, ValueCheck::UnitInterval);
  EXPECT_EQ(s.rows(), 40);
  EXPECT_EQ(s.labels(), labels.data);
}

// ---- the command line ----

TEST(Shapes, CommandLineWritesTheGridAndRejectsBadOptions) {
  using testing::binary;
  using testing::run_command;
  using testing::shell_quote;
  if (!std::filesystem::exists(binary("vae_data")))
    GTEST_SKIP() << "build the vae_data target to run the command-line test";
  TempDir dir;
  const std::string out = dir.file("g.h5");
  const std::string base = binary("vae_data") + " shapes --out " + shell_quote(out);
  auto r = run_command(base +
                           " --all --size 16 --scales 2 --orientations 2 --positions-x 3 "
                           "--positions-y 2",
                       60);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 72 rows x 1 x 16 x 16 uint8"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("shape 3, scale 2, orientation 2, x 3, y 2"), std::string::npos)
      << r.output;
  EXPECT_EQ(read<int32_t>(out, "/factors").dims, (std::vector<int64_t>{72, 5}));

  r = run_command(binary("vae_data") + " shapes --help", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--orientations"), std::string::npos) << r.output;

  const std::vector<std::pair<std::string, std::string>> bad{
      {" --count 5 --channels 2", "--channels"},
      {" --count 5 --all", "--count"},
      {"", "--count"},
      {" --all --channels 3", "--count"},
      {" --count 5 --colours 3", "--colours"},
      {" --all --seed 3", "--seed"},
      {" --count 5 --shuffle-seed 3", "--shuffle-seed"},
      {" --count 0", "--count"},
      {" --count 5 --size 4", "--size"},
  };
  for (const auto& [args, option] : bad) {
    r = run_command(base + args, 60);
    EXPECT_EQ(r.exit_code, 2) << args << ":\n" << r.output;
    EXPECT_NE(r.output.find("error: "), std::string::npos) << args << ":\n" << r.output;
    EXPECT_NE(r.output.find(option), std::string::npos) << args << ":\n" << r.output;
  }
  r = run_command(binary("vae_data") + " shapes --count 5", 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--out"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vd
