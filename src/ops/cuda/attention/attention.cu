// Causal GQA attention on CUDA (queries may follow a KV-cache prefix), its backward, and
// one-query decode: the host entry points of cuda_ops.h and the choice among the kernels of
// this folder.
//
// Forward, five paths:
//  - attend_rows_kernel (rows.cu): one warp per query row, fp32 throughout, any head dim <= 256,
//    F32 or BF16 K/V. It is the reference-grade path (F32 K/V always take it) and the fallback
//    for the shapes the fast kernels do not cover; decode_rows_kernel is its decode form.
//  - flash_prefill_kernel (flash_mma.cu): BF16 K/V, head dim 64 or 128. Flash-attention-2
//    style: a block owns 128 queries of one head (32 per warp; 64 and 16 with MT=1), streams
//    64-key K/V tiles through shared memory with cp.async (two stages), computes QK^T and PV
//    with bf16 mma.sync.m16n8k16 (fp32 accumulate), online softmax in fp32 with exp2 and the
//    scale folded into one FMA, causal tile skipping.
//  - flash_wgmma_kernel (flash_wgmma.cu): the same algorithm for Hopper (sm_90a, the default on
//    9.x): 128 queries per block, QK^T on wgmma from 128-byte-swizzled shared memory, PV on
//    mma.sync. Both flash kernels share the masked online-softmax step (common.cuh).
//  - decode_warp_kernel (decode_warp.cu; the default decode for head dims 64 and 128): every
//    warp streams its own tiles of keys for all query heads of a KV head, no block barrier in
//    the loop; the last block of a (sequence, KV head) to finish merges the splits (no second
//    launch).
//  - decode_split_kernel + decode_combine_kernel (decode_split.cu): flash-decoding. A block owns
//    (sequence, KV head, one split of the cache length) and all query heads of that KV head (up
//    to 8), so a K/V row is read once per sequence; partial (max, sum, unnormalised acc) per
//    split go to a scratch buffer that the combine kernel merges. Head dim 256, and
//    MAMBALM_ATTN_DECODE=split.
// Documents (seq_idx): every prefill kernel takes them; a pre-pass (doc_ranges_kernel, here)
// writes the id range of each 64-key and 64-query tile, by which the flash kernels skip tiles
// that share no document (common.cuh).
//
// Backward (attention_backward): F32 K/V, and head dims other than 64 / 128, take the fp32
// path (backward_rows.cu: two warp-per-row kernels). BF16 K/V at head dims 64 / 128 take the
// tensor cores in two passes: (1) statistics, a flash forward kernel in stats mode
// (flash_wgmma.cu on 9.x, flash_mma.cu elsewhere) that recomputes each row's softmax and writes
// lse2, D = dO . O and bf16 copies of q and dout; (2) backward.cu, parallel over key blocks,
// dK dV in registers, dQ added in key-block order. Why a full forward for the statistics: the
// op contract saves nothing, and D needs O (or P and dP together); recomputing O costs the
// forward's 2 GEMMs, one pass over the keys, and keeps the second pass at the textbook 5 GEMMs.
// (An op that took the forward's out and lse would skip pass 1: 1.06 of 4.6 ms at B 2, L 4096.)
// cuDNN (cudnn_attention.cu): where its fused flash attention covers the call (BF16 K/V, head
// dim 64 / 128, q_len == k_len, no documents) it is faster on the H200 (PyTorch SDPA through it:
// 559 TFLOP/s forward, 1.47 ms backward at B 2, L 4096, 32 heads of 128, against our 345 TFLOP/s
// and 3.7 ms). MAMBALM_ATTN picks: unset = cuDNN for training calls (a forward that saves lse2,
// and the backward) when it loads and plans the shape, our kernels otherwise and for inference
// prefill (every new prompt length would cost a plan build); `own` = never; `cudnn` = every
// covered call, and a failure is an error. MAMBALM_ATTN_DEBUG=1 prints why cuDNN was not used.
// The PTX wrappers the kernels use are in ops/cuda/ptx.cuh; the environment knobs read here are
// described in docs/environment.md.
#include <cuda_runtime.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "ops/cuda/attention/common.cuh"
#include "ops/cuda/bf16_convert.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

