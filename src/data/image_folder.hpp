// `vae_data import-images`: a folder of PNG/JPEG files (torchvision's ImageFolder layout, or
// flat) decoded on all cores, brought to one size and written as a data set file.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset_file.hpp"
#include "data/image_decode.hpp"

namespace vd {

// The files of a folder, in import order.
//   - Class layout (DIR has subfolders): each subfolder is a class, labels 0..K-1 in sorted
//     order of their names (torchvision's find_classes); within a class every file below it,
//     in the order of torchvision's make_dataset (sorted by directory path, then by name).
//   - Flat layout (no subfolders): the files of DIR sorted by name, no labels.
// Names beginning with '.' are not read (torchvision would count `.ipynb_checkpoints` as a
// class). A PNG or JPEG directly in DIR beside class folders is a mixed folder: refused
// (DataError naming it); other files there are `strays`, skipped as not an image.
struct ImageFolderListing {
  std::vector<std::string> classes;  // empty in a flat folder
  std::vector<std::string> paths;
  std::vector<int32_t> labels;      // a class per path; empty in a flat folder
  std::vector<std::string> strays;  // files directly in DIR beside class folders
};
ImageFolderListing list_image_folder(const std::string& dir);

struct ImageImportOptions {
  int height = 0;
  int width = 0;
  int channels = 3;                      // 1 (PIL's "L") or 3 ("RGB")
  std::optional<uint64_t> shuffle_seed;  // as import_idx: one permutation of images and labels
  bool strict = false;                   // the first bad file (in import order) fails the import
  int deflate = 4;
  int threads = 0;       // decoding threads; 0 = all cores. The file does not depend on it.
  bool progress = true;  // core/progress.hpp's bar on stderr while decoding
};

struct SkippedImage {
  std::string path;
  ImageFault fault;
  std::string reason;  // the fault and the decoder's detail
};

struct ImageImportReport {
  DatasetSummary summary;
  std::vector<std::string> classes;
  std::vector<std::string> empty_classes;  // class folders without one imported image
  std::vector<SkippedImage> skipped;       // in import order
  std::array<int64_t, kImageFaultKinds> skipped_by_fault{};
};

// Lists dir, decodes every file (options.threads workers), fits each image (fit_image: PIL's
// convert, antialiased bilinear resize covering height x width, centre crop) and writes
// /images uint8 [N, C, H, W] and, in the class layout, /labels int32 [N] with the class names
// as its attribute `class_names` (a string array), by write_import_attributes' scheme (a
// temporary file, then a rename). Bad files are skipped and reported, or with options.strict
// refused: DataError naming the file and its fault. No image at all is a DataError naming dir.
// The decoded images are held in memory (N x C x H x W bytes) until they are written.
ImageImportReport import_images(const std::string& dir, const std::string& out_path,
                                const ImageImportOptions& options);

}  // namespace vd
