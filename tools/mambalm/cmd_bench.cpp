// mambalm bench: prefill and decode throughput, peak memory and state size, on this machine.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "args.h"
#include "bench_cuda.h"
#include "commands.h"
#include "device_options.h"
#include "config/presets.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/model.h"

namespace mambalm::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

// Sustained copy bandwidth in bytes/s (bytes read + bytes written), all threads, best of 5:
// the ceiling for batch-1 decode, which must stream every weight once per token.
double measure_copy_bandwidth() {
  const size_t n = size_t{1} << 26;  // 64 Mi floats = 256 MiB per buffer, far past any cache
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < 64; ++block) {
      size_t len = n / 64;
      std::memcpy(dst.data() + block * len, src.data() + block * len, len * sizeof(float));
    }
    double s = seconds_since(t0);
    best = std::max(best, 2.0 * static_cast<double>(n * sizeof(float)) / s);
  }
  return best;
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

}  // namespace

std::vector<int64_t> parse_sizes(const std::string& text, const char* option) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    int64_t scale = 1;
    if (!item.empty() && (item.back() == 'K' || item.back() == 'k')) {
      scale = 1024;
      item.pop_back();
    }
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    check(!item.empty() && end && *end == '\0' && v > 0, std::string("--") + option,
          "'" + text + "' is not a comma-separated list of positive sizes (e.g. 1K,4K,32K)");
    out.push_back(static_cast<int64_t>(v) * scale);
    i = j + 1;
  }
  return out;
}

