// A cheap identity of a file's contents, for telling whether a run directory, a model and a
// dataset still belong together: a 64-bit FNV-1a hash over the size and the first and last
// `sample` bytes (whole small files). Not cryptographic; it separates different files, it does
// not defend against crafted ones.
#pragma once
#include <cstdint>
#include <string>

namespace mambalm::io {

// 16 hex digits; an Error naming the path when it cannot be read.
std::string file_fingerprint(const std::string& path, int64_t sample = int64_t{1} << 20);

}  // namespace mambalm::io
