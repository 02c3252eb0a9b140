#include "convert/megatron_export.h"

#include <cstdio>
#include <filesystem>
#include <map>

#include "config/hf_config.h"
#include "convert/megatron_args.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/torch/torch_writer.h"
#include "io/weights.h"

namespace mambalm::convert {

namespace fs = std::filesystem;

namespace {

// A weight as the file holds it, in the dtype the checkpoint will hold it.
Tensor weight_as(const io::WeightSet& weights, const std::string& name, std::optional<DType> dtype) {
  const Tensor t = weights.tensor(name);
  const DType target = dtype.value_or(t.dtype() == DType::BF16 ? DType::BF16 : DType::F32);
  return t.to(target);
}

}  // namespace

int64_t export_megatron(const std::string& model_dir, const std::string& out_dir, const MegatronExportOptions& options) {
  check(options.tp >= 1 && options.tp <= 64, "--tensor-parallel", "give 1 to 64 ranks");
  if (options.dtype) check(*options.dtype == DType::F32 || *options.dtype == DType::BF16, "--dtype", "weights are written as f32 or bf16");
  const ModelConfig cfg = load_model_config(model_dir);
  const std::vector<MegatronTensor> table = megatron_layout(cfg, options.spec);
  const auto weights = io::WeightSet::open(model_dir);
  // Cuts that do not divide fail before anything is written.
  for (const MegatronTensor& t : table) {
    if (t.split == TpSplit::Columns) rank_share(t.shape[1], options.tp, t.name);
    for (int64_t b : t.blocks) rank_share(b, options.tp, t.name);
    if (t.qkv_groups > 0) rank_share(t.qkv_groups, options.tp, t.name + " (query groups)");
  }
  const std::vector<std::string> extra_states = extra_state_names(cfg, options.spec);

  nlohmann::ordered_json args = megatron_args(cfg, options.tp, options.spec);
  const bool bf16 = options.dtype ? *options.dtype == DType::BF16 : weights->dtype_of(table[0].hf_names[0]) == DType::BF16;
  args["bf16"] = bf16;
  args["params_dtype"] = {{"__dtype__", bf16 ? "bfloat16" : "float32"}};

  const fs::path release = fs::path(out_dir) / "release";
  for (int r = 0; r < options.tp; ++r) {
    std::map<std::string, Tensor> tensors;
    nlohmann::ordered_json model = nlohmann::ordered_json::object();
    for (const MegatronTensor& t : table) {
      Tensor whole;
      if (t.qkv_groups > 0) {
        std::vector<Tensor> qkv;
        for (const std::string& n : t.hf_names) qkv.push_back(weight_as(*weights, n, options.dtype));
        whole = fuse_qkv(t, qkv);
      } else {
        whole = weight_as(*weights, t.hf_names[0], options.dtype).reshape(t.shape);
      }
      tensors[t.name] = rank_part(t, whole, r, options.tp);
      model[t.name] = {{"__tensor__", t.name}};
    }
    for (const std::string& n : extra_states) model[n] = nullptr;
    nlohmann::ordered_json top;
    top["args"] = {{"__namespace__", args}};
    top["checkpoint_version"] = 3.0;
    top["iteration"] = 0;
    top["model"] = {{"__ordered_dict__", model}};
    char rank_dir[32];
    std::snprintf(rank_dir, sizeof rank_dir, "mp_rank_%02d", r);
    fs::create_directories(release / rank_dir);
    io::torch::write_torch_file((release / rank_dir / "model_optim_rng.pt").string(), top, tensors);
  }
  io::write_file_atomically((fs::path(out_dir) / "latest_checkpointed_iteration.txt").string(), "release");
  return static_cast<int64_t>(table.size() + extra_states.size());
}

}  // namespace mambalm::convert
