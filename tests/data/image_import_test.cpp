// Tests of the image importer: PNGs (libpng) and JPEGs (libjpeg) written here with known pixels,
// decoded exactly (palette, 16-bit, alpha, 1-bit gray), resized and cropped as hand-computed,
// RGB -> L against ITU-R 601-2's formula, class folders as labels, bad files listed or refused.
#include <gtest/gtest.h>
#include <png.h>

// jpeglib.h needs size_t and FILE declared before it.
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>

#include <cmath>
#include <csetjmp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/h5.hpp"
#include "core/progress.hpp"
#include "data/dataset_file.hpp"
#include "data/image_decode.hpp"
#include "data/image_folder.hpp"
#include "data/image_resize.hpp"
#include "support/temp_dir.hpp"

namespace vd {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A PNG of any colour type and bit depth; `samples` are the rows' bytes as PNG stores them
// (16-bit samples big-endian). Fails the test on a libpng error.
void write_png_raw(const std::string& path, int w, int h, int color_type, int bit_depth,
                   const std::vector<uint8_t>& samples, const std::vector<png_color>& palette = {},
                   bool interlace = false) {
  std::FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr) << path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(fp);
    FAIL() << "libpng failed writing " << path;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), bit_depth,
               color_type, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  png_write_info(png, info);
  // Adam7: every row once per pass; libpng picks each pass's pixels.
  const int passes = interlace ? png_set_interlace_handling(png) : 1;
  const size_t stride = samples.size() / static_cast<size_t>(h);
  for (int pass = 0; pass < passes; ++pass)
    for (int y = 0; y < h; ++y)
      png_write_row(png, samples.data() + static_cast<size_t>(y) * stride);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(fp);
}

void write_gray_png(const std::string& path, int w, int h, const std::vector<uint8_t>& px) {
  write_png_raw(path, w, h, PNG_COLOR_TYPE_GRAY, 8, px);
}
void write_rgb_png(const std::string& path, int w, int h, const std::vector<uint8_t>& px) {
  write_png_raw(path, w, h, PNG_COLOR_TYPE_RGB, 8, px);
}

// A baseline JPEG of 1 (gray), 3 (RGB) or 4 (CMYK) components at `quality`.
void write_jpeg(const std::string& path, int w, int h, int comps, const std::vector<uint8_t>& px,
                int quality = 100) {
  std::FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr) << path;
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, fp);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = comps;
  c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(px.data()) +
                   static_cast<size_t>(c.next_scanline) * static_cast<size_t>(w * comps);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(fp);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void cut_file(const std::string& path, double keep) {
  std::vector<uint8_t> b = file_bytes(path);
  b.resize(static_cast<size_t>(static_cast<double>(b.size()) * keep));
  write_bytes(path, b);
}

ImageImportOptions opts(int h, int w, int channels) {
  ImageImportOptions o;
  o.height = h;
  o.width = w;
  o.channels = channels;
  o.progress = false;
  return o;
}

h5::Array<uint8_t> images_of(const std::string& path) {
  h5::File f = h5::open_file(path);
  return h5::read_dataset<uint8_t>(f, "/images");
}

Image8 decode_file(const std::string& path) {
  return decode_image(file_bytes(path));
}

// A pattern that differs in every pixel and channel.
std::vector<uint8_t> pattern(int w, int h, int c, int salt) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * c));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37 + salt * 11) % 256);
  return px;
}

