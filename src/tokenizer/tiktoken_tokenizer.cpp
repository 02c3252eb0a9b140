// tiktoken rank files: each line is "<base64 bytes> <rank>", and the rank is the token id. The
// split regex and special tokens are not in the file; they are the ones tiktoken publishes for
// each encoding name.
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/loaders.h"

namespace mambalm {

namespace {

struct EncodingInfo {
  const char* name;
  const char* pattern;
  int64_t n_vocab;
  std::vector<std::pair<const char*, int32_t>> specials;
};

const std::vector<EncodingInfo>& encodings() {
  static const std::vector<EncodingInfo> all = {
      {"r50k_base", kGpt2SplitPattern, 50257, {{"<|endoftext|>", 50256}}},
      {"p50k_base", kGpt2SplitPattern, 50281, {{"<|endoftext|>", 50256}}},
      {"cl100k_base",
       kCl100kSplitPattern,
       100277,
       {{"<|endoftext|>", 100257},
        {"<|fim_prefix|>", 100258},
        {"<|fim_middle|>", 100259},
        {"<|fim_suffix|>", 100260},
        {"<|endofprompt|>", 100276}}},
      {"o200k_base", kO200kSplitPattern, 200019, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
  };
  return all;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    const int v = base64_value(in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  for (; i < in.size(); ++i)
    if (in[i] != '=') return false;
  return !out.empty();
}

}  // namespace

std::unique_ptr<Tokenizer> open_tiktoken(const std::string& path) {
  const std::string stem = std::filesystem::path(path).stem().string();
  const EncodingInfo* info = nullptr;
  for (const EncodingInfo& e : encodings())
    if (stem == e.name) info = &e;
  if (!info)
    fail(path, "unknown tiktoken encoding '" + stem + "'",
         "name the file after its encoding: r50k_base, p50k_base, cl100k_base or o200k_base .tiktoken");
  const std::string text = read_tokenizer_file(path);
  ByteLevelSpec spec;
  spec.kind = "tiktoken";
  spec.source = path;
  std::string bytes;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    int64_t rank = -1;
    if (space != std::string_view::npos && space + 1 < line.size()) {
      rank = 0;
      for (char c : line.substr(space + 1)) {
        if (c < '0' || c > '9' || rank > (1 << 30)) {
          rank = -1;
          break;
        }
        rank = rank * 10 + (c - '0');
      }
    }
    if (rank < 0 || !base64_decode(line.substr(0, space), bytes))
      fail(path + ":" + std::to_string(line_no), "not a tiktoken rank line",
           "expected '<base64 token> <rank>'; the file may be truncated or corrupt");
    spec.model.add_token(static_cast<int32_t>(rank), bytes);
  }
  spec.model.finish(path);
  check(spec.model.max_id() < info->n_vocab, path,
        "has rank " + std::to_string(spec.model.max_id()) + ", beyond " + info->name + "'s vocabulary",
        "is this file really " + std::string(info->name) + "?");
  spec.model.derive_merges_from_ranks();
  spec.model.set_whole_piece_lookup(true);
  spec.splits.emplace_back(info->pattern, path);
  for (const auto& [content, id] : info->specials) spec.added.push_back({content, id, true});
  spec.vocab_size = info->n_vocab;
  spec.eos = spec.bos = info->specials.front().second;  // <|endoftext|>, as GPT-2 uses it
  return make_byte_level_tokenizer(std::move(spec));
}

}  // namespace mambalm
