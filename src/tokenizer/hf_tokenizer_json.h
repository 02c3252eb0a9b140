// Shared by the two tokenizer.json loaders: byte-level BPE (hf_bpe_tokenizer.cpp: GPT-2,
// Llama-3, ...) and BPE over characters with byte fallback (hf_byte_fallback_bpe.cpp: Llama-2,
// Mistral, ...).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace mambalm {

// The "type" of a tokenizer.json step, or "?".
inline std::string hf_type_of(const nlohmann::json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "?";
}
inline bool hf_truthy(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() && j[key].get<bool>();
}

// Merge number `rank` of model.merges, written "a b" or ["a", "b"], as its two sides.
void hf_merge_pair(const nlohmann::json& m, int32_t rank, const std::string& path, std::string& a, std::string& b);

// The file's "added_tokens" (single_word ones are refused).
std::vector<AddedToken> hf_added_tokens(const nlohmann::json& doc, const std::string& path);

// The tokenizer_config.json beside the tokenizer.json at `path`, parsed; null when there is none.
nlohmann::json hf_tokenizer_config(const std::string& path);
// tokenizer_config.json's bos_token etc.: a string or {"content": ...}; "" when absent.
std::string hf_config_token(const nlohmann::json& config, const char* key);

// BOS/EOS/PAD ids: from tokenizer_config.json beside `path` when there is one, else by common
// token names among `added`; -1 when none.
void hf_special_ids(const std::string& path, const std::vector<AddedToken>& added, int32_t& bos, int32_t& eos,
                    int32_t& pad);

// A tokenizer.json whose model is BPE over characters with "byte_fallback" (pieces missing from
// the vocabulary become <0xNN> byte tokens), with Prepend/Replace/Unicode normalizers.
std::unique_ptr<Tokenizer> open_hf_byte_fallback_bpe(const nlohmann::json& doc, const std::string& path);

}  // namespace mambalm
