// Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, GPT-NeoX, Llama-3,
// Nemotron-H). Every step of the file is either mapped onto the shared byte-level tokenizer or
// refused with an error naming it: a step we skipped would tokenize silently wrong.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/hf_post_processor.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/json_token_id.h"
#include "tokenizer/loaders.h"

namespace mambalm {

namespace {

using nlohmann::json;

std::string type_of(const json& j) { return hf_type_of(j); }
bool truthy(const json& j, const char* key) { return hf_truthy(j, key); }

std::string quote_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}/-").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

void add_pre_tokenizer(const json& p, ByteLevelSpec& spec, bool& byte_level, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = type_of(p);
  if (type == "Sequence") {
    for (const json& step : p.value("pretokenizers", json::array())) add_pre_tokenizer(step, spec, byte_level, where);
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (truthy(p, "add_prefix_space")) {
      check(spec.splits.empty(), where, "ByteLevel add_prefix_space after a Split is not supported",
            "only a leading ByteLevel pre-tokenizer may add a prefix space");
      spec.add_prefix_space = true;
    }
    if (p.value("use_regex", true)) spec.splits.emplace_back(kGpt2SplitPattern, where);
  } else if (type == "Split") {
    const json& pat = p.value("pattern", json::object());
    std::string regex;
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      regex = pat["Regex"].get<std::string>();
    } else if (pat.contains("String") && pat["String"].is_string()) {
      regex = quote_literal(pat["String"].get<std::string>());
    } else {
      fail(where, "Split pre-tokenizer without a Regex or String pattern");
    }
    check(p.value("behavior", std::string()) == "Isolated", where,
          "Split behavior '" + p.value("behavior", std::string("?")) + "' is not supported",
          "byte-level BPE files use \"Isolated\"");
    check(!truthy(p, "invert"), where, "Split with invert=true is not supported");
    spec.splits.emplace_back(regex, where + " pre_tokenizer Split");
  } else if (type == "Digits") {
    spec.splits.emplace_back(truthy(p, "individual_digits") ? R"(\p{N})" : R"(\p{N}+)", where);
  } else {
    fail(where, "pre_tokenizer '" + type + "' is not supported",
         "supported: ByteLevel, Split (Isolated), Digits, Sequence of these");
  }
}

void check_normalizer(const json& n, ByteLevelSpec& spec, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = type_of(n);
  if (type == "Sequence") {
    for (const json& step : n.value("normalizers", json::array())) check_normalizer(step, spec, where);
  } else if (const auto form = unicode_form_named(type)) {
    spec.normalizers.push_back(*form);
  } else {
    fail(where, "normalizer '" + type + "' is not supported",
         "byte-level BPE files use none or NFC, NFD, NFKC, NFKD; for SentencePiece-style files use tokenizer.model");
  }
}

void check_decoder(const json& d, const std::string& where) {
  if (d.is_null()) return;
  const std::string type = type_of(d);
  if (type == "Sequence") {
    for (const json& step : d.value("decoders", json::array())) check_decoder(step, where);
  } else if (type != "ByteLevel") {
    fail(where, "decoder '" + type + "' is not supported", "byte-level BPE files use the ByteLevel decoder");
  }
}

// Whether a pre-tokenizer (or a step of its Sequence) is Metaspace.
bool uses_metaspace(const json& p) {
  if (type_of(p) == "Metaspace") return true;
  if (type_of(p) == "Sequence")
    for (const json& step : p.value("pretokenizers", json::array()))
      if (uses_metaspace(step)) return true;
  return false;
}

}  // namespace

void hf_merge_pair(const json& m, int32_t rank, const std::string& path, std::string& a, std::string& b) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ', 1);
    check(space != std::string::npos, path, "merge '" + s + "' is not 'left right'");
    a = s.substr(0, space), b = s.substr(space + 1);
  } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    a = m[0].get<std::string>(), b = m[1].get<std::string>();
  } else {
    fail(path, "merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
  }
}

std::vector<AddedToken> hf_added_tokens(const json& doc, const std::string& path) {
  std::vector<AddedToken> out;
  const json& added = doc.value("added_tokens", json::array());
  check(added.is_array(), path, "added_tokens is not a list");
  for (const json& a : added) {
    check(a.is_object() && a.contains("id") && a.contains("content") && a["content"].is_string(), path,
          "added_tokens entry without id/content");
    const std::string content = a["content"].get<std::string>();
    check(!truthy(a, "single_word"), path, "added token '" + content + "' uses single_word",
          "single_word added tokens are not supported");
    out.push_back({content, json_token_id(a["id"], path, "added token '" + content + "'"), truthy(a, "special"),
                   truthy(a, "lstrip"), truthy(a, "rstrip")});
  }
  return out;
}

std::string hf_config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

json hf_tokenizer_config(const std::string& path) {
  json config;
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    try {
      config = json::parse(read_tokenizer_file(config_path.string()));
    } catch (const json::exception& e) {
      fail(config_path.string(), std::string("not valid JSON: ") + e.what());
    }
  }
  return config;
}

