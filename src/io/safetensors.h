// The safetensors weight format (Hugging Face): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
// the raw little-endian tensor bytes. Files are memory-mapped and validated completely before
// any tensor is handed out, so a truncated or hostile file is an Error, never a crash.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/atomic_file.h"

namespace mambalm::io {

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates header, dtypes, shapes and offsets. Errors start with
  // the path and name the tensor and field at fault.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  // Tensor names in data-offset order (the order their bytes appear in the file).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // A CPU view of the mapped bytes in the file's dtype. The view keeps the mapping alive, so
  // it stays valid after this object is gone. The mapping is read-only: clone() before
  // writing. (A tensor whose offset is not a multiple of its element size, which only
  // non-standard writers produce, is copied instead so that element access stays aligned.)
  Tensor tensor(const std::string& name) const;
  DType dtype_of(const std::string& name) const;
  const Shape& shape_of(const std::string& name) const;
  // Drops this process's mapped pages of `name` (madvise MADV_DONTNEED) once the tensor has been
  // copied or converted: the pages read stop counting in the process's resident memory (loading
  // an 8B bf16 file as Q8 otherwise peaks at the file plus the Q8 copy). Views stay valid: a
  // later read faults the pages back in from the file (the page cache, usually).
  void release(const std::string& name) const;
  // The same for bytes [first, end) of the tensor's data (a block just converted or checked).
  void release(const std::string& name, uint64_t first, uint64_t end) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  // Where the tensor's bytes begin in the file (the header's length and its data offset).
  uint64_t file_offset_of(const std::string& name) const { return data_start_ + entry(name).begin; }
  size_t file_size() const;

 private:
  struct Mapping;
  struct Entry {
    DType dtype;
    Shape shape;
    uint64_t begin;  // byte offsets into the data section
    uint64_t end;
  };
  SafetensorsFile() = default;
  const Entry& entry(const std::string& name) const;

  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::map<std::string, Entry> entries_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` in the given order, each in its own dtype, header padded with spaces to a
// multiple of 8 bytes, atomically (tmp file + fsync + rename + directory fsync). Tensors must
// be defined CPU tensors with unique names; "__metadata__" is reserved.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// What a safetensors header declares about one tensor.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
};

// Writes a safetensors file tensor by tensor, for files larger than memory: the header (the
// same bytes write_safetensors makes for these entries) goes out first, then the caller
// appends the tensors' bytes in entry order, in pieces of any size. Atomic like
// write_safetensors: nothing appears at `path` until commit(), which checks that exactly the
// declared bytes arrived.
class SafetensorsStreamWriter {
 public:
  SafetensorsStreamWriter(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                          const std::map<std::string, std::string>& metadata = {});
  void write(const void* data, size_t bytes);
  void commit();
  uint64_t data_bytes() const { return data_bytes_; }  // all tensors together
  uint64_t data_written() const { return data_written_; }

 private:
  std::string path_;
  AtomicFileWriter out_;
  uint64_t data_bytes_ = 0, data_written_ = 0;
};

// "F32" -> DType::F32 etc.; false for spellings mambalm does not load (F8_E4M3, I8, BOOL, ...).
bool parse_safetensors_dtype(const std::string& name, DType* out);

}  // namespace mambalm::io
