// Conformance cases for causal GQA attention: prefill, prefill after a KV-cache prefix, decode.
#include <cmath>
#include <string>

#include "harness.h"
#include "ops/layout.h"
#include "ops/ops.h"

namespace conformance {
namespace {

void check_attention(int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t Dh) {
  Tensor q = rand_cpu({B, T, Hq, Dh}, -1, 1), k = rand_cpu({B, S, Hkv, Dh}, -1, 1),
         v = rand_cpu({B, S, Hkv, Dh}, -1, 1), o = Tensor::empty({B, T, Hq, Dh});
  Tensor gq = up(q), gk = up(k), gv = up(v), go = poisoned({B, T, Hq, Dh});
  const float scale = 1.0f / std::sqrt(float(Dh));
  auto t = run_pair([&] { ops::attention(q, k, v, scale, o); }, [&] { ops::attention(gq, gk, gv, scale, go); });
  record("attention", "q" + shape_str(q.shape()) + " S" + std::to_string(S) + " kv" + std::to_string(Hkv),
         "out", nmse(go, o), kAttention, t.gpu_ms, t.cpu_ms);
}

void run_attention(bool quick) {
  const int64_t B = 2, T = quick ? 77 : 200;
  check_attention(B, T, T, 32, 8, 128);
  check_attention(B, T / 2, T + 100, 32, 8, 128);  // KV cache prefix
  check_attention(B, 1, 1000, 32, 8, 128);         // decode
  check_attention(3, 21, 40, 6, 2, 80);            // odd head dim, 3 sequences
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("attention", run_attention);

}  // namespace conformance
