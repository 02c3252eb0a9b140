"""Step time of data-parallel training (sharded AdamW, as `mambalm train` runs it) on 8 to 1,024
GPUs, on paper: compute from a measured single-GPU rate, gradient traffic per step over NVLink
within a node and InfiniBand across nodes, and the part of it that backward hides.
Writes the table of docs/scaling.md:  python3 bench/scaling_model.py"""

GLOBAL_BATCH_TOKENS = 1024 * 4096  # the study's global batch: 1024 sequences of 4096 tokens
SEQ = 4096
H200_BF16 = 780e12                 # measured bf16 GEMM rate of the card (bench/NOTES.md)
NVLINK_BUS = 360e9                 # NCCL ring bus bandwidth per GPU inside an 8-GPU NVLink-4 node (80% of 450 GB/s)
IB_BUS = 40e9                      # per GPU across nodes: one 400 Gb/s NDR port per GPU at 80%

MODELS = {
    # name: (parameters, model FLOPs per token at 4K, MFU measured at the peer's 1.3-1.7B shapes on one H200)
    "hybrid-8b": (8.655e9, 4.65e10, 0.387),
    "transformer-8b": (8.540e9, 4.82e10, 0.432),
}


def step(params, flops_per_token, mfu, n):
    rate = mfu * H200_BF16 / flops_per_token            # tokens/s per GPU
    compute = GLOBAL_BATCH_TOKENS / (n * rate)          # seconds per step
    bus = NVLINK_BUS if n <= 8 else IB_BUS              # a ring across nodes runs at the slowest link
    frac = (n - 1) / n
    reduce_scatter = 4 * params * frac / bus            # fp32 gradients
    all_gather = 2 * params * frac / bus                # bf16 values
    # The reduce-scatter overlaps the backward of the step's last micro-batch (one sequence per
    # GPU: 2/3 of its compute); the all-gather follows the update and is not hidden.
    last_backward = (2 / 3) * SEQ / rate
    exposed = max(0.0, reduce_scatter - last_backward) + all_gather
    return rate, compute, reduce_scatter + all_gather, exposed


def main():
    print("| model | GPUs | sequences per GPU | compute s | traffic s | exposed s | step s | efficiency | tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (p, f, mfu) in MODELS.items():
        for n in (8, 16, 32, 64, 128, 256, 512, 1024):
            rate, compute, traffic, exposed = step(p, f, mfu, n)
            total = compute + exposed
            print(f"| {name} | {n} | {GLOBAL_BATCH_TOKENS // SEQ // n} | {compute:.2f} | {traffic:.2f} | {exposed:.2f} | "
                  f"{total:.2f} | {100 * compute / total:.0f}% | {GLOBAL_BATCH_TOKENS / total / 1e3:.0f}K |")


if __name__ == "__main__":
    main()
