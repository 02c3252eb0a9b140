// tokenizer_config.json and generation_config.json for a model directory (transformers_configs.h).
#include "tokenizer/transformers_configs.h"

#include <cstdint>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"

namespace mambalm {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The text of token `id` as transformers names special tokens ("<s>"), or null.
class TokenNames {
 public:
  explicit TokenNames(const fs::path& dir) {
    if (fs::exists(dir / "tokenizer.json")) {
      const json doc = json::parse(read_tokenizer_file((dir / "tokenizer.json").string()), nullptr, false);
      if (!doc.is_object()) return;
      for (const json& a : doc.value("added_tokens", json::array()))
        if (a.is_object() && a.contains("id") && a["id"].is_number_integer() && a.contains("content") && a["content"].is_string())
          names_[a["id"].get<int32_t>()] = a["content"].get<std::string>();
    } else if (fs::exists(dir / "tokenizer.model")) {
      sp_loaded_ = sp_.Load((dir / "tokenizer.model").string()).ok();
    }
  }

  json operator()(int32_t id) const {
    if (id < 0) return nullptr;
    if (auto it = names_.find(id); it != names_.end()) return it->second;
    if (sp_loaded_ && id < sp_.GetPieceSize()) return sp_.IdToPiece(id);
    return nullptr;
  }

 private:
  std::map<int32_t, std::string> names_;
  sentencepiece::SentencePieceProcessor sp_;
  bool sp_loaded_ = false;
};

// Stands for transformers' "no limit", int(1e30) = 1000000000000000019884624838656, which it
// writes for tokenizers without one and which no JSON number type here holds: replaced in the text.
constexpr uint64_t kNoLimitMark = UINT64_MAX;
const char* kNoLimitText = "1000000000000000019884624838656";

// The longest input the model takes: config.json's max_position_embeddings when it has one,
// else transformers' "no limit".
json model_max_length(const fs::path& dir) {
  const fs::path config = dir / "config.json";
  if (fs::exists(config)) {
    const json c = json::parse(io::read_text_file(config.string()), nullptr, false);
    if (c.is_object() && c.contains("max_position_embeddings") && c["max_position_embeddings"].is_number_integer() &&
        c["max_position_embeddings"].get<int64_t>() > 0)
      return c["max_position_embeddings"];
  }
  return kNoLimitMark;
}

}  // namespace

void write_transformers_configs(const Tokenizer& tokenizer, const std::string& model_dir, const std::string& chat_template) {
  const fs::path dir(model_dir);
  const int32_t bos = tokenizer.bos_id(), eos = tokenizer.eos_id(), pad = tokenizer.pad_id();

  const fs::path generation = dir / "generation_config.json";
  if (!fs::exists(generation) && (bos >= 0 || eos >= 0 || pad >= 0)) {
    json g = json::object();
    if (bos >= 0) g["bos_token_id"] = bos;
    if (eos >= 0) g["eos_token_id"] = eos;
    if (pad >= 0) g["pad_token_id"] = pad;
    io::write_file_atomically(generation.string(), g.dump(2) + "\n");
  }

  const fs::path config = dir / "tokenizer_config.json";
  const bool fast = fs::exists(dir / "tokenizer.json"), sentencepiece = fs::exists(dir / "tokenizer.model");
  if (fs::exists(config) || (!fast && !sentencepiece)) return;
  const TokenNames name(dir);
  // What encode(text) adds, as our add_special_tokens() does: the flags say the same to
  // transformers (LlamaTokenizer reads them; PreTrainedTokenizerFast keeps the file's template).
  const std::vector<int32_t> around = tokenizer.add_special_tokens({});
  const bool add_bos = bos >= 0 && !around.empty() && around.front() == bos;
  const bool add_eos = eos >= 0 && !around.empty() && around.back() == eos;
  json c = {
      // A tokenizer.json needs no class of its own; a bare SentencePiece model loads as Llama's.
      {"tokenizer_class", fast ? "PreTrainedTokenizerFast" : "LlamaTokenizer"},
      {"bos_token", name(bos)},
      {"eos_token", name(eos)},
      {"pad_token", name(pad)},
      {"add_bos_token", add_bos},
      {"add_eos_token", add_eos},
      {"model_max_length", model_max_length(dir)},
      {"clean_up_tokenization_spaces", false},
  };
  if (!fast) c["legacy"] = true;  // LlamaTokenizer: encode as sentencepiece itself does, without a warning
  if (!chat_template.empty()) c["chat_template"] = chat_template;
  std::string text = c.dump(2) + "\n";
  if (const size_t at = text.find(std::to_string(kNoLimitMark)); at != std::string::npos)
    text.replace(at, std::to_string(kNoLimitMark).size(), kNoLimitText);
  io::write_file_atomically(config.string(), text);
}

}  // namespace mambalm
