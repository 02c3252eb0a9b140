"""PyTorch peer for bench/cuda/attention.cpp: torch.nn.functional.scaled_dot_product_attention
in bf16 on the same shapes, timed the same way (CUDA events, warm-up, median of >= 20).

prefill: B=2, L=4096, 32 heads of 128, causal, flash backend; TFLOP/s = 4*B*H*L*L*D/2 / time.
decode: one query per sequence against a full bf16 cache (32 query heads, 8 KV heads, D 128),
batch 1/8/32, contexts 4K/32K/128K; GB/s counting the K and V bytes. SDPA has no GQA-aware
decode kernel here, so the query heads of a KV group are folded into the query length
(q [B, 8, 4, 128] against k [B, 8, ctx, 128]), which reads each K/V row once, as ours does.
Caches under 256 MB are replicated and rotated, as in the C++ bench, to stay out of L2.
training: forward, and forward+backward (out.backward(dout) on q, k, v requiring grad), per
SDPA backend (default = cuDNN on Hopper, flash, cudnn) at B=2, L=4096, 32 query heads of 128 on
32 and 8 KV heads, causal, bf16; the backward is the difference. GQA passes enable_gqa=True
(k, v stay [B, 8, L, D]); a backend that refuses it is timed on k, v expanded to 32 heads by
repeat_interleave inside the timed call (what a user would write) and marked "expanded".
TFLOP/s counted as in the C++ bench (backward = 2.5x the forward's 4*B*H*L*L*D/2).
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


def training(B, L, Hq, Hkv, D, backend_name, backend):
    q = (torch.rand(B, Hq, L, D, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
    k = (torch.rand(B, Hkv, L, D, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
    v = (torch.rand(B, Hkv, L, D, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
    dout = torch.rand(B, Hq, L, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    gqa = Hkv != Hq
    mode = ["gqa"]

    def attend():
        if gqa and mode[0] == "expanded":
            r = Hq // Hkv
            return F.scaled_dot_product_attention(q, k.repeat_interleave(r, 1), v.repeat_interleave(r, 1),
                                                  is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

    def run(fn):
        if backend is None:
            return fn()
        with sdpa_kernel(backend):
            return fn()

    def fwd(i):
        with torch.no_grad():
            run(attend)

    def fwdbwd(i):
        q.grad = k.grad = v.grad = None
        run(attend).backward(dout)

    try:
        fwdbwd(0)
    except RuntimeError:
        if not gqa:
            raise
        mode[0] = "expanded"
    f_ms = median_ms(fwd, 20, 3)
    fb_ms = median_ms(fwdbwd, 20, 3)
    b_ms = fb_ms - f_ms
    ff = 4 * B * Hq * L * L * D / 2
    bf = 2.5 * ff
    tag = f"B{B}_L{L}_H{Hq}_KV{Hkv}_D{D}"
    how = f"{backend_name}" + (f" {mode[0]}" if gqa else "")
    print(f"torch training {tag} [{how}]: forward {f_ms:.3f} ms ({ff / f_ms / 1e9:.1f} TFLOP/s), "
          f"backward {b_ms:.3f} ms ({bf / b_ms / 1e9:.1f}), forward+backward {fb_ms:.3f} ms "
          f"({(ff + bf) / fb_ms / 1e9:.1f})")
    print(f"RESULT train_fwd {tag} {f_ms:.4f} ms {ff / f_ms / 1e9:.1f} TFLOPs {backend_name}")
    print(f"RESULT train_bwd {tag} {b_ms:.4f} ms {bf / b_ms / 1e9:.1f} TFLOPs {backend_name}")
    print(f"RESULT train_fwdbwd {tag} {fb_ms:.4f} ms {(ff + bf) / fb_ms / 1e9:.1f} TFLOPs {backend_name}")
    del q, k, v, dout
    torch.cuda.empty_cache()


if __name__ == "__main__":
    import sys
    print(torch.__version__, torch.cuda.get_device_name())
    for Hkv in (32, 8):
        for name, be in (("default", None), ("flash", SDPBackend.FLASH_ATTENTION),
                         ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                training(2, 4096, 32, Hkv, 128, name, be)
            except Exception as e:  # a backend missing on this build: say so, go on
                print(f"torch training KV{Hkv} [{name}]: {repr(e)[:200]}")
    if "--training-only" in sys.argv:
        sys.exit(0)
    prefill()
    for ctx in (4096, 32768, 131072):
        for B in (1, 8, 32):
            decode(B, ctx)
