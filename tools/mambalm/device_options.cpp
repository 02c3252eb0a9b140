// The --device / --dtype option group and moving a model where it says (device_options.h).
#include "device_options.h"

#include <cstdio>
#include <filesystem>
#include <string>

#include "config/hf_config.h"
#include "core/device.h"
#include "core/error.h"
#include "io/weights.h"

namespace mambalm::cli {

std::vector<OptionSpec> activation_options() {
  return {{"recompute", "", "training: keep only layer inputs for backward; recompute the rest (least memory)"},
          {"keep-activations", "", "training: also keep every value backward would recompute (more memory, faster)"},
          {"keep", "KINDS",
           "training: keep only these of them: norms (block norm outputs), mlp (the MLP's activation), gate (Mamba-2's "
           "gated norm), conv (Mamba-2's conv output), comma-separated"}};
}

std::vector<OptionSpec> gemm_options() {
  return {{"gemm-algos", "timed|heuristic|FILE",
           "training on cuda: time cuBLASLt's candidate algorithms per GEMM shape and keep the fastest (default); "
           "take its heuristic's first (the same algorithms, so the same bits, in every run); or repeat another "
           "run's (its RUN/gemm_choices.txt)"}};
}

GemmAlgos parse_gemm_algos(const Args& args) {
  GemmAlgos g;
  const std::string v = args.str("gemm-algos", "timed");
  if (v == "heuristic") g.timed = false;
  else if (v != "timed") {
    check(std::filesystem::is_regular_file(v), "--gemm-algos",
          "'" + v + "' is neither timed, heuristic nor a file", "give a run's gemm_choices.txt");
    g.choices_file = v;
  }
  return g;
}

std::vector<OptionSpec> with(std::vector<OptionSpec> a, const std::vector<OptionSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ActivationPolicy parse_activation_policy(const Args& args) {
  ActivationPolicy p;
  p.recompute = args.flag("recompute");
  check(!(args.flag("keep-activations") && args.has("keep")), args.where(),
        "--keep-activations keeps everything; --keep names a part: give one of them");
  if (args.flag("keep-activations")) p.keep = kKeepAll;
  if (args.has("keep")) p.keep = parse_keep_kinds(args.str("keep"), args.where() + " --keep");
  check(!(p.recompute && p.keep), args.where(), "--recompute cannot be combined with --keep-activations or --keep");
  return p;
}

std::vector<OptionSpec> placement_options() {
  return {{"device", "cpu|cuda", "where the model runs (default cpu)"},
          {"dtype", "f32|bf16|q8", "weight storage: f32, bf16, or q8 (8-bit blocks, cpu only) (default: f32 on cpu, bf16 on cuda)"}};
}

std::vector<OptionSpec> placement_options_with_kv() {
  std::vector<OptionSpec> specs = placement_options();
  specs.push_back({"kv-dtype", "f32|bf16",
                   "cpu: KV cache storage (default: f32 with --dtype f32, bf16 with bf16 or q8: half the memory; "
                   "on cuda the cache takes the weights' dtype)"});
  return specs;
}

Placement parse_placement(const Args& args) {
  const std::string command = args.where();
  Placement p;
  const std::string device = args.str("device", "cpu");
  if (device == "cuda") p.device = Device::CUDA;
  else check(device == "cpu", command, "--device must be cpu or cuda, got '" + device + "'");
  const std::string dtype = args.str("dtype", p.device == Device::CUDA ? "bf16" : "f32");
  if (dtype == "bf16") p.dtype = DType::BF16;
  else if (dtype == "q8") p.dtype = DType::Q8;
  else check(dtype == "f32", command, "--dtype must be f32, bf16 or q8, got '" + dtype + "'");
  check(p.dtype != DType::Q8 || p.device == Device::CPU, command, "--dtype q8 needs --device cpu",
        "the CUDA backend reads f32 or bf16 weights");
  // bf16 / q8 weights on the CPU are for inference (the GEMV kernels); training there is fp32.
  const bool trains = command == "mambalm train" || command == "mambalm grad";
  check(!trains || p.dtype == DType::F32 || p.device == Device::CUDA, command,
        "--dtype " + dtype + " needs --device cuda to train", "the CPU backend trains with f32 weights");
  if (args.has("kv-dtype")) {
    const std::string kv = args.str("kv-dtype");
    if (kv == "bf16") p.kv_dtype = DType::BF16;
    else if (kv == "f32") p.kv_dtype = DType::F32;
    else fail(command, "--kv-dtype must be f32 or bf16, got '" + kv + "'");
    check(p.device == Device::CPU, command, "--kv-dtype is for --device cpu",
          "on CUDA the KV cache takes the weights' dtype (--dtype)");
  }
  if (p.device == Device::CUDA) {
    check(cuda_built(), command, "--device cuda but this binary was built without the CUDA backend", "build where nvcc is installed");
    check(cuda_device_count() > 0, command, "--device cuda but no CUDA device is visible", "check nvidia-smi");
  }
  return p;
}

void place(Model& model, const Placement& p) {
  if (p.kv_dtype) model.set_kv_dtype(*p.kv_dtype);
  if (p.device == Device::CPU) {
    if (p.dtype != DType::F32) {  // bf16 / q8 weights for the CPU's own GEMV kernels
      // A model loaded for inference is already placed (load_for_inference): converting it again
      // would bring an embedding table read from its file into memory.
      if (model.device() != Device::CPU || model.matrix_dtype() != p.dtype) model.to_device(Device::CPU, p.dtype);
      double bytes = static_cast<double>(model.parameter_bytes());
      if (model.embedding_read_from_file()) bytes -= static_cast<double>(model.params().front().tensor->nbytes());
      std::fprintf(stderr, "device: cpu, weights %s (%.2f GB%s)\n", dtype_name(p.dtype).c_str(), bytes / 1e9,
                   model.embedding_read_from_file() ? ", embedding rows read from the file" : "");
    }
    return;
  }
  model.to_device(p.device, p.dtype);
  std::fprintf(stderr, "device: %s, weights %s (%.2f GB)\n", cuda_device_summary().c_str(), dtype_name(p.dtype).c_str(),
               static_cast<double>(model.parameter_bytes()) / 1e9);
}

Model load_placed(const std::string& model_dir, const Placement& p, const InferenceWork& work, const std::string& command) {
  // On a GPU the activations and state live there (serve checks its batch against the GPU);
  // the host holds the weights once, in the chosen dtype, while they are copied up.
  InferenceWork host_work = p.device == Device::CPU ? work : InferenceWork{0, 0, 0, 0, false};
  host_work.kv_dtype = p.kv_dtype;
  // The file's header says which tensors will be converted (and so briefly read in full).
  const ModelConfig cfg = load_model_config(model_dir);
  const auto file = io::WeightSet::open(model_dir);
  check_inference_memory(cfg, p.dtype, host_work, command + " " + model_dir, file.get());
  Model model = Model::load_for_inference(model_dir, p.dtype);
  place(model, p);
  return model;
}

}  // namespace mambalm::cli