TEST(ImageImport, PngAtTheTargetSizeKeepsEveryPixelInChannelFirstOrder) {
  TempDir dir;
  fs::create_directories(dir.path() / "flat");
  const std::vector<uint8_t> gray = pattern(4, 3, 1, 1);
  const std::vector<uint8_t> rgb = pattern(4, 3, 3, 2);
  write_gray_png(dir.file("flat/a.png"), 4, 3, gray);
  write_rgb_png(dir.file("flat/b.png"), 4, 3, rgb);

  ImageImportReport r = import_images(dir.file("flat"), dir.file("g.h5"), opts(3, 4, 1));
  EXPECT_EQ(r.summary.rows, 2);
  EXPECT_FALSE(r.summary.has_labels);
  EXPECT_TRUE(r.classes.empty());
  h5::Array<uint8_t> g = images_of(dir.file("g.h5"));
  EXPECT_EQ(g.dims, (std::vector<int64_t>{2, 1, 3, 4}));
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(g.data[i], gray[i]) << i;
  {
    h5::File f = h5::open_file(dir.file("g.h5"));
    EXPECT_FALSE(h5::exists(f, "/labels"));
    EXPECT_EQ(h5::read_string_attribute(f, "created_by"), "vae_data import-images");
    EXPECT_EQ(h5::read_string_attribute(f, "source_images"), "flat");
  }

  r = import_images(dir.file("flat"), dir.file("c.h5"), opts(3, 4, 3));
  h5::Array<uint8_t> c = images_of(dir.file("c.h5"));
  EXPECT_EQ(c.dims, (std::vector<int64_t>{2, 3, 3, 4}));
  // Row 0, the gray PNG: the same value in R, G and B.
  for (int ch = 0; ch < 3; ++ch)
    for (size_t i = 0; i < 12; ++i) EXPECT_EQ(c.data[static_cast<size_t>(ch) * 12 + i], gray[i]);
  // Row 1, the RGB PNG: [C, H, W] from interleaved HWC.
  for (int ch = 0; ch < 3; ++ch)
    for (size_t i = 0; i < 12; ++i)
      EXPECT_EQ(c.data[36 + static_cast<size_t>(ch) * 12 + i],
                rgb[i * 3 + static_cast<size_t>(ch)]);
}

TEST(ImageImport, RgbToGrayIsTheItu601LumaFormulaRoundedForEveryColour) {
  // All 2^24 colours: within 0.5 (and PIL's fixed point's 0.001) of the formula.
  Image8 all{4096, 4096, 3, std::vector<uint8_t>(size_t{3} << 24)};
  for (uint32_t v = 0; v < (1u << 24); ++v) {
    all.pixels[3 * size_t{v}] = static_cast<uint8_t>(v >> 16);
    all.pixels[3 * size_t{v} + 1] = static_cast<uint8_t>(v >> 8);
    all.pixels[3 * size_t{v} + 2] = static_cast<uint8_t>(v);
  }
  const Image8 l = convert_channels(all, 1);
  double worst = 0;
  for (uint32_t v = 0; v < (1u << 24); ++v) {
    const double exact =
        (v >> 16) * 299 / 1000.0 + ((v >> 8) & 255) * 587 / 1000.0 + (v & 255) * 114 / 1000.0;
    worst = std::max(worst, std::abs(l.pixels[v] - exact));
  }
  EXPECT_LE(worst, 0.5011);
  // Pure colours, by hand: 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1.
  Image8 rgb{3, 1, 3, {255, 0, 0, 0, 255, 0, 0, 0, 255}};
  EXPECT_EQ(convert_channels(rgb, 1).pixels, (std::vector<uint8_t>{76, 150, 29}));

  // Through the importer, from an RGB PNG.
  TempDir dir;
  fs::create_directories(dir.path() / "f");
  const std::vector<uint8_t> px = pattern(5, 2, 3, 7);
  write_rgb_png(dir.file("f/x.png"), 5, 2, px);
  import_images(dir.file("f"), dir.file("l.h5"), opts(2, 5, 1));
  const h5::Array<uint8_t> got = images_of(dir.file("l.h5"));
  for (size_t i = 0; i < 10; ++i) {
    const double exact = px[3 * i] * 0.299 + px[3 * i + 1] * 0.587 + px[3 * i + 2] * 0.114;
    EXPECT_LE(std::abs(got.data[i] - exact), 0.5011) << i;
  }
}

