"""Peers for mambalm_bench_ssd, timed at the same shapes as bench/cuda/ssd.cpp in the same run.

Section "mamba_ssm": mamba_ssm's Triton kernels (mamba_chunk_scan_combined: forward, and forward +
backward through autograd) with the inputs a user's model gives them (x, B, C in bf16; dt, A, D in
fp32; dt already softplus'ed; no initial state, no document ids), as the issue's reference numbers
were taken (/work/shared/peers/kernel_peers.py); PEER_FP32=1 adds the same calls with fp32 x, B, C
(ours are fp32). mamba_ssm is never part of the project: its source is read from MAMBA_SSM_PATH
(default build-peer, a copy of /work/shared/peers holding mamba_ssm/ with an empty __init__.py so
that the Triton kernels import without the package's CUDA extensions).

Section "torch": the chunked SSD forward written directly as bf16 einsums in the "minimal SSD"
style (our own code), eager and through torch.compile.

Inputs as mamba_ssm's benchmark takes them: x, B, C in bf16, dt and A in fp32. Products in bf16
with fp32 accumulation (torch's default), cumulative decays and the state passing in fp32, y
returned in fp32. Correctness: checked first against a float64 token-by-token recurrence on a
small shape (nmse printed). Timing: CUDA events, warm-up, median of 20, 2 input sets rotated.
"""
import math
import os
import sys
import time

import torch


def ssd_chunked_torch(x, dt, A, Bm, Cm, D, Q):
    # x [b, l, h, p] bf16; dt [b, l, h] fp32; A [h]; Bm, Cm [b, l, g, n] bf16; D [h]. l % Q == 0.
    b, l, h, p = x.shape
    g, n = Bm.shape[2], Bm.shape[3]
    e, c = h // g, l // Q
    xs = x.reshape(b, c, Q, g, e, p)
    Bs = Bm.reshape(b, c, Q, g, n)
    Cs = Cm.reshape(b, c, Q, g, n)
    dtr = dt.reshape(b, c, Q, g, e).permute(0, 3, 4, 1, 2)  # [b, g, e, c, Q]
    # cumulative sum as a product with an upper-triangular ones matrix (fp32): torch.compile's
    # inductor failed to generate its scan kernel for torch.cumsum here (torch 2.11, 2026-11-29)
    upper = torch.ones(Q, Q, device=x.device, dtype=torch.float32).triu()
    cum = (dtr * A.reshape(g, e)[None, :, :, None, None]) @ upper
    # intra-chunk: M[i, j] = C_i.B_j exp(cum_i - cum_j) dt_j, j <= i
    seg = cum[..., :, None] - cum[..., None, :]
    causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
    decay = torch.exp(seg.masked_fill(~causal, -math.inf)) * dtr[..., None, :]  # [b, g, e, c, i, j]
    CB = torch.einsum("bcign,bcjgn->bgcij", Cs, Bs)  # bf16
    M = (CB[:, :, None] * decay).to(x.dtype)
    y_diag = torch.einsum("bgecij,bcjgep->bcigep", M, xs)
    # chunk states: Z_c = sum_j exp(cum_last - cum_j) dt_j x_j B_j^T
    w = (torch.exp(cum[..., -1:] - cum) * dtr).permute(0, 3, 4, 1, 2)  # [b, c, Q, g, e]
    Z = torch.einsum("bcjgn,bcjgep->bcgepn", Bs, (xs * w[..., None]).to(x.dtype)).float()
    # state passing over chunks in fp32
    chunk_decay = torch.exp(cum[..., -1]).permute(0, 3, 1, 2)  # [b, c, g, e]
    s = torch.zeros(b, g, e, p, n, device=x.device, dtype=torch.float32)
    prev = []
    for ci in range(c):
        prev.append(s)
        s = chunk_decay[:, ci, :, :, None, None] * s + Z[:, ci]
    S_prev = torch.stack(prev, dim=1).to(x.dtype)  # [b, c, g, e, p, n]
    y_off = torch.einsum("bcign,bcgepn->bcigep", Cs, S_prev).float()
    y_off = y_off * torch.exp(cum).permute(0, 3, 4, 1, 2)[..., None]
    y = y_diag.float() + y_off + D.reshape(g, e)[:, :, None] * xs.float()
    return y.reshape(b, l, h, p), s.reshape(b, h, p, n)


