#include "data/text_documents.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/json_lines.h"

namespace mambalm::data {

namespace fs = std::filesystem;

namespace {

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// "path:LINE:COL" for the byte at `offset` of `text`.
std::string position(const std::string& path, std::string_view text, size_t offset) {
  size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  size_t line_start = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  size_t column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
  return path + ":" + std::to_string(line) + ":" + std::to_string(column);
}

void check_utf8(const std::string& path, std::string_view text) {
  int64_t bad = find_invalid_utf8(text);
  if (bad >= 0) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[bad]));
    fail(position(path, text, static_cast<size_t>(bad)),
         "invalid UTF-8 (byte " + std::string(hex) + " at file offset " + std::to_string(bad) + ")",
         "convert the file to UTF-8, e.g. with iconv");
  }
}

void scan_plain(const std::string& path, int32_t file, std::string_view text, bool split_paragraphs,
                std::vector<DocumentRef>& out) {
  if (!split_paragraphs) {
    check(text.find_first_not_of(" \t\r\n\f\v") != std::string_view::npos, path + ":1",
          "file contains only whitespace, no document");
    int64_t n = static_cast<int64_t>(text.size());
    out.push_back({file, 0, n, 1, n});
    return;
  }
  size_t pos = 0, line = 1;
  int64_t start = -1, start_line = 0, end = 0;
  const size_t before = out.size();
  auto close_paragraph = [&] {
    if (start >= 0) out.push_back({file, start, end - start, start_line, end - start});
    start = -1;
  };
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t stop = nl == std::string_view::npos ? text.size() : nl;
    std::string_view l = text.substr(pos, stop - pos);
    if (is_blank(l)) {
      close_paragraph();
    } else {
      if (start < 0) {
        start = static_cast<int64_t>(pos);
        start_line = static_cast<int64_t>(line);
      }
      end = static_cast<int64_t>(stop);
      if (stop > pos && text[stop - 1] == '\r') --end;  // a CRLF's '\r' ends no document
    }
    pos = stop + 1;
    ++line;
  }
  close_paragraph();
  check(out.size() > before, path + ":1", "file contains only whitespace, no paragraph");
}

void scan_jsonl(const std::string& path, int32_t file, std::string_view text, const std::vector<std::string>& keys,
                std::vector<DocumentRef>& out) {
  size_t pos = 0, line = 1;
  const size_t before = out.size();
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t stop = nl == std::string_view::npos ? text.size() : nl;
    std::string_view l = text.substr(pos, stop - pos);
    if (!is_blank(l)) {
      std::string t = io::json_record_text(path + ":" + std::to_string(line), l, keys);
      out.push_back({file, static_cast<int64_t>(pos), static_cast<int64_t>(l.size()),
                     static_cast<int64_t>(line), static_cast<int64_t>(t.size())});
    }
    pos = stop + 1;
    ++line;
  }
  check(out.size() > before, path + ":1", "no JSON Lines record in the file");
}

std::string read_range(const std::string& path, int64_t offset, int64_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
  std::string out(static_cast<size_t>(length), '\0');
  int64_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + got, static_cast<size_t>(length - got), offset + got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = n < 0 ? std::strerror(errno) : "file shrank since it was scanned";
      ::close(fd);
      fail(path, "read of bytes " + std::to_string(offset) + ".." + std::to_string(offset + length) +
                     " failed: " + why);
    }
    got += n;
  }
  ::close(fd);
  return out;
}

}  // namespace

int64_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return static_cast<int64_t>(i);  // continuation byte, overlong 0xC0/0xC1, or > 0xF4
    }
    if (i + len > n) return static_cast<int64_t>(i);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

InputFormat format_for_path(const std::string& path) {
  return io::is_json_lines_path(path) ? InputFormat::JsonLines : InputFormat::PlainText;
}

DocumentSet scan_documents(const std::vector<std::string>& paths, bool split_paragraphs,
                           const std::vector<std::string>& json_keys) {
  DocumentSet set;
  check(!json_keys.empty(), "--json-key", "no JSON field named");
  for (const std::string& key : json_keys) check(!key.empty(), "--json-key", "empty field name");
  set.json_keys = json_keys;
  check(paths.size() < static_cast<size_t>(INT32_MAX), "--input", "too many files");
  for (const std::string& path : paths) {
    const int32_t file = static_cast<int32_t>(set.files.size());
    const InputFormat format = format_for_path(path);
    io::Compression compression = io::Compression::None;
    const std::string text = io::read_input_file(path, &compression);
    set.files.push_back({path, format, compression});
    check(!text.empty(), path, "file is empty", "remove it from the input; empty documents are not allowed");
    check_utf8(path, text);
    if (format == InputFormat::JsonLines)
      scan_jsonl(path, file, text, json_keys, set.documents);
    else
      scan_plain(path, file, text, split_paragraphs, set.documents);
  }
  for (const DocumentRef& d : set.documents) set.text_bytes += d.text_bytes;
  return set;
}

std::string load_document(const DocumentSet& set, size_t i) {
  check(i < set.documents.size(), "load_document", "document " + std::to_string(i) + " out of range");
  const DocumentRef& d = set.documents[i];
  const InputFile& f = set.files[static_cast<size_t>(d.file)];
  std::string bytes;
  if (f.compression == io::Compression::None) {
    bytes = read_range(f.path, d.offset, d.length);
  } else {
    std::shared_ptr<const std::string> text;
    {
      auto& recent = set.cache->recent;
      std::lock_guard<std::mutex> lock(set.cache->mutex);
      if (recent[1].first == d.file) std::swap(recent[0], recent[1]);
      if (recent[0].first != d.file) {
        recent[1] = std::move(recent[0]);  // the older one is dropped
        recent[0] = {d.file, std::make_shared<const std::string>(io::read_input_file(f.path))};
      }
      text = recent[0].second;
    }
    check(static_cast<uint64_t>(d.offset) + static_cast<uint64_t>(d.length) <= text->size(), f.path,
          "file changed since it was scanned");
    bytes = text->substr(static_cast<size_t>(d.offset), static_cast<size_t>(d.length));
  }
  if (f.format == InputFormat::PlainText) return bytes;
  return io::json_record_text(f.path + ":" + std::to_string(d.line), bytes, set.json_keys);
}

}  // namespace mambalm::data
