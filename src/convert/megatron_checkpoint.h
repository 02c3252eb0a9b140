// A Megatron-LM checkpoint in the legacy `torch` format, as the tensor-parallel ranks saved it:
//   CKPT/latest_checkpointed_iteration.txt         "release" or an iteration number
//   CKPT/release/ or CKPT/iter_0001000/             one folder per saved iteration
//     mp_rank_00/model_optim_rng.pt ... mp_rank_07/ one file per tensor-parallel rank
// The path may name CKPT, an iteration folder, an mp_rank folder or a single .pt file (one
// rank). Files are opened through the restricted reader of io/torch (no code is ever run) and
// tensors are read lazily, a rank's share at a time.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/megatron_layout.h"
#include "io/torch/torch_checkpoint.h"

namespace mambalm::convert {

class MegatronCheckpoint {
 public:
  // Finds and opens every rank's file. Errors (one line, naming the path) for a folder with no
  // checkpoint, pipeline-parallel ranks (mp_rank_00_001), the torch_dist format (.distcp files),
  // missing ranks, and anything the torch reader refuses.
  static MegatronCheckpoint open(const std::string& path);

  int tp() const { return static_cast<int>(ranks_.size()); }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& files() const { return files_; }
  const io::torch::TorchCheckpoint& rank(int r) const { return *ranks_.at(static_cast<size_t>(r)); }
  nlohmann::json args() const;  // rank 0's saved arguments

  std::optional<Shape> rank_shape(const std::string& name) const;  // rank 0's, nullopt when absent
  // Every rank's share of `t`, merged (megatron_layout.h), in the dtype the reader gives.
  Tensor read(const MegatronTensor& t) const;
  // Tensor names of rank 0 that `known` does not list, other than Transformer Engine's
  // `_extra_state` buffers (FP8 metadata): what the conversion would silently drop.
  std::vector<std::string> unexpected(const std::vector<std::string>& known) const;

 private:
  std::string path_;
  std::vector<std::string> files_;
  std::vector<std::shared_ptr<io::torch::TorchCheckpoint>> ranks_;
};

// The globals a real Megatron-LM file may carry outside the state dict, kept as inert values
// (never called): ModelType enums in `args`, Transformer Engine's `_extra_state` (io.BytesIO),
// numpy arrays in `rng_state`.
std::vector<std::string> megatron_opaque_modules();

}  // namespace mambalm::convert
