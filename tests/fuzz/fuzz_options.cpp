// libFuzzer target: the INI reader (the whole input as a config file) and the command line
// (the input split at NUL bytes into argv). A vd::Error is the expected answer to bad input.
#include <string>
#include <vector>

#include "config/options.hpp"
#include "core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)vd::format_options(vd::parse_config_text(text, "fuzz.ini"));
  } catch (const vd::Error&) {
  }
  std::vector<std::string> args{"vae_dist"};
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == '\0') {
      args.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  std::vector<const char*> argv;
  for (const std::string& a : args)
    // --config would read a file named by the input: keep the target to its bytes.
    if (a.rfind("--config", 0) != 0) argv.push_back(a.c_str());
  try {
    (void)vd::parse_options(static_cast<int>(argv.size()), argv.data());
  } catch (const vd::Error&) {
  }
  return 0;
}
