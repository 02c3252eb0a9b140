#include "io/fingerprint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/hex.h"

namespace mambalm::io {

namespace {

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
};

// Hashes bytes [offset, offset + n) of fd.
void add_range(Fnv1a& f, int fd, int64_t offset, int64_t n, const std::string& path) {
  std::vector<unsigned char> buf(static_cast<size_t>(std::min<int64_t>(n, 1 << 16)));
  while (n > 0) {
    const ssize_t got = ::pread(fd, buf.data(), static_cast<size_t>(std::min<int64_t>(n, static_cast<int64_t>(buf.size()))), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) fail(path, std::string("read failed: ") + (got < 0 ? std::strerror(errno) : "file shrank"));
    f.add(buf.data(), static_cast<size_t>(got));
    offset += got;
    n -= got;
  }
}

}  // namespace

std::string file_fingerprint(const std::string& path, int64_t sample) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const int64_t size = st.st_size;
  Fnv1a f;
  f.add(reinterpret_cast<const unsigned char*>(&size), sizeof size);
  try {
    if (size <= 2 * sample) {
      add_range(f, fd, 0, size, path);
    } else {
      add_range(f, fd, 0, sample, path);
      add_range(f, fd, size - sample, sample, path);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return hex16(f.h);
}

}  // namespace mambalm::io