TEST(ImageImport, PaletteSixteenBitAlphaInterlacedAndOneBitPngsDecodeAsDocumented) {
  TempDir dir;
  // Palette: indices into three colours.
  write_png_raw(dir.file("p.png"), 3, 1, PNG_COLOR_TYPE_PALETTE, 8, {2, 0, 1},
                {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}});
  Image8 p = decode_file(dir.file("p.png"));
  EXPECT_EQ(p.channels, 3);
  EXPECT_EQ(p.pixels, (std::vector<uint8_t>{70, 80, 90, 10, 20, 30, 40, 50, 60}));
  // 16-bit gray, big-endian samples: round(v * 255 / 65535).
  const std::vector<uint16_t> v16 = {0, 65535, 32768, 257 * 100, 128, 129, 40000};
  std::vector<uint8_t> be;
  for (uint16_t v : v16) be.push_back(static_cast<uint8_t>(v >> 8)), be.push_back(v & 255);
  write_png_raw(dir.file("g16.png"), 7, 1, PNG_COLOR_TYPE_GRAY, 16, be);
  Image8 g16 = decode_file(dir.file("g16.png"));
  ASSERT_EQ(g16.channels, 1);
  for (size_t i = 0; i < v16.size(); ++i)
    EXPECT_EQ(g16.pixels[i], static_cast<int>(std::lround(v16[i] * 255.0 / 65535.0))) << v16[i];
  // RGBA: alpha ignored, even where it is 0.
  write_png_raw(dir.file("a.png"), 2, 1, PNG_COLOR_TYPE_RGBA, 8, {1, 2, 3, 0, 4, 5, 6, 255});
  Image8 a = decode_file(dir.file("a.png"));
  EXPECT_EQ(a.channels, 3);
  EXPECT_EQ(a.pixels, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  // Gray + alpha -> gray.
  write_png_raw(dir.file("ga.png"), 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {9, 0, 200, 7});
  EXPECT_EQ(decode_file(dir.file("ga.png")).pixels, (std::vector<uint8_t>{9, 200}));
  // Interlaced (Adam7): the same pixels.
  const std::vector<uint8_t> px = pattern(11, 9, 3, 5);
  write_png_raw(dir.file("i.png"), 11, 9, PNG_COLOR_TYPE_RGB, 8, px, {}, true);
  EXPECT_EQ(decode_file(dir.file("i.png")).pixels, px);
  // 1-bit gray, 8 pixels in one byte: 1 -> 255.
  write_png_raw(dir.file("b1.png"), 8, 1, PNG_COLOR_TYPE_GRAY, 1, {0b10110000});
  EXPECT_EQ(decode_file(dir.file("b1.png")).pixels,
            (std::vector<uint8_t>{255, 0, 255, 255, 0, 0, 0, 0}));
}

TEST(ImageImport, JpegsDecodeNearTheirPixelsAndTheFormatComesFromTheBytes) {
  TempDir dir;
  // Flat 8x8 blocks compress to their value; quality 100 keeps them within a grey level. The
  // colour edge sits on the 16-pixel MCU border; chroma is subsampled 2x2 and upsampled with
  // interpolation, so the two pixels either side of it blend and are not compared.
  const int w = 32, h = 16;
  std::vector<uint8_t> gray(w * h), rgb(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      gray[static_cast<size_t>(y * w + x)] = x < 8 ? 40 : 200;
      for (int c = 0; c < 3; ++c)
        rgb[static_cast<size_t>((y * w + x) * 3 + c)] =
            static_cast<uint8_t>(x < 16 ? 30 + 60 * c : 220 - 50 * c);
    }
  write_jpeg(dir.file("g.png"), w, h, 1, gray);  // a JPEG named .png: read as a JPEG
  write_jpeg(dir.file("c.jpg"), w, h, 3, rgb);
  EXPECT_EQ(sniff_image(file_bytes(dir.file("g.png"))), ImageFormat::Jpeg);
  const Image8 g = decode_file(dir.file("g.png"));
  ASSERT_EQ(g.channels, 1);
  ASSERT_EQ(g.width, w);
  ASSERT_EQ(g.height, h);
  for (size_t i = 0; i < gray.size(); ++i) EXPECT_NEAR(g.pixels[i], gray[i], 1) << i;
  const Image8 c = decode_file(dir.file("c.jpg"));
  ASSERT_EQ(c.channels, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      if (x >= 14 && x < 18) continue;
      for (int ch = 0; ch < 3; ++ch) {
        const size_t i = static_cast<size_t>((y * w + x) * 3 + ch);
        EXPECT_NEAR(c.pixels[i], rgb[i], 2) << x << "," << y << " channel " << ch;
      }
    }
}