// Prefill kernel choice, measured on the H200 at B=2, L=4096, 32 heads of 128, causal
// (PyTorch SDPA flash in the same run: 299 TFLOP/s): 3 = flash_wgmma_kernel, 345 TFLOP/s, the
// default on compute capability 9.x; 2 = flash_prefill_kernel with 32 rows per warp, 314, the
// default elsewhere; 1 = 16 rows per warp, 256. MAMBALM_ATTN_FLASH_MT=1|2|3 overrides (all three
// pass the same conformance cases).
int flash_mt() {
  static const int hopper = [] {
    int dev = 0, major = 0;
    check_cuda(cudaGetDevice(&dev), "attention", "device");
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "attention",
               "compute capability");
    return major == 9 ? 1 : 0;
  }();
  const char* e = std::getenv("MAMBALM_ATTN_FLASH_MT");
  if (e && (e[0] == '1' || e[0] == '2' || e[0] == '3')) return e[0] - '0';
  return hopper ? 3 : 2;
}

// Decode kernel choice: MAMBALM_ATTN_DECODE=split selects the split + combine kernels
// (decode_split.cu), =warp8 the warp kernel (decode_warp.cu) with 8 load steps per tile for
// groups of 3-4 heads at D 128 (8 KB in flight per warp, 242 registers: 2 blocks per SM),
// anything else the warp kernel as planned (4 steps, 128 registers, 4 blocks per SM). Measured
// on the H200 (bf16 cache, 32 q / 8 KV heads of 128, GB/s of K+V, event-timed single calls;
// PyTorch SDPA in the same run):
//   batch 1, 4K/32K/128K: warp 661/2409/3500, warp8 798/2457/3450, split 589/1178/1416,
//                         torch 211/325/352;
//   batch 8:              warp 2534/3896/4194, warp8 2495/3744/4011, split 1182/1616/1684,
//                         torch 1657/2564/2786;
//   batch 32:             warp 3620/4160/4197, warp8 3568/4029/4065, split 1920/2154/2224,
//                         torch 3507/4302/4462.
// All three pass the same conformance cases. (Head dim 256 always takes the split kernels.)
enum class DecodeKernel { warp, split, warp8 };
DecodeKernel decode_variant() {
  const char* e = std::getenv("MAMBALM_ATTN_DECODE");
  if (!e) return DecodeKernel::warp;
  const std::string s(e);
  return s == "split"   ? DecodeKernel::split
         : s == "warp8" ? DecodeKernel::warp8
                        : DecodeKernel::warp;
}

// ---- cuDNN or ours ----------------------------------------------------------------------
std::atomic<int> g_backend{-1};  // -1: not decided yet (MAMBALM_ATTN read on first use)

AttentionBackend backend_from_env() {
  const char* e = std::getenv("MAMBALM_ATTN");
  if (!e || !*e) return AttentionBackend::Auto;
  const std::string s(e);
  if (s == "own") return AttentionBackend::Own;
  if (s == "cudnn") return AttentionBackend::Cudnn;
  if (s == "auto") return AttentionBackend::Auto;
  fail("MAMBALM_ATTN", "unknown value '" + s + "'", "use own, cudnn or auto (unset)");
}

