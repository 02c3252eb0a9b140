// Where each tensor of a mambalm (Hugging Face layout) model lives in a Megatron-LM (mcore)
// state dict, and how tensor-parallel ranks share it. One table for one ModelConfig; import
// (megatron_import.h) and export (megatron_export.h) walk it in opposite directions.
//
// Megatron's names (megatron/core/models/mamba/mamba_model.py, ssm/mamba_block.py,
// ssm/mamba_layer.py, ssm/mamba_mixer.py, models/gpt/gpt_model.py, transformer/transformer_layer.py):
//   embedding.word_embeddings.weight, output_layer.weight,
//   decoder.final_norm.weight (Mamba stack) / decoder.final_layernorm.{weight,bias} (GPT),
//   decoder.layers.<i>.mixer.{in_proj,conv1d,A_log,D,dt_bias,norm,out_proj}     a Mamba-2 layer
//   decoder.layers.<i>.self_attention.{linear_qkv,linear_proj}                    attention
//   decoder.layers.<i>.mlp.{linear_fc1,linear_fc2}                                MLP
// A block's pre-norm is its own module with the local specs (`norm`, `input_layernorm`,
// `pre_mlp_layernorm`) and is fused into the next linear with the Transformer Engine specs that
// the study trained with (`in_proj.layer_norm_weight`, `linear_qkv.layer_norm_weight`,
// `linear_fc1.layer_norm_weight`, plus `_bias` for a LayerNorm). docs/megatron-import.md.
#pragma once
#include <string>
#include <vector>

#include "config/model_config.h"
#include "core/tensor.h"

namespace mambalm::convert {

// Which layer specs named the state dict: the pre-norms fused into the following linear layer
// (Transformer Engine, the study's) or separate modules (Megatron's local, non-TE specs).
enum class MegatronSpec { TransformerEngine, Local };

// How the ranks of tensor parallelism hold a tensor.
enum class TpSplit {
  Replicated,  // every rank holds all of it: norms, the biases of row-parallel layers
  Rows,        // dim 0 is made of `blocks` (global row counts); each rank holds 1/tp of every block, in block order
  Columns,     // dim 1 cut evenly (row-parallel weights: out_proj, linear_proj, linear_fc2)
};

struct MegatronTensor {
  std::string name;             // "decoder.layers.3.mixer.in_proj.weight"
  Shape shape;                  // the whole tensor (all ranks merged), as Megatron stores it
  TpSplit split = TpSplit::Replicated;
  std::vector<int64_t> blocks;  // Rows: global row counts of the blocks ({shape[0]} for a plain cut)
  // The HF tensors it holds: one, or q, k, v for a fused linear_qkv.
  std::vector<std::string> hf_names;
  std::vector<Shape> hf_shapes;
  // > 0 for linear_qkv: its rows are `qkv_groups` query groups, each [q heads of the group, k, v].
  int64_t qkv_groups = 0;
};

// The table for `cfg` (model_type nemotron_h for the Mamba stack, nemotron for the GPT), in
// Megatron's state-dict order. Error for what Megatron cannot express (Mamba-1, gated MLPs,
// RMSNorm Transformers, tied heads are fine).
std::vector<MegatronTensor> megatron_layout(const ModelConfig& cfg, MegatronSpec spec);

// The modules that carry an `_extra_state` entry in a state dict of `spec` (every parallel
// linear, local or Transformer Engine, and TE's core attention): written as None on export so
// that Megatron's strict load finds them; skipped on import.
std::vector<std::string> extra_state_names(const ModelConfig& cfg, MegatronSpec spec);

// The number of rows (or columns) a rank holds: checks divisibility, naming the tensor.
int64_t rank_share(int64_t global, int tp, const std::string& what);

// Merging and cutting along the split (CPU, contiguous, any dtype; each part in rank order).
Tensor merge_ranks(const MegatronTensor& t, const std::vector<Tensor>& parts);
Tensor rank_part(const MegatronTensor& t, const Tensor& whole, int rank, int tp);

// linear_qkv <-> q, k, v (rows grouped per query group) and back.
std::vector<Tensor> split_qkv(const MegatronTensor& t, const Tensor& qkv);
Tensor fuse_qkv(const MegatronTensor& t, const std::vector<Tensor>& qkv);

}  // namespace mambalm::convert