TEST(ImageImport, ResizeAndCropAreTheHandComputedPilAndTorchvisionValues) {
  // 4 x 2 gray to 1 x 1: the short side (2) goes to 1, the long to int(1 * 4 / 2) = 2; the
  // crop starts at round(0.5) = 0. Horizontal 4 -> 2: triangle of support 2, taps at
  // (x + 0.5 - centre) / 2, weights 3/7, 3/7, 1/7 (pixel 0) and 1/7, 3/7, 3/7 (pixel 1);
  // row 0: (3*0 + 3*100 + 200) / 7 = 71.4 -> 71, row 1: (3*60 + 3*20 + 80) / 7 = 45.7 -> 46;
  // vertical 2 -> 1: the mean, (71 + 46) / 2 = 58.5 -> 59 (rounded half up).
  const Image8 src{4, 2, 1, {0, 100, 200, 40, 60, 20, 80, 240}};
  const ResizePlan p = plan_resize(4, 2, 1, 1);
  EXPECT_EQ(p.width, 2);
  EXPECT_EQ(p.height, 1);
  EXPECT_EQ(p.left, 0);
  const Image8 h = resize_bilinear(src, 2, 2);
  // Pixel 1: (100 + 3*200 + 3*40) / 7 = 117.1 -> 117 and (20 + 3*80 + 3*240) / 7 = 140.
  EXPECT_EQ(h.pixels, (std::vector<uint8_t>{71, 117, 46, 140}));
  EXPECT_EQ(fit_image(src, 1, 1, 1), (std::vector<uint8_t>{59}));

  // No resize, only the crop: to 2 x 2 the image stays 4 x 2 and the crop starts at
  // round(2 / 2) = 1; from 7 wide at round(5 / 2) = round(2.5) = 2 (Python rounds half to even),
  // from 9 wide at round(3.5) = 4.
  EXPECT_EQ(fit_image(src, 1, 2, 2), (std::vector<uint8_t>{100, 200, 20, 80}));
  EXPECT_EQ(plan_resize(7, 2, 2, 2).left, 2);
  EXPECT_EQ(plan_resize(9, 2, 2, 2).left, 4);
  EXPECT_EQ(plan_resize(2, 9, 2, 2).top, 4);
  // A non-square target covers both sides: 10 x 10 to 4 (high) x 8 (wide) resizes to 8 x 8
  // and crops rows 2..5.
  const ResizePlan q = plan_resize(10, 10, 8, 4);
  EXPECT_EQ(q.width, 8);
  EXPECT_EQ(q.height, 8);
  EXPECT_EQ(q.top, 2);
  EXPECT_EQ(q.left, 0);
  // Enlarging 2 -> 4 is plain bilinear (scale 0.5, support 1): pixel centres at 0.25, 0.75,
  // ... of the input: 0, 0.25, 0.75, 1 of the way from 0 to 200 -> 0, 50, 150, 200.
  const Image8 up = resize_bilinear(Image8{2, 1, 1, {0, 200}}, 4, 1);
  EXPECT_EQ(up.pixels, (std::vector<uint8_t>{0, 50, 150, 200}));
}

// A class folder tree: cat/ (2 PNGs, one in a subfolder), dog/ (a JPEG), empty/ (no image).
void make_classes(const TempDir& dir) {
  fs::create_directories(dir.path() / "pets/dog");
  fs::create_directories(dir.path() / "pets/cat/more");
  fs::create_directories(dir.path() / "pets/empty");
  fs::create_directories(dir.path() / "pets/.ipynb_checkpoints");
  write_gray_png(dir.file("pets/cat/b.png"), 2, 2, {1, 1, 1, 1});
  write_gray_png(dir.file("pets/cat/more/a.png"), 2, 2, {2, 2, 2, 2});
  write_gray_png(dir.file("pets/cat/c.png"), 2, 2, {3, 3, 3, 3});
  write_jpeg(dir.file("pets/dog/x.jpeg"), 2, 2, 1, {128, 128, 128, 128});
  write_gray_png(dir.file("pets/.ipynb_checkpoints/z.png"), 2, 2, {9, 9, 9, 9});
  write_gray_png(dir.file("pets/cat/.hidden.png"), 2, 2, {9, 9, 9, 9});
}