bool attn_debug() {
  static const bool on = [] {
    const char* e = std::getenv("MAMBALM_ATTN_DEBUG");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

// The shapes cuDNN's path takes: BF16 K/V at head dim 64 / 128, queries = keys (no KV prefix),
// no documents, 16-byte aligned data. (q, out and the gradients are F32, or all BF16.)
bool cudnn_shape(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx) {
  const int64_t Dh = q.dim(3);
  return !seq_idx && k.dtype() == DType::BF16 && v.dtype() == DType::BF16 && (Dh == 64 || Dh == 128) &&
         q.dim(1) == k.dim(1) && q.dim(1) >= 2 && aligned16(k.data<uint16_t>()) && aligned16(v.data<uint16_t>()) &&
         aligned16(q.raw());
}


// After cuDNN declined a call: an error under MAMBALM_ATTN=cudnn, else one line per distinct
// reason under MAMBALM_ATTN_DEBUG=1, else nothing.
void cudnn_declined(const char* op, const std::string& why) {
  if (attention_backend() == AttentionBackend::Cudnn)
    fail(std::string("op ") + op + " (cuda)", "cuDNN attention was required (MAMBALM_ATTN=cudnn) but not used: " + why,
         "MAMBALM_ATTN_DEBUG=1 prints plan builds; unset MAMBALM_ATTN to fall back to the built-in kernels");
  if (!attn_debug()) return;
  static std::mutex m;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(m);
  if (said.insert(why).second) std::fprintf(stderr, "mambalm: %s: cuDNN attention not used: %s\n", op, why.c_str());
}

}  // namespace

void set_attention_backend(AttentionBackend backend) { g_backend.store(int(backend)); }

AttentionBackend attention_backend() {
  int b = g_backend.load();
  if (b < 0) {
    b = int(backend_from_env());
    int expected = -1;
    if (!g_backend.compare_exchange_strong(expected, b)) b = expected;
  }
  return AttentionBackend(b);
}

// Decode scratch, one buffer for the partials of both the split and the warp decode kernels:
// allocated once and grown only when a larger size is first asked for. Decode steps are
// captured in CUDA graphs after a warm-up step, so in steady state this never allocates (and a
// capture never sees an allocation: the warm-up ran the same shape first).
float* attention_decode_scratch(size_t floats) {
  static GrowOnlyBuffer buf;
  return buf.get<float>(floats, "attention_decode");
}

namespace {

// Per sequence, the [min, max] document id of each 64-key tile of [0, S) and of each 64-row
// query tile of [0, T) (rows at positions S - T + row). One warp per tile.
__global__ void doc_ranges_kernel(const int* __restrict__ seq, int B, int S, int T, int nk, int nq,
                                  int2* __restrict__ krange, int2* __restrict__ qrange) {
  const int64_t wid = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  const int per = nk + nq;
  if (wid >= int64_t(B) * per) return;
  const int b = int(wid / per), t = int(wid % per);
  const bool key = t < nk;
  const int tt = key ? t : t - nk;
  const int base = key ? tt * kDocTile : S - T + tt * kDocTile;
  const int n = min(kDocTile, (key ? S : T) - tt * kDocTile);
  int lo = INT_MAX, hi = INT_MIN;
  for (int i = lane; i < n; i += 32) {
    const int x = seq[int64_t(b) * S + base + i];
    lo = min(lo, x);
    hi = max(hi, x);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
  }
  if (lane == 0) (key ? krange + int64_t(b) * nk + tt : qrange + int64_t(b) * nq + tt)[0] = make_int2(lo, hi);
}

// The document view of seq_idx (null: none), its ranges in `ranges` (see doc_range_ints).
size_t doc_range_ints(int64_t B, int64_t S, int64_t T) {
  return size_t(2 * B * ((S + kDocTile - 1) / kDocTile + (T + kDocTile - 1) / kDocTile));
}
DocView doc_view(const Tensor& seq_idx, int64_t T, int* ranges) {
  const int B = int(seq_idx.dim(0)), S = int(seq_idx.dim(1));
  const int nk = (S + kDocTile - 1) / kDocTile, nq = (int(T) + kDocTile - 1) / kDocTile;
  DocView d;
  d.seq = seq_idx.data<int32_t>();
  d.krange = reinterpret_cast<const int2*>(ranges);
  d.qrange = reinterpret_cast<const int2*>(ranges) + int64_t(B) * nk;
  const int64_t threads = int64_t(B) * (nk + nq) * 32;
  doc_ranges_kernel<<<unsigned((threads + kThreads - 1) / kThreads), kThreads>>>(
      d.seq, B, S, int(T), nk, nq, reinterpret_cast<int2*>(ranges),
      reinterpret_cast<int2*>(ranges) + int64_t(B) * nk);
  return d;
}

bool flash_shape(const Tensor& q, const Tensor& k, const Tensor& v, const float* out) {
  const int64_t Dh = q.dim(3);
  return k.dtype() == DType::BF16 && aligned16(k.data<uint16_t>()) &&
         aligned16(v.data<uint16_t>()) && aligned16(q.raw()) && (!out || aligned16(out)) &&
         (Dh == 128 || Dh == 64);
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx, float scale, Tensor& out,
               Tensor* lse2_out) {
  float* lse2 = lse2_out ? lse2_out->f32() : nullptr;
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  if (B * T * Hq * Dh == 0) return;
  const AttentionBackend backend = attention_backend();
  if (backend != AttentionBackend::Own && cudnn_shape(q, k, v, seq_idx) && aligned16(out.raw()) &&
      (backend == AttentionBackend::Cudnn || lse2)) {
    std::string why;
    if (attention_cudnn(q, k, v, scale, out, lse2, &why)) return;
    cudnn_declined("attention", why);
  }
  if (q.dtype() == DType::BF16) {  // the built-in kernels read fp32 queries: widen, run, round
    static thread_local GrowOnlyBuffer q32_buf, out32_buf;
    const Tensor q32 = as_f32(q, q32_buf, "attention");
    Tensor out32 = f32_scratch(out32_buf, out.shape(), "attention");
    attention(q32, k, v, seq_idx, scale, out32, lse2_out);
    f32_to_bf16({{out32.f32(), out.data<uint16_t>(), out.numel()}});
    return;
  }
  DocView docs;
  if (seq_idx) {
    // One buffer per calling thread: each thread queues on its own default stream.
    static thread_local GrowOnlyBuffer ranges;
    docs = doc_view(*seq_idx, T,
                    ranges.get<int>(doc_range_ints(B, k.dim(1), T), "attention"));
  }
  const DocView* dv = seq_idx ? &docs : nullptr;
  if (flash_shape(q, k, v, out.f32())) {
    const int mt = flash_mt();
    if (mt == 3) attention_flash_wgmma(q, k, v, dv, scale, &out, nullptr, lse2);
    else attention_flash_mma(q, k, v, dv, scale, &out, mt == 2 ? 32 : 16, nullptr, lse2);
    check_launch("attention");
    return;
  }
  attention_rows(q, k, v, dv, scale, out, lse2);
  check_launch("attention");
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv,
                        const Tensor* out, const Tensor* lse2) {
  const char* op = "attention_backward";
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1);
  if (B * T * Hq * Dh == 0) {  // no query: dk and dv are zero (dq is empty or has Dh == 0)
    if (dk.numel()) check_cuda(cudaMemsetAsync(dk.raw(), 0, dk.nbytes(), cudaStreamPerThread), op, "memset");
    if (dv.numel()) check_cuda(cudaMemsetAsync(dv.raw(), 0, dv.nbytes(), cudaStreamPerThread), op, "memset");
    return;
  }
  const bool aligned = aligned16(q.raw()) && aligned16(dout.raw()) && aligned16(dq.raw()) && aligned16(dk.raw()) &&
                       aligned16(dv.raw());
  if (attention_backend() != AttentionBackend::Own && aligned && flash_shape(q, k, v, nullptr) &&
      cudnn_shape(q, k, v, seq_idx) && (!out || aligned16(out->raw()))) {
    std::string why;
    if (attention_backward_cudnn(q, k, v, scale, dout, dq, dk, dv, out, lse2, &why)) return;
    cudnn_declined("attention_backward", why);
  }
  if (q.dtype() == DType::BF16) {  // the built-in kernels read and write fp32: widen, run, round
    static thread_local GrowOnlyBuffer q32_buf, do32_buf, o32_buf, dq32_buf, dk32_buf, dv32_buf;
    const Tensor q32 = as_f32(q, q32_buf, op), do32 = as_f32(dout, do32_buf, op);
    const Tensor o32 = out ? as_f32(*out, o32_buf, op) : Tensor();
    Tensor dq32 = f32_scratch(dq32_buf, dq.shape(), op), dk32 = f32_scratch(dk32_buf, dk.shape(), op),
           dv32 = f32_scratch(dv32_buf, dv.shape(), op);
    attention_backward(q32, k, v, seq_idx, scale, do32, dq32, dk32, dv32, out ? &o32 : nullptr, lse2);
    f32_to_bf16({{dq32.f32(), dq.data<uint16_t>(), dq.numel()},
                 {dk32.f32(), dk.data<uint16_t>(), dk.numel()},
                 {dv32.f32(), dv.data<uint16_t>(), dv.numel()}});
    return;
  }
  const bool fast = flash_shape(q, k, v, nullptr) && aligned;
  // Scratch, one block per calling thread, carved 256-byte aligned: document ranges, lse and D
  // ([B, Hq, T] fp32 each), then for the tensor-core path the bf16 q and dout ([B, Hq, T, Dh]),
  // the claim and turn counters and (sm_90) the fp32 dq accumulator.
  auto up = [](size_t bytes) { return (bytes + 255) & ~size_t(255); };
  const size_t rows = size_t(B * Hq * T);
  const size_t b_docs = seq_idx ? up(doc_range_ints(B, S, T) * 4) : 0;
  const size_t b_row = up(rows * 4);
  const size_t b_half = fast ? up(rows * size_t(Dh) * 2) : 0;
  const size_t b_sem = fast ? up((1 + size_t(B * Hq) * ((T + kBwdBM - 1) / kBwdBM)) * 4) : 0;
  const size_t b_acc = fast ? up(attention_backward_accum_floats(B, T, Hq, Dh) * 4) : 0;
  static thread_local GrowOnlyBuffer scratch;
  char* base = scratch.get<char>(b_docs + 2 * b_row + 2 * b_half + b_sem + b_acc, op);
  DocView docs;
  if (seq_idx) docs = doc_view(*seq_idx, T, reinterpret_cast<int*>(base));
  const DocView* dview = seq_idx ? &docs : nullptr;
  float* lse = reinterpret_cast<float*>(base + b_docs);
  float* dsum = reinterpret_cast<float*>(base + b_docs + b_row);
  if (!fast) {
    attention_backward_rows(q, k, v, dview, scale, dout, dq, dk, dv, lse, dsum);
    check_launch(op);
    return;
  }
  FlashStats st;
  st.dout = dout.f32();
  st.lse2 = lse;
  st.dsum = dsum;
  st.q16 = reinterpret_cast<uint16_t*>(base + b_docs + 2 * b_row);
  st.do16 = reinterpret_cast<uint16_t*>(base + b_docs + 2 * b_row + b_half);
  int* sem = reinterpret_cast<int*>(base + b_docs + 2 * b_row + 2 * b_half);
  if (out && lse2 && aligned16(out->f32())) {
    // The forward's statistics: no second pass over the scores, only dO . O and the bf16 copies.
    st.lse2 = const_cast<float*>(lse2->f32());  // read only from here on
    attention_backward_prep(q, dout, *out, st);
  } else if (flash_mt() == 3) {
    attention_flash_wgmma(q, k, v, dview, scale, nullptr, &st);
  } else {
    attention_flash_mma(q, k, v, dview, scale, nullptr, 32, &st);
  }
  check_launch(op);
  float* acc = b_acc ? reinterpret_cast<float*>(base + b_docs + 2 * b_row + 2 * b_half + b_sem) : nullptr;
  attention_backward_flash(q, k, v, dview, scale, st, dq, acc, dk, dv, sem);
  check_launch(op);
}

namespace {
// One warp per query row (b, t, h): dsum = dO . O, and q and dO rounded to bf16 into the
// [B, Hq, T, D] copies the backward streams (as the stats epilogue writes them).
__global__ void backward_prep_kernel(const float* __restrict__ q, const float* __restrict__ dout,
                                     const float* __restrict__ out, FlashStats st, int B, int T, int Hq, int D) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= int64_t(B) * T * Hq) return;
  const int h = int(row % Hq), t = int((row / Hq) % T), b = int(row / (int64_t(Hq) * T));
  const int64_t src = row * D, dst = ((int64_t(b) * Hq + h) * T + t) * D;
  float d = 0.f;
  for (int c = lane * 4; c < D; c += 128) {
    const float4 g = *reinterpret_cast<const float4*>(dout + src + c);
    const float4 o = *reinterpret_cast<const float4*>(out + src + c);
    const float4 x = *reinterpret_cast<const float4*>(q + src + c);
    d += g.x * o.x + g.y * o.y + g.z * o.z + g.w * o.w;
    *reinterpret_cast<uint2*>(st.do16 + dst + c) = make_uint2(pack_bf16(g.x, g.y), pack_bf16(g.z, g.w));
    *reinterpret_cast<uint2*>(st.q16 + dst + c) = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
  }
  d = warp_sum(d);
  if (lane == 0) st.dsum[(int64_t(b) * Hq + h) * T + t] = d;
}
}  // namespace

