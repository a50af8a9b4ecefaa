// PNG and JPEG decoding from memory. libpng and libjpeg report errors by longjmp, so the
// functions that call setjmp hold only trivially destructible locals and write into a caller's
// Image8 through a noexcept allocator; the C++ wrapper throws afterwards.
#include "data/image_decode.hpp"

#include <png.h>

// jpeglib.h needs size_t and FILE declared before it.
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>
// The message codes (JWRN_JPEG_EOF).
#include <jerror.h>

#include <csetjmp>
#include <cstring>

namespace vd {

namespace {

// What a decoder leaves behind when it fails.
struct DecodeStatus {
  ImageFault fault = ImageFault::Corrupt;
  bool truncated = false;  // the data ended before the decoder was done
  char message[200] = "";
};

void set_message(DecodeStatus* st, ImageFault fault, const char* msg) {
  st->fault = fault;
  std::snprintf(st->message, sizeof st->message, "%s", msg);
}

bool allocate(Image8* image, int width, int height, int channels) noexcept {
  try {
    image->width = width;
    image->height = height;
    image->channels = channels;
    image->pixels.assign(
        static_cast<size_t>(width) * static_cast<size_t>(height) * static_cast<size_t>(channels),
        0);
    return true;
  } catch (...) {
    return false;
  }
}

// ---- PNG ------------------------------------------------------------------------------------

struct PngSource {
  const uint8_t* data;
  size_t size;
  size_t pos;
  DecodeStatus* status;
};

[[noreturn]] void on_png_error(png_structp png, png_const_charp msg) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  if (!src->status->truncated) set_message(src->status, ImageFault::Corrupt, msg);
  png_longjmp(png, 1);
}

// Warnings (unknown chunks, a bad sRGB profile) do not stop the read; PIL ignores them too.
void on_png_warning(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (src->size - src->pos < n) {
    src->status->truncated = true;
    set_message(src->status, ImageFault::Truncated, "the PNG data end before the image does");
    png_error(png, "truncated");
  }
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

bool decode_png(PngSource* src, Image8* image, int64_t max_pixels) {
  DecodeStatus* st = src->status;
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, src, on_png_error, on_png_warning);
  if (png == nullptr) {
    set_message(st, ImageFault::Unsupported, "libpng could not allocate a read structure");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    set_message(st, ImageFault::Unsupported, "libpng could not allocate an info structure");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, src, png_read_memory);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info);
  const png_uint_32 h = png_get_image_height(png, info);
  if (static_cast<int64_t>(w) * static_cast<int64_t>(h) > max_pixels) {
    std::snprintf(st->message, sizeof st->message, "%u x %u pixels is more than the %lld allowed",
                  static_cast<unsigned>(w), static_cast<unsigned>(h),
                  static_cast<long long>(max_pixels));
    st->fault = ImageFault::Unsupported;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  const int color_type = png_get_color_type(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  png_set_scale_16(png);     // round(v * 255 / 65535)
  png_set_strip_alpha(png);  // alpha ignored; tRNS is not expanded, so it is ignored too
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  if ((channels != 1 && channels != 3) || png_get_bit_depth(png, info) != 8) {
    std::snprintf(st->message, sizeof st->message, "PNG colour type %d gives %d channels",
                  color_type, channels);
    st->fault = ImageFault::Unsupported;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (!allocate(image, static_cast<int>(w), static_cast<int>(h), channels)) {
    set_message(st, ImageFault::Unsupported, "not enough memory for the image");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  const size_t stride = static_cast<size_t>(w) * static_cast<size_t>(channels);
  // Interlaced images are assembled by reading every row once per pass.
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < h; ++y)
      png_read_row(png, image->pixels.data() + static_cast<size_t>(y) * stride, nullptr);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// ---- JPEG -----------------------------------------------------------------------------------

struct JpegErrors {
  jpeg_error_mgr mgr;  // first, so libjpeg's pointer to it is a pointer to this
  jmp_buf jump;
  DecodeStatus* status;
};

[[noreturn]] void on_jpeg_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  if (!err->status->truncated) {
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    set_message(err->status, ImageFault::Corrupt, text);
  }
  std::longjmp(err->jump, 1);
}

// libjpeg only warns at a premature end of data (and decodes the rest as grey); that is a
// truncated file here, as it is to PIL. Other warnings (extraneous bytes) are recovered from.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    err->status->truncated = true;
    set_message(err->status, ImageFault::Truncated, "the JPEG data end before the image does");
  }
}

bool decode_jpeg(const uint8_t* data, size_t size, DecodeStatus* st, Image8* image,
                 int64_t max_pixels) {
  jpeg_decompress_struct cinfo;
  JpegErrors err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_jpeg_error;
  err.mgr.emit_message = on_jpeg_message;
  err.status = st;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (st->truncated) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    set_message(st, ImageFault::Unsupported, "CMYK JPEG (convert it to RGB)");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  const bool gray = cinfo.num_components == 1;
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  if (static_cast<int64_t>(cinfo.image_width) * static_cast<int64_t>(cinfo.image_height) >
      max_pixels) {
    std::snprintf(st->message, sizeof st->message, "%u x %u pixels is more than the %lld allowed",
                  static_cast<unsigned>(cinfo.image_width),
                  static_cast<unsigned>(cinfo.image_height), static_cast<long long>(max_pixels));
    st->fault = ImageFault::Unsupported;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  const int channels = static_cast<int>(cinfo.output_components);
  if (!allocate(image, static_cast<int>(cinfo.output_width), static_cast<int>(cinfo.output_height),
                channels)) {
    set_message(st, ImageFault::Unsupported, "not enough memory for the image");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  const size_t stride = static_cast<size_t>(cinfo.output_width) * static_cast<size_t>(channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image->pixels.data() + static_cast<size_t>(cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (st->truncated) break;  // the rest would be libjpeg's grey filler
  }
  if (!st->truncated) jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return !st->truncated;
}

}  // namespace

ImageFormat sniff_image(std::span<const uint8_t> bytes) {
  static constexpr uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) return ImageFormat::Png;
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
    return ImageFormat::Jpeg;
  return ImageFormat::Unknown;
}

const char* image_fault_name(ImageFault fault) {
  switch (fault) {
    case ImageFault::Empty:
      return "empty file";
    case ImageFault::NotAnImage:
      return "not a PNG or JPEG";
    case ImageFault::Truncated:
      return "truncated";
    case ImageFault::Corrupt:
      return "corrupt";
    case ImageFault::Unsupported:
      return "unsupported";
    case ImageFault::Unreadable:
      return "unreadable";
  }
  return "unknown";
}

Image8 decode_image(std::span<const uint8_t> bytes, int64_t max_pixels) {
  if (bytes.empty()) throw ImageError(ImageFault::Empty, "");
  const ImageFormat format = sniff_image(bytes);
  if (format == ImageFormat::Unknown)
    throw ImageError(ImageFault::NotAnImage, "its first bytes are neither PNG's nor JPEG's");
  Image8 image;
  DecodeStatus st;
  bool ok = false;
  if (format == ImageFormat::Png) {
    PngSource src{bytes.data(), bytes.size(), 0, &st};
    ok = decode_png(&src, &image, max_pixels);
  } else {
    ok = decode_jpeg(bytes.data(), bytes.size(), &st, &image, max_pixels);
  }
  if (!ok) {
    const ImageFault fault = st.truncated ? ImageFault::Truncated : st.fault;
    // The decoders' own messages ("IDAT: CRC error") need the format beside them.
    const char* from = fault != ImageFault::Corrupt ? ""
                       : format == ImageFormat::Png ? "libpng: "
                                                    : "libjpeg: ";
    throw ImageError(fault, from + std::string(st.message));
  }
  return image;
}

}  // namespace vd