TEST(ImageImport, ClassFoldersAreLabelsInSortedOrderWithTheirNames) {
  TempDir dir;
  make_classes(dir);
  const ImageFolderListing list = list_image_folder(dir.file("pets"));
  EXPECT_EQ(list.classes, (std::vector<std::string>{"cat", "dog", "empty"}));
  // torchvision's order: cat/ before cat/more/, files by name.
  ASSERT_EQ(list.paths.size(), 4u);
  EXPECT_EQ(list.paths[0], dir.file("pets/cat/b.png"));
  EXPECT_EQ(list.paths[1], dir.file("pets/cat/c.png"));
  EXPECT_EQ(list.paths[2], dir.file("pets/cat/more/a.png"));
  EXPECT_EQ(list.labels, (std::vector<int32_t>{0, 0, 0, 1}));

  const ImageImportReport r = import_images(dir.file("pets"), dir.file("p.h5"), opts(2, 2, 1));
  EXPECT_EQ(r.summary.rows, 4);
  EXPECT_EQ(r.empty_classes, (std::vector<std::string>{"empty"}));
  h5::File f = h5::open_file(dir.file("p.h5"));
  const h5::Array<int32_t> lab = h5::read_dataset<int32_t>(f, "/labels");
  EXPECT_EQ(lab.data, (std::vector<int32_t>{0, 0, 0, 1}));
  h5::Dataset d = h5::open_dataset(f, "/labels");
  EXPECT_EQ(h5::read_string_array_attribute(d, "class_names"),
            (std::vector<std::string>{"cat", "dog", "empty"}));
  EXPECT_EQ(h5::dtype_name(d), "int32");
  const h5::Array<uint8_t> img = h5::read_dataset<uint8_t>(f, "/images");
  EXPECT_EQ(img.data[0], 1);
  EXPECT_EQ(img.data[4], 3);
  EXPECT_EQ(img.data[8], 2);
  EXPECT_NEAR(img.data[12], 128, 1);
}

TEST(ImageImport, ShuffleIsTheImportersPermutationOfImagesAndLabelsTogether) {
  TempDir dir;
  fs::create_directories(dir.path() / "d/a");
  fs::create_directories(dir.path() / "d/b");
  for (int i = 0; i < 6; ++i) {
    const uint8_t v = static_cast<uint8_t>(10 * i);
    write_gray_png(
        dir.file(std::string("d/") + (i < 3 ? "a" : "b") + "/" + std::to_string(i) + ".png"), 1, 1,
        {v});
  }
  ImageImportOptions o = opts(1, 1, 1);
  o.shuffle_seed = 5;
  import_images(dir.file("d"), dir.file("s.h5"), o);
  const std::vector<int64_t> perm = shuffle_permutation(6, 5);
  h5::File f = h5::open_file(dir.file("s.h5"));
  const h5::Array<uint8_t> img = h5::read_dataset<uint8_t>(f, "/images");
  const h5::Array<int32_t> lab = h5::read_dataset<int32_t>(f, "/labels");
  for (size_t r = 0; r < 6; ++r) {
    EXPECT_EQ(img.data[r], 10 * perm[r]);
    EXPECT_EQ(lab.data[r], perm[r] < 3 ? 0 : 1);
  }
  EXPECT_EQ(h5::read_int_attribute(f, "shuffle_seed"), 5);
}

