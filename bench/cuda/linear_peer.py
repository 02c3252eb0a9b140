#!/usr/bin/env python3
"""PyTorch peer of bench/cuda/linear.cpp: torch.matmul with bf16 weights on the same shapes.

Decode rows: x bf16 [M, K] @ w.T (PyTorch needs one dtype), GB/s of weight bytes. Prefill rows:
bf16 x bf16 -> bf16 GEMM (the usual PyTorch path), TFLOP/s. Median of 30 CUDA-event timings.
"""
import torch

def median_ms(f, reps=30):
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]

shapes = [(18560, 4096, "mamba2 in_proj"), (4096, 8192, "mamba2 out_proj"), (16384, 4096, "mlp up"),
          (4096, 16384, "mlp down"), (256000, 4096, "lm head")]
print("| torch shape | M | ms | GB/s weights |\n|---|---|---|---|")
for n, k, what in shapes:
    copies = max(2, (512 << 20) // (n * k * 2) + 1)
    ws = [torch.empty(n, k, device="cuda", dtype=torch.bfloat16).uniform_(-0.03, 0.03) for _ in range(copies)]
    for m in (1, 8):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        i = [0]
        def f():
            i[0] += 1
            return x @ ws[i[0] % copies].t()
        ms = median_ms(f)
        print(f"| {what} [{n} x {k}] | {m} | {ms:.4f} | {n * k * 2 / ms / 1e6:.0f} |")
print("\n| torch shape | M | ms | TFLOP/s |\n|---|---|---|---|")
for n, k, what in shapes[:4]:
    w = torch.empty(n, k, device="cuda", dtype=torch.bfloat16).uniform_(-0.03, 0.03)
    for m in (4096, 8192, 16384):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        ms = median_ms(lambda: x @ w.t())
        print(f"| {what} [{n} x {k}] | {m} | {ms:.4f} | {2 * m * n * k / ms / 1e9:.1f} |")
