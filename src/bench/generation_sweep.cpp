// The generation-speed sweep on one GPU. For each context length L and batch size B (up to the
// largest that fits in device memory):
//   prefill  one sequence of L tokens (chunked), timed: seconds and tokens/s;
//   decode   B sequences at position L, one token each per step (CUDA-graph replays), timed:
//            ms per step and tokens/s;
//   memory   weights, SSM+conv state, KV cache (allocated for L + gen tokens), workspace.
// Sequences other than the prefilled one get random state (speed does not depend on values;
// prefilling B x 128K tokens would take minutes). Batch-1 decode is compared with its floor:
// the bytes one step must read (weights, states, KV rows) over the measured copy bandwidth.
#include "bench/generation_sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "config/pattern.h"
#include "config/presets.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/decoder.h"
#include "infer/generate.h"
#include "model/model.h"

namespace mambalm::bench {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Device-to-device copy of a 4 GiB buffer, bytes read + written per second, best of 5.
double measure_device_bandwidth() {
  Tensor a = empty_cuda({int64_t(1) << 30}, DType::F32), b = empty_cuda({int64_t(1) << 30}, DType::F32);
  fill_uniform_cuda(a, 1, -1, 1);
  double best = 0;
  for (int i = 0; i < 6; ++i) {
    cuda_synchronize();
    const double t0 = now_s();
    copy_async(a, b);
    cuda_synchronize();
    if (i > 0) best = std::max(best, 2.0 * double(a.nbytes()) / (now_s() - t0));
  }
  return best;
}

int64_t attention_layers(const ModelConfig& cfg) { return std::count(cfg.pattern.begin(), cfg.pattern.end(), kAttentionSymbol); }

int64_t kv_bytes_per_token(const ModelConfig& cfg, DType kv) {
  return 2 * attention_layers(cfg) * cfg.attention.n_kv_heads * cfg.attention.head_dim * int64_t(dtype_size(kv));
}

int64_t state_bytes_per_sequence(const ModelConfig& cfg) {
  SequenceState probe(cfg, 1);  // CPU, no KV: the SSM + conv state of one sequence
  return probe.ssm_state_bytes();
}

void randomise(SequenceState& s, int64_t n_layers, uint64_t seed) {
  for (int64_t l = 0; l < n_layers; ++l) {
    LayerState& ls = s.layer(l);
    for (Tensor* t : {&ls.conv, &ls.ssm, &ls.k, &ls.v})
      if (t->defined()) fill_uniform_cuda(*t, seed + uint64_t(l) * 7 + uint64_t(t - &ls.conv), -0.5f, 0.5f);
  }
}

// One measured (context, batch) configuration.
struct Row {
  int64_t context, batch;
  double prefill_s = 0, decode_ms = 0;
  int64_t kv_bytes = 0, state_bytes = 0, workspace_bytes = 0;
  bool fits = true;
};

// One preset: prints its rows and returns, per context, the best decode throughput.
// bw: the copy bandwidth measured once, before any model took device memory (measured again
// next to a resident 8B model it read up to 10% lower).
std::vector<BestThroughput> bench_preset(const GenerationSweepOptions& o, const std::string& name, double bw, nlohmann::json& doc,
                                         std::FILE* out) {
  const ModelConfig cfg = preset_config(name);
  const int64_t V = cfg.vocab_size;

  double t0 = now_s();
  Model model(cfg);
  model.init_random_on(Device::CUDA, o.dtype, o.seed);
  cuda_synchronize();
  const int64_t weight_bytes = model.parameter_bytes();
  std::fprintf(out, "model %s: %.3fB parameters, %s weights %.2f GB (random, drawn on the GPU in %.1f s)\n", name.c_str(),
              double(model.parameter_count()) / 1e9, dtype_name(o.dtype).c_str(), double(weight_bytes) / 1e9, now_s() - t0);
  const int64_t per_seq_state = state_bytes_per_sequence(cfg);
  const int64_t kv_tok = kv_bytes_per_token(cfg, o.dtype);
  std::fprintf(out, "per sequence: SSM+conv state %.2f MB (constant), KV cache %.1f KB per token (%lld attention layers)\n",
              double(per_seq_state) / 1e6, double(kv_tok) / 1e3, (long long)attention_layers(cfg));

  Rng rng(o.seed + 1);
  std::vector<Row> rows;
  nlohmann::json measured = nlohmann::json::array();
  for (int64_t L : o.contexts) {
    const int64_t cap = L + o.gen + 16;  // KV rows per sequence (warm-up, timed and profiled steps)
    // Prefill one sequence of L tokens, chunked, timed end to end (tokens uploaded per chunk).
    double prefill_s = NAN;
    if (o.prefill) {
      SequenceState one(cfg, 1, StateOptions{Device::CUDA, cap, o.dtype});
      std::vector<int32_t> prompt(static_cast<size_t>(L));
      for (int32_t& t : prompt) t = static_cast<int32_t>(rng.next_u64() % uint64_t(V));
      // Warm-up with the chunk shapes the timed prefill will use (cuBLASLt tunes each new GEMM
      // shape once, ~10 ms a shape, which must stay out of the timing).
      prefill(model, one, {prompt.begin(), prompt.begin() + std::min<int64_t>(L, o.prefill_chunk)}, o.prefill_chunk);
      if (L > o.prefill_chunk && L % o.prefill_chunk != 0) {
        SequenceState tail(cfg, 1, StateOptions{Device::CUDA, cap, o.dtype});
        prefill(model, tail, {prompt.begin(), prompt.begin() + L % o.prefill_chunk}, o.prefill_chunk);
      }
      SequenceState fresh(cfg, 1, StateOptions{Device::CUDA, cap, o.dtype});
      cuda_synchronize();
      t0 = now_s();
      prefill(model, fresh, prompt, o.prefill_chunk);  // returns after the logits reached the host
      prefill_s = now_s() - t0;
      // Matrix FLOPs of the prefill: 2 x (parameters without the embedding table) per token, the
      // LM head for the last token only; attention scores and the SSD come on top.
      const double matrix_flop = 2.0 * double(model.parameter_count() - 2 * V * cfg.d_model) * double(L);
      std::fprintf(out, "L %7lld  prefill of one sequence %.3f s: %.0f tok/s, %.0f TFLOP/s in its matrix products\n", (long long)L,
                  prefill_s, double(L) / prefill_s, matrix_flop / prefill_s / 1e12);
    }
    // Device memory one more sequence needs (KV for cap tokens, SSM+conv state, its share of
    // the decode activations and logits), and the largest batch the free memory holds; it is
    // measured too, so the best throughput at this context is limited by memory, not by the list.
    size_t free_now = 0, total_now = 0;
    cuda_memory_info(&free_now, &total_now);
    const int64_t per_seq = cap * kv_tok + per_seq_state + V * 4 * 2 + 8 * cfg.d_model * 16;
    const int64_t reserve = int64_t(2) << 30;  // cuBLASLt and attention scratch, fragmentation
    const int64_t max_fit = std::max<int64_t>(0, (int64_t(free_now) * 95 / 100 - reserve) / per_seq);
    std::vector<int64_t> batches;
    for (int64_t B : o.batches)
      if (B < max_fit) batches.push_back(B);
    if (max_fit >= 1 && o.max_batch) batches.push_back(std::min<int64_t>(max_fit, o.batch_cap));
    if (batches.empty() || batches.back() < o.batches.back()) batches.push_back(max_fit + 1);  // shown as not fitting
    for (int64_t B : batches) {
      Row r{L, B};
      size_t free_b = 0, total_b = 0;
      cuda_memory_info(&free_b, &total_b);
      const int64_t need = B * per_seq + reserve;
      r.prefill_s = prefill_s;
      if (need > int64_t(free_b) * 95 / 100) {
        r.fits = false;
        rows.push_back(r);
        std::fprintf(out, "L %7lld  B %4lld  does not fit: needs ~%.1f GB, %.1f GB free\n", (long long)L, (long long)B,
                    double(need) / 1e9, double(free_b) / 1e9);
        break;  // larger batches fit even less
      }
      SequenceState state(cfg, B, StateOptions{Device::CUDA, cap, o.dtype});
      randomise(state, cfg.n_layers(), o.seed + uint64_t(L) * 131 + uint64_t(B));
      state.advance(L);
      BatchDecoder dec(model, state, DecoderOptions{o.graphs, 0});
      std::vector<int32_t> first(static_cast<size_t>(B));
      for (int32_t& t : first) t = static_cast<int32_t>(rng.next_u64() % uint64_t(V));
      dec.set_tokens(first);
      for (int i = 0; i < 4; ++i) dec.step();  // warm-up and capture
      cuda_synchronize();
      t0 = now_s();
      for (int64_t i = 0; i < o.gen; ++i) dec.step();
      cuda_synchronize();
      r.decode_ms = 1e3 * (now_s() - t0) / double(o.gen);
      if (o.profile) {
        // Per-stage time of uncaptured steps, each stage waited for (adds launch gaps).
        model.profile().clear();
        model.set_profiling(true);
        Tensor ids = Tensor::empty({B, 1}, DType::I32);
        for (int64_t b = 0; b < B; ++b) ids.data<int32_t>()[b] = first[static_cast<size_t>(b)];
        const int steps = 4;
        for (int i = 0; i < steps; ++i) model.forward(ids, &state);
        model.set_profiling(false);
        std::fprintf(out, "         profile (ms per step, uncaptured, synchronised per stage):");
        for (const auto& [stage, sec] : model.profile()) std::fprintf(out, "  %s %.3f", stage.c_str(), 1e3 * sec / steps);
        std::fprintf(out, "\n");
      }
      r.kv_bytes = state.kv_allocated_bytes();
      r.state_bytes = state.ssm_state_bytes();
      r.workspace_bytes = int64_t(model.workspace_bytes());
      rows.push_back(r);
      std::fprintf(out, "L %7lld  B %4lld  prefill %8.3f s (%8.0f tok/s)  decode %8.3f ms/step %9.1f tok/s  KV %7.2f GB  state %6.2f GB  "
                  "workspace %.2f GB%s\n",
                  (long long)L, (long long)B, prefill_s, double(L) / prefill_s, r.decode_ms, 1e3 * double(B) / r.decode_ms,
                  double(r.kv_bytes) / 1e9, double(r.state_bytes) / 1e9, double(r.workspace_bytes) / 1e9,
                  dec.graph_captured() ? "" : "  (no graph)");
      std::fflush(out);
      if (B == 1) {
        // Floor: every stored weight except the embedding table (one row is read) and the head
        // when tied, the SSM/conv state read and written, L KV rows read, at copy bandwidth.
        const double emb = double(V) * double(cfg.d_model) * double(dtype_size(o.dtype));
        const double bytes = double(weight_bytes) - (cfg.tie_embeddings ? 0.0 : emb) + 2.0 * double(per_seq_state) +
                             double(L) * double(kv_tok);
        const double floor_ms = 1e3 * bytes / bw;
        std::fprintf(out, "         batch-1 floor %.3f ms (%.2f GB / %.0f GB/s): decode at %.0f%% of the floor\n", floor_ms,
                    bytes / 1e9, bw / 1e9, 100.0 * floor_ms / r.decode_ms);
        measured.push_back({{"context", L}, {"batch", B}, {"floor_ms", floor_ms}, {"floor_bytes", bytes}});
      }
      measured.push_back({{"context", L},
                     {"batch", B},
                     {"prefill_s", prefill_s},
                     {"decode_ms_per_step", r.decode_ms},
                     {"decode_tokens_per_s", 1e3 * double(B) / r.decode_ms},
                     {"kv_bytes", r.kv_bytes},
                     {"state_bytes", r.state_bytes},
                     {"workspace_bytes", r.workspace_bytes},
                     {"weight_bytes", weight_bytes}});
    }
  }
  // BestThroughput throughput per context over the batches that fit: the study's comparison at equal
  // (whole-GPU) memory.
  std::vector<BestThroughput> bests;
  std::fprintf(out, "\n| context | best batch | tokens/s | decode ms/step | KV GB | SSM state GB | limited by |\n|---|---|---|---|---|---|---|\n");
  for (int64_t L : o.contexts) {
    const Row* best = nullptr;
    bool capped = false;
    for (const Row& r : rows) {
      if (r.context != L) continue;
      if (!r.fits) capped = true;
      else if (!best || double(r.batch) / r.decode_ms > double(best->batch) / best->decode_ms) best = &r;
    }
    if (!best) continue;
    int64_t largest = 0;  // the largest batch measured at this context
    for (const Row& r : rows)
      if (r.context == L && r.fits) largest = std::max(largest, r.batch);
    BestThroughput b{L, best->batch, 1e3 * double(best->batch) / best->decode_ms, double(best->kv_bytes) / 1e9,
           double(best->state_bytes) / 1e9, capped};
    bests.push_back(b);
    const char* limit = best->batch < largest ? "compute: larger batches measured were no faster"
                        : capped              ? "memory: the next batch does not fit"
                                              : "the batch list";
    std::fprintf(out, "| %lld | %lld | %.1f | %.3f | %.2f | %.2f | %s |\n", (long long)L, (long long)b.batch, b.tokens_per_s,
                best->decode_ms, b.kv_gb, b.state_gb, limit);
  }
  doc[name] = {{"dtype", dtype_name(o.dtype)}, {"copy_bandwidth", bw}, {"weight_bytes", weight_bytes}, {"rows", measured}};
  return bests;
}

// Ratios against the first preset (the study: hybrid and Mamba-2 against the Transformer), each
// model at its best batch on the whole GPU.
void print_ratio_table(const std::vector<std::string>& presets, const std::vector<std::vector<BestThroughput>>& best, std::FILE* out) {
  if (presets.size() < 2) return;
  std::fprintf(out, "throughput ratio at equal memory (each model at its best batch on the whole GPU) against %s\n", presets[0].c_str());
  std::fprintf(out, "| context |");
  for (size_t i = 1; i < presets.size(); ++i) std::fprintf(out, " %s / %s |", presets[i].c_str(), presets[0].c_str());
  std::fprintf(out, "\n|---|");
  for (size_t i = 1; i < presets.size(); ++i) std::fprintf(out, "---|");
  std::fprintf(out, "\n");
  for (const BestThroughput& base : best[0]) {
    std::fprintf(out, "| %lld |", (long long)base.context);
    for (size_t i = 1; i < best.size(); ++i) {
      const BestThroughput* other = nullptr;
      for (const BestThroughput& b : best[i])
        if (b.context == base.context) other = &b;
      if (other)
        std::fprintf(out, " %.2fx (%.0f tok/s at B %lld vs %.0f at B %lld) |", other->tokens_per_s / base.tokens_per_s,
                     other->tokens_per_s, (long long)other->batch, base.tokens_per_s, (long long)base.batch);
      else
        std::fprintf(out, " - |");
    }
    std::fprintf(out, "\n");
  }
}

}  // namespace

GenerationSweepResult run_generation_sweep(const GenerationSweepOptions& o, std::FILE* out) {
  check(!o.presets.empty(), "generation sweep", "no preset given");
  for (const std::string& name : o.presets) (void)preset_config(name);  // an unknown name fails before the GPU is touched
  GenerationSweepResult result;
  std::fprintf(out, "device: %s\n", cuda_device_summary().c_str());
  const double bw = measure_device_bandwidth();
  std::fprintf(out, "copy bandwidth (read + write): %.0f GB/s\n", bw / 1e9);
  for (const std::string& name : o.presets) {
    result.best.push_back(bench_preset(o, name, bw, result.json, out));
    std::fprintf(out, "\n");
  }
  print_ratio_table(o.presets, result.best, out);
  return result;
}

}  // namespace mambalm::bench
