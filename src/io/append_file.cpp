#include "io/append_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace mambalm::io {

AppendFile::AppendFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path, std::string("cannot open for appending: ") + std::strerror(errno), "is the directory writable?");
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::write_line(const std::string& line) { write_record(line + "\n"); }

void AppendFile::write_record(const std::string& bytes) {
  struct stat st {};
  const bool sized = ::fstat(fd_, &st) == 0;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? std::strerror(errno) : "no progress";
      // A partly written record is cut off again, so the file ends with a whole one.
      if (done > 0 && sized && S_ISREG(st.st_mode) && ::ftruncate(fd_, st.st_size) != 0) {
      }
      fail(path_, "write failed: " + why, "disk full? what was written before is intact");
    }
    done += static_cast<size_t>(n);
  }
}

void AppendFile::sync() {
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != ENOTSUP)
    fail(path_, std::string("fsync failed: ") + std::strerror(errno), "disk full or failing?");
}

}  // namespace mambalm::io
