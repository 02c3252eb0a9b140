// `mambalm convert --to megatron`: a model directory (nemotron_h or nemotron) to a Megatron-LM
// checkpoint in the legacy torch format, cut for `tp` tensor-parallel ranks, that Megatron-LM
// loads to continue training (--load DIR --finetune, or --use-checkpoint-args):
//   DIR/latest_checkpointed_iteration.txt   "release"
//   DIR/release/mp_rank_XX/model_optim_rng.pt  {'args', 'checkpoint_version', 'iteration', 'model'}
// Names follow the Transformer Engine specs the study trained with (pre-norms fused into the
// next linear, `_extra_state` entries as None) or Megatron's local specs.
#pragma once
#include <optional>
#include <string>

#include "convert/megatron_layout.h"
#include "core/tensor.h"

namespace mambalm::convert {

struct MegatronExportOptions {
  int tp = 1;
  MegatronSpec spec = MegatronSpec::TransformerEngine;
  std::optional<DType> dtype;  // F32 or BF16; default: each tensor's own (F16 and F64 become F32)
};

// Returns the number of tensors written per rank.
int64_t export_megatron(const std::string& model_dir, const std::string& out_dir, const MegatronExportOptions& options);

}  // namespace mambalm::convert
