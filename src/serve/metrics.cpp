#include "serve/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace mambalm::serve {

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::add_ttft(double seconds) {
  double cur = ttft_seconds_sum.load();
  while (!ttft_seconds_sum.compare_exchange_weak(cur, cur + seconds)) {
  }
  ++ttft_count;
}

int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

namespace {
void metric(std::ostringstream& o, const char* name, const char* type, const char* help, double value) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
}
}  // namespace

std::string Metrics::render() const {
  std::ostringstream o;
  o.precision(10);
  o << "# HELP mambalm_requests_total HTTP requests by endpoint and status.\n# TYPE mambalm_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [key, n] : requests_)
      o << "mambalm_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << '\n';
  }
  metric(o, "mambalm_prompt_tokens_total", "counter", "Prompt tokens prefilled.", prompt_tokens.load());
  metric(o, "mambalm_generation_tokens_total", "counter", "Tokens generated.", generated_tokens.load());
  metric(o, "mambalm_sequences_finished_total", "counter", "Sequences that ended, for any reason.", jobs_finished.load());
  metric(o, "mambalm_sequences_cancelled_total", "counter", "Sequences cancelled (client gone or stop string).",
         jobs_cancelled.load());
  metric(o, "mambalm_decode_steps_total", "counter", "Batched decode steps run.", decode_steps.load());
  metric(o, "mambalm_prefill_chunks_total", "counter", "Prompt chunks prefilled.", prefill_chunks.load());
  metric(o, "mambalm_time_to_first_token_seconds_sum", "counter", "Sum of submit-to-first-token times.",
         ttft_seconds_sum.load());
  metric(o, "mambalm_time_to_first_token_seconds_count", "counter", "Sequences with a first token.", ttft_count.load());
  metric(o, "mambalm_prompt_cache_hits_total", "counter", "Prompts that restored a cached prefix state.",
         prompt_cache_hits.load());
  metric(o, "mambalm_prompt_cache_misses_total", "counter", "Prompts with no cached prefix.", prompt_cache_misses.load());
  metric(o, "mambalm_prompt_cache_tokens_reused_total", "counter", "Prompt tokens restored instead of prefilled.",
         prompt_cache_tokens_reused.load());
  metric(o, "mambalm_prompt_cache_evictions_total", "counter", "Snapshots evicted (least recently used).",
         prompt_cache_evictions.load());
  metric(o, "mambalm_prompt_cache_bytes", "gauge", "Bytes of prompt-state snapshots held.", prompt_cache_bytes.load());
  metric(o, "mambalm_prompt_cache_entries", "gauge", "Prompt-state snapshots held.", prompt_cache_entries.load());
  metric(o, "mambalm_generation_tokens_per_second", "gauge", "Generated tokens per second over the last 5 s.",
         tokens_per_second.load());
  metric(o, "mambalm_batch_size", "gauge", "Sequences decoding in the running batch.", batch_size.load());
  metric(o, "mambalm_batch_slots", "gauge", "Slots of the running batch (--max-batch).", max_batch.load());
  metric(o, "mambalm_prefilling_sequences", "gauge", "Sequences whose prompt is being prefilled.", prefilling.load());
  metric(o, "mambalm_queue_length", "gauge", "Sequences waiting for a batch slot.", queue_length.load());
  metric(o, "mambalm_ssm_state_bytes", "gauge", "SSM and conv state of the batch's slots.", ssm_state_bytes.load());
  metric(o, "mambalm_kv_cache_bytes", "gauge", "KV-cache memory allocated for the batch's slots.", kv_cache_bytes.load());
  metric(o, "mambalm_parameter_bytes", "gauge", "Bytes of the model parameters.", parameter_bytes.load());
  metric(o, "process_resident_memory_bytes", "gauge", "Resident memory of the server process.",
         static_cast<double>(resident_bytes()));
  return o.str();
}

}  // namespace mambalm::serve
