// libpng encode/decode. libpng reports errors by longjmp, so the functions that call setjmp
// hold only trivially destructible locals; the C++ wrappers own files and throw afterwards.
#include "io/png.hpp"

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.hpp"

namespace vd {

namespace {

// Where the error handler leaves libpng's message before jumping back.
struct PngError {
  char message[256] = "unknown libpng error";
};

[[noreturn]] void on_png_error(png_structp png, png_const_charp msg) {
  auto* err = static_cast<PngError*>(png_get_error_ptr(png));
  if (err != nullptr) std::snprintf(err->message, sizeof err->message, "%s", msg);
  png_longjmp(png, 1);
}

// Warnings (e.g. unknown chunks) do not stop a read or write and nobody could act on them.
void on_png_warning(png_structp, png_const_charp) {}

void set_message(PngError* err, const char* msg) {
  std::snprintf(err->message, sizeof err->message, "%s", msg);
}

bool encode(std::FILE* fp, int width, int height, int channels, const uint8_t* pixels,
            const char* description, PngError* err) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_png_error, on_png_warning);
  if (png == nullptr) {
    set_message(err, "libpng could not allocate a write structure");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    set_message(err, "libpng could not allocate an info structure");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (description != nullptr && *description != '\0') {
    // Before the pixels, so a reader finds it after png_read_info.
    png_text text{};
    text.compression = PNG_TEXT_COMPRESSION_NONE;
    text.key = const_cast<png_charp>("Description");
    text.text = const_cast<png_charp>(description);
    png_set_text(png, info, &text, 1);
  }
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(width) * static_cast<size_t>(channels);
  for (int y = 0; y < height; ++y) {
    png_write_row(png, pixels + static_cast<size_t>(y) * stride);
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

bool resize_pixels(PngImage* image, size_t n) noexcept {
  try {
    image->pixels.assign(n, 0);
    return true;
  } catch (...) {
    return false;
  }
}

bool set_description(PngImage* image, const char* text) noexcept {
  try {
    image->description = text;
    return true;
  } catch (...) {
    return false;
  }
}

bool decode(std::FILE* fp, PngImage* image, PngError* err) {
  png_byte signature[8];
  if (std::fread(signature, 1, sizeof signature, fp) != sizeof signature ||
      png_sig_cmp(signature, 0, sizeof signature) != 0) {
    set_message(err, "the file is not a PNG image");
    return false;
  }
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, err, on_png_error, on_png_warning);
  if (png == nullptr) {
    set_message(err, "libpng could not allocate a read structure");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    set_message(err, "libpng could not allocate an info structure");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, fp);
  png_set_sig_bytes(png, sizeof signature);
  png_read_info(png, info);
  png_textp texts = nullptr;
  const int num_texts = png_get_text(png, info, &texts, nullptr);
  for (int i = 0; i < num_texts; ++i) {
    if (std::strcmp(texts[i].key, "Description") != 0) continue;
    if (!set_description(image, texts[i].text)) {
      png_destroy_read_struct(&png, &info, nullptr);
      set_message(err, "not enough memory for the image's description");
      return false;
    }
  }
  const int color_type = png_get_color_type(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  png_set_strip_16(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  image->width = static_cast<int>(png_get_image_width(png, info));
  image->height = static_cast<int>(png_get_image_height(png, info));
  image->channels = png_get_channels(png, info);
  const size_t stride = png_get_rowbytes(png, info);
  if (!resize_pixels(image, stride * static_cast<size_t>(image->height))) {
    png_destroy_read_struct(&png, &info, nullptr);
    set_message(err, "not enough memory for the image");
    return false;
  }
  // Interlaced images are assembled by reading every row once per pass.
  for (int pass = 0; pass < passes; ++pass) {
    for (int y = 0; y < image->height; ++y) {
      png_read_row(png, image->pixels.data() + static_cast<size_t>(y) * stride, nullptr);
    }
  }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

void write_png(const std::string& path, int width, int height, int channels,
               std::span<const uint8_t> pixels, const std::string& description) {
  if (width < 1 || height < 1 || (channels != 1 && channels != 3)) {
    throw ShapeError("write_png(" + path + "): need width, height >= 1 and 1 or 3 channels, got " +
                     std::to_string(width) + "x" + std::to_string(height) + "x" +
                     std::to_string(channels));
  }
  const size_t expected =
      static_cast<size_t>(width) * static_cast<size_t>(height) * static_cast<size_t>(channels);
  if (pixels.size() != expected) {
    throw ShapeError("write_png(" + path + "): " + std::to_string(pixels.size()) +
                     " bytes given for a " + std::to_string(width) + "x" + std::to_string(height) +
                     "x" + std::to_string(channels) + " image (" + std::to_string(expected) +
                     " needed)");
  }
  const std::string tmp = path + ".tmp";
  std::FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (fp == nullptr) {
    throw IoError("cannot create " + tmp + " (" + std::strerror(errno) +
                  "); check that the directory exists and is writable");
  }
  PngError err;
  const bool encoded =
      encode(fp, width, height, channels, pixels.data(), description.c_str(), &err);
  const bool closed = std::fclose(fp) == 0;  // a full disk can first show up here
  std::error_code ec;
  if (!encoded || !closed) {
    std::filesystem::remove(tmp, ec);
    throw IoError("cannot write PNG " + path + ": " +
                  (encoded ? std::string("closing the file failed (disk full?)") : err.message));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw IoError("cannot rename " + tmp + " to " + path + " (" + ec.message() +
                  "); check the permissions of the output directory");
  }
}

PngImage read_png(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) {
    throw IoError("cannot open PNG " + path + " (" + std::strerror(errno) + "); check the path");
  }
  PngImage image;
  PngError err;
  const bool ok = decode(fp, &image, &err);
  std::fclose(fp);
  if (!ok) throw IoError("cannot read PNG " + path + ": " + err.message);
  return image;
}

}  // namespace vd
