// Whether a tokenizer adds BOS to the text it encodes, as transformers' AutoTokenizer would
// (lm-eval's HF model encodes every context, rolling document and prompt with the tokenizer's
// default special tokens, so a Llama-style tokenizer puts BOS in front of each).
// Read from the files beside the tokenizer, first match wins:
//   1. tokenizer_config.json "add_bos_token": true/false;
//   2. tokenizer_config.json "tokenizer_class" of the Llama or Gemma families (whose default
//      is to add BOS);
//   3. tokenizer.json "post_processor": a TemplateProcessing whose "single" template starts
//      with a special token (also inside a "Sequence" of processors);
//   4. otherwise no BOS (GPT-2 style byte-level BPE, tiktoken, bytes, a bare .model file).
#pragma once
#include <string>

namespace mambalm::eval {

struct BosPolicy {
  bool add = false;
  std::string source;  // which file and field decided, for the results' record
};

// `tokenizer_path`: what `open_tokenizer` was given (a directory, a file, or "bytes").
// Malformed JSON in either file is an error naming the file.
BosPolicy detect_bos_policy(const std::string& tokenizer_path);

// "auto" (detect_bos_policy), "yes"/"true" or "no"/"false" (lm-eval's add_bos_token model argument).
BosPolicy parse_bos_policy(const std::string& value, const std::string& tokenizer_path);

}  // namespace mambalm::eval
