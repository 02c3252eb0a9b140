// Causal GQA attention on CUDA (queries may follow a KV-cache prefix), and one-query decode:
// the host entry points of cuda_ops.h and the choice among the kernels of this folder.
//
// Five paths:
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
// The PTX wrappers the kernels use are in ops/cuda/ptx.cuh; the environment knobs read here are
// described in docs/environment.md.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "ops/cuda/attention/common.cuh"
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

}  // namespace

// Decode scratch, one buffer for the partials of both the split and the warp decode kernels:
// allocated once and grown only when a larger size is first asked for. Decode steps are
// captured in CUDA graphs after a warm-up step, so in steady state this never allocates (and a
// capture never sees an allocation: the warm-up ran the same shape first).
float* attention_decode_scratch(size_t floats) {
  static GrowOnlyBuffer buf;
  return buf.get<float>(floats, "attention_decode");
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx, float scale, Tensor& out) {
  MAMBALM_CHECK(!seq_idx, "op attention (cuda)", "document masking (seq_idx) is not implemented on CUDA yet");
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  if (B * T * Hq * Dh == 0) return;
  const bool bf16 = k.dtype() == DType::BF16;
  if (bf16 && aligned16(k.data<uint16_t>()) && aligned16(v.data<uint16_t>()) &&
      aligned16(q.f32()) && aligned16(out.f32()) && (Dh == 128 || Dh == 64)) {
    const int mt = flash_mt();
    if (mt == 3) attention_flash_wgmma(q, k, v, scale, out);
    else attention_flash_mma(q, k, v, scale, out, mt == 2 ? 32 : 16);
    check_launch("attention");
    return;
  }
  attention_rows(q, k, v, scale, out);
  check_launch("attention");
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