TEST(ImageImport, TheFileIsTheSameForOneAndTwoThreads) {
  TempDir dir;
  fs::create_directories(dir.path() / "m/x");
  fs::create_directories(dir.path() / "m/y");
  for (int i = 0; i < 24; ++i) {
    const std::string cls = i % 3 ? "x" : "y";
    const int w = 5 + i % 7, h = 4 + i % 5;
    if (i % 4 == 0)
      write_jpeg(dir.file("m/" + cls + "/" + std::to_string(i) + ".jpg"), w, h, 3,
                 pattern(w, h, 3, i), 90);
    else
      write_rgb_png(dir.file("m/" + cls + "/" + std::to_string(i) + ".png"), w, h,
                    pattern(w, h, 3, i));
  }
  write_bytes(dir.file("m/x/bad.png"), {'n', 'o'});
  h5::Array<uint8_t> img[2];
  h5::Array<int32_t> lab[2];
  for (int t = 0; t < 2; ++t) {
    ImageImportOptions o = opts(4, 4, 3);
    o.threads = t + 1;
    o.shuffle_seed = 3;
    const std::string out = dir.file("t" + std::to_string(t) + ".h5");
    const ImageImportReport r = import_images(dir.file("m"), out, o);
    EXPECT_EQ(r.summary.rows, 24);
    EXPECT_EQ(r.skipped.size(), 1u);
    h5::File f = h5::open_file(out);
    img[t] = h5::read_dataset<uint8_t>(f, "/images");
    lab[t] = h5::read_dataset<int32_t>(f, "/labels");
  }
  EXPECT_EQ(img[0].dims, img[1].dims);
  EXPECT_EQ(img[0].data, img[1].data);
  EXPECT_EQ(lab[0].data, lab[1].data);
}

// A folder with one good PNG and each kind of bad file, named so that import order is a..g.
void make_bad_folder(const TempDir& dir) {
  fs::create_directories(dir.path() / "bad");
  write_gray_png(dir.file("bad/a_good.png"), 8, 8, pattern(8, 8, 1, 0));
  write_rgb_png(dir.file("bad/b_truncated.png"), 32, 32, pattern(32, 32, 3, 1));
  cut_file(dir.file("bad/b_truncated.png"), 0.5);
  write_jpeg(dir.file("bad/c_truncated.jpg"), 32, 32, 3, pattern(32, 32, 3, 2), 95);
  cut_file(dir.file("bad/c_truncated.jpg"), 0.6);
  std::ofstream(dir.file("bad/d_text.png")) << "this is a text file, not a picture\n";
  std::ofstream(dir.file("bad/e_empty.jpg")).flush();
  write_rgb_png(dir.file("bad/f_corrupt.png"), 32, 32, pattern(32, 32, 3, 3));
  std::vector<uint8_t> b = file_bytes(dir.file("bad/f_corrupt.png"));
  b[b.size() / 2] ^= 0xff;  // inside IDAT: its CRC no longer matches
  write_bytes(dir.file("bad/f_corrupt.png"), b);
  write_jpeg(dir.file("bad/g_cmyk.jpg"), 8, 8, 4, pattern(8, 8, 4, 4));
}

TEST(ImageImport, BadFilesAreSkippedAndNamedWithTheirReason) {
  TempDir dir;
  make_bad_folder(dir);
  const ImageImportReport r = import_images(dir.file("bad"), dir.file("b.h5"), opts(8, 8, 1));
  EXPECT_EQ(r.summary.rows, 1);
  ASSERT_EQ(r.skipped.size(), 6u);
  const struct {
    const char* name;
    ImageFault fault;
  } want[] = {
      {"b_truncated.png", ImageFault::Truncated}, {"c_truncated.jpg", ImageFault::Truncated},
      {"d_text.png", ImageFault::NotAnImage},     {"e_empty.jpg", ImageFault::Empty},
      {"f_corrupt.png", ImageFault::Corrupt},     {"g_cmyk.jpg", ImageFault::Unsupported}};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(r.skipped[i].path, dir.file(std::string("bad/") + want[i].name));
    EXPECT_EQ(r.skipped[i].fault, want[i].fault) << r.skipped[i].reason;
    EXPECT_NE(r.skipped[i].reason.find(image_fault_name(want[i].fault)), std::string::npos);
  }
  EXPECT_EQ(r.skipped_by_fault[static_cast<size_t>(ImageFault::Truncated)], 2);
  EXPECT_EQ(r.skipped_by_fault[static_cast<size_t>(ImageFault::NotAnImage)], 1);
  EXPECT_EQ(r.skipped_by_fault[static_cast<size_t>(ImageFault::Empty)], 1);
  h5::File f = h5::open_file(dir.file("b.h5"));
  EXPECT_EQ(h5::read_int_attribute(f, "skipped_files"), 6);
}

