// A read-only zip archive (Debian's libzip underneath): the container of PyTorch checkpoint
// files. Entries are looked up by name and read whole or by byte range; every range is checked
// against the entry's size before any byte is read, so a hostile archive is an Error, not a crash.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace mambalm::io::torch {

class ZipArchive {
 public:
  // Opens `path` read-only and checks the central directory for consistency (a truncated or
  // damaged archive fails here, naming the path and libzip's reason).
  static std::unique_ptr<ZipArchive> open(const std::string& path);
  ~ZipArchive();
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  const std::string& path() const { return path_; }
  // Entry names in the order of the central directory.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const;
  // Uncompressed size in bytes; Error when the entry is missing.
  uint64_t size(const std::string& name) const;
  // The whole entry, refused when it is larger than `max_bytes`.
  std::string read_all(const std::string& name, uint64_t max_bytes) const;
  // Bytes [offset, offset + length) of the entry into `out` (which holds `length` bytes);
  // Error when the range does not lie inside the entry.
  void read_range(const std::string& name, uint64_t offset, uint64_t length, void* out) const;

 private:
  struct Handle;
  ZipArchive() = default;
  int64_t index_of(const std::string& name) const;

  std::string path_;
  std::unique_ptr<Handle> handle_;
  std::vector<std::string> names_;
  std::vector<uint64_t> sizes_;
  std::unordered_map<std::string, int64_t> index_;  // name -> entry (the first, if repeated)
};

// libzip's text for one of its error codes.
std::string libzip_error(int code);

}  // namespace mambalm::io::torch
