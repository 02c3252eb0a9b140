// Text inputs as people have them, for `prepare` and `tokenizer train`: lists of files,
// directories and glob patterns, each file plain or compressed with gzip or zstd.
//
// Compression is recognised by the file's first bytes (gzip 1F 8B, zstd 28 B5 2F FD), whatever
// its name; a name ending in .gz or .zst whose bytes are not that format is an error (a renamed
// or damaged file), as is a truncated or corrupt stream: one line naming the file, never a
// misleading "invalid UTF-8" from reading compressed bytes as text. Concatenated gzip members
// and zstd frames (what `cat a.gz b.gz` and `zstd` on several inputs write) are read in full.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mambalm::io {

enum class Compression { None, Gzip, Zstd };

// What the first bytes of a file say.
Compression detect_compression(std::string_view head);
const char* compression_name(Compression c);  // "plain", "gzip", "zstd"

// The name without a trailing .gz / .zst / .zstd (what the content is: "a.jsonl.gz" -> "a.jsonl").
std::string strip_compression_suffix(const std::string& path);

// The whole file, decompressed when it is compressed (`found`, when given, says how it was
// stored); errors name the path.
std::string read_input_file(const std::string& path, Compression* found = nullptr);

// Paths, directories (every regular file below, recursively, names starting with '.' skipped)
// and glob patterns (*, ?, [..]) -> sorted, de-duplicated files. A pattern that matches
// nothing, a missing path or an empty result is an error naming it (`option` says where the
// list came from, e.g. "--input").
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns, const std::string& option = "--input");

}  // namespace mambalm::io
