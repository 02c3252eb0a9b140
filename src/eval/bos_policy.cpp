#include "eval/bos_policy.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mambalm::eval {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The file's JSON, or null when it does not exist.
json read_json_if_present(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return nullptr;
  std::ifstream f(p, std::ios::binary);
  check(f.good(), p.string(), "cannot open for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(p.string(), std::string("not valid JSON: ") + e.what());
  }
}

// Does this post-processor put a special token before the text of a single sequence?
bool template_starts_with_special(const json& pp) {
  if (!pp.is_object()) return false;
  const std::string type = pp.value("type", std::string());
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const json& p : pp["processors"])
      if (template_starts_with_special(p)) return true;
    return false;
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array() || pp["single"].empty()) return false;
  const json& first = pp["single"][0];
  return first.is_object() && first.contains("SpecialToken");
}

}  // namespace

BosPolicy detect_bos_policy(const std::string& tokenizer_path) {
  if (tokenizer_path == "bytes") return {false, "bytes tokenizer"};
  std::error_code ec;
  const fs::path p(tokenizer_path);
  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  const json config = read_json_if_present(dir / "tokenizer_config.json");
  if (config.is_object()) {
    if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
      return {config["add_bos_token"].get<bool>(), "tokenizer_config.json add_bos_token"};
    const std::string cls = config.value("tokenizer_class", std::string());
    if (cls.rfind("Llama", 0) == 0 || cls.rfind("Gemma", 0) == 0) return {true, "tokenizer_config.json tokenizer_class " + cls};
  }
  const json tok = read_json_if_present(dir / "tokenizer.json");
  if (tok.is_object() && tok.contains("post_processor") && template_starts_with_special(tok["post_processor"]))
    return {true, "tokenizer.json post_processor"};
  return {false, "no add_bos_token, Llama/Gemma class or BOS template found"};
}

BosPolicy parse_bos_policy(const std::string& value, const std::string& tokenizer_path) {
  if (value == "auto") return detect_bos_policy(tokenizer_path);
  if (value == "yes" || value == "true") return {true, "--add-bos " + value};
  if (value == "no" || value == "false") return {false, "--add-bos " + value};
  fail("--add-bos", "unknown value '" + value + "'", "valid: auto, yes, no");
}

}  // namespace mambalm::eval