void attention_backward_prep(const Tensor& q, const Tensor& dout, const Tensor& out, const FlashStats& st) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), D = q.dim(3);
  const int64_t threads = B * T * Hq * 32;
  backward_prep_kernel<<<unsigned((threads + kThreads - 1) / kThreads), kThreads>>>(q.f32(), dout.f32(), out.f32(), st,
                                                                                   int(B), int(T), int(Hq), int(D));
}

void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      const Tensor& lengths, float scale, Tensor& out) {
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2);
  const int64_t capacity = k_cache.dim(1);
  if (B * Hq * Dh == 0) return;
  const bool bf16 = k_cache.dtype() == DType::BF16;
  const void* kp = bf16 ? static_cast<const void*>(k_cache.data<uint16_t>()) : k_cache.f32();
  const void* vp = bf16 ? static_cast<const void*>(v_cache.data<uint16_t>()) : v_cache.f32();
  if (aligned16(kp) && aligned16(vp) && aligned16(q.f32()) && aligned16(out.f32()) &&
      capacity > 0 && (Dh == 64 || Dh == 128 || Dh == 256)) {
    const DecodeKernel variant = decode_variant();
    if (Dh == 256 || variant == DecodeKernel::split)
      attention_decode_split(q, k_cache, v_cache, lengths, scale, out);
    else
      attention_decode_warp(q, k_cache, v_cache, lengths, scale, out,
                            variant == DecodeKernel::warp8);
    check_launch("attention_decode");
    return;
  }
  attention_decode_rows(q, k_cache, v_cache, lengths, scale, out);
  check_launch("attention_decode");
}

}  // namespace mambalm::ops::cuda
