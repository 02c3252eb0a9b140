"""How PyTorch's SDPA runs cuDNN's fused attention at our training shape, for comparison with our
own cuDNN graphs (src/ops/cuda/attention/cudnn_attention.cu; bench/NOTES.md, issue 11).

B 2, L 4096, 32 query heads of 128 on 32 or 8 KV heads, bf16, cuDNN backend, training mode
(q, k, v require grad, so the forward keeps the row statistics). Times, median of 25 CUDA-event
timed calls after warm-up:
  - forward, forward + backward, for the layout a model hands over ([B, L, H, D] transposed to
    [B, H, L, D], as ours) and a contiguous [B, H, L, D], causal and unmasked;
  - with --profile: one causal forward + backward (GQA 32/8) between cudaProfilerStart / Stop, for
    `ncu --profile-from-start off` (kernel names and durations).
TFLOP/s counts the causal half (4 B H L^2 D / 2; the backward 2.5x that), unmasked the full.
"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from attention_peer import median_ms  # the peer bench beside it: fn(i), warm-up, median of 25

B, L, HQ, D = 2, 4096, 32, 128


def inputs(hkv, layout):
    def make(h):
        if layout == "bthd":
            t = torch.rand(B, L, h, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
        else:
            t = torch.rand(B, h, L, D, device="cuda", dtype=torch.bfloat16)
        return (t * 2 - 1).detach().requires_grad_(True)

    return make(HQ), make(hkv), make(hkv)


def run(hkv, layout, causal):
    q, k, v = inputs(hkv, layout)
    dout = torch.rand_like(q)
    gqa = hkv != HQ

    def fwd():
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    def fwd_bwd():
        q.grad = k.grad = v.grad = None
        fwd().backward(dout)

    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        f = median_ms(lambda i: fwd())
        fb = median_ms(lambda i: fwd_bwd())
    flops = 4 * B * HQ * L * L * D / (2 if causal else 1)
    name = f"{layout} heads {HQ}/{hkv} {'causal' if causal else 'unmasked'}"
    print(f"torch cudnn {name}: forward {f:.3f} ms ({flops / f / 1e9:.0f} TFLOP/s), "
          f"forward+backward {fb:.3f} ms ({3.5 * flops / fb / 1e9:.0f} TFLOP/s)", flush=True)


def profile():
    q, k, v = inputs(8, "bthd")  # GQA 32/8, as `mambalm_bench_attention --profile-cudnn`
    dout = torch.rand_like(q)

    def step():
        F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).backward(dout)

    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        for _ in range(2):  # plans built outside the profiled range
            step()
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        step()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()


if __name__ == "__main__":
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}", flush=True)
    if "--profile" in sys.argv:
        profile()
    else:
        for hkv in (32, 8):
            for layout in ("bthd", "bhtd"):
                run(hkv, layout, True)
        run(32, "bthd", False)
