// An embedding table read from its file by row (embedding_file.h).
#include "model/embedding_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace mambalm {

EmbeddingFile::EmbeddingFile(const std::string& path, uint64_t offset, int64_t rows, int64_t cols, DType dtype)
    : path_(path), offset_(offset), rows_(rows), cols_(cols), dtype_(dtype) {
  check(dtype == DType::F32 || dtype == DType::BF16, path, "an embedding table read from the file is F32 or BF16, not " + dtype_name(dtype));
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  check(fd_ >= 0, path, std::string("cannot open for the embedding table: ") + std::strerror(errno));
}

EmbeddingFile::~EmbeddingFile() {
  if (fd_ >= 0) ::close(fd_);
}

void EmbeddingFile::lookup(const Tensor& ids, Tensor& y) const {
  const int64_t n = ids.numel();
  check(ids.dtype() == DType::I32 && y.dtype() == DType::F32 && y.numel() == n * cols_, "embedding",
        "ids I32 and out F32 [" + std::to_string(n) + ", " + std::to_string(cols_) + "] expected, out is " + shape_str(y.shape()));
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (id[i] < 0 || id[i] >= rows_)
      fail("op embedding", "token id " + std::to_string(id[i]) + " at flat position " + std::to_string(i) +
                               " is out of range for a table of " + std::to_string(rows_) + " rows",
           "the tokenizer and the model's vocab_size disagree");
  }
  const size_t row_bytes = static_cast<size_t>(cols_) * dtype_size(dtype_);
  std::vector<uint16_t> staged(dtype_ == DType::BF16 ? static_cast<size_t>(cols_) : 0);  // one BF16 row
  float* out = y.f32();
  for (int64_t i = 0; i < n; ++i) {
    float* row = out + i * cols_;  // [cols]
    auto* dst = dtype_ == DType::F32 ? static_cast<void*>(row) : static_cast<void*>(staged.data());
    const uint64_t at = offset_ + static_cast<uint64_t>(id[i]) * row_bytes;
    for (size_t done = 0; done < row_bytes;) {
      const ssize_t got = ::pread(fd_, static_cast<char*>(dst) + done, row_bytes - done, static_cast<off_t>(at + done));
      if (got < 0 && errno == EINTR) continue;
      check(got > 0, path_, "reading row " + std::to_string(id[i]) + " of the embedding table: " +
                                (got == 0 ? std::string("the file ends early") : std::string(std::strerror(errno))));
      done += static_cast<size_t>(got);
    }
    if (dtype_ == DType::BF16)
      for (int64_t d = 0; d < cols_; ++d) row[d] = bf16_to_f32(staged[static_cast<size_t>(d)]);
  }
}

}  // namespace mambalm
