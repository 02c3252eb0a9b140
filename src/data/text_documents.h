// Documents from text files, for `mambalm prepare`. Inputs are plain text or JSON Lines,
// chosen by file name: *.jsonl, *.ndjson and *.json are JSON Lines (one object per line; blank
// lines are skipped); everything else is plain text, one document per file, or with
// `split_paragraphs` one document per run of non-blank lines (a blank line is empty or only
// spaces, tabs and '\r'). A document's text is kept byte for byte: a whole file, a JSON string
// field, or a paragraph's lines joined by their own line breaks (the break after its last line
// is not part of it).
//
// JSON Lines documents are the string field "text" of each record, or the fields named by
// `json_keys` (prepare --json-key KEY, repeatable): with several keys, their values are joined in
// the order given by kJsonKeyJoiner, a blank line ("\n\n"), so `--json-key title --json-key text`
// makes "Title\n\nBody". Every key must be present and hold a string; an empty value is left out
// of the join, and a record whose keys are all empty is an error.
//
// Files may be compressed with gzip or zstd (io/input_files.h: recognised by their bytes; the
// format comes from the name without .gz/.zst, so a.jsonl.gz is JSON Lines).
//
// Scanning reads and checks every input before anything is tokenized, so bad input stops the
// run early: invalid UTF-8, empty files or documents, unreadable paths and malformed JSON are
// errors naming file, line and column. Nothing is silently dropped.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/input_files.h"
#include "io/json_lines.h"

namespace mambalm::data {

using io::kJsonKeyJoiner;  // between the values of several --json-key fields (io/json_lines.h)

enum class InputFormat { PlainText, JsonLines };

struct InputFile {
  std::string path;
  InputFormat format;
  io::Compression compression = io::Compression::None;
};

// Where one document's bytes are: for plain text the text itself, for JSON Lines the whole
// line (the text is its decoded key fields). Offsets are in the decompressed text.
struct DocumentRef {
  int32_t file;         // index into DocumentSet::files
  int64_t offset;       // byte offset in the file
  int64_t length;       // bytes
  int64_t line;         // 1-based line where it starts, for messages
  int64_t text_bytes;   // bytes of the document's text
};

// The decompressed texts of the two compressed files read last: documents of one file are
// loaded together (prepare goes through them in order; two entries so that threads at a file
// boundary do not evict each other's), so each file is decompressed about once while memory
// holds two files' text, not the corpus.
struct DecompressedFileCache {
  std::mutex mutex;
  std::pair<int32_t, std::shared_ptr<const std::string>> recent[2] = {{-1, nullptr}, {-1, nullptr}};  // [0] = newest
};

struct DocumentSet {
  std::vector<InputFile> files;
  std::vector<DocumentRef> documents;
  int64_t text_bytes = 0;  // sum over documents
  std::vector<std::string> json_keys{"text"};
  std::shared_ptr<DecompressedFileCache> cache = std::make_shared<DecompressedFileCache>();
};

// Files, directories and glob patterns -> sorted files (io/input_files.h).
using io::expand_inputs;

// By the name, a compression suffix (.gz, .zst) left out.
InputFormat format_for_path(const std::string& path);

// Reads and checks every file and indexes its documents (see the top of this file). `json_keys`:
// the JSON Lines fields that make a document (default "text").
DocumentSet scan_documents(const std::vector<std::string>& paths, bool split_paragraphs,
                           const std::vector<std::string>& json_keys = {"text"});

// The text of document `i`, read again from its file (safe from several threads at once).
std::string load_document(const DocumentSet& set, size_t i);

// Byte offset of the first invalid UTF-8 sequence in `text`, or -1 if it is valid (overlong
// forms, surrogates and code points past U+10FFFF are invalid).
int64_t find_invalid_utf8(std::string_view text);

}  // namespace mambalm::data
