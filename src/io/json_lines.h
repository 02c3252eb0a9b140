// JSON Lines inputs (*.jsonl, *.ndjson, *.json; compressed or not): one JSON object per line,
// the document text in named string fields. Shared by prepare (data/text_documents.h) and
// tokenizer training (tokenizer/train_sentencepiece.h) so that both read the same text.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mambalm::io {

// Between the values of several --json-key fields of one record.
inline constexpr const char* kJsonKeyJoiner = "\n\n";

// By the file name, a compression suffix (.gz, .zst) left out.
bool is_json_lines_path(const std::string& path);

// The document of one record: its `keys` string fields joined by kJsonKeyJoiner (empty values
// skipped). A malformed line, a missing or non-string field, or an empty document is a one-line
// error naming `where` (path:LINE).
std::string json_record_text(const std::string& where, std::string_view line, const std::vector<std::string>& keys);

// The documents of a whole JSON Lines file, each followed by '\n' (blank lines skipped).
std::string json_lines_text(const std::string& path, std::string_view file_text, const std::vector<std::string>& keys);

}  // namespace mambalm::io
