#include "bench/train_speed.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/presets.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
#include "ops/op_profile.h"
#include "ops/ops.h"
#include "dist/communicator.h"
#include "train/adamw.h"
#include "train/sharded_adamw.h"

namespace mambalm::bench {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

size_t device_used_bytes(Device device) {
  if (device != Device::CUDA) return 0;
  size_t free_bytes = 0, total_bytes = 0;
  cuda_memory_info(&free_bytes, &total_bytes);
  return total_bytes - free_bytes;
}

// Random ids [B, T] and their next-token targets, drawn from one stream of T + 1 tokens per row.
void random_batch(Rng& rng, int64_t vocab, bool unrelated_targets, Tensor& ids, Tensor& targets) {
  const int64_t B = ids.dim(0), T = ids.dim(1);
  auto draw = [&] { return static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(vocab)); };
  for (int64_t b = 0; b < B; ++b) {
    int32_t prev = draw();
    for (int64_t t = 0; t < T; ++t) {
      const int32_t next = draw();
      ids.data<int32_t>()[b * T + t] = prev;
      targets.data<int32_t>()[b * T + t] = unrelated_targets ? draw() : next;
      prev = next;
    }
  }
}

// Optimizer state one unsharded AdamW holds: moments for every parameter, F32 masters for BF16 ones.
int64_t adamw_state_bytes(const ParamList& params) {
  int64_t bytes = 0;
  for (const ParamRef& p : params) bytes += p.tensor->numel() * 4 * (p.tensor->dtype() == DType::F32 ? 2 : 3);
  return bytes;
}

}  // namespace

