// --device cpu|cuda and --dtype f32|bf16|q8 (q8: CPU only), shared by the commands that run a
// model, and --kv-dtype f32|bf16 (CPU), shared by those that keep a KV cache (generate, bench,
// serve, eval).
#pragma once
#include <optional>
#include <vector>

#include "args.h"
#include "core/tensor.h"
#include "model/inference_memory.h"
#include "model/model.h"

namespace mambalm::cli {

struct Placement {
  Device device = Device::CPU;
  DType dtype = DType::F32;  // storage of the weight matrices
  // The KV cache's dtype (--kv-dtype); unset: Model::kv_dtype()'s default (F32 with f32 weights,
  // BF16 with bf16 or q8 weights; on CUDA always the weights' dtype).
  std::optional<DType> kv_dtype;
};

// The two options' specs, to append to a command's list.
std::vector<OptionSpec> placement_options();
// The same plus --kv-dtype, for the commands that keep a KV cache.
std::vector<OptionSpec> placement_options_with_kv();
// Parses them (default cpu / f32; bf16 on CUDA by default); a clear error when CUDA is not
// built or no device is visible, or for --kv-dtype on CUDA.
Placement parse_placement(const Args& args);
// Moves a loaded model where the options say (and sets its KV cache dtype when --kv-dtype was
// given), and says so on stderr when that is a GPU.
void place(Model& model, const Placement& p);
// Loads `model_dir` for inference where the options say. First the host-memory check
// (model/inference_memory.h): on the CPU the weights in the chosen dtype plus what `work` needs,
// on a GPU the host copy of the weights; a clear refusal with the numbers when it cannot fit.
// Then the weights go straight into their stored dtype, tensor by tensor, from the mapped file
// (Model::load_for_inference: a bf16 file run as bf16 is not copied at all), and on to the GPU.
Model load_placed(const std::string& model_dir, const Placement& p, const InferenceWork& work, const std::string& command);

// Training's memory-for-time options (train, bench --train): --recompute, --keep-activations
// (keep all) and --keep KINDS (some: norms, mlp, gate, conv; model/layer.h KeepKinds).
std::vector<OptionSpec> activation_options();
// Training's GEMM algorithms (train, bench --train): --gemm-algos timed|heuristic|FILE.
std::vector<OptionSpec> gemm_options();
struct GemmAlgos {
  bool timed = true;       // cuBLASLt's candidates timed per shape, the fastest kept (a resume pins
                           // the run's choices: train/gemm_choices.h); false: its first choice
  std::string choices_file;  // a run's gemm_choices.txt whose algorithms to repeat (then timed
                             // for shapes it does not list)
};
GemmAlgos parse_gemm_algos(const Args& args);
// a's options followed by b's.
std::vector<OptionSpec> with(std::vector<OptionSpec> a, const std::vector<OptionSpec>& b);
struct ActivationPolicy {
  bool recompute = false;
  unsigned keep = 0;  // KeepKinds
};
// Parses them; --recompute with either keep option, or both keep options, is an error.
ActivationPolicy parse_activation_policy(const Args& args);

}  // namespace mambalm::cli
