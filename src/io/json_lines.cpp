#include "io/json_lines.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/input_files.h"

namespace mambalm::io {

bool is_json_lines_path(const std::string& raw_path) {
  const std::string path = strip_compression_suffix(raw_path);
  return path.ends_with(".jsonl") || path.ends_with(".ndjson") || path.ends_with(".json");
}

std::string json_record_text(const std::string& where, std::string_view line, const std::vector<std::string>& keys) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail(where, std::string("malformed JSON: ") + e.what(), "one JSON object per line");
  }
  check(record.is_object(), where, "a JSON Lines record must be an object, found " + std::string(record.type_name()));
  std::string text;
  for (const std::string& key : keys) {
    auto it = record.find(key);
    check(it != record.end(), where, "record has no \"" + key + "\" field",
          keys.size() == 1 && key == "text" ? "name the field with --json-key KEY" : "");
    check(it->is_string(), where, "\"" + key + "\" is a " + std::string(it->type_name()) + ", not a string");
    const std::string& value = it->get_ref<const std::string&>();
    if (value.empty()) continue;
    if (!text.empty()) text += kJsonKeyJoiner;
    text += value;
  }
  check(!text.empty(), where, keys.size() == 1 ? "\"" + keys[0] + "\" is empty" : "every --json-key field is empty",
        "remove the record; empty documents are not allowed");
  return text;
}

std::string json_lines_text(const std::string& path, std::string_view file_text, const std::vector<std::string>& keys) {
  std::string out;
  size_t pos = 0, line = 1;
  while (pos < file_text.size()) {
    const size_t nl = file_text.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? file_text.size() : nl;
    const std::string_view l = file_text.substr(pos, end - pos);
    if (l.find_first_not_of(" \t\r") != std::string_view::npos) {
      out += json_record_text(path + ":" + std::to_string(line), l, keys);
      out += '\n';
    }
    pos = end + 1;
    ++line;
  }
  return out;
}

}  // namespace mambalm::io