def ssd_reference(x, dt, A, Bm, Cm, D):
    # float64 recurrence, token by token
    b, l, h, p = x.shape
    g, n = Bm.shape[2], Bm.shape[3]
    x, dt, A, Bm, Cm, D = (t.double() for t in (x, dt, A, Bm, Cm, D))
    Bh = Bm.repeat_interleave(h // g, dim=2)
    Ch = Cm.repeat_interleave(h // g, dim=2)
    S = torch.zeros(b, h, p, n, dtype=torch.float64, device=x.device)
    ys = []
    for t in range(l):
        a = torch.exp(dt[:, t] * A)[:, :, None, None]
        S = a * S + (dt[:, t, :, None, None] * x[:, t, :, :, None]) * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", S, Ch[:, t]) + D[:, None] * x[:, t])
    return torch.stack(ys, dim=1), S


def inputs(b, l, h, p, g, n, seed, dev):
    gen = torch.Generator(device=dev).manual_seed(seed)
    u = lambda *s, lo=-1.0, hi=1.0: torch.rand(*s, generator=gen, device=dev) * (hi - lo) + lo
    return dict(x=u(b, l, h, p).bfloat16(), dt=u(b, l, h, lo=0.001, hi=0.1), A=u(h, lo=-16, hi=-1),
                Bm=u(b, l, g, n).bfloat16(), Cm=u(b, l, g, n).bfloat16(), D=u(h, lo=0.5, hi=1.5))


def median_ms(f, sets, reps=20, warm=3):
    for i in range(warm):
        f(sets[i % len(sets)])
    torch.cuda.synchronize()
    ts = []
    for i in range(reps):
        a, z = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f(sets[i % len(sets)])
        z.record()
        z.synchronize()
        ts.append(a.elapsed_time(z))
    ts.sort()
    return ts[len(ts) // 2]


def mamba_ssm_peer(dev):
    sys.path.insert(0, os.environ.get("MAMBA_SSM_PATH", "build-peer"))
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception as ex:  # noqa: BLE001
        print("mamba_ssm unavailable (MAMBA_SSM_PATH):", repr(ex)[:300], flush=True)
        return
    dtypes = [torch.bfloat16] + ([torch.float32] if os.environ.get("PEER_FP32") == "1" else [])
    h, p, g, n = 128, 64, 8, 128
    for (b, l, q) in [(2, 4096, 256), (2, 4096, 128), (1, 16384, 256)]:
        key = ("" if q == 256 else "_c128") + f" B{b}_L{l}"
        for dtype in dtypes:
            sets = []
            for k in range(2):
                d = inputs(b, l, h, p, g, n, 20 + k, dev)
                t = dict(x=d["x"].to(dtype), dt=d["dt"], A=d["A"], Bm=d["Bm"].to(dtype), Cm=d["Cm"].to(dtype),
                         D=d["D"])
                for v in t.values():
                    v.requires_grad_()
                t["dy"] = torch.rand(b, l, h, p, device=dev, dtype=dtype) * 2 - 1
                sets.append(t)
            fwd = lambda s: mamba_chunk_scan_combined(s["x"], s["dt"], s["A"], s["Bm"], s["Cm"], q, D=s["D"])
            tag = "" if dtype == torch.bfloat16 else "_fp32"
            t0 = time.time()
            with torch.no_grad():
                fwd(sets[0])
            fwd(sets[0]).backward(sets[0]["dy"])  # compiles (and autotunes) the kernels
            torch.cuda.synchronize()
            print(f"  (mamba_ssm {dtype} chunk {q}: first calls took {time.time() - t0:.1f} s)", flush=True)
            with torch.no_grad():
                f_ms = median_ms(fwd, sets)
            fb_ms = median_ms(lambda s: fwd(s).backward(s["dy"]), sets)
            print(f"RESULT mamba_ssm_fwd{tag}{key} {f_ms:.4f} ms", flush=True)
            print(f"RESULT mamba_ssm_fwd_bwd{tag}{key} {fb_ms:.4f} ms", flush=True)
            del sets
            torch.cuda.empty_cache()


def main():
    dev = "cuda"
    sections = sys.argv[1:] or ["mamba_ssm", "torch"]
    print("torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)
    if "mamba_ssm" in sections:
        mamba_ssm_peer(dev)
    if "torch" in sections:
        torch_peer(dev)


def torch_peer(dev):
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 cumulative sums stay fp32
    # correctness on a small shape against float64
    s = inputs(1, 512, 8, 64, 2, 64, 1, dev)
    y, st = ssd_chunked_torch(s["x"], s["dt"], s["A"], s["Bm"], s["Cm"], s["D"], 128)
    yr, sr = ssd_reference(s["x"].float(), s["dt"], s["A"], s["Bm"].float(), s["Cm"].float(), s["D"])
    nm = lambda a, r: float(((a.double() - r) ** 2).sum() / (r ** 2).sum())
    print(f"peer check (B 1, L 512, H 8, chunk 128) vs float64 recurrence: nmse y {nm(y, yr):.2e} "
          f"state {nm(st, sr):.2e}", flush=True)

    compiled = None
    try:
        compiled = torch.compile(ssd_chunked_torch)
    except Exception as ex:  # noqa: BLE001
        print("torch.compile unavailable:", ex)
    for (b, l, Q) in [(2, 4096, 256), (1, 16384, 256)]:
        h, p, g, n = 128, 64, 8, 128
        sets = [inputs(b, l, h, p, g, n, 10 + k, dev) for k in range(2)]
        run = lambda fn: (lambda d: fn(d["x"], d["dt"], d["A"], d["Bm"], d["Cm"], d["D"], Q))
        eager = median_ms(run(ssd_chunked_torch), sets)
        print(f"RESULT peer_eager B{b}_L{l} {eager:.4f} ms", flush=True)
        if compiled is not None:
            try:
                t0 = time.time()
                run(compiled)(sets[0])
                torch.cuda.synchronize()
                print(f"  (torch.compile took {time.time() - t0:.1f} s)", flush=True)
                comp = median_ms(run(compiled), sets)
                print(f"RESULT peer_compiled B{b}_L{l} {comp:.4f} ms", flush=True)
            except Exception as ex:  # noqa: BLE001
                print("torch.compile failed:", str(ex).splitlines()[0][:200], flush=True)
                compiled = None
        del sets
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
