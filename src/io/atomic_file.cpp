#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/error.h"

namespace mambalm::io {

namespace {

std::string errno_text() { return std::strerror(errno); }

// The directory holding `path` ("." for a bare file name), whose entry the rename changes.
std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void fsync_directory(const std::string& dir, const std::string& path) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open directory '" + dir + "' to fsync it: " + errno_text());
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  // Some file systems (and /proc-like mounts) do not support fsync on directories; the data
  // itself is already durable, so only real I/O errors are reported.
  if (rc != 0 && saved != EINVAL && saved != ENOTSUP)
    fail(path, std::string("fsync of directory '") + dir + "' failed: " + std::strerror(saved));
}

// Temporary files of writers in flight, for a SIGINT/SIGTERM/SIGHUP that ends the process before
// their destructors run (`init` of a multi-GB model killed mid-write would otherwise leave its
// .tmp-<pid> file). Fixed slots of plain bytes: the handler may only call async-signal-safe
// functions (unlink, signal, raise). The handler is installed only where the signal still has
// its default action, so the trainer's own handler (which saves a checkpoint) is left alone.
constexpr int kLiveSlots = 8;
constexpr size_t kLivePath = 4096;
char g_live_path[kLiveSlots][kLivePath];
volatile sig_atomic_t g_live_used[kLiveSlots];

extern "C" void unlink_live_and_reraise(int sig) {
  for (int i = 0; i < kLiveSlots; ++i)
    if (g_live_used[i]) ::unlink(g_live_path[i]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_cleanup_handlers() {
  static const bool installed = [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) std::signal(sig, unlink_live_and_reraise);
    }
    return true;
  }();
  (void)installed;
}

// The slot now holding `tmp` (-1 when all are taken or the path is too long: then only the
// destructor cleans up, as before).
int register_live(const std::string& tmp) {
  install_cleanup_handlers();
  if (tmp.size() >= kLivePath) return -1;
  for (int i = 0; i < kLiveSlots; ++i)
    if (!g_live_used[i]) {
      std::memcpy(g_live_path[i], tmp.c_str(), tmp.size() + 1);
      g_live_used[i] = 1;  // after the path is complete
      return i;
    }
  return -1;
}

void unregister_live(int slot) {
  if (slot >= 0) g_live_used[slot] = 0;
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_path_(path + ".tmp-" + std::to_string(::getpid())) {
  check(!path.empty(), "write", "empty output path");
  // Registered before the file exists: a signal between open and registration would otherwise
  // leave the file behind (unlinking a name not yet created is harmless).
  live_slot_ = register_live(tmp_path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const std::string why = errno_text();
    unregister_live(live_slot_);
    live_slot_ = -1;
    fail(path_, "cannot create temporary file '" + tmp_path_ + "': " + why,
         "does the directory exist and is it writable?");
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) discard();
  unregister_live(live_slot_);
}

void AtomicFileWriter::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  ::unlink(tmp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  check(fd_ >= 0 && !committed_, path_, "write after commit or failure");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    // Linux caps one write at ~2 GiB; larger tensors go in pieces.
    size_t chunk = bytes < (size_t{1} << 30) ? bytes : (size_t{1} << 30);
    ssize_t n = ::write(fd_, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string why = errno_text();
      discard();
      fail(path_, "write to '" + tmp_path_ + "' failed after " + std::to_string(written_) +
                      " bytes: " + why, "disk full?");
    }
    p += n;
    bytes -= static_cast<size_t>(n);
    written_ += static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  check(fd_ >= 0 && !committed_, path_, "commit after commit or failure");
  if (::fsync(fd_) != 0) {
    std::string why = errno_text();
    discard();
    fail(path_, "fsync of '" + tmp_path_ + "' failed: " + why);
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    std::string why = errno_text();
    discard();
    fail(path_, "close of '" + tmp_path_ + "' failed: " + why);
  }
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    std::string why = errno_text();
    discard();
    fail(path_, "cannot rename '" + tmp_path_ + "' over it: " + why,
         "is the path a directory, or on another file system?");
  }
  committed_ = true;
  unregister_live(live_slot_);  // the temporary name is gone: nothing to clean up any more
  live_slot_ = -1;
  fsync_directory(parent_dir(path_), path_);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  AtomicFileWriter w(path);
  w.write(bytes);
  w.commit();
}

std::string read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open for reading: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file", "expected a file, found a directory or device");
  }
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string why = errno_text();
      ::close(fd);
      fail(path, "read failed: " + why);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace mambalm::io
