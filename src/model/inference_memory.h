// How much host memory running a model on the CPU will take, estimated from its config before
// anything is loaded, and the refusal when the machine does not have it: a command that cannot
// fit says so with the numbers, instead of being ended by the kernel's OOM killer part way
// (issue 12, point 6). Used by forward, generate, eval, serve and bench through
// tools/mambalm/device_options.cpp (load_placed).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "config/model_config.h"
#include "core/tensor.h"
#include "io/weights.h"

namespace mambalm {

// What one command asks of the model: the largest single forward call and what it keeps.
struct InferenceWork {
  int64_t batch = 1;           // sequences per forward call
  int64_t tokens = 1;          // tokens per sequence in the largest call (a prompt's prefill)
  int64_t context = 0;         // positions per sequence kept in the KV cache (0: no state kept)
  int64_t logit_rows = 1;      // rows of V logits held at once (forward: 2 T, the result and its copy out)
  bool q8_possible = true;     // whether the refusal may suggest --dtype q8 (a CPU-only format)
  // The KV cache's dtype (--kv-dtype); unset: Model::kv_dtype()'s default for the matrix dtype
  // (F32 with F32 matrices, BF16 with BF16 or Q8).
  std::optional<DType> kv_dtype = std::nullopt;
};

// Bytes, by what holds them.
struct InferenceMemory {
  int64_t weights = 0;      // parameters as stored: matrices in the matrix dtype, the rest F32
  int64_t activations = 0;  // the largest layer's working set, the residual stream and the logits
  int64_t state = 0;        // SSM/conv state and the KV cache
  int64_t loading = 0;      // while loading: the file's pages of one block being converted
  int64_t overhead = 0;     // the program, thread stacks, BLAS buffers
  int64_t total() const { return weights + activations + state + loading + overhead; }
};

// The estimate for `cfg` on the CPU with matrices as `matrix_dtype` (F32, BF16 or Q8). Weights
// are exact; activations follow the layers' own allocations (model/*.cpp), rounded up. With the
// model's `file`, `loading` counts the file's pages of one conversion block (at most 16 MiB of
// F32: tensors are converted block by block and each block's pages handed back, model_load.cpp);
// without it, nothing.
InferenceMemory estimate_inference_memory(const ModelConfig& cfg, DType matrix_dtype, const InferenceWork& work,
                                          const io::WeightSet* file = nullptr);

// Throws "<where>: needs ~35 GB, 23 GB available (MemAvailable): weights 34.8 GB as F32, ...
// (try --dtype bf16: ~17 GB)" when the estimate exceeds available_memory_bytes()
// (core/host_memory.h; MAMBALM_AVAILABLE_MEMORY sets it for tests). The hint names the first
// smaller dtype that fits (bf16, then q8), or says that none does.
void check_inference_memory(const ModelConfig& cfg, DType matrix_dtype, const InferenceWork& work, const std::string& where,
                            const io::WeightSet* file = nullptr);

}  // namespace mambalm
