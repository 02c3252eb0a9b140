// Shared by the libFuzzer targets: the fuzz input as a file (the readers under test take paths),
// and the rule for what counts as a finding. A mambalm::Error (or another std::exception, which
// the CLI also turns into one line) is the expected answer to a bad file; a crash, a sanitizer
// report, a hang or an allocation past libFuzzer's limit is a finding. std::bad_alloc is
// rethrown: a hostile size must be refused by a range check before it reaches an allocation.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>

#include "core/error.h"

namespace mambalm::fuzz {

// A directory of its own per process, on tmpfs when there is one.
inline const std::string& work_dir() {
  static const std::string dir = [] {
    const std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string d = base + "/mambalm-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = work_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// Splits the input at the first "\n----\n" into two files' contents (the second may be empty).
inline std::pair<std::string, std::string> split_two(const uint8_t* data, size_t size) {
  const std::string all(reinterpret_cast<const char*>(data), size);
  const size_t cut = all.find("\n----\n");
  if (cut == std::string::npos) return {all, ""};
  return {all.substr(0, cut), all.substr(cut + 6)};
}

template <class F>
int expect_error_or_success(F&& body) {
  try {
    body();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception&) {
  }
  return 0;
}

}  // namespace mambalm::fuzz
