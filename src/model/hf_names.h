// Where each block's tensors live in the HF layout of a model_type.
#pragma once
#include <string>

#include "config/model_config.h"

namespace mambalm {

struct BlockNames {
  std::string norm;   // prefix of the block's pre-norm, e.g. "backbone.layers.3.norm."
  std::string mixer;  // prefix of the mixer's tensors, e.g. "backbone.layers.3.mixer."
};

BlockNames hf_block_names(const ModelConfig& cfg, int64_t block);
std::string hf_embedding_name(const ModelConfig& cfg);   // "backbone.embeddings.weight" ...
std::string hf_final_norm_prefix(const ModelConfig& cfg);  // "backbone.norm_f." ...
inline std::string hf_head_name() { return "lm_head.weight"; }

}  // namespace mambalm