int cmd_bench(int argc, char** argv) {
  std::vector<OptionSpec> options = {
      {"model", "DIR", "model directory"},
      {"preset", "NAME", "a preset with random weights (speed does not depend on their values); cuda: a comma list, the first is the ratio baseline"},
      {"prompt-len", "P", "prompt tokens (default 128)"},
      {"gen-len", "G", "decoded tokens (default 32)"},
      {"seed", "S", "seed for weights and prompt (default 0)"},
      {"json", "", "print JSON"},
      {"contexts", "L,...", "cuda: context lengths (default 1K,4K,16K,32K,64K,128K)"},
      {"batches", "B,...", "cuda: batch sizes, ascending (default 1,2,8,32,128,512), plus the largest that fits"},
      {"no-graph", "", "cuda: launch decode steps kernel by kernel instead of replaying a CUDA graph"},
      {"json-out", "FILE", "cuda: write every measurement as JSON"},
      {"profile", "", "cuda: print a per-stage breakdown of decode steps"},
      {"no-prefill", "", "cuda: skip the prefill timing (decode only)"}};
  for (OptionSpec& o : placement_options()) options.push_back(o);
  Args args("bench", "--model DIR | --preset NAME [--prompt-len P --gen-len G] [--json] [--device cuda ...]", options);
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args, "mambalm bench");
  if (placement.device == Device::CUDA) {
    check(args.has("preset"), "mambalm bench", "--device cuda runs the generation-speed experiment on a --preset");
    BenchCudaOptions o;
    const std::string list = args.str("preset");
    for (size_t i = 0; i <= list.size();) {
      size_t j = list.find(',', i);
      if (j == std::string::npos) j = list.size();
      o.presets.push_back(list.substr(i, j - i));
      (void)preset_config(o.presets.back());  // an unknown name fails here, before the GPU is touched
      i = j + 1;
    }
    o.dtype = placement.dtype;
    o.contexts = parse_sizes(args.str("contexts", "1K,4K,16K,32K,64K,128K"), "contexts");
    o.batches = parse_sizes(args.str("batches", "1,2,8,32,128,512"), "batches");
    o.gen = args.integer("gen-len", 32);
    check(o.gen > 0, "mambalm bench", "--gen-len must be positive");
    o.graphs = !args.flag("no-graph");
    o.profile = args.flag("profile");
    o.prefill = !args.flag("no-prefill");
    o.seed = static_cast<uint64_t>(args.integer("seed", 0));
    o.json_path = args.str("json-out");
    return bench_cuda(o);
  }
  check(args.has("model") != args.has("preset"), "mambalm bench", "give exactly one of --model DIR or --preset NAME");
  const int64_t P = args.integer("prompt-len", 128), G = args.integer("gen-len", 32);
  check(P > 0 && G > 0, "mambalm bench", "--prompt-len and --gen-len must be positive");
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0));

  std::string name;
  Model model = [&] {
    if (args.has("model")) {
      name = args.str("model");
      return Model::load(name);
    }
    name = args.str("preset");
    Model m(preset_config(name));
    int64_t need = m.parameter_count() * 4;
    int64_t have = available_memory_bytes();
    check(have < 0 || need < have * 9 / 10, "mambalm bench",
          "preset " + name + " needs " + std::to_string(need >> 20) + " MiB of fp32 weights but only " + std::to_string(have >> 20) +
              " MiB are available", "the CPU backend keeps fp32 weights; use a smaller preset");
    m.init_random(seed);
    return m;
  }();
  const ModelConfig& cfg = model.config();
  Rng rng(seed + 1);
  std::vector<int32_t> prompt(static_cast<size_t>(P));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(cfg.vocab_size));

  SequenceState state(cfg, 1);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(model, state, prompt);
  double prefill_s = seconds_since(t0);
  Sampler greedy(SamplingOptions{});
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < G; ++i) logits = decode_step(model, state, greedy.sample(logits.data(), cfg.vocab_size));
  double decode_s = seconds_since(t0);

  const int64_t peak_rss = peak_rss_bytes();  // before the bandwidth probe's buffers
  // Decode floor: every fp32 weight and the SSM state read once per token, at copy bandwidth.
  const double bandwidth = measure_copy_bandwidth();
  const double bytes_per_token = 4.0 * static_cast<double>(model.parameter_count()) + static_cast<double>(state.ssm_state_bytes());
  const double floor_ms = 1e3 * bytes_per_token / bandwidth;
  const double decode_ms = 1e3 * decode_s / static_cast<double>(G);

  nlohmann::json j = {{"model", name},
                      {"n_params", model.parameter_count()},
                      {"prompt_len", P},
                      {"gen_len", G},
                      {"prefill_s", prefill_s},
                      {"prefill_tokens_per_s", static_cast<double>(P) / prefill_s},
                      {"decode_s", decode_s},
                      {"decode_tokens_per_s", static_cast<double>(G) / decode_s},
                      {"decode_ms_per_token", 1e3 * decode_s / static_cast<double>(G)},
                      {"peak_rss_bytes", peak_rss},
                      {"state_bytes", state.ssm_state_bytes()},
                      {"kv_cache_bytes", state.kv_cache_bytes()},
                      {"copy_bandwidth_gb_s", bandwidth / 1e9},
                      {"decode_floor_ms", floor_ms},
                      {"decode_fraction_of_floor", floor_ms / decode_ms},
                      {"threads", static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN))}};
  if (args.flag("json")) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model %s: %.2fM parameters, CPU fp32\n", name.c_str(), static_cast<double>(model.parameter_count()) / 1e6);
  std::printf("prefill  %6lld tokens  %8.3f s  %10.1f tokens/s\n", static_cast<long long>(P), prefill_s, static_cast<double>(P) / prefill_s);
  std::printf("decode   %6lld tokens  %8.3f s  %10.1f tokens/s  (%.2f ms/token)\n", static_cast<long long>(G), decode_s,
              static_cast<double>(G) / decode_s, 1e3 * decode_s / static_cast<double>(G));
  std::printf("floor    %.2f ms/token = %.0f MB of weights+state / %.1f GB/s measured copy bandwidth: decode runs at %.0f%% of it\n",
              floor_ms, bytes_per_token / 1e6, bandwidth / 1e9, 100.0 * floor_ms / decode_ms);
  std::printf("memory   peak RSS %.1f MiB, SSM+conv state %lld bytes, KV cache %lld bytes after %lld tokens\n",
              static_cast<double>(peak_rss) / (1 << 20), static_cast<long long>(state.ssm_state_bytes()),
              static_cast<long long>(state.kv_cache_bytes()), static_cast<long long>(P + G));
  return 0;
}

}  // namespace mambalm::cli
