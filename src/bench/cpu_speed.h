// Prefill and decode speed of one model on the CPU (`mambalm bench`): a random prompt is
// prefilled (after one untimed warm-up prefill of the same length, as llama-bench does, unless
// told otherwise) and greedy decoding timed, peak memory and state sizes are read, and decode is set
// against its floor, the bytes one step must move (the weights as stored, the SSM state read and
// written, the KV rows read) over the measured copy bandwidth.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace mambalm::bench {

struct CpuSpeedOptions {
  int64_t prompt_len = 128;  // tokens prefilled
  int64_t gen_len = 32;      // tokens decoded, one step each
  int64_t prefill_chunk = 512;  // prompt tokens per forward call (generate's --prefill-chunk)
  uint64_t seed = 0;         // the prompt's tokens
  // One untimed prefill of the same prompt first, on a state of its own that is dropped: the
  // timed prefill then finds the thread pool started, the BLAS buffers and the heap grown and
  // the weights' pages touched, which is what a served or repeated prompt sees and what
  // llama-bench measures. false: the first, cold prefill of the process is the one timed.
  bool warmup = true;
  // Then gen_len more decode steps with every op timed (ops/op_profile.h), into op_profile, and
  // one more prefill of the prompt so timed, into prefill_op_profile.
  bool profile = false;
};

struct CpuSpeedResult {
  std::string model;  // directory or preset name
  int64_t n_params = 0, prompt_len = 0, gen_len = 0, prefill_chunk = 0;
  double prefill_s = 0, decode_s = 0;
  double decode_cpu_s = 0;  // CPU time of the whole process during decode (all threads): on a
                            // shared machine, decode_cpu_s / threads bounds what idle cores would take
  int64_t peak_rss_bytes = 0;            // before the bandwidth probe allocated its buffers
  int64_t state_bytes = 0, kv_cache_bytes = 0;  // after prompt_len + gen_len tokens (the timed steps)
  std::string kv_dtype;                  // of the KV cache ("F32" or "BF16")
  double copy_bandwidth = 0;             // bytes read + written per second, all threads
  double bytes_per_token = 0;            // the decode floor's traffic: weight_bytes + 2 x state_bytes + kv_bytes_read
  double weight_bytes = 0;               // weights as stored, without an untied embedding table
  double kv_bytes_read = 0;              // KV rows a timed step reads, on average
  int64_t threads = 0;                   // online CPU cores
  bool warmup = true;                    // an untimed prefill ran before the timed one
  std::string op_profile;                // with CpuSpeedOptions::profile: the profiled steps' time by op
  std::string prefill_op_profile;        // with CpuSpeedOptions::profile: the profiled prefill's time by op

  double decode_ms() const { return 1e3 * decode_s / static_cast<double>(gen_len); }
  double floor_ms() const { return 1e3 * bytes_per_token / copy_bandwidth; }
  // The keys `mambalm bench --json` prints.
  nlohmann::json to_json() const;
};

// A preset with random weights drawn from `seed`, after checking that its fp32 weights fit in
// the memory available (a clear error instead of the kernel's OOM killer).
Model random_preset_model(const std::string& preset, uint64_t seed);

// Times `model` (on the CPU) as the header says; `name` is recorded as the model.
CpuSpeedResult measure_cpu_speed(Model& model, const std::string& name, const CpuSpeedOptions& options);

}  // namespace mambalm::bench
