// Helpers for the project's error types.
#include "core/error.hpp"

#include <filesystem>

namespace vd {

std::string source_location_prefix(const char* file, int line) {
  return std::filesystem::path(file).filename().string() + ":" + std::to_string(line) + ": ";
}

}  // namespace vd
