// Whole-file writes that never leave a half-written file behind: the bytes go to
// `path + ".tmp-<pid>"`, are fsync'ed, renamed over `path`, and the directory is fsync'ed so
// the rename itself survives a crash. Readers of the old file (for example a memory mapping
// of model.safetensors) keep seeing the old bytes: rename swaps the name, not the inode.
#pragma once
#include <cstddef>
#include <string>

namespace mambalm::io {

// Streams a file through the tmp + fsync + rename + directory-fsync protocol, so multi-GB
// weight files need not be assembled in memory first.
class AtomicFileWriter {
 public:
  // Creates (truncates) the temporary file next to `path`.
  explicit AtomicFileWriter(const std::string& path);
  // Removes the temporary file unless commit() succeeded; never throws.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }
  // fsync, close, rename over the final path, fsync the directory.
  void commit();

  const std::string& path() const { return path_; }
  size_t bytes_written() const { return written_; }

 private:
  void discard() noexcept;

  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  size_t written_ = 0;
  bool committed_ = false;
  int live_slot_ = -1;  // this writer's entry in the signal-time cleanup list (atomic_file.cpp)
};

// Replaces `path` with `bytes` atomically (config.json, tokenizer files, small outputs).
void write_file_atomically(const std::string& path, const std::string& bytes);

// The whole file as a string; a clear error naming the path if it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace mambalm::io
