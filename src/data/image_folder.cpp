// The image folder importer: listing in torchvision's order, decoding on worker threads into
// one slot per file (so the file does not depend on the thread count), then writing in order.
#include "data/image_folder.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/h5.hpp"
#include "core/progress.hpp"
#include "data/image_resize.hpp"

namespace vd {

namespace {

namespace fs = std::filesystem;

bool hidden(const fs::path& p) {
  return p.filename().string().starts_with('.');
}

// The first bytes of a file, enough for sniff_image; empty when it cannot be read.
std::vector<uint8_t> head_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<uint8_t> buf(8);
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  buf.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return buf;
}

// Every non-hidden file below class_dir in torchvision's make_dataset order: sorted(os.walk())
// orders the directories by path, then each directory's files by name.
void class_files(const fs::path& class_dir, std::vector<std::string>& out) {
  std::map<std::string, std::vector<std::string>> by_dir;  // path -> file names, both sorted
  by_dir[class_dir.string()];
  std::error_code ec;
  fs::recursive_directory_iterator it(class_dir, fs::directory_options::follow_directory_symlink,
                                      ec);
  if (ec) throw DataError("cannot list the folder '" + class_dir.string() + "': " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw DataError("cannot list '" + class_dir.string() + "': " + ec.message());
    const fs::path& p = it->path();
    if (hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec))
      by_dir[p.string()];
    else if (it->is_regular_file(ec))
      by_dir[p.parent_path().string()].push_back(p.filename().string());
  }
  for (auto& [d, names] : by_dir) {
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) out.push_back((fs::path(d) / n).string());
  }
}

// The file's bytes; a file that does not begin as a PNG or JPEG is refused after its first
// bytes, so a large non-image (a video beside the photos) is not read whole.
std::vector<uint8_t> read_image_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw ImageError(ImageFault::Unreadable, std::strerror(errno));
  const std::streamoff size = in.tellg();
  if (size < 0) throw ImageError(ImageFault::Unreadable, "its size cannot be read");
  std::vector<uint8_t> bytes(static_cast<size_t>(std::min<std::streamoff>(size, 8)));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size()))
    throw ImageError(ImageFault::Unreadable, "reading it failed");
  if (!bytes.empty() && sniff_image(bytes) == ImageFormat::Unknown) return bytes;
  bytes.resize(static_cast<size_t>(size));
  const std::streamsize rest =
      size - static_cast<std::streamsize>(std::min<std::streamoff>(size, 8));
  in.read(reinterpret_cast<char*>(bytes.data()) + 8 * (size >= 8), rest);
  if (in.gcount() != rest) throw ImageError(ImageFault::Unreadable, "reading it failed");
  return bytes;
}

// One file's outcome: the fitted pixels [C, H, W], or why not.
struct Slot {
  std::vector<uint8_t> pixels;
  bool ok = false;
  ImageFault fault = ImageFault::Corrupt;
  std::string reason;
};

void decode_one(const std::string& path, const ImageImportOptions& o, Slot& slot) {
  try {
    const Image8 image = decode_image(read_image_file(path));
    slot.pixels = fit_image(image, o.channels, o.height, o.width);
    slot.ok = true;
  } catch (const ImageError& e) {
    slot.fault = e.fault();
    slot.reason = e.what();
  } catch (const std::bad_alloc&) {
    slot.fault = ImageFault::Unsupported;
    slot.reason = std::string(image_fault_name(slot.fault)) + ": not enough memory to decode it";
  } catch (const std::exception& e) {  // nothing else is expected; a worker must not throw
    slot.fault = ImageFault::Corrupt;
    slot.reason = std::string(image_fault_name(slot.fault)) + ": " + e.what();
  }
}

std::string folder_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "photos/" -> "photos"
  return p.string();
}

}  // namespace

ImageFolderListing list_image_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DataError("'" + dir +
                    "' is not a folder; import-images reads a folder of PNG/JPEG "
                    "images (one subfolder per class, or the images directly in it)");
  std::vector<fs::path> dirs, files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    if (it->is_directory(ec))
      dirs.push_back(it->path());
    else if (it->is_regular_file(ec))
      files.push_back(it->path());
  }
  if (ec) throw DataError("cannot list the folder '" + dir + "': " + ec.message());
  const auto by_name = [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  };
  std::sort(dirs.begin(), dirs.end(), by_name);
  std::sort(files.begin(), files.end(), by_name);

  ImageFolderListing out;
  if (dirs.empty()) {
    for (const fs::path& f : files) out.paths.push_back(f.string());
    return out;
  }
  for (const fs::path& f : files) {
    if (sniff_image(head_of(f)) != ImageFormat::Unknown)
      throw DataError("'" + dir + "' mixes images and class folders: '" + f.string() +
                      "' is an image directly in it, beside the class folder '" +
                      dirs.front().filename().string() +
                      "'; move the images into class folders (one subfolder per class), or "
                      "import a folder that holds only images, without subfolders");
    out.strays.push_back(f.string());
  }
  for (size_t k = 0; k < dirs.size(); ++k) {
    out.classes.push_back(dirs[k].filename().string());
    class_files(dirs[k], out.paths);
    out.labels.resize(out.paths.size(), static_cast<int32_t>(k));
  }
  return out;
}

