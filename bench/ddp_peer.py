"""The data-parallel peer: PyTorch DDP over NCCL (started by torchrun), training the peer model of
../shared/peers/train_anchor.py (imported from PEER_DIR, default build-peer; never copied here),
bf16 autocast and fused AdamW, each rank on its own random micro-batch. Rank 0 prints one JSON
line per model: tokens/s over all ranks, MFU per GPU, peak memory per GPU.

  torchrun --nproc-per-node N bench/ddp_peer.py hybrid_48L transformer_24x
"""
import json, os, sys, time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.environ.get("PEER_DIR", "build-peer"))
os.environ.setdefault("MAMBA_SSM_PATH", os.environ.get("PEER_DIR", "build-peer"))
import train_anchor as peer  # noqa: E402  (its runs are behind __main__)

PATTERNS = {"hybrid_48L": peer.alloc(48, 0.08, 0.5), "mamba2_48L": "M" * 48, "transformer_24x": "*-" * 24}


def main():
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    for name in sys.argv[1:] or PATTERNS:
        torch.manual_seed(0)
        model = peer.LM(PATTERNS[name]).cuda()
        ddp = DDP(model, device_ids=[local])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        gen = torch.Generator(device="cuda").manual_seed(1 + rank)
        ids = torch.randint(0, peer.V, (peer.B, peer.T + 1), device="cuda", generator=gen)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = ddp(ids[:, :-1])
                loss = F.cross_entropy(logits.float().view(-1, peer.V), ids[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        dist.barrier()
        t0, n = time.time(), 8
        for _ in range(n):
            step()
        torch.cuda.synchronize()
        dt = (time.time() - t0) / n
        tps = world * peer.B * peer.T / dt
        fpt = peer.flops_per_token(model)
        if rank == 0:
            print(json.dumps(dict(section="ddp_peer", model=name, ranks=world, step_ms=dt * 1e3, tokens_per_s=tps,
                                  mfu=tps * fpt / (peer.PEAK * world),
                                  peak_mem_gb=torch.cuda.max_memory_allocated() / 1e9)), flush=True)
        del ddp, model, opt
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
