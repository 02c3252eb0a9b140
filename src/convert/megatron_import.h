// `mambalm convert --from megatron`: a Megatron-LM checkpoint (megatron_checkpoint.h) to a
// model directory (config.json, model.safetensors, tokenizer) that mambalm and transformers
// load: the Mamba stack as nemotron_h, the GPT as nemotron. Tensor-parallel ranks are merged
// tensor by tensor while the safetensors file is streamed out, so memory holds one tensor.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "convert/megatron_layout.h"
#include "core/tensor.h"

namespace mambalm::convert {

struct MegatronImportOptions {
  std::string tokenizer;         // copied into the directory when given (a SentencePiece .model, ...)
  std::optional<DType> dtype;    // F32 or BF16 for every tensor; default: each tensor's own (F16 and F64 become F32)
};

struct MegatronImportReport {
  ModelConfig cfg;
  int tp = 1;
  MegatronSpec spec = MegatronSpec::TransformerEngine;
  std::vector<std::string> notes;  // assumptions and dropped entries, one line each
  int64_t tensors = 0;
  int64_t parameters = 0;
};

MegatronImportReport import_megatron(const std::string& checkpoint, const std::string& out_dir, const MegatronImportOptions& options);

}  // namespace mambalm::convert
