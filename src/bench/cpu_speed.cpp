// CPU speed measurement: prefill, greedy decode, peak RSS, and the copy-bandwidth floor.
#include "bench/cpu_speed.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstring>
#include <fstream>
#include <vector>

#include "config/presets.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "ops/op_profile.h"

namespace mambalm::bench {

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

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

}  // namespace

nlohmann::json CpuSpeedResult::to_json() const {
  nlohmann::json j = {{"model", model},
          {"n_params", n_params},
          {"prompt_len", prompt_len},
          {"gen_len", gen_len},
          {"prefill_chunk", prefill_chunk},
          {"prefill_s", prefill_s},
          {"prefill_tokens_per_s", static_cast<double>(prompt_len) / prefill_s},
          {"decode_s", decode_s},
          {"decode_tokens_per_s", static_cast<double>(gen_len) / decode_s},
          {"decode_ms_per_token", decode_ms()},
          {"decode_cpu_ms_per_token", 1e3 * decode_cpu_s / static_cast<double>(gen_len)},
          {"peak_rss_bytes", peak_rss_bytes},
          {"state_bytes", state_bytes},
          {"kv_cache_bytes", kv_cache_bytes},
          {"kv_dtype", kv_dtype},
          {"copy_bandwidth_gb_s", copy_bandwidth / 1e9},
          {"decode_floor_ms", floor_ms()},
          {"decode_floor_bytes", bytes_per_token},
          {"decode_floor_weight_bytes", weight_bytes},
          {"decode_floor_kv_bytes", kv_bytes_read},
          {"decode_fraction_of_floor", floor_ms() / decode_ms()},
          {"threads", threads},
          {"warmup", warmup}};
  if (!op_profile.empty()) j["op_profile"] = op_profile;
  if (!prefill_op_profile.empty()) j["prefill_op_profile"] = prefill_op_profile;
  return j;
}

Model random_preset_model(const std::string& preset, uint64_t seed) {
  Model m(preset_config(preset));
  const int64_t need = m.parameter_count() * 4;
  const int64_t have = available_memory_bytes();
  check(have < 0 || need < have * 9 / 10, "preset " + preset,
        "needs " + std::to_string(need >> 20) + " MiB of fp32 weights but only " + std::to_string(have >> 20) + " MiB are available",
        "the CPU backend keeps fp32 weights; use a smaller preset");
  m.init_random(seed);
  return m;
}

CpuSpeedResult measure_cpu_speed(Model& model, const std::string& name, const CpuSpeedOptions& o) {
  check(o.prompt_len > 0 && o.gen_len > 0, name, "prompt and generated lengths must be positive");
  const ModelConfig& cfg = model.config();
  CpuSpeedResult r;
  r.model = name;
  r.n_params = model.parameter_count();
  r.prompt_len = o.prompt_len;
  r.prefill_chunk = o.prefill_chunk;
  r.gen_len = o.gen_len;
  r.warmup = o.warmup;
  Rng rng(o.seed + 1);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_len));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(cfg.vocab_size));

  if (o.warmup) {
    SequenceState warm(cfg, 1, state_options_for(model, o.prompt_len + o.gen_len));
    prefill(model, warm, prompt, o.prefill_chunk);
  }
  // The KV cache as generate and serve hold it (model.kv_dtype()), growing on demand.
  SequenceState state(cfg, 1, state_options_for(model, o.prompt_len + o.gen_len));
  r.kv_dtype = dtype_name(state.options().kv_dtype);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(model, state, prompt, o.prefill_chunk);
  r.prefill_s = seconds_since(t0);
  Sampler greedy(SamplingOptions{});
  t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  for (int64_t i = 0; i < o.gen_len; ++i) logits = decode_step(model, state, greedy.sample(logits.data(), cfg.vocab_size));
  r.decode_s = seconds_since(t0);
  r.decode_cpu_s = process_cpu_seconds() - cpu0;
  r.state_bytes = state.ssm_state_bytes();
  r.kv_cache_bytes = state.kv_cache_bytes();  // before --profile's steps add rows
  if (o.profile) {  // after the timed steps, so that the timers' own cost stays out of them
    ops::clear_op_profile();
    ops::set_op_profiling(true);
    for (int64_t i = 0; i < o.gen_len; ++i) logits = decode_step(model, state, greedy.sample(logits.data(), cfg.vocab_size));
    ops::set_op_profiling(false);
    r.op_profile = ops::op_profile_summary(24);
    SequenceState again(cfg, 1, state_options_for(model, o.prompt_len));
    ops::clear_op_profile();
    ops::set_op_profiling(true);
    prefill(model, again, prompt, o.prefill_chunk);
    ops::set_op_profiling(false);
    r.prefill_op_profile = ops::op_profile_summary(24);
  }

  r.peak_rss_bytes = peak_rss_bytes();  // before the bandwidth probe's buffers
  // Decode floor: the bytes a step must move, at copy bandwidth, counted as the GPU sweep counts
  // them (generation_sweep.cpp): every weight as stored except an untied embedding table (one row
  // is read), the SSM and conv state read and written back, and the KV rows in use read (on
  // average over the timed steps, prompt_len + (gen_len + 1) / 2 of them).
  r.copy_bandwidth = measure_copy_bandwidth();
  double weight_bytes = static_cast<double>(model.parameter_bytes());
  if (!cfg.tie_embeddings && !model.params().empty()) weight_bytes -= static_cast<double>(model.params().front().tensor->nbytes());
  const double tokens = static_cast<double>(o.prompt_len + o.gen_len);
  const double kv_rows_read = static_cast<double>(o.prompt_len) + static_cast<double>(o.gen_len + 1) / 2.0;
  r.weight_bytes = weight_bytes;
  r.kv_bytes_read = static_cast<double>(r.kv_cache_bytes) * kv_rows_read / tokens;
  r.bytes_per_token = weight_bytes + 2.0 * static_cast<double>(r.state_bytes) + r.kv_bytes_read;
  r.threads = omp_get_max_threads();  // the OpenMP threads the run used (OMP_NUM_THREADS), not the machine's cores
  return r;
}

}  // namespace mambalm::bench
