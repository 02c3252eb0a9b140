// A tokenizer.json's "post_processor" as transformers applies it to one text with
// add_special_tokens=True: the special tokens placed before and after the text's ids (Llama-2's
// BOS, BERT's [CLS] ... [SEP], ...). Shared by both tokenizer.json loaders.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/special_token_template.h"

namespace mambalm {

// The single-text template of `doc`'s post_processor: TemplateProcessing (its "single" list of
// SpecialToken and Sequence "A" items), RobertaProcessing and BertProcessing (cls A sep),
// ByteLevel (adds nothing), or a Sequence of these. `config` is the tokenizer_config.json
// beside the file (null when none): for the Llama and Gemma tokenizer classes transformers
// rebuilds the template from its add_bos_token / add_eos_token (defaults true / false), and so
// do we. Anything else is refused with an error naming the step.
// `vocab_id` finds a token named in tokenizer_config.json that is not an added token (-1: none).
SpecialTokenTemplate hf_post_processor(const nlohmann::json& doc, const nlohmann::json& config,
                                       const std::vector<AddedToken>& added,
                                       const std::function<int32_t(const std::string&)>& vocab_id, const std::string& path);

}  // namespace mambalm
