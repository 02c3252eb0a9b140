// Server counters and gauges, rendered in the Prometheus text format at GET /metrics.
// Counters only grow; gauges are written by the scheduler after every step. Everything is an
// atomic or behind one mutex, so any HTTP thread may render while the scheduler runs.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace mambalm::serve {

class Metrics {
 public:
  // ---- counters ----
  void count_request(const std::string& endpoint, int status);
  std::atomic<int64_t> prompt_tokens{0};      // prompt tokens prefilled
  std::atomic<int64_t> generated_tokens{0};   // tokens sampled
  std::atomic<int64_t> jobs_finished{0};      // sequences that ended (any reason)
  std::atomic<int64_t> jobs_cancelled{0};     // client gone or stop string seen
  std::atomic<int64_t> decode_steps{0};
  std::atomic<int64_t> prefill_chunks{0};
  std::atomic<double> ttft_seconds_sum{0};    // submit -> first sampled token
  std::atomic<int64_t> ttft_count{0};
  std::atomic<int64_t> prompt_cache_hits{0};          // prompts that restored a snapshot
  std::atomic<int64_t> prompt_cache_misses{0};
  std::atomic<int64_t> prompt_cache_tokens_reused{0}; // prompt tokens not prefilled thanks to it
  std::atomic<int64_t> prompt_cache_evictions{0};

  // ---- gauges ----
  std::atomic<int64_t> batch_size{0};         // sequences decoding in the running batch
  std::atomic<int64_t> prefilling{0};         // sequences whose prompt is being prefilled
  std::atomic<int64_t> queue_length{0};       // sequences waiting for a slot
  std::atomic<int64_t> max_batch{0};
  std::atomic<double> tokens_per_second{0};   // generated tokens over the last few seconds
  std::atomic<int64_t> ssm_state_bytes{0};    // SSM + conv state of the batch (all slots)
  std::atomic<int64_t> kv_cache_bytes{0};     // KV memory allocated for the batch
  std::atomic<int64_t> parameter_bytes{0};
  std::atomic<int64_t> prompt_cache_bytes{0};         // snapshots held
  std::atomic<int64_t> prompt_cache_entries{0};

  void add_ttft(double seconds);
  // The Prometheus text exposition (version 0.0.4), resident memory included.
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;  // (endpoint, status) -> count
};

// Resident set size of this process in bytes (0 when /proc is unavailable).
int64_t resident_bytes();

}  // namespace mambalm::serve
