// The README's option reference is the --help text itself: this test fails when an option,
// default or description changes and README.md was not regenerated from `vae_dist --help`.
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

TEST(Readme, OptionsSectionIsTheCurrentHelpText) {
  const std::string readme = read_file(std::string(VD_SOURCE_DIR) + "/README.md");
  ASSERT_FALSE(readme.empty()) << "README.md not found in " << VD_SOURCE_DIR;
  const std::string help = vd::help_text("vae_dist");
  EXPECT_NE(readme.find(help), std::string::npos)
      << "README.md does not contain the current `vae_dist --help` text; paste the output of "
         "`build/vae_dist --help` into the Options section.";
}

}  // namespace