nlohmann::json run_train_speed(const TrainSpeedOptions& o, std::FILE* out) {
  check(o.seq_len > 0 && o.micro_batch > 0 && o.steps > 0 && o.warmup >= 0, "bench --train",
        "--seq-len, --micro-batch and --steps must be positive");
  for (const std::string& name : o.presets) (void)preset_config(name);  // unknown names fail first
  // Started by mpirun/srun or RANK/WORLD_SIZE: data parallel as `mambalm train` runs it (each
  // rank its own micro-batch, gradients reduce-scattered, sharded AdamW). Rank 0 reports.
  const dist::World world = dist::detect_world();
  std::unique_ptr<dist::Communicator> comm;
  if (world.distributed()) comm = dist::open_communicator(world, o.device);
  const int64_t ranks = world.size;
  std::FILE* sink = world.rank == 0 ? nullptr : std::fopen("/dev/null", "w");
  if (sink) out = sink;
  ops::set_gemm_autotune(o.timed_gemms && !comm);  // as `mambalm train` chooses its GEMM algorithms
  double peak = ops::measure_matmul_tflops(o.device);
  if (comm) peak = comm->sum(peak, 600.0) / static_cast<double>(ranks);  // one figure for all
  std::fprintf(out, "matrix rate: %.0f TFLOP/s (measured)%s\n", peak,
               comm ? (", mean of " + std::to_string(ranks) + " ranks; data parallel over " + comm->backend()).c_str() : "");
  std::fprintf(out,
               "| model | parameters | ranks | step ms | tokens/s | model TFLOP/s | MFU | memory GB | optimizer GB | loss |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& name : o.presets) {
    const size_t used_before = device_used_bytes(o.device);
    double step_ms = 0, loss = 0;
    int64_t params = 0;
    double flops_per_token = 0;
    size_t used_after = 0, workspace_peak = 0;
    double optimizer_gb = 0;
    std::map<std::string, double> stages;  // ms per stage of one profiled step
    std::string op_summary;    // ms per op of that step, largest first
    std::string gemm_summary;  // its tensor-core GEMMs by shape (CUDA)
    try {
      Model model(preset_config(name));
      params = model.parameter_count();
      if (o.device == Device::CUDA) model.init_random_on(o.device, DType::F32, o.seed);  // matrices drawn on the device
      else model.init_random(o.seed);
      model.prepare_training(o.device, o.dtype);
      model.set_keep_activations(o.keep_activations);
      std::unique_ptr<Optimizer> opt;
      ShardedAdamW* sharded = nullptr;
      if (comm) {
        auto sh = std::make_unique<ShardedAdamW>(model.params(), AdamWConfig{}, *comm);
        sharded = sh.get();
        optimizer_gb = static_cast<double>(sh->shard_bytes()) / 1e9;
        opt = std::move(sh);
      } else {
        opt = std::make_unique<AdamW>(model.params(), AdamWConfig{});
        optimizer_gb = static_cast<double>(adamw_state_bytes(model.params())) / 1e9;
      }
      flops_per_token = model.training_flops_per_token(o.seq_len);
      Tensor ids = Tensor::empty({o.micro_batch, o.seq_len}, DType::I32);
      Tensor targets = Tensor::empty({o.micro_batch, o.seq_len}, DType::I32);
      Rng rng(o.seed + 7 + static_cast<uint64_t>(world.rank));  // each rank its own tokens
      random_batch(rng, model.config().vocab_size, o.unrelated_targets, ids, targets);
      auto step = [&] {
        if (sharded) {
          sharded->zero_grads();
          sharded->start_reduction();  // buckets reduce while backward goes on, as in `mambalm train`
          model.set_grads_ready_hook([sharded](size_t first, size_t end) { sharded->grads_ready(first, end); });
          loss = model.train_step(ids, targets, nullptr, 1.0f / static_cast<float>(ranks), o.recompute).mean_loss;
          model.set_grads_ready_hook(nullptr);
          sharded->reduce_gradients();
          opt->step(1e-4, clip_factor(sharded->grad_norm(), 1.0));
        } else {
          model.zero_grads();
          loss = model.train_step(ids, targets, nullptr, 1.0f, o.recompute).mean_loss;
          opt->step(1e-4, clip_factor(global_grad_norm(model.params()), 1.0));
        }
      };
      for (int64_t i = 0; i < o.warmup; ++i) step();
      if (o.device == Device::CUDA) cuda_synchronize();
      const double t0 = now_s();
      for (int64_t i = 0; i < o.steps; ++i) step();
      if (o.device == Device::CUDA) cuda_synchronize();
      step_ms = (now_s() - t0) * 1e3 / static_cast<double>(o.steps);
      used_after = device_used_bytes(o.device);
      workspace_peak = model.workspace_peak();
      if (o.profile) {  // one more step, synchronised at each stage (model.h, set_profiling)
        model.profile().clear();
        model.set_profiling(true);
        ops::clear_op_profile();
        ops::set_op_profiling(true);
        model.zero_grads();
        model.train_step(ids, targets, nullptr, 1.0f, o.recompute);
        model.set_profiling(false);
        const double t_opt = now_s();
        if (sharded) {
          sharded->reduce_gradients();
          opt->step(1e-4, clip_factor(sharded->grad_norm(), 1.0));
        } else {
          opt->step(1e-4, clip_factor(global_grad_norm(model.params()), 1.0));
        }
        if (o.device == Device::CUDA) cuda_synchronize();
        for (const auto& [stage, sec] : model.profile()) stages[stage] = 1e3 * sec;
        stages[sharded ? "optimizer (reduce-scatter, norm, clip, AdamW, all-gather)" : "optimizer (norm, clip, AdamW)"] =
            1e3 * (now_s() - t_opt);
        ops::set_op_profiling(false);
        op_summary = ops::op_profile_summary();
        gemm_summary = ops::gemm_profile_summary();
      }
    } catch (const Error& e) {  // one preset that does not fit must not hide the others
      std::fprintf(out, "| %s | - | - | - | - | - | - | %s |\n", name.c_str(), e.what());
      rows.push_back({{"model", name}, {"error", e.what()}});
      continue;
    }
    // The slowest rank sets the pace; tokens count over all ranks, MFU per device.
    if (comm) step_ms = -comm->sum(world.rank == 0 ? -step_ms : 0.0);
    const double tokens_per_s = static_cast<double>(ranks * o.micro_batch * o.seq_len) / (step_ms * 1e-3);
    const double tflops = tokens_per_s * flops_per_token / 1e12;
    const double mfu = tflops / (peak * static_cast<double>(ranks));
    const double mem_gb = static_cast<double>(used_after - used_before) / 1e9;  // this rank's (rank 0's)
    std::fprintf(out, "| %s | %.3fB | %lld | %.1f | %.0f | %.1f | %.1f%% | %.1f | %.2f | %.3f |\n", name.c_str(),
                 static_cast<double>(params) / 1e9, static_cast<long long>(ranks), step_ms, tokens_per_s, tflops, 100.0 * mfu,
                 mem_gb, optimizer_gb, loss);
    if (!stages.empty()) {
      std::fprintf(out, "  %s, one step synchronised per stage (ms):", name.c_str());
      for (const auto& [stage, ms] : stages) std::fprintf(out, " %s %.1f |", stage.c_str(), ms);
      std::fprintf(out, " activation workspace %.1f GB\n", static_cast<double>(workspace_peak) / 1e9);
      std::fprintf(out, "  %s, ops of that step (ms):%s\n", name.c_str(), op_summary.c_str());
      if (!gemm_summary.empty())
        std::fprintf(out, "  %s, its GEMMs by shape (rows x columns x summed, kernel ms):%s\n", name.c_str(),
                     gemm_summary.c_str());
    }
    std::fflush(out);
    nlohmann::json stage_json = stages;
    rows.push_back({{"model", name}, {"params", params}, {"ranks", ranks}, {"optimizer_gb", optimizer_gb},
                    {"seq", o.seq_len}, {"micro_batch", o.micro_batch},
                    {"dtype", dtype_name(o.dtype)}, {"recompute", o.recompute}, {"gemm_algos", o.timed_gemms ? "timed" : "heuristic"}, {"keep_activations", keep_kinds_name(o.keep_activations)}, {"step_ms", step_ms},
                    {"tokens_per_s", tokens_per_s}, {"flops_per_token", flops_per_token}, {"model_tflops", tflops},
                    {"peak_tflops", peak}, {"mfu", mfu}, {"memory_gb", mem_gb}, {"loss", loss},
                    {"workspace_gb", static_cast<double>(workspace_peak) / 1e9}, {"stages_ms", stage_json}});
  }
  if (sink) {
    std::fclose(sink);
    return nlohmann::json::array();  // rank 0 alone reports (and writes --json-out)
  }
  return rows;
}

}  // namespace mambalm::bench
