// GPT-2's original files: encoder.json maps byte-level token strings to ids, vocab.bpe lists
// the merges in priority order after a "#version" line. Merges run on every piece (the original
// encoder has no whole-piece shortcut).
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_token_id.h"
#include "tokenizer/loaders.h"

namespace mambalm {

std::unique_ptr<Tokenizer> open_gpt2(const std::string& encoder_json, const std::string& vocab_bpe) {
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(read_tokenizer_file(encoder_json));
  } catch (const nlohmann::json::exception& e) {
    fail(encoder_json, std::string("not valid JSON: ") + e.what(), "expected GPT-2's encoder.json");
  }
  check(encoder.is_object() && !encoder.empty(), encoder_json, "is not a JSON object of token -> id",
        "expected GPT-2's encoder.json");
  ByteLevelSpec spec;
  spec.kind = "gpt2";
  spec.source = encoder_json;
  std::string bytes;
  for (const auto& [token, id] : encoder.items()) {
    const int32_t checked = json_token_id(id, encoder_json, "token '" + token + "'");
    if (token.rfind("<|", 0) == 0 && token.size() > 4 && token.substr(token.size() - 2) == "|>") {
      spec.added.push_back({token, checked, true});  // <|endoftext|>
      continue;
    }
    check(byte_level_to_bytes(token, bytes), encoder_json, "token '" + token + "' is not byte-level",
          "expected GPT-2's byte-level encoder.json");
    const std::string refused = spec.model.add_token(checked, bytes);
    if (!refused.empty()) fail(encoder_json, "token '" + token + "': " + refused, "the file is corrupt");
  }
  spec.model.finish(encoder_json);
  const std::string merges = read_tokenizer_file(vocab_bpe);
  int32_t rank = 0;
  size_t line_no = 0;
  for (size_t pos = 0; pos < merges.size();) {
    size_t eol = merges.find('\n', pos);
    if (eol == std::string::npos) eol = merges.size();
    std::string_view line(merges.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t space = line.find(' ');
    std::string a, b;
    const bool ok = space != std::string_view::npos &&
                    byte_level_to_bytes(line.substr(0, space), a) &&
                    byte_level_to_bytes(line.substr(space + 1), b);
    const int32_t left = ok ? spec.model.find(a) : -1, right = ok ? spec.model.find(b) : -1;
    if (left < 0 || right < 0 || !spec.model.add_merge(left, right, rank))
      fail(vocab_bpe + ":" + std::to_string(line_no),
           "merge '" + std::string(line) + "' is not over tokens of " + encoder_json,
           "vocab.bpe and encoder.json must come from the same GPT-2 vocabulary");
    ++rank;
  }
  check(rank > 0, vocab_bpe, "has no merges", "expected GPT-2's vocab.bpe");
  spec.splits.emplace_back(kGpt2SplitPattern, encoder_json);
  for (const AddedToken& a : spec.added)
    if (a.content == "<|endoftext|>") spec.bos = spec.eos = a.id;
  return make_byte_level_tokenizer(std::move(spec));
}

}  // namespace mambalm
