#include "io/torch/zip_archive.h"

#include <zip.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace mambalm::io::torch {

struct ZipArchive::Handle {
  zip_t* zip = nullptr;
  ~Handle() {
    if (zip) zip_discard(zip);  // read-only: nothing to write back
  }
};

namespace {

// Closes a zip_file_t on every path out of a read.
struct OpenEntry {
  zip_file_t* file = nullptr;
  ~OpenEntry() {
    if (file) zip_fclose(file);
  }
};

}  // namespace

std::unique_ptr<ZipArchive> ZipArchive::open(const std::string& path) {
  int code = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!zip)
    fail(path, "cannot open as a zip archive: " + libzip_error(code),
         "a PyTorch checkpoint (torch.save since 1.6) is a zip file; is it truncated or of the legacy format?");
  std::unique_ptr<ZipArchive> archive(new ZipArchive());
  archive->path_ = path;
  archive->handle_ = std::make_unique<Handle>();
  archive->handle_->zip = zip;
  const zip_int64_t n = zip_get_num_entries(zip, 0);
  if (n < 0) fail(path, "cannot list the zip entries");
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip, static_cast<zip_uint64_t>(i), 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
        !(st.valid & ZIP_STAT_SIZE))
      fail(path, "cannot read zip entry " + std::to_string(i) + ": " + zip_strerror(zip));
    archive->index_.emplace(st.name, i);
    archive->names_.emplace_back(st.name);
    archive->sizes_.push_back(st.size);
  }
  return archive;
}

ZipArchive::~ZipArchive() = default;

int64_t ZipArchive::index_of(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

bool ZipArchive::contains(const std::string& name) const { return index_of(name) >= 0; }

uint64_t ZipArchive::size(const std::string& name) const {
  const int64_t i = index_of(name);
  if (i < 0) fail(path_, "zip entry '" + name + "' is missing");
  return sizes_[static_cast<size_t>(i)];
}

std::string ZipArchive::read_all(const std::string& name, uint64_t max_bytes) const {
  const uint64_t n = size(name);
  if (n > max_bytes)
    fail(path_, "zip entry '" + name + "' is " + std::to_string(n) + " bytes, more than the " +
                    std::to_string(max_bytes) + " allowed");
  std::string bytes(static_cast<size_t>(n), '\0');
  read_range(name, 0, n, bytes.data());
  return bytes;
}

void ZipArchive::read_range(const std::string& name, uint64_t offset, uint64_t length, void* out) const {
  const int64_t i = index_of(name);
  if (i < 0) fail(path_, "zip entry '" + name + "' is missing");
  const uint64_t n = sizes_[static_cast<size_t>(i)];
  if (offset > n || length > n - offset)
    fail(path_, "bytes [" + std::to_string(offset) + ", " + std::to_string(offset) + " + " + std::to_string(length) +
                    ") lie outside zip entry '" + name + "' of " + std::to_string(n) + " bytes");
  if (length == 0) return;
  zip_t* zip = handle_->zip;
  OpenEntry entry;
  entry.file = zip_fopen_index(zip, static_cast<zip_uint64_t>(i), 0);
  if (!entry.file) fail(path_, "cannot open zip entry '" + name + "': " + zip_strerror(zip));
  if (offset > 0 && zip_fseek(entry.file, static_cast<zip_int64_t>(offset), SEEK_SET) != 0) {
    // Compressed entries cannot seek in libzip: read and drop the bytes before `offset`.
    zip_fclose(entry.file);
    entry.file = zip_fopen_index(zip, static_cast<zip_uint64_t>(i), 0);
    if (!entry.file) fail(path_, "cannot open zip entry '" + name + "': " + zip_strerror(zip));
    std::vector<char> skip(1 << 16);
    for (uint64_t left = offset; left > 0;) {
      const uint64_t step = std::min<uint64_t>(left, skip.size());
      const zip_int64_t got = zip_fread(entry.file, skip.data(), step);
      if (got <= 0) fail(path_, "zip entry '" + name + "' ends early: " + zip_file_strerror(entry.file));
      left -= static_cast<uint64_t>(got);
    }
  }
  char* dst = static_cast<char*>(out);
  for (uint64_t done = 0; done < length;) {
    const zip_int64_t got = zip_fread(entry.file, dst + done, length - done);
    if (got <= 0)
      fail(path_, "zip entry '" + name + "' ends early or is damaged after " + std::to_string(offset + done) +
                      " bytes: " + zip_file_strerror(entry.file));
    done += static_cast<uint64_t>(got);
  }
}

std::string libzip_error(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

}  // namespace mambalm::io::torch
