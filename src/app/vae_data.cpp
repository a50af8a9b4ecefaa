// vae_data: command-line tool to make and inspect data set files (import-idx, import-npy, synth,
// shapes, info). It never starts MPI.
#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "app/main_support.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "data/dataset_file.hpp"
#include "data/image_folder.hpp"
#include "data/shapes.hpp"

namespace po = boost::program_options;

namespace {

// A usage mistake (exit code 2), as opposed to a failure while working (exit code 1).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr const char* kUsage =
    "usage: vae_data <command> [options]\n"
    "\n"
    "commands:\n"
    "  import-idx  convert IDX files (MNIST, Fashion-MNIST) to an HDF5 data set file\n"
    "  import-npy  convert NumPy .npy arrays (images and optional labels) to an HDF5 data set "
    "file\n"
    "  import-images  convert a folder of PNG/JPEG images (one subfolder per class, or flat) to "
    "an\n"
    "              HDF5 data set file of one size\n"
    "  synth       write a synthetic data set file: images, 1-D signals, 3-D volumes or\n"
    "              feature vectors (tests, scale benchmarks)\n"
    "  shapes      write dSprites-like shapes with known factors (disentanglement)\n"
    "  info        describe an HDF5 data set file\n"
    "\n"
    "Train and test splits are separate files, e.g. data/fashion-mnist/train.h5 and test.h5.\n"
    "`vae_data <command> --help` shows the command's options; `vae_data --version` prints the\n"
    "versions of vae_data, oneDNN, HDF5 and MPI.\n";

std::string help_text(const std::string& synopsis, const po::options_description& desc) {
  std::ostringstream out;
  out << "usage: vae_data " << synopsis << "\n\n" << desc;
  return out.str();
}

// Parses args (args[0] is the command name) into vm; returns false when --help was shown.
bool parse(int argc, char** argv, const po::options_description& desc,
           const po::positional_options_description& pos, const std::string& synopsis,
           po::variables_map& vm) {
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << help_text(synopsis, desc);
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + "\n" + help_text(synopsis, desc));
  }
  return true;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? " x " : "") + std::to_string(shape[i]);
  return out;
}

