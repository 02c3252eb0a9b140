// A model directory carries its tokenizer: installing copies the tokenizer's files into the
// directory under the names open_tokenizer() looks for (tokenizer.json, tokenizer.model,
// encoder.json + vocab.bpe, NAME.tiktoken, or a tokenizer.bytes marker).
#pragma once
#include <string>

namespace mambalm {

// Copies the tokenizer that `tokenizer_path` names into `model_dir` (a tokenizer.json with the
// tokenizer_config.json beside it), then writes tokenizer_config.json and generation_config.json
// where the directory lacks them, for transformers (transformers_configs.h).
void install_tokenizer(const std::string& tokenizer_path, const std::string& model_dir);

// True when open_tokenizer(model_dir) will find a tokenizer there.
bool has_tokenizer(const std::string& model_dir);

}  // namespace mambalm
