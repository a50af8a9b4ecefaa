// What the libFuzzer targets share: the input bytes as a file (the readers under test take a
// path), one per process, rewritten for every input.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace vd::fuzz {

inline const std::string& input_path(const char* suffix) {
  static const std::string path = "/tmp/vd_fuzz_" + std::to_string(::getpid()) + suffix;
  return path;
}

inline const std::string& write_input(const uint8_t* data, size_t size, const char* suffix) {
  const std::string& path = input_path(suffix);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace vd::fuzz
