// Documents from text files, for `mambalm prepare`. Inputs are plain text or JSON Lines,
// chosen by file name: *.jsonl, *.ndjson and *.json are JSON Lines (one object per line with a
// string field "text"; blank lines are skipped); everything else is plain text, one document
// per file, or with `split_paragraphs` one document per run of non-blank lines (a blank line is
// empty or only spaces, tabs and '\r'). A document's text is kept byte for byte: a whole file,
// a JSON "text" value, or a paragraph's lines joined by their own line breaks (the break after
// its last line is not part of it).
//
// Scanning reads and checks every input before anything is tokenized, so bad input stops the
// run early: invalid UTF-8, empty files or documents, unreadable paths and malformed JSON are
// errors naming file, line and column. Nothing is silently dropped.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mambalm::data {

enum class InputFormat { PlainText, JsonLines };

struct InputFile {
  std::string path;
  InputFormat format;
};

// Where one document's bytes are: for plain text the text itself, for JSON Lines the whole
// line (the text is its decoded "text" field).
struct DocumentRef {
  int32_t file;         // index into DocumentSet::files
  int64_t offset;       // byte offset in the file
  int64_t length;       // bytes
  int64_t line;         // 1-based line where it starts, for messages
  int64_t text_bytes;   // bytes of the document's text
};

struct DocumentSet {
  std::vector<InputFile> files;
  std::vector<DocumentRef> documents;
  int64_t text_bytes = 0;  // sum over documents
};

// Paths, directories (every regular file below, recursively, names starting with '.' skipped)
// and glob patterns (*, ?, [..]) -> sorted, de-duplicated files. A pattern that matches
// nothing, a missing path or an empty result is an error naming it.
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns);

InputFormat format_for_path(const std::string& path);

// Reads and checks every file and indexes its documents (see the top of this file).
DocumentSet scan_documents(const std::vector<std::string>& paths, bool split_paragraphs);

// The text of document `i`, read again from its file.
std::string load_document(const DocumentSet& set, size_t i);

// Byte offset of the first invalid UTF-8 sequence in `text`, or -1 if it is valid (overlong
// forms, surrogates and code points past U+10FFFF are invalid).
int64_t find_invalid_utf8(std::string_view text);

}  // namespace mambalm::data
