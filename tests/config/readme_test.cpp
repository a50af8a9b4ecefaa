// The option reference in docs/options.md is the --help text itself: this test fails when an
// option, default or description changes and docs/options.md was not regenerated from
// `build/vae_dist --help` (the command is at the top of that page).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "config/options.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Docs, OptionsPageIsTheCurrentHelpText) {
  const std::string page = read_file(std::string(VD_SOURCE_DIR) + "/docs/options.md");
  ASSERT_FALSE(page.empty()) << "docs/options.md not found in " << VD_SOURCE_DIR;
  const std::string help = vd::help_text("vae_dist");
  EXPECT_NE(page.find(help), std::string::npos)
      << "docs/options.md does not contain the current `vae_dist --help` text; regenerate it from "
         "`build/vae_dist --help` with the command at the top of docs/options.md.";
}

}  // namespace