void print_summary(const vd::DatasetSummary& s, const std::string& out, double seconds) {
  std::error_code ec;
  const double mb = static_cast<double>(std::filesystem::file_size(out, ec)) / 1.0e6;
  std::printf("wrote %lld rows x %s %s%s to %s (%.1f MB) in %.2f s\n",
              static_cast<long long>(s.rows), shape_text(s.sample_shape).c_str(), s.dtype.c_str(),
              s.has_labels ? " with labels" : "", out.c_str(), mb, seconds);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// What both importers take: --out, --shuffle-seed and --deflate (checked).
struct ImportSettings {
  std::string out;
  std::optional<uint64_t> seed;
  int deflate = 4;
  std::vector<int64_t> drop_labels;  // --drop-labels
};

// --drop-labels 9 or 3,9: the labels whose rows an importer leaves out.
std::vector<int64_t> drop_label_list(const std::string& text) {
  const auto list = vd::app::nonnegative_list(text);
  if (!list)
    throw UsageError("--drop-labels: '" + text +
                     "' is not a comma-separated list of labels >= 0 (e.g. 9 or 3,9)");
  return *list;
}

ImportSettings import_settings(const po::variables_map& vm) {
  ImportSettings in;
  in.out = vm["out"].as<std::string>();
  if (vm.count("shuffle-seed")) in.seed = vm["shuffle-seed"].as<uint64_t>();
  if (vm.count("drop-labels"))
    in.drop_labels = drop_label_list(vm["drop-labels"].as<std::string>());
  in.deflate = vm["deflate"].as<int>();
  if (in.deflate < 0 || in.deflate > 9)
    throw UsageError("--deflate must be 0 (none) to 9, not " + std::to_string(in.deflate));
  return in;
}

int cmd_import(int argc, char** argv) {
  po::options_description desc("import-idx options");
  desc.add_options()("help,h", "show this help")(
      "images", po::value<std::string>()->required(),
      "IDX images file ([N,H,W] or [N,C,H,W] uint8), gzip or plain")(
      "labels", po::value<std::string>()->default_value(""), "IDX labels file ([N] uint8)")(
      "out", po::value<std::string>()->required(), "output HDF5 file")(
      "shuffle-seed", po::value<uint64_t>(),
      "shuffle rows (images and labels together) with this seed; default: keep file order")(
      "deflate", po::value<int>()->default_value(4),
      "deflate level of the images, 1..9, or 0 to store them uncompressed (bigger file, less "
      "CPU per read: worth it for data streamed from the file every epoch)")(
      "drop-labels", po::value<std::string>(),
      "leave out the rows of these labels, comma-separated (e.g. 9: a held-out class)");
  po::variables_map vm;
  const std::string synopsis =
      "import-idx --images FILE [--labels FILE] --out FILE.h5 [--shuffle-seed N] [--deflate L] "
      "[--drop-labels LIST]";
  if (!parse(argc, argv, desc, {}, synopsis, vm)) return 0;
  const ImportSettings in = import_settings(vm);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string& out = in.out;
  const vd::DatasetSummary s =
      vd::import_idx(vm["images"].as<std::string>(), vm["labels"].as<std::string>(), out, in.seed,
                     in.deflate, in.drop_labels);
  print_summary(s, out, seconds_since(t0));
  return 0;
}

int cmd_import_npy(int argc, char** argv) {
  po::options_description desc("import-npy options");
  desc.add_options()("help,h", "show this help")(
      "images", po::value<std::string>()->required(),
      ".npy array of uint8 or float32: [N,D], [N,H,W], [N,C,H,W] or [N,C,D,H,W]")(
      "labels", po::value<std::string>()->default_value(""),
      ".npy array of N integers (any integer dtype), one class per row")(
      "out", po::value<std::string>()->required(), "output HDF5 file")(
      "signals", po::bool_switch(), "read a 3-D array as [N,C,L] 1-D signals, not [N,H,W] images")(
      "shuffle-seed", po::value<uint64_t>(),
      "shuffle rows (images and labels together) with this seed; default: keep file order")(
      "deflate", po::value<int>()->default_value(4),
      "deflate level of the images, 1..9, or 0 to store them uncompressed")(
      "drop-labels", po::value<std::string>(),
      "leave out the rows of these labels, comma-separated (e.g. 9: a held-out class)");
  po::variables_map vm;
  const std::string synopsis =
      "import-npy --images A.npy [--labels L.npy] --out FILE.h5 [--signals] [--shuffle-seed N] "
      "[--deflate L] [--drop-labels LIST]";
  if (!parse(argc, argv, desc, {}, synopsis, vm)) return 0;
  const ImportSettings in = import_settings(vm);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string& out = in.out;
  const vd::DatasetSummary s =
      vd::import_npy(vm["images"].as<std::string>(), vm["labels"].as<std::string>(), out, in.seed,
                     in.deflate, vm["signals"].as<bool>(), in.drop_labels);
  print_summary(s, out, seconds_since(t0));
  return 0;
}

// "64x48" (height x width) or "64" (square) -> {height, width}.
std::pair<int, int> parse_size(const std::string& text) {
  const size_t x = text.find('x');
  try {
    size_t used = 0;
    const int h = std::stoi(text.substr(0, x), &used);
    if (used != (x == std::string::npos ? text.size() : x)) throw std::invalid_argument(text);
    int w = h;
    if (x != std::string::npos) {
      w = std::stoi(text.substr(x + 1), &used);
      if (used != text.size() - x - 1) throw std::invalid_argument(text);
    }
    if (h >= 1 && w >= 1 && h <= 65535 && w <= 65535) return {h, w};
  } catch (const std::logic_error&) {
  }
  throw UsageError(
      "--size must be HEIGHTxWIDTH (e.g. 64x64) or one number for a square, each "
      "1..65535, not '" +
      text + "'");
}

int cmd_import_images(int argc, char** argv) {
  po::options_description desc("import-images options");
  desc.add_options()("help,h", "show this help")(
      "dir", po::value<std::string>()->required(),
      "folder of PNG/JPEG images: one subfolder per class (torchvision's ImageFolder), or the "
      "images directly in it (no labels); positional")("out", po::value<std::string>()->required(),
                                                       "output HDF5 file")(
      "size", po::value<std::string>()->required(),
      "HEIGHTxWIDTH of every image: resized (PIL's antialiased bilinear) to cover it, then "
      "centre-cropped, as torchvision's Resize + CenterCrop")(
      "channels", po::value<int>()->default_value(3),
      "3 (RGB) or 1 (gray, PIL's convert('L'): L = R*299/1000 + G*587/1000 + B*114/1000)")(
      "shuffle-seed", po::value<uint64_t>(),
      "shuffle rows (images and labels together) with this seed; default: the folder's order")(
      "strict", po::bool_switch(),
      "fail at the first file that cannot be imported, instead of skipping it")(
      "deflate", po::value<int>()->default_value(4),
      "deflate level of the images, 1..9, or 0 to store them uncompressed")(
      "threads", po::value<int>()->default_value(0),
      "decoding threads; 0 = all cores (the file is the same for any number)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  const std::string synopsis =
      "import-images DIR --out FILE.h5 --size HxW [--channels 1|3] [--shuffle-seed N] "
      "[--strict] [--deflate L] [--threads N]";
  if (!parse(argc, argv, desc, pos, synopsis, vm)) return 0;
  const ImportSettings in = import_settings(vm);
  vd::ImageImportOptions o;
  const auto [height, width] = parse_size(vm["size"].as<std::string>());
  o.height = height;
  o.width = width;
  o.channels = vm["channels"].as<int>();
  if (o.channels != 1 && o.channels != 3)
    throw UsageError("--channels must be 1 (gray) or 3 (RGB), not " + std::to_string(o.channels));
  o.threads = vm["threads"].as<int>();
  if (o.threads < 0)
    throw UsageError("--threads must be 0 (all cores) or more, not " + std::to_string(o.threads));
  o.shuffle_seed = in.seed;
  o.strict = vm["strict"].as<bool>();
  o.deflate = in.deflate;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir = vm["dir"].as<std::string>();
  const vd::ImageImportReport r = vd::import_images(dir, in.out, o);
  for (const vd::SkippedImage& s : r.skipped)
    std::fprintf(stderr, "skipped %s: %s\n", s.path.c_str(), s.reason.c_str());
  for (const std::string& c : r.empty_classes)
    std::fprintf(stderr, "note: class '%s' has no image; its label stays in /labels' numbering\n",
                 c.c_str());
  std::string counts;
  for (int f = 0; f < vd::kImageFaultKinds; ++f)
    if (r.skipped_by_fault[static_cast<size_t>(f)] > 0)
      counts += (counts.empty() ? "" : ", ") +
                std::to_string(r.skipped_by_fault[static_cast<size_t>(f)]) + " " +
                vd::image_fault_name(static_cast<vd::ImageFault>(f));
  std::printf("imported %lld images%s from %s; skipped %zu%s\n",
              static_cast<long long>(r.summary.rows),
              r.classes.empty() ? " (flat folder, no labels)"
                                : (" of " + std::to_string(r.classes.size()) + " classes").c_str(),
              dir.c_str(), r.skipped.size(), counts.empty() ? "" : (" (" + counts + ")").c_str());
  print_summary(r.summary, in.out, seconds_since(t0));
  return 0;
}

int cmd_synth(int argc, char** argv) {
  po::options_description desc("synth options");
  desc.add_options()("help,h", "show this help")("out", po::value<std::string>()->required(),
                                                 "output HDF5 file")(
      "n", po::value<int64_t>()->required(), "number of samples (rows)")(
      "channels", po::value<int64_t>()->default_value(1), "channels per sample")(
      "height", po::value<int64_t>()->default_value(28), "image height")(
      "width", po::value<int64_t>()->default_value(28), "image width")(
      "length", po::value<int64_t>(),
      "instead of images: 1-D signals [n, channels, length] (smooth bumps on sinusoids; "
      "--height/--width do not apply)")(
      "depth", po::value<int64_t>(),
      "3-D volumes [n, channels, depth, height, width] instead of images (blobs over stripes)")(
      "classes", po::value<int>()->default_value(10), "number of classes (1..256)")(
      "seed", po::value<uint64_t>()->default_value(0), "random seed (same seed, same file)")(
      "dtype", po::value<std::string>()->default_value("uint8"),
      "uint8 (0..255) or float32 (in [0,1])")(
      "deflate", po::value<int>(),
      "deflate level of the images, 0 (uncompressed) to 9; default 1 for uint8, 0 for float32")(
      "features", po::value<int64_t>(),
      "instead of images: float32 vectors [n, features] of very different scales (1e-3..1e3) "
      "and offsets (up to 1e4), like scientific measurements (needs --dtype float32; "
      "--channels/--height/--width do not apply)");
  po::variables_map vm;
  const std::string synopsis =
      "synth --out FILE.h5 --n N [--channels C] [--height H --width W [--depth D] | --length L] "
      "[--classes K --seed S --dtype uint8|float32 --deflate L] | --features D --dtype float32";
  if (!parse(argc, argv, desc, {}, synopsis, vm)) return 0;
  const std::string dtype = vm["dtype"].as<std::string>();
  if (dtype != "uint8" && dtype != "float32")
    throw UsageError("--dtype must be uint8 or float32, not '" + dtype + "'");
  const auto given = [&](const char* name) { return vm.count(name) > 0 && !vm[name].defaulted(); };
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = vm["out"].as<std::string>();
  if (vm.count("features")) {
    if (dtype != "float32")
      throw UsageError("--features makes float data of any scale; add --dtype float32");
    for (const char* image_only : {"channels", "height", "width", "length", "depth"})
      if (given(image_only))
        throw UsageError(std::string("--") + image_only +
                         " describes images, signals or volumes; with --features the rows are "
                         "vectors");
    const vd::DatasetSummary s =
        vd::write_synthetic_features(out, vm["n"].as<int64_t>(), vm["features"].as<int64_t>(),
                                     vm["seed"].as<uint64_t>(), vm["classes"].as<int>());
    print_summary(s, out, seconds_since(t0));
    return 0;
  }
  const int deflate = vm.count("deflate") ? vm["deflate"].as<int>() : -1;
  if (vm.count("deflate") && (deflate < 0 || deflate > 9))
    throw UsageError("--deflate must be 0 (none) to 9, not " + std::to_string(deflate));
  // The sample shape: [C, L] with --length, [C, D, H, W] with --depth, else [C, H, W].
  std::vector<int64_t> sample{vm["channels"].as<int64_t>()};
  if (vm.count("length")) {
    for (const char* other : {"height", "width", "depth"})
      if (given(other))
        throw UsageError(std::string("--length makes 1-D signals [n, channels, length]; --") +
                         other + " belongs to images and volumes; give one or the other");
    sample.push_back(vm["length"].as<int64_t>());
  } else {
    if (vm.count("depth")) sample.push_back(vm["depth"].as<int64_t>());
    sample.push_back(vm["height"].as<int64_t>());
    sample.push_back(vm["width"].as<int64_t>());
  }
  for (int64_t v : sample)
    if (v < 1)
      throw UsageError("the sample shape must have sizes >= 1, not " + shape_text(sample) +
                       " (channels first)");
  const vd::DatasetSummary s =
      vd::write_synthetic(out, vm["n"].as<int64_t>(), sample, vm["seed"].as<uint64_t>(),
                          dtype == "uint8" ? vd::SynthDType::UInt8 : vd::SynthDType::Float32,
                          vm["classes"].as<int>(), deflate);
  print_summary(s, out, seconds_since(t0));
  return 0;
}

int cmd_shapes(int argc, char** argv) {
  const vd::ShapesSpec d;  // the defaults shown in --help are the library's
  po::options_description desc("shapes options");
  desc.add_options()("help,h", "show this help")("out", po::value<std::string>()->required(),
                                                 "output HDF5 file")(
      "count", po::value<int64_t>(),
      "number of images, each a uniform draw of every factor (from --seed)")(
      "all", po::bool_switch(),
      "instead of --count: every factor combination once, in row-major factor order "
      "(shape slowest, then scale, orientation, x, y, colour)")(
      "seed", po::value<uint64_t>()->default_value(0), "random seed of --count's draws")(
      "shuffle-seed", po::value<uint64_t>(),
      "with --all: permute the rows with this seed (contiguous shards of the grid order are "
      "not i.i.d.)")("size", po::value<int>()->default_value(d.size),
                     "image height and width, pixels")(
      "channels", po::value<int>()->default_value(d.channels),
      "1 (white shapes on black) or 3 (RGB; colour becomes a factor)")(
      "shapes", po::value<int>()->default_value(d.shapes), "the first K of square, ellipse, heart")(
      "scales", po::value<int>()->default_value(d.scales), "scale values, 0.5..1 evenly")(
      "orientations", po::value<int>()->default_value(d.orientations),
      "orientation values, 2 pi k / orientations")(
      "positions-x", po::value<int>()->default_value(d.positions_x),
      "x positions, evenly where the largest shape fits")(
      "positions-y", po::value<int>()->default_value(d.positions_y), "y positions, likewise")(
      "colours", po::value<int>(), "with --channels 3: palette colours, 1..6 (default 6)")(
      "supersample", po::value<int>()->default_value(d.supersample),
      "anti-aliasing: k x k samples per pixel")(
      "deflate", po::value<int>()->default_value(1),
      "deflate level of the images, 0 (uncompressed) to 9");
  po::variables_map vm;
  const std::string synopsis =
      "shapes --out FILE.h5 (--count N [--seed S] | --all [--shuffle-seed S]) [--size N "
      "--channels 1|3 --shapes K --scales K --orientations K --positions-x K --positions-y K "
      "--colours K --supersample K --deflate L]";
  if (!parse(argc, argv, desc, {}, synopsis, vm)) return 0;
  vd::ShapesSpec spec;
  spec.size = vm["size"].as<int>();
  spec.channels = vm["channels"].as<int>();
  spec.shapes = vm["shapes"].as<int>();
  spec.scales = vm["scales"].as<int>();
  spec.orientations = vm["orientations"].as<int>();
  spec.positions_x = vm["positions-x"].as<int>();
  spec.positions_y = vm["positions-y"].as<int>();
  spec.supersample = vm["supersample"].as<int>();
  if (vm.count("colours")) {
    if (spec.channels != 3)
      throw UsageError("--colours needs --channels 3; gray images have no colour factor");
    spec.colours = vm["colours"].as<int>();
  }
  vd::ShapesDraw draw;
  draw.all = vm["all"].as<bool>();
  if (draw.all == (vm.count("count") > 0))
    throw UsageError("give --count N (random factor draws) or --all (the whole grid), " +
                     std::string(draw.all ? "not both" : "one of them"));
  if (vm.count("count")) {
    draw.count = vm["count"].as<int64_t>();
    if (draw.count < 1)
      throw UsageError("--count must be at least 1, not " + std::to_string(draw.count));
  }
  if (draw.all && !vm["seed"].defaulted())
    throw UsageError(
        "--seed picks --count's random draws; --all draws nothing (to permute the "
        "grid, give --shuffle-seed)");
  draw.seed = vm["seed"].as<uint64_t>();
  if (vm.count("shuffle-seed")) {
    if (!draw.all)
      throw UsageError(
          "--shuffle-seed permutes the --all grid; --count's draws are already "
          "in random order");
    draw.shuffle_seed = vm["shuffle-seed"].as<uint64_t>();
  }
  draw.deflate = vm["deflate"].as<int>();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = vm["out"].as<std::string>();
  const vd::DatasetSummary s = vd::write_shapes(out, spec, draw);
  print_summary(s, out, seconds_since(t0));
  const std::vector<std::string> names = vd::shapes_factor_names(spec);
  const std::vector<int64_t> sizes = vd::shapes_factor_sizes(spec);
  std::string factors;
  for (size_t f = 0; f < names.size(); ++f)
    factors += (f ? ", " : "") + names[f] + " " + std::to_string(sizes[f]);
  std::string order = "uniform draws, seed " + std::to_string(draw.seed);
  if (draw.all) {
    order = "all " + std::to_string(s.rows) + " combinations";
    order += draw.shuffle_seed ? ", shuffled with seed " + std::to_string(*draw.shuffle_seed)
                               : std::string(" in row-major order");
  }
  std::printf("factors (/factors): %s (%s)\n", factors.c_str(), order.c_str());
  return 0;
}

int cmd_info(int argc, char** argv) {
  po::options_description desc("info options");
  desc.add_options()("help,h", "show this help")("file", po::value<std::string>()->required(),
                                                 "HDF5 data set file (positional)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse(argc, argv, desc, pos, "info FILE.h5", vm)) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::cout << vd::describe(vm["file"].as<std::string>());
  std::printf("(described in %.2f s)\n", seconds_since(t0));
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) throw UsageError("no command given\n" + std::string(kUsage));
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version") {
    std::cout << vd::version_text("vae_data");
    return 0;
  }
  // The command's parser sees argv[1..]; it skips its first element like a program name.
  if (cmd == "import-idx") return cmd_import(argc - 1, argv + 1);
  if (cmd == "import-npy") return cmd_import_npy(argc - 1, argv + 1);
  if (cmd == "import-images") return cmd_import_images(argc - 1, argv + 1);
  if (cmd == "synth") return cmd_synth(argc - 1, argv + 1);
  if (cmd == "shapes") return cmd_shapes(argc - 1, argv + 1);
  if (cmd == "info") return cmd_info(argc - 1, argv + 1);
  throw UsageError("unknown command '" + cmd + "'\n" + std::string(kUsage));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s", e.what());
    if (*e.what() && e.what()[std::strlen(e.what()) - 1] != '\n') std::fputc('\n', stderr);
    return 2;
  } catch (const vd::ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const vd::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