ImageImportReport import_images(const std::string& dir, const std::string& out_path,
                                const ImageImportOptions& o) {
  if (o.height < 1 || o.width < 1 || o.height > 65535 || o.width > 65535)
    throw DataError("the image size must be 1..65535 pixels a side, not " +
                    std::to_string(o.height) + "x" + std::to_string(o.width));
  if (o.channels != 1 && o.channels != 3)
    throw DataError("images are imported with 1 (gray) or 3 (RGB) channels, not " +
                    std::to_string(o.channels));
  const ImageFolderListing list = list_image_folder(dir);
  const size_t n_files = list.paths.size();
  if (o.strict && !list.strays.empty())
    throw DataError("'" + list.strays.front() + "': " + image_fault_name(ImageFault::NotAnImage) +
                    ", a file beside the class folders of '" + dir +
                    "' (--strict refuses every file it cannot import; move it away, or leave "
                    "out --strict to skip it)");
  std::vector<Slot> slots(n_files);

  // Workers take files in index order; after a --strict failure they take no new ones, so every
  // file before the failing one has been decoded and the first bad file is the same each run.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t workers = std::min<size_t>(o.threads > 0 ? static_cast<size_t>(o.threads) : cores,
                                          std::max<size_t>(n_files, 1));
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::mutex m;
  std::condition_variable cv;
  size_t running = workers;
  std::vector<std::thread> pool;
  for (size_t t = 0; t < workers; ++t)
    pool.emplace_back([&] {
      for (;;) {
        if (stop.load()) break;
        const size_t i = next.fetch_add(1);
        if (i >= n_files) break;
        decode_one(list.paths[i], o, slots[i]);
        if (!slots[i].ok && o.strict) stop.store(true);
        done.fetch_add(1);
      }
      std::lock_guard<std::mutex> lock(m);
      --running;
      cv.notify_all();
    });
  {
    Progress bar("decoding", "images", static_cast<int64_t>(n_files));
    std::unique_lock<std::mutex> lock(m);
    while (!cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return running == 0; }))
      if (o.progress) bar.update(static_cast<int64_t>(done.load()));
    if (o.progress && n_files > 0) bar.finish(static_cast<int64_t>(done.load()));
  }
  for (std::thread& t : pool) t.join();

  ImageImportReport report;
  report.classes = list.classes;
  for (const std::string& s : list.strays) {
    report.skipped.push_back({s, ImageFault::NotAnImage,
                              std::string(image_fault_name(ImageFault::NotAnImage)) +
                                  ": a file beside the class folders"});
  }
  std::vector<size_t> good;
  for (size_t i = 0; i < n_files; ++i) {
    Slot& s = slots[i];
    if (s.ok) {
      good.push_back(i);
      continue;
    }
    // Under --strict the first file that is not ok is the first bad one (see the workers).
    if (o.strict)
      throw DataError("'" + list.paths[i] + "': " + s.reason +
                      " (--strict refuses every file it cannot import; fix or remove it, or "
                      "leave out --strict to skip it)");
    report.skipped.push_back({list.paths[i], s.fault, s.reason});
  }
  for (const SkippedImage& s : report.skipped)
    ++report.skipped_by_fault[static_cast<size_t>(s.fault)];
  const int64_t n = static_cast<int64_t>(good.size());
  if (n == 0)
    throw DataError("'" + dir + "' holds no PNG or JPEG image that could be imported (" +
                    std::to_string(n_files + list.strays.size()) + " file(s) read, " +
                    std::to_string(report.skipped.size()) +
                    " skipped); give a folder of images, or of class folders of images");
  if (!list.classes.empty()) {
    std::vector<int64_t> per_class(list.classes.size(), 0);
    for (size_t i : good) ++per_class[static_cast<size_t>(list.labels[i])];
    for (size_t k = 0; k < per_class.size(); ++k)
      if (per_class[k] == 0) report.empty_classes.push_back(list.classes[k]);
  }

  const std::vector<int64_t> perm =
      o.shuffle_seed ? shuffle_permutation(n, *o.shuffle_seed) : std::vector<int64_t>{};
  const auto source = [&](int64_t r) {
    return good[static_cast<size_t>(o.shuffle_seed ? perm[static_cast<size_t>(r)] : r)];
  };
  const std::vector<int64_t> dims{n, o.channels, o.height, o.width};
  const int64_t row = int64_t{o.channels} * o.height * o.width;
  write_dataset_file(out_path, "vae_data import-images", [&](hid_t file) {
    write_import_attributes(file, "vae_data import-images", folder_name(dir), "", o.shuffle_seed);
    h5::write_attribute(file, "skipped_files", static_cast<int64_t>(report.skipped.size()));
    const int64_t chunk_rows = chunk_rows_for(row, n);
    h5::Dataset dimg = h5::create_dataset<uint8_t>(
        file, "/images", dims, {{chunk_rows, o.channels, o.height, o.width}, o.deflate});
    h5::write_attribute(dimg, "layout", "NCHW");
    h5::write_attribute(dimg, "resize",
                        "PIL bilinear (antialiased) to cover " + std::to_string(o.height) + "x" +
                            std::to_string(o.width) + ", then centre crop");
    std::vector<uint8_t> buf(static_cast<size_t>(chunk_rows * row));
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - r0);
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<uint8_t>& px = slots[source(r0 + r)].pixels;
        std::copy(px.begin(), px.end(), buf.begin() + r * row);
      }
      h5::write_rows(dimg, r0, rows, buf.data());
    }
    if (!list.classes.empty()) {
      h5::write_attribute(file, "num_classes", static_cast<int64_t>(list.classes.size()));
      std::vector<int32_t> lab(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) lab[static_cast<size_t>(r)] = list.labels[source(r)];
      const std::vector<int64_t> ldims{n};
      h5::write_dataset<int32_t>(file, "/labels", lab, ldims, {{std::min<int64_t>(n, 1 << 16)}, 4});
      h5::Dataset dlab = h5::open_dataset(file, "/labels");
      h5::write_string_array_attribute(dlab, "class_names", list.classes);
    }
  });
  report.summary = {n, {o.channels, o.height, o.width}, "uint8", !list.classes.empty()};
  return report;
}

}  // namespace vd
