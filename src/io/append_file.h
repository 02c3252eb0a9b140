// A log file that grows by whole lines (metrics.jsonl) or whole records (TensorBoard event
// files, io/tensorboard_events.h), every write checked: on a full disk or
// any other I/O error the writer throws naming the file, instead of the run going on with a
// log that silently stops (std::ofstream only sets a flag nobody reads).
#pragma once
#include <string>

namespace mambalm::io {

class AppendFile {
 public:
  // Opens (creating if needed) `path` for appending.
  explicit AppendFile(const std::string& path);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Appends `line` and a newline in one write(); throws on any error or short write.
  void write_line(const std::string& line);
  // Appends `bytes` whole (a binary record); on an error the partial write is cut off again.
  void write_record(const std::string& bytes);
  // fsync: the lines written so far survive a crash of the machine.
  void sync();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace mambalm::io
