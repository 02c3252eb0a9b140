// An untied embedding table read from the weights file row by row (pread), never mapped, for CPU
// inference (Model::load_for_inference). The table is only looked up, one row a token, but a
// mapped row brings the whole page-cache folio around it into the process: up to 2 MiB on a
// kernel with large folios, and 100 random rows of llama-134m's F32 table put 57 MB of it in the
// resident set (bench/NOTES.md). Read this way the file's pages stay in the page cache, outside
// the process's memory, and the table costs nothing resident however large (the 8B hybrid's is
// 256,000 x 4,096).
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace mambalm {

class EmbeddingFile {
 public:
  // The [rows, cols] table of dtype F32 or BF16 at byte `offset` of `path`. The file is opened
  // now, so a file replaced later (a checkpoint saved over it) still reads as loaded.
  EmbeddingFile(const std::string& path, uint64_t offset, int64_t rows, int64_t cols, DType dtype);
  ~EmbeddingFile();
  EmbeddingFile(const EmbeddingFile&) = delete;
  EmbeddingFile& operator=(const EmbeddingFile&) = delete;

  // y [n, cols] F32 = the rows of ids (I32 [..], n values), widened; what ops::embedding does on
  // the table, with the same error for an id out of range and one naming the file if it cannot
  // be read.
  void lookup(const Tensor& ids, Tensor& y) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t offset_;
  int64_t rows_, cols_;
  DType dtype_;
};

}  // namespace mambalm
