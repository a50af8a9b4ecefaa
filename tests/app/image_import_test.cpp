// From a folder of images to a training run in two commands: the test draws a folder of PNGs
// (two classes of shapes, one truncated file), `vae_data import-images` makes the data set file
// (shuffled, since the folder's order is sorted by class) and `vae_dist` trains a conditional
// model on it, validating on its last quarter. With VD_IMAGE_EXAMPLE_DIR set, the folder is
// written there and kept (the README's example). The command line's errors and exit codes too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "app/child_process.hpp"
#include "core/h5.hpp"
#include "io/png.hpp"
#include "support/temp_dir.hpp"

namespace vd::testing {
namespace {

namespace fs = std::filesystem;

// Class 0: a bright disc; class 1: a bright square; on a dark background, of various sizes,
// positions and image sizes (20..41 pixels, not square), so the import resizes and crops.
void draw_shapes(const fs::path& root) {
  for (int k = 0; k < 2; ++k) {
    const fs::path cls = root / (k == 0 ? "disc" : "square");
    fs::create_directories(cls);
    for (int i = 0; i < 24; ++i) {
      const int w = 20 + (i * 7) % 22, h = 20 + (i * 5) % 19;
      const double cx = w * (0.4 + 0.02 * (i % 10)), cy = h * (0.4 + 0.03 * (i % 7));
      const double r = std::min(w, h) * (0.2 + 0.01 * (i % 9));
      std::vector<uint8_t> px(static_cast<size_t>(w * h));
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
          const bool in =
              k == 0 ? dx * dx + dy * dy <= r * r : std::abs(dx) <= r && std::abs(dy) <= r;
          px[static_cast<size_t>(y * w + x)] = static_cast<uint8_t>(in ? 230 : 20 + (x + y) % 8);
        }
      char name[32];
      std::snprintf(name, sizeof name, "%02d.png", i);
      write_png((cls / name).string(), w, h, 1, px);
    }
  }
  // A file cut short, as a failed download leaves it.
  const std::string bad = (root / "disc" / "99_cut.png").string();
  fs::copy_file(root / "disc" / "00.png", bad, fs::copy_options::overwrite_existing);
  fs::resize_file(bad, fs::file_size(bad) / 2);
}

CommandResult vae_data(const std::string& args) {
  return run_command(binary("vae_data") + " " + args, 120);
}

TEST(AppImageImport, AFolderOfPngsBecomesATrainingRunInTwoCommands) {
  TempDir tmp;
  const char* keep = std::getenv("VD_IMAGE_EXAMPLE_DIR");
  const fs::path root = keep ? fs::path(keep) : tmp.path();
  const std::string shapes = (root / "shapes").string();
  fs::remove_all(shapes);
  draw_shapes(shapes);
  const std::string data = (root / "shapes.h5").string();

  const CommandResult imp =
      vae_data("import-images " + shell_quote(shapes) + " --out " + shell_quote(data) +
               " --size 16x16 --channels 1 --shuffle-seed 0");
  ASSERT_EQ(imp.exit_code, 0) << imp.output;
  EXPECT_TRUE(contains(imp.output, "skipped " + shapes + "/disc/99_cut.png: truncated"))
      << imp.output;
  EXPECT_TRUE(contains(
      imp.output, "imported 48 images of 2 classes from " + shapes + "; skipped 1 (1 truncated)"))
      << imp.output;
  EXPECT_TRUE(contains(imp.output, "wrote 48 rows x 1 x 16 x 16 uint8 with labels")) << imp.output;
  // No progress bar in a test's output: stderr is not a terminal and the run is short.
  EXPECT_FALSE(contains(imp.output, "decoding [")) << imp.output;
  {
    h5::File f = h5::open_file(data);
    EXPECT_EQ(h5::dims_of(h5::open_dataset(f, "/images")), (std::vector<int64_t>{48, 1, 16, 16}));
  }

  const std::string run = (root / "runs" / "shapes").string();
  fs::remove_all(run);
  const CommandResult train =
      run_command(env_prefix() + " " + binary("vae_dist") + " --data " + shell_quote(data) +
                      " --out " + shell_quote(run) +
                      " --test-data '' --val-fraction 0.25 --conditional --epochs 3 --batch-size "
                      "16 --hidden 64 --latent-dim 2 --threads 1 "
                      "--progress false --log-every 3",
                  300);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_TRUE(fs::exists(run + "/metrics.csv")) << train.output;
  EXPECT_TRUE(contains(train.output, "2 classes")) << train.output;
  if (keep) std::printf("%s\n%s", imp.output.c_str(), train.output.c_str());
}

TEST(AppImageImport, BadFoldersAndOptionsAreRefusedWithTheirExitCodes) {
  TempDir tmp;
  draw_shapes(tmp.path() / "shapes");
  const std::string shapes = tmp.file("shapes");
  // --strict: exit 1, naming the truncated file; no output file left behind.
  CommandResult r = vae_data("import-images " + shell_quote(shapes) + " --out " +
                             shell_quote(tmp.file("s.h5")) + " --size 16 --strict");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, shapes + "/disc/99_cut.png")) << r.output;
  EXPECT_TRUE(contains(r.output, "truncated")) << r.output;
  EXPECT_FALSE(fs::exists(tmp.file("s.h5")));
  EXPECT_FALSE(fs::exists(tmp.file("s.h5.tmp")));
  // A mixed folder: exit 1 naming the loose image.
  fs::copy_file(tmp.path() / "shapes" / "disc" / "00.png", tmp.path() / "shapes" / "loose.png");
  r = vae_data("import-images " + shell_quote(shapes) + " --out " + shell_quote(tmp.file("m.h5")) +
               " --size 16");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "loose.png")) << r.output;
  // No image: exit 1 naming the folder.
  fs::create_directories(tmp.path() / "none");
  r = vae_data("import-images " + shell_quote(tmp.file("none")) + " --out " +
               shell_quote(tmp.file("n.h5")) + " --size 16");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, tmp.file("none"))) << r.output;
  // Usage errors: exit 2.
  for (const std::string bad : {"--size 16x", "--size 0x4", "--size 16 --channels 2",
                                "--size 16 --threads -1", "--size 16 --deflate 10"}) {
    r = vae_data("import-images " + shell_quote(shapes) + " --out " +
                 shell_quote(tmp.file("u.h5")) + " " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.output;
  }
  r = vae_data("import-images --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "--strict")) << r.output;
}

}  // namespace
}  // namespace vd::testing
