// vd::Shape: one sample's shape (flat, 1-D [C, L], 2-D [C, H, W] or 3-D [C, D, H, W]) and its
// text form; free of oneDNN so the readers and the option parser (and their fuzzers) use it alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vd {

// Legend used across nn/ and vae/: N = samples in a batch, C = channels, H x W = image size,
// D = C*H*W values per sample, L = latent dimensions. 1-D data ([C, L] signals) keep their
// length in w, 3-D data ([C, D, H, W] volumes) their depth in d.

// One sample's shape. A flat vector of D values is {D, 1, 1}; `rank` counts the spatial
// dimensions (1, 2 or 3) and means nothing for a flat shape.
struct Shape {
  int c = 1, h = 1, w = 1;
  int d = 1;
  int rank = 2;
  static Shape signal(int c, int length) { return Shape{c, 1, length, 1, 1}; }
  static Shape volume(int c, int d, int h, int w) { return Shape{c, h, w, d, 3}; }
  // One sample's dimensions as a data set stores them: {D} flat (written {D, 1, 1} by
  // checkpoints, as before 1-D and 3-D data), {C, L}, {C, H, W} or {C, D, H, W}.
  static Shape from_dims(const std::vector<int64_t>& dims);
  std::vector<int64_t> dims() const;     // {C, L}, {C, H, W}, {C, D, H, W}; {D, 1, 1} flat
  std::vector<int64_t> spatial() const;  // {L}, {H, W} or {D, H, W}
  Shape with_spatial(int channels, const std::vector<int64_t>& spatial) const;
  int64_t spatial_size() const { return static_cast<int64_t>(d) * h * w; }
  int64_t size() const { return static_cast<int64_t>(c) * spatial_size(); }
  bool flat() const { return d == 1 && h == 1 && w == 1; }
  std::string text() const;  // "784", "2x256", "64x7x7" or "1x16x16x16"
  // "1-D", "2-D", "3-D", or "flat".
  std::string kind() const;
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.flat() || b.flat()) return a.flat() && b.flat() && a.c == b.c;
    return a.c == b.c && a.d == b.d && a.h == b.h && a.w == b.w && a.rank == b.rank;
  }
};

// "CxL", "CxHxW" or "CxDxHxW" (a flat shape is "D"): false when the text is not of that form
// or a size is not positive.
bool parse_shape_text(const std::string& text, Shape& shape);

}  // namespace vd
