// tiktoken rank files: each line is "<base64 bytes> <rank>", and the rank is the token id. The
// split regex and special tokens are not in the file; they are the ones tiktoken publishes for
// each encoding name.
#include <algorithm>
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
  int64_t n_ranks;  // lines of the published rank file: fewer means it was truncated
  std::vector<std::pair<const char*, int32_t>> specials;
};

const std::vector<EncodingInfo>& encodings() {
  static const std::vector<EncodingInfo> all = {
      {"r50k_base", kGpt2SplitPattern, 50257, 50256, {{"<|endoftext|>", 50256}}},
      {"p50k_base", kGpt2SplitPattern, 50281, 50280, {{"<|endoftext|>", 50256}}},
      {"cl100k_base",
       kCl100kSplitPattern,
       100277,
       100256,
       {{"<|endoftext|>", 100257},
        {"<|fim_prefix|>", 100258},
        {"<|fim_middle|>", 100259},
        {"<|fim_suffix|>", 100260},
        {"<|endofprompt|>", 100276}}},
      {"o200k_base", kO200kSplitPattern, 200019, 199998, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
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
  int64_t n_ranks = 0;
  // Published rank files end with a newline; a last line without one was cut short (a cut
  // rank "12345" -> "12" would otherwise load as a valid, wrong token).
  check(text.back() == '\n', path + ":" + std::to_string(std::count(text.begin(), text.end(), '\n') + 1),
        "the last line has no newline", "the file is truncated; download it again");
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    int64_t rank = -1;
    if (space != std::string_view::npos && space + 1 < line.size() && line.size() - space - 1 <= 18) {
      rank = 0;  // at most 18 digits: cannot overflow; add_token checks the range
      for (char c : line.substr(space + 1)) {
        if (c < '0' || c > '9') {
          rank = -1;
          break;
        }
        rank = rank * 10 + (c - '0');
      }
    }
    const std::string where = path + ":" + std::to_string(line_no);
    if (rank < 0 || !base64_decode(line.substr(0, space), bytes))
      fail(where, "not a tiktoken rank line", "expected '<base64 token> <rank>'; the file may be truncated or corrupt");
    check(rank < info->n_vocab, where, "rank " + std::to_string(rank) + " is beyond " + info->name + "'s vocabulary of " +
                                           std::to_string(info->n_vocab), "is this file really " + std::string(info->name) + "?");
    const std::string refused = spec.model.add_token(rank, bytes);
    if (!refused.empty()) fail(where, refused, "a rank file lists each token and each rank once; the file is corrupt");
    ++n_ranks;
  }
  spec.model.finish(path);
  check(n_ranks == info->n_ranks, path,
        "has " + std::to_string(n_ranks) + " ranks, but " + info->name + " has " + std::to_string(info->n_ranks),
        n_ranks < info->n_ranks ? "the file is truncated; download it again" : "is this file really " + std::string(info->name) + "?");
  for (const auto& [content, id] : info->specials)
    check(!spec.model.token_bytes(id), path, "rank " + std::to_string(id) + " is " + info->name + "'s special token " + content,
          "the file is not " + std::string(info->name) + "'s rank file");
  spec.model.derive_merges_from_ranks();
  spec.model.set_whole_piece_lookup(true);
  spec.splits.emplace_back(info->pattern, path);
  for (const auto& [content, id] : info->specials) spec.added.push_back({content, id, true});
  spec.vocab_size = info->n_vocab;
  spec.eos = spec.bos = info->specials.front().second;  // <|endoftext|>, as GPT-2 uses it
  return make_byte_level_tokenizer(std::move(spec));
}

}  // namespace mambalm
