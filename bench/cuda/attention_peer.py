"""PyTorch peer for bench/cuda/attention.cpp: torch.nn.functional.scaled_dot_product_attention
in bf16 on the same shapes, timed the same way (CUDA events, warm-up, median of >= 20).

prefill: B=2, L=4096, 32 heads of 128, causal, flash backend; TFLOP/s = 4*B*H*L*L*D/2 / time.
decode: one query per sequence against a full bf16 cache (32 query heads, 8 KV heads, D 128),
batch 1/8/32, contexts 4K/32K/128K; GB/s counting the K and V bytes. SDPA has no GQA-aware
decode kernel here, so the query heads of a KV group are folded into the query length
(q [B, 8, 4, 128] against k [B, 8, ctx, 128]), which reads each K/V row once, as ours does.
Caches under 256 MB are replicated and rotated, as in the C++ bench, to stay out of L2.
Lines starting with RESULT are read by run_attention.sh.
"""
import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(fn, reps=25, warmup=3):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn(warmup + i)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def prefill():
    B, L, H, D = 2, 4096, 32, 128
    q, k, v = (torch.rand(B, H, L, D, device="cuda", dtype=torch.bfloat16) * 2 - 1 for _ in range(3))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ms = median_ms(lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    tflops = 4 * B * H * L * L * D / 2 / ms / 1e9
    print(f"torch prefill B={B} L={L} H={H} D={D} causal flash: {ms:.3f} ms  {tflops:.1f} TFLOP/s")
    print(f"RESULT prefill B2_L4096_H32_D128 {ms:.4f} ms {tflops:.1f} TFLOPs")


def decode(B, ctx):
    Hq, Hkv, D = 32, 8, 128
    g = Hq // Hkv
    kv_bytes = 2 * B * ctx * Hkv * D * 2
    copies = max(1, math.ceil(256e6 / kv_bytes))
    ks = [torch.rand(B, Hkv, ctx, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    vs = [torch.rand(B, Hkv, ctx, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    q = torch.rand(B, Hkv, g, D, device="cuda", dtype=torch.bfloat16)
    # Not causal: the g rows are the g query heads of one KV group, all at the last position.
    ms = median_ms(lambda i: F.scaled_dot_product_attention(q, ks[i % copies], vs[i % copies]), 30, 5)
    gbs = kv_bytes / ms / 1e6
    print(f"torch decode B={B} ctx={ctx} Hq=32 Hkv=8 D=128 bf16: {ms * 1e3:.1f} us  {gbs:.0f} GB/s")
    print(f"RESULT decode B{B}_ctx{ctx} {ms:.4f} ms {gbs:.0f} GBs")
    del ks, vs
    torch.cuda.empty_cache()


if __name__ == "__main__":
    print(torch.__version__, torch.cuda.get_device_name())
    prefill()
    for ctx in (4096, 32768, 131072):
        for B in (1, 8, 32):
            decode(B, ctx)
