#include "data/prepare.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <tuple>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/text_documents.h"

namespace mambalm::data {

namespace {

// A batch is tokenized in parallel and then written in order; these bounds keep memory small
// while giving every thread many documents to balance over.
constexpr int64_t kBatchBytes = int64_t{8} << 20;
constexpr size_t kBatchDocuments = 4096;

int64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

}  // namespace

std::pair<std::string, std::string> split_prefixes(const std::string& prefix, double valid_fraction) {
  if (valid_fraction <= 0) return {prefix, ""};
  return {prefix + "_train", prefix + "_valid"};
}

std::vector<uint8_t> choose_validation(int64_t n, double valid_fraction, uint64_t seed) {
  check(valid_fraction >= 0 && valid_fraction < 1, "--valid-fraction",
        "must be in [0, 1), got " + std::to_string(valid_fraction));
  std::vector<uint8_t> valid(static_cast<size_t>(n), 0);
  if (valid_fraction == 0) return valid;
  const int64_t k = std::max<int64_t>(1, std::llround(valid_fraction * static_cast<double>(n)));
  check(k < n, "--valid-fraction",
        "a fraction of " + std::to_string(valid_fraction) + " of " + std::to_string(n) +
            " documents leaves no training document",
        "use more documents, a smaller fraction, or --valid-fraction 0");
  // The first k entries of a seeded Fisher-Yates shuffle: portable, unlike std::shuffle.
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  Rng rng(seed);
  for (int64_t i = 0; i < k; ++i) {
    const uint64_t span = static_cast<uint64_t>(n - i);
    const int64_t j = i + static_cast<int64_t>(
                              (static_cast<unsigned __int128>(rng.next_u64()) * span) >> 64);
    std::swap(order[i], order[j]);
    valid[static_cast<size_t>(order[i])] = 1;
  }
  return valid;
}

PrepareSummary prepare_dataset(const Tokenizer& tokenizer, const PrepareOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  check(!opt.out_prefix.empty(), "--out", "empty output prefix");
  check(opt.threads >= 0, "--threads", "must be >= 0");
  check(opt.valid_fraction >= 0 && opt.valid_fraction < 1, "--valid-fraction",
        "must be in [0, 1), got " + std::to_string(opt.valid_fraction));
  PrepareSummary s;
  s.threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  s.eod_id = opt.eod_id >= 0 ? opt.eod_id : tokenizer.eos_id();
  const int64_t vocab = tokenizer.vocab_size();
  check(s.eod_id >= 0, "--tokenizer",
        "the " + tokenizer.kind() + " tokenizer has no end-of-sequence token to end documents with",
        "pass --eod-id ID");
  check(s.eod_id < vocab, "--eod-id",
        "id " + std::to_string(s.eod_id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");

  // Read and check every input before any output exists.
  const std::vector<std::string> paths = expand_inputs(opt.inputs);
  const DocumentSet set = scan_documents(paths, opt.split_paragraphs, opt.json_keys);
  const int64_t n = static_cast<int64_t>(set.documents.size());
  const std::vector<uint8_t> is_valid = choose_validation(n, opt.valid_fraction, opt.seed);
  s.files = static_cast<int64_t>(paths.size());
  s.documents = n;
  s.text_bytes = set.text_bytes;

  std::tie(s.train_prefix, s.valid_prefix) = split_prefixes(opt.out_prefix, opt.valid_fraction);
  const std::filesystem::path parent = std::filesystem::path(opt.out_prefix).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    check(!ec, parent.string(), "cannot create the output directory: " + ec.message());
  }
  io::IndexedDatasetWriter train(s.train_prefix, vocab);
  std::optional<io::IndexedDatasetWriter> valid;
  if (!s.valid_prefix.empty()) valid.emplace(s.valid_prefix, vocab);
  s.dtype = train.dtype();

  std::optional<Progress> progress;
  if (opt.show_progress) progress.emplace("prepare", set.text_bytes);
  std::atomic<int64_t> encoded_bytes{0};  // across threads, for the progress report
  std::vector<std::vector<int32_t>> tokens;
  for (int64_t first = 0; first < n;) {
    int64_t last = first, bytes = 0;
    while (last < n && (last == first || (bytes < kBatchBytes &&
                                          static_cast<size_t>(last - first) < kBatchDocuments)))
      bytes += set.documents[static_cast<size_t>(last++)].text_bytes;
    const int64_t count = last - first;
    tokens.assign(static_cast<size_t>(count), {});

    // Exceptions must not leave an OpenMP region: keep the first failure (lowest document).
    std::string error;
    int64_t error_doc = n;
#pragma omp parallel for schedule(dynamic, 1) num_threads(s.threads)
    for (int64_t i = 0; i < count; ++i) {
      const size_t d = static_cast<size_t>(first + i);
      try {
        const std::string text = load_document(set, d);
        std::vector<int32_t> ids = tokenizer.encode(text, /*allow_special=*/false);
        ids.push_back(s.eod_id);
        tokens[static_cast<size_t>(i)] = std::move(ids);
        const int64_t so_far = encoded_bytes += set.documents[d].text_bytes;
        // Only the master thread draws (Progress is not thread-safe); it also draws below.
        if (progress && omp_get_thread_num() == 0) progress->update(so_far);
      } catch (const std::exception& e) {
        const DocumentRef& ref = set.documents[d];
#pragma omp critical(mambalm_prepare_error)
        if (static_cast<int64_t>(d) < error_doc) {
          error_doc = static_cast<int64_t>(d);
          error = set.files[static_cast<size_t>(ref.file)].path + ":" + std::to_string(ref.line) +
                  ": cannot tokenize document: " + e.what();
        }
      }
    }
    if (!error.empty()) throw Error(error);
    if (progress) progress->update(encoded_bytes.load());

    for (int64_t i = 0; i < count; ++i) {
      const size_t d = static_cast<size_t>(first + i);
      const std::vector<int32_t>& ids = tokens[static_cast<size_t>(i)];
      try {
        if (is_valid[d]) {
          valid->add_document(ids);
          s.valid_tokens += static_cast<int64_t>(ids.size());
          ++s.valid_documents;
        } else {
          train.add_document(ids);
          s.train_tokens += static_cast<int64_t>(ids.size());
          ++s.train_documents;
        }
      } catch (const Error& e) {
        const DocumentRef& ref = set.documents[d];
        throw Error(set.files[static_cast<size_t>(ref.file)].path + ":" + std::to_string(ref.line) +
                    ": " + e.what());
      }
    }
    first = last;
  }
  train.finish();
  if (valid) valid->finish();
  if (progress) progress->finish();

  s.tokens = s.train_tokens + s.valid_tokens;
  for (const std::string& p : {s.train_prefix, s.valid_prefix})
    if (!p.empty()) s.output_bytes += file_size_or_zero(p + ".bin") + file_size_or_zero(p + ".idx");
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace mambalm::data