TEST(ImageImport, StrictRefusesTheFirstBadFileByNameAndWritesNothing) {
  TempDir dir;
  make_bad_folder(dir);
  for (int threads : {1, 2}) {
    ImageImportOptions o = opts(8, 8, 1);
    o.strict = true;
    o.threads = threads;
    try {
      import_images(dir.file("bad"), dir.file("s.h5"), o);
      ADD_FAILURE() << "--strict imported a folder with bad files";
    } catch (const DataError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(dir.file("bad/b_truncated.png")), std::string::npos) << msg;
      EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    }
    EXPECT_FALSE(fs::exists(dir.file("s.h5")));
    EXPECT_FALSE(fs::exists(dir.file("s.h5.tmp")));
  }
  // Each bad file alone, under --strict, is named.
  for (const char* name :
       {"c_truncated.jpg", "d_text.png", "e_empty.jpg", "f_corrupt.png", "g_cmyk.jpg"}) {
    TempDir one;
    fs::create_directories(one.path() / "f");
    fs::copy_file(dir.file(std::string("bad/") + name), one.file(std::string("f/") + name));
    ImageImportOptions o = opts(8, 8, 1);
    o.strict = true;
    try {
      import_images(one.file("f"), one.file("s.h5"), o);
      ADD_FAILURE() << name << " was imported under --strict";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(ImageImport, MixedEmptyAndMissingFoldersAreRefusedNamingThem) {
  TempDir dir;
  make_classes(dir);
  write_gray_png(dir.file("pets/loose.png"), 2, 2, {5, 5, 5, 5});
  try {
    list_image_folder(dir.file("pets"));
    ADD_FAILURE() << "a mixed folder was listed";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("loose.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mixes images and class folders"), std::string::npos);
  }
  // A non-image beside class folders is skipped as not an image.
  fs::remove(dir.file("pets/loose.png"));
  std::ofstream(dir.file("pets/README.txt")) << "pets\n";
  const ImageImportReport r = import_images(dir.file("pets"), dir.file("p.h5"), opts(2, 2, 1));
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0].path, dir.file("pets/README.txt"));

  fs::create_directories(dir.path() / "nothing");
  std::ofstream(dir.file("nothing/notes.txt")) << "no images\n";
  try {
    import_images(dir.file("nothing"), dir.file("n.h5"), opts(2, 2, 1));
    ADD_FAILURE() << "a folder without images was imported";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("nothing")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no PNG or JPEG"), std::string::npos) << e.what();
  }
  EXPECT_THROW(import_images(dir.file("missing"), dir.file("m.h5"), opts(2, 2, 1)), DataError);
}

TEST(ImageImport, DecodingRefusesOversizedImagesBeforeAllocating) {
  TempDir dir;
  write_gray_png(dir.file("big.png"), 64, 64, std::vector<uint8_t>(64 * 64, 7));
  try {
    decode_image(file_bytes(dir.file("big.png")), 1000);
    ADD_FAILURE() << "a 4096-pixel image passed a 1000-pixel limit";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.fault(), ImageFault::Unsupported);
  }
}

TEST(Progress, TheLineShowsCountRateAndEta) {
  EXPECT_EQ(Progress::line("decoding", "images", 600, 1000, 2.4, 10),
            "decoding [######----] 600/1000  60%  250 images/s  ETA 0:02");
  EXPECT_EQ(Progress::line("decoding", "images", 1000, 1000, 65, 4),
            "decoding [####] 1000/1000 100%  15 images/s  in 1:05");
}

}  // namespace
}  // namespace vd
