// Bringing a decoded image to the training size: gray/RGB conversion as PIL's convert, PIL's
// antialiased bilinear resize, and torchvision's Resize + CenterCrop geometry.
#pragma once
#include "data/image_decode.hpp"

namespace vd {

// To 1 channel (ITU-R 601-2 luma in PIL's fixed point: L = (19595 R + 38470 G + 7471 B +
// 2^15) >> 16, within 0.501 of 0.299 R + 0.587 G + 0.114 B) or to 3 (gray copied to R, G and B).
Image8 convert_channels(const Image8& src, int channels);

// PIL's Image.resize((width, height), Image.BILINEAR): a triangle filter whose support grows
// with the downscaling factor (antialiased; plain bilinear when enlarging), 22-bit fixed-point
// weights, the horizontal pass first, rounded to 8 bits between the passes.
Image8 resize_bilinear(const Image8& src, int width, int height);

// The size the image is resized to before the centre crop to height x width: the smallest one
// that covers the target with the aspect kept, the long side truncated as torchvision's
// Resize(int) does. For a square target it is torchvision's Resize(height).
struct ResizePlan {
  int width = 0;
  int height = 0;
  int left = 0;  // the crop's offset, torchvision's CenterCrop: round((size - target) / 2),
  int top = 0;   // with Python's round (half to even)
};
ResizePlan plan_resize(int src_width, int src_height, int width, int height);

// convert_channels, resize_bilinear to the plan's size, the centre crop; returns the pixels in
// planar [C, H, W] order, as /images stores them.
std::vector<uint8_t> fit_image(const Image8& src, int channels, int height, int width);

}  // namespace vd
