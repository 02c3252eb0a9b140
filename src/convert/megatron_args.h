// A Megatron-LM checkpoint's saved arguments (the `args` Namespace of model_optim_rng.pt) and
// mambalm's ModelConfig, in both directions. On import the shapes of the state dict have the
// last word: every size that a tensor shows is read from it and checked against `args`, and the
// few that no tensor shows (Mamba-2's groups) come from `args`, or from the defaults of the
// study's Megatron version when `args` predates them; each such assumption is reported.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/model_config.h"
#include "convert/megatron_layout.h"
#include "core/tensor.h"

namespace mambalm::convert {

// What the state dict shows, as rank 0 holds it.
struct MegatronStateView {
  int tp = 1;                                                          // tensor-parallel ranks
  std::function<std::optional<Shape>(const std::string&)> rank_shape;  // rank 0's shape of a tensor, nullopt when absent
};

struct MegatronModelInfo {
  ModelConfig cfg;
  MegatronSpec spec = MegatronSpec::TransformerEngine;
  std::vector<std::string> notes;  // sizes assumed rather than read, one line each
};

// `args`: TorchCheckpoint::args() of rank 0. `where`: the checkpoint, for errors.
MegatronModelInfo config_from_megatron(const nlohmann::json& args, const MegatronStateView& state, const std::string& where);

// The arguments Megatron-LM would have saved for `cfg` trained with `tp` tensor-parallel ranks
// (names from megatron/training/arguments.py), as the members of an argparse Namespace.
nlohmann::ordered_json megatron_args(const ModelConfig& cfg, int tp, MegatronSpec spec);

}  // namespace mambalm::convert
