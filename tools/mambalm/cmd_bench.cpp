// mambalm bench: prefill and decode throughput, peak memory and state size, on this machine; with
// --train, training throughput. The measurements live in src/bench/ (cpu_speed on the CPU,
// generation_sweep on a GPU, train_speed); this file reads the options and prints.
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.h"
#include "bench/cpu_speed.h"
#include "bench/generation_sweep.h"
#include "bench/train_speed.h"
#include "commands.h"
#include "device_options.h"
#include "core/error.h"
#include "core/limits.h"
#include "model/model.h"

namespace mambalm::cli {

namespace {

// --device cuda: the generation-speed sweep over presets, contexts and batches.
int bench_gpu(const Args& args, const Placement& placement, bench::GenerationSweepOptions o) {
  check(args.has("preset"), args.where(), "--device cuda runs the generation-speed experiment on a --preset");
  o.presets = split_list(args.str("preset"));
  o.dtype = placement.dtype;
  o.graphs = !args.flag("no-graph");
  o.profile = args.flag("profile");
  o.prefill = !args.flag("no-prefill");
  o.max_batch = !args.flag("no-max-batch");
  const bench::GenerationSweepResult r = bench::run_generation_sweep(o);
  if (args.has("json-out")) {
    const std::string path = args.str("json-out");
    FILE* f = std::fopen(path.c_str(), "w");
    check(f != nullptr, path, "cannot write the JSON results");
    std::fprintf(f, "%s\n", r.json.dump(1).c_str());
    std::fclose(f);
  }
  return 0;
}

// --train: training throughput of presets (forward + backward + AdamW on random tokens).
int bench_train(const Args& args, const Placement& placement, bench::TrainSpeedOptions o) {
  check(args.has("preset"), args.where(), "--train measures a --preset (a comma list)");
  o.presets = split_list(args.str("preset"));
  o.device = placement.device;
  o.dtype = placement.dtype;
  const ActivationPolicy policy = parse_activation_policy(args);
  o.recompute = policy.recompute;
  o.keep_activations = policy.keep;
  o.timed_gemms = parse_gemm_algos(args).timed;
  o.profile = args.flag("profile");
  o.unrelated_targets = args.flag("unrelated-targets");
  const nlohmann::json rows = bench::run_train_speed(o);
  if (args.has("json-out") && !rows.empty()) {  // in a data-parallel run, rank 0's rows only
    const std::string path = args.str("json-out");
    FILE* f = std::fopen(path.c_str(), "w");
    check(f != nullptr, path, "cannot write the JSON results");
    for (const auto& row : rows) std::fprintf(f, "%s\n", row.dump().c_str());
    std::fclose(f);
  }
  return 0;
}

// Every numeric option of the three modes, range-checked as it is read (before any mode runs, so
// that a bad value is reported on any build), with the products that size allocations.
struct BenchNumbers {
  bench::CpuSpeedOptions cpu;
  bench::GenerationSweepOptions sweep;
  bench::TrainSpeedOptions train;
};

BenchNumbers read_numbers(const Args& args) {
  BenchNumbers n;
  const uint64_t seed = args.seed("seed", 0);
  n.cpu.prompt_len = args.integer_in("prompt-len", 128, 1, limits::kMaxSequence);
  n.cpu.gen_len = args.integer_in("gen-len", 32, 1, limits::kMaxSequence);
  n.cpu.prefill_chunk = args.integer_in("prefill-chunk", n.cpu.prefill_chunk, 1, limits::kMaxSequence);
  limits::checked_add(n.cpu.prompt_len, n.cpu.gen_len, "--prompt-len", "prompt + generated tokens", limits::kMaxSequence);
  n.cpu.seed = seed;
  n.cpu.warmup = !args.flag("cold");
  n.cpu.profile = args.flag("profile");
  n.sweep.contexts = args.sizes("contexts", "1K,4K,16K,32K,64K,128K", limits::kMaxSequence);
  n.sweep.batches = args.sizes("batches", "1,2,8,32,128,512", limits::kMaxBatch);
  n.sweep.gen = n.cpu.gen_len;
  if (args.has("prefill-chunk")) n.sweep.prefill_chunk = n.cpu.prefill_chunk;
  n.sweep.seed = seed;
  for (int64_t L : n.sweep.contexts)
    for (int64_t B : n.sweep.batches)
      limits::checked_mul(B, limits::checked_add(L, n.sweep.gen, "--contexts", "context + generated tokens"), "--batches",
                          "tokens of a batch (batch x (context + gen-len))", limits::kMaxTokensPerStep);
  n.train.seq_len = args.integer_in("seq-len", 4096, 1, limits::kMaxSequence);
  n.train.micro_batch = args.integer_in("micro-batch", 4, 1, limits::kMaxBatch);
  limits::checked_mul(n.train.seq_len, n.train.micro_batch, "--micro-batch", "tokens per step (seq-len x micro-batch)",
                      limits::kMaxTokensPerStep);
  n.train.steps = args.integer_in("steps", 8, 1, int64_t{1} << 30);
  n.train.warmup = args.integer_in("warmup", 3, 0, 1000);
  n.train.seed = seed;
  return n;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Args args("bench", "--model DIR | --preset NAME [--prompt-len P --gen-len G] [--json] [--device cuda ...]",
            {{"model", "DIR", "model directory"},
             {"preset", "NAME", "a preset with random weights (speed does not depend on their values); cuda: a comma list, the first is the ratio baseline"},
             {"prompt-len", "P", "prompt tokens (default 128)"},
             {"gen-len", "G", "decoded tokens (default 32)"},
             {"prefill-chunk", "N", "prompt tokens per prefill forward call (default 512 on the CPU, as generate's; 8192 with --device cuda)"},
             {"seed", "S", "seed for weights and prompt (default 0)"},
             {"json", "", "print JSON"},
             {"cold", "", "cpu: time the process's first prefill (default: one untimed warm-up prefill first, as llama-bench)"},
             {"contexts", "L,...", "cuda: context lengths (default 1K,4K,16K,32K,64K,128K)"},
             {"batches", "B,...", "cuda: batch sizes, ascending (default 1,2,8,32,128,512), plus the largest that fits"},
             {"no-graph", "", "cuda: launch decode steps kernel by kernel instead of replaying a CUDA graph"},
             {"json-out", "FILE", "cuda: write every measurement as JSON"},
             {"profile", "", "cuda: print a per-stage breakdown of decode steps; cpu: then gen-len more decode steps and one prefill, each op timed; train: then one step timed stage by stage (synchronised)"},
             {"no-prefill", "", "cuda: skip the prefill timing (decode only)"},
             {"no-max-batch", "", "cuda: only the listed batches (not also the largest that fits)"},
             {"train", "", "measure training instead: forward + backward + AdamW steps on random tokens"},
             {"seq-len", "L", "train: tokens per sequence (default 4096)"},
             {"micro-batch", "B", "train: sequences per step (default 4)"},
             {"steps", "N", "train: timed steps (default 8)"},
             {"warmup", "N", "train: untimed steps first (default 3)"},
             {"unrelated-targets", "", "train: targets drawn apart from the ids, not the next id (a causal leak then cannot lower the loss)"}},
            with(with(placement_options_with_kv(), activation_options()), gemm_options()));
  if (!args.parse(argc, argv)) return 0;
  const BenchNumbers numbers = read_numbers(args);
  const Placement placement = parse_placement(args);
  check(!args.flag("cold") || (!args.flag("train") && placement.device == Device::CPU), "mambalm bench --cold",
        "times the CPU's first prefill; it means nothing with --train or --device cuda");
  check(!args.has("prefill-chunk") || !args.flag("train"), "mambalm bench --prefill-chunk",
        "sizes the inference benchmarks' prefill; --train has none");
  check(!args.flag("unrelated-targets") || args.flag("train"), "mambalm bench --unrelated-targets",
        "chooses the training benchmark's targets; give it with --train");
  if (args.flag("train")) return bench_train(args, placement, numbers.train);
  if (placement.device == Device::CUDA) return bench_gpu(args, placement, numbers.sweep);
  check(args.has("model") != args.has("preset"), args.where(), "give exactly one of --model DIR or --preset NAME");
  const bench::CpuSpeedOptions o = numbers.cpu;
  const std::string name = args.has("model") ? args.str("model") : args.str("preset");
  // --dtype bf16|q8: the CPU's own low-precision GEMV kernels. One prompt, then decoded tokens.
  const InferenceWork work{1, std::min(o.prompt_len, o.prefill_chunk), o.prompt_len + o.gen_len, 1};
  Model model = args.has("model") ? load_placed(name, placement, work, "mambalm bench") : bench::random_preset_model(name, o.seed);
  if (!args.has("model")) place(model, placement);
  const bench::CpuSpeedResult r = bench::measure_cpu_speed(model, name, o);
  if (args.flag("json")) {
    std::printf("%s\n", r.to_json().dump(2).c_str());
    return 0;
  }
  const double P = static_cast<double>(r.prompt_len), G = static_cast<double>(r.gen_len);
  std::printf("model %s: %.2fM parameters, CPU, weights %s\n", name.c_str(), static_cast<double>(r.n_params) / 1e6,
              dtype_name(model.matrix_dtype()).c_str());
  std::printf("prefill  %6lld tokens  %8.3f s  %10.1f tokens/s%s\n", static_cast<long long>(r.prompt_len), r.prefill_s, P / r.prefill_s,
              r.warmup ? "  (after an untimed warm-up prefill)" : "  (cold: the process's first)");
  std::printf("decode   %6lld tokens  %8.3f s  %10.1f tokens/s  (%.2f ms/token)\n", static_cast<long long>(r.gen_len), r.decode_s,
              G / r.decode_s, r.decode_ms());
  std::printf("floor    %.2f ms/token = %.0f MB (weights %.0f, state read and written %.0f, KV rows %.0f) / %.1f GB/s measured copy "
              "bandwidth: decode runs at %.0f%% of it\n",
              r.floor_ms(), r.bytes_per_token / 1e6, r.weight_bytes / 1e6, 2e-6 * static_cast<double>(r.state_bytes),
              r.kv_bytes_read / 1e6, r.copy_bandwidth / 1e9, 100.0 * r.floor_ms() / r.decode_ms());
  std::printf("memory   peak RSS %.1f MiB, SSM+conv state %lld bytes, KV cache %lld bytes after %lld tokens\n",
              static_cast<double>(r.peak_rss_bytes) / (1 << 20), static_cast<long long>(r.state_bytes),
              static_cast<long long>(r.kv_cache_bytes), static_cast<long long>(r.prompt_len + r.gen_len));
  if (!r.op_profile.empty())
    std::printf("profile  %lld more decode steps, by op (name xCALLS ms):\n%s\n", static_cast<long long>(r.gen_len),
                r.op_profile.c_str());
  if (!r.prefill_op_profile.empty())
    std::printf("profile  one more prefill of %lld tokens, by op (name xCALLS ms):\n%s\n",
                static_cast<long long>(r.prompt_len), r.prefill_op_profile.c_str());
  return 0;
}

}  // namespace mambalm::cli
