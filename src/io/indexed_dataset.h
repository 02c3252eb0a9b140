// Megatron-LM's indexed token dataset ("MMIDIDX", version 1): `PREFIX.bin` holds the token ids
// of every document back to back; `PREFIX.idx` holds a 34-byte header, then per sequence its
// length (int32) and byte offset into .bin (int64), then the document boundaries (int64
// sequence indices, starting with 0). Megatron's IndexedDataset reads these files as they are;
// the byte layout is in docs/file-formats.md. mambalm writes one sequence per document.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace mambalm::io {

// Megatron's DType codes (megatron/core/datasets/indexed_dataset.py). Only integer codes are
// valid for token data; float codes are rejected by the reader.
enum class TokenDType : uint8_t {
  U8 = 1, I8 = 2, I16 = 3, I32 = 4, I64 = 5, F64 = 6, F32 = 7, U16 = 8,
};
// Bytes per element of a dtype code.
int64_t token_dtype_size(TokenDType t);
const char* token_dtype_name(TokenDType t);
// Megatron's choice: uint16 when the vocabulary has fewer than 65500 entries, else int32.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

inline constexpr char kIndexMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
inline constexpr int64_t kIndexHeaderBytes = 34;  // magic 9 + version 8 + dtype 1 + 2 counts 8

// Streams documents into PREFIX.bin and writes PREFIX.idx at finish(). Both files are written
// under temporary names and renamed into place only by finish(), so an interrupted run never
// leaves a dataset that looks complete. Not thread-safe: one writer per thread.
class IndexedDatasetWriter {
 public:
  // Token ids must lie in [0, vocab_size); the dtype follows token_dtype_for_vocab().
  IndexedDatasetWriter(const std::string& prefix, int64_t vocab_size);
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // Appends one document (one sequence). An id outside [0, vocab_size) is an error naming the
  // document number and position; nothing of that document is written then.
  void add_document(std::span<const int32_t> tokens);
  // Flushes .bin, writes .idx, renames both into place. Nothing may be added afterwards.
  void finish();

  TokenDType dtype() const { return dtype_; }
  int64_t document_count() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t token_count() const { return tokens_; }
  const std::string& prefix() const { return prefix_; }

 private:
  struct Files;
  void flush();

  std::string prefix_;
  int64_t vocab_size_;
  TokenDType dtype_;
  std::unique_ptr<Files> files_;
  std::vector<char> buffer_;       // pending .bin bytes
  std::vector<int32_t> lengths_;   // tokens per sequence (= per document)
  int64_t tokens_ = 0;
  bool finished_ = false;
};

// A memory-mapped, fully validated dataset. Opening checks the magic, version, dtype code,
// that every array fits the .idx length, that document indices start at 0, never decrease and
// end at the sequence count, and that every sequence lies inside .bin and is aligned; errors
// name the file and the field at fault.
class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(IndexedDataset&&) noexcept;
  IndexedDataset& operator=(IndexedDataset&&) noexcept;

  TokenDType dtype() const { return dtype_; }
  int64_t sequence_count() const { return sequence_count_; }
  // Documents as Megatron counts them: document_indices has document_count() + 1 entries.
  int64_t document_count() const { return static_cast<int64_t>(document_indices_.size()) - 1; }
  int64_t total_tokens() const { return total_tokens_; }

  int64_t sequence_length(int64_t i) const;
  int64_t sequence_pointer(int64_t i) const;  // byte offset into .bin
  // Sequence index range [first, last) of document d.
  int64_t document_first_sequence(int64_t d) const;
  int64_t document_end_sequence(int64_t d) const;

  // The tokens of sequence i / of document d (all its sequences concatenated), widened to int32.
  std::vector<int32_t> sequence_tokens(int64_t i) const;
  std::vector<int32_t> document_tokens(int64_t d) const;

  const std::string& prefix() const { return prefix_; }

 private:
  struct Mapping;
  std::string prefix_;
  std::unique_ptr<Mapping> idx_, bin_;
  TokenDType dtype_ = TokenDType::U16;
  int64_t sequence_count_ = 0;
  int64_t total_tokens_ = 0;
  const unsigned char* lengths_ = nullptr;   // int32[sequence_count], possibly unaligned
  const unsigned char* pointers_ = nullptr;  // int64[sequence_count], possibly unaligned
  std::vector<int64_t> document_indices_;
};

}  // namespace mambalm::io
