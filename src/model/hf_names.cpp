#include "model/hf_names.h"

namespace mambalm {

static bool transformer_layout(const ModelConfig& cfg) {
  return cfg.model_type == "nemotron" || cfg.model_type == "llama";
}

BlockNames hf_block_names(const ModelConfig& cfg, int64_t block) {
  if (transformer_layout(cfg)) {
    // Block 2i is layer i's attention, block 2i+1 its MLP.
    std::string layer = "model.layers." + std::to_string(block / 2) + ".";
    if (block % 2 == 0) return {layer + "input_layernorm.", layer + "self_attn."};
    return {layer + "post_attention_layernorm.", layer + "mlp."};
  }
  std::string layer = "backbone.layers." + std::to_string(block) + ".";
  return {layer + "norm.", layer + "mixer."};
}

std::string hf_embedding_name(const ModelConfig& cfg) {
  return transformer_layout(cfg) ? "model.embed_tokens.weight" : "backbone.embeddings.weight";
}

std::string hf_final_norm_prefix(const ModelConfig& cfg) {
  return transformer_layout(cfg) ? "model.norm." : "backbone.norm_f.";
}

}  // namespace mambalm
