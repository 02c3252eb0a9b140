// `mambalm prepare`: text documents -> tokenized Megatron indexed datasets, in parallel.
// Inputs: plain text or JSON Lines, plain or gzip/zstd-compressed (data/text_documents.h).
//
// Every document is encoded with the tokenizer (special-token text in documents is encoded as
// plain text, never as the special token) and followed by one end-of-document token. With a
// validation fraction F > 0, round(F * documents) documents (at least one) are chosen at random
// by the seed and written to PREFIX_valid.{bin,idx}, the rest to PREFIX_train.{bin,idx}; both
// keep the input order. With F = 0 everything goes to PREFIX.{bin,idx}. Input order is the
// sorted file list, then the order of documents inside each file, so the output depends only
// on the inputs, the tokenizer, F and the seed, never on the thread count.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/indexed_dataset.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::data {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files, directories or glob patterns
  std::string out_prefix;
  double valid_fraction = 0.01;
  uint64_t seed = 1234;
  int threads = 0;                  // 0 = every core
  bool split_paragraphs = false;    // plain text: one document per paragraph instead of per file
  std::vector<std::string> json_keys{"text"};  // JSON Lines fields of a document, joined by "\n\n"
  int32_t eod_id = -1;              // -1 = the tokenizer's eos_id()
  bool show_progress = true;        // a progress bar (terminal) or lines (log) on stderr
};

struct PrepareSummary {
  int64_t files = 0;
  int64_t documents = 0, train_documents = 0, valid_documents = 0;
  int64_t tokens = 0, train_tokens = 0, valid_tokens = 0;  // EOD tokens included
  int64_t text_bytes = 0;    // UTF-8 bytes of all documents
  int64_t output_bytes = 0;  // .bin + .idx bytes written
  double seconds = 0;        // wall time, from the first file read to the last rename
  int threads = 0;
  int32_t eod_id = -1;
  io::TokenDType dtype = io::TokenDType::U16;
  std::string train_prefix, valid_prefix;  // valid_prefix empty when F = 0
};

// Output prefixes for a prefix and a fraction: {PREFIX_train, PREFIX_valid} or {PREFIX, ""}.
std::pair<std::string, std::string> split_prefixes(const std::string& prefix, double valid_fraction);

// Which of `n` documents go to validation (1) or training (0); deterministic in the seed.
// Errors if F is outside [0, 1) or if the split would leave either side empty.
std::vector<uint8_t> choose_validation(int64_t n, double valid_fraction, uint64_t seed);

// The encoder must be safe to call from several threads at once (Tokenizer::encode is const).
PrepareSummary prepare_dataset(const Tokenizer& tokenizer, const PrepareOptions& options);

}  // namespace mambalm::data
