// The two small files beside a model that make transformers load its directory with the right
// special tokens: tokenizer_config.json (AutoTokenizer: class, bos/eos/pad, add_bos_token, ...)
// and generation_config.json (GenerationConfig: bos/eos/pad ids). Written by install_tokenizer()
// after the tokenizer's own files are copied, so `init` and every training checkpoint carry them.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace mambalm {

// Writes DIR/tokenizer_config.json and DIR/generation_config.json for `tokenizer`, installed in
// `model_dir`, each only when the directory lacks it: a copied original always wins.
// tokenizer_config.json is written only for the formats transformers reads (tokenizer.json,
// tokenizer.model); generation_config.json whenever the tokenizer has a BOS, EOS or PAD token.
// `chat_template` (may be empty) goes into tokenizer_config.json.
void write_transformers_configs(const Tokenizer& tokenizer, const std::string& model_dir, const std::string& chat_template = "");

}  // namespace mambalm