void hf_special_ids(const std::string& path, const std::vector<AddedToken>& added, int32_t& bos, int32_t& eos,
                    int32_t& pad) {
  // BOS/EOS/PAD: tokenizer_config.json beside the file when there is one, else common names.
  const json config = hf_tokenizer_config(path);
  auto id_of = [&](const std::string& content) {
    for (const AddedToken& a : added)
      if (a.content == content) return a.id;
    return -1;
  };
  auto pick = [&](const char* key, std::initializer_list<const char*> fallbacks) {
    const std::string named = hf_config_token(config, key);
    if (!named.empty()) return id_of(named);
    for (const char* f : fallbacks)
      if (id_of(f) >= 0) return id_of(f);
    return -1;
  };
  bos = pick("bos_token", {"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>", "<|endoftext|>"});
  eos = pick("eos_token", {"<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>"});
  pad = pick("pad_token", {"<pad>", "<|pad|>", "[PAD]"});
}

std::unique_ptr<Tokenizer> open_hf_bpe(const std::string& path) {
  json doc;
  try {
    doc = json::parse(read_tokenizer_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what(), "expected a Hugging Face tokenizer.json");
  }
  check(doc.is_object() && doc.contains("model") && doc["model"].is_object(), path, "has no \"model\" object",
        "expected a Hugging Face tokenizer.json");
  const json& model = doc["model"];
  const std::string mtype = model.value("type", std::string("BPE"));
  check(mtype == "BPE", path, "model type '" + mtype + "' is not supported",
        "only byte-level BPE tokenizer.json files are; for SentencePiece models use tokenizer.model");
  // Llama-2 / Mistral style: BPE over characters, "▁" for spaces, <0xNN> byte tokens.
  // Metaspace ("▁" for spaces) also means BPE over characters, with or without byte fallback.
  if (truthy(model, "byte_fallback") || uses_metaspace(doc.value("pre_tokenizer", json())))
    return open_hf_byte_fallback_bpe(doc, path);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    check(!model.contains(key) || model[key].is_null() || model[key] == "", path,
          std::string("BPE ") + key + " is not supported", "byte-level BPE files do not use it");
  check(!model.contains("dropout") || model["dropout"].is_null() || model["dropout"] == 0.0, path,
        "BPE dropout is not supported", "dropout is for training only; remove it");

  ByteLevelSpec spec;
  spec.kind = "hf-bpe";
  spec.source = path;
  bool byte_level = false;
  check_normalizer(doc.value("normalizer", json()), spec, path);
  add_pre_tokenizer(doc.value("pre_tokenizer", json()), spec, byte_level, path);
  check_decoder(doc.value("decoder", json()), path);
  check(byte_level, path, "is not byte-level BPE (no ByteLevel pre-tokenizer)",
        "for SentencePiece-style files use the model's tokenizer.model");

  // Added tokens first: their vocab entries need not be byte-level strings.
  spec.added = hf_added_tokens(doc, path);
  const json& vocab = model.value("vocab", json::object());
  check(vocab.is_object() && !vocab.empty(), path, "model.vocab is missing or empty");
  std::string bytes;
  for (const auto& [token, id] : vocab.items()) {
    const int32_t checked = json_token_id(id, path, "vocab token '" + token + "'");
    if (!byte_level_to_bytes(token, bytes)) continue;
    const std::string refused = spec.model.add_token(checked, bytes);
    if (!refused.empty()) fail(path, "vocab token '" + token + "': " + refused, "the file is corrupt");
  }
  spec.model.finish(path);
  const json& merges = model.value("merges", json::array());
  int32_t rank = 0;
  for (const json& m : merges) {
    std::string a, b;
    hf_merge_pair(m, rank, path, a, b);
    std::string ab, bb;
    const bool ok = byte_level_to_bytes(a, ab) && byte_level_to_bytes(b, bb);
    const int32_t left = ok ? spec.model.find(ab) : -1, right = ok ? spec.model.find(bb) : -1;
    if (left < 0 || right < 0 || !spec.model.add_merge(left, right, rank))
      fail(path, "merge " + std::to_string(rank) + " ('" + a + "', '" + b + "') is not over vocabulary tokens",
           "the merges and the vocab must come from the same tokenizer");
    ++rank;
  }
  spec.model.set_whole_piece_lookup(truthy(model, "ignore_merges"));

  hf_special_ids(path, spec.added, spec.bos, spec.eos, spec.pad);
  // The model keys tokens by the bytes they stand for, so a token name's UTF-8 finds it.
  spec.post = hf_post_processor(doc, hf_tokenizer_config(path), spec.added,
                                [&](const std::string& name) { return spec.model.find(name); }, path);
  return make_byte_level_tokenizer(std::move(spec));
}

}  // namespace mambalm
