#!/usr/bin/env python3
"""Make the golden fixtures that the C++ engine is tested against.

For each model type (mamba, mamba2, nemotron_h, nemotron, llama) this builds a small randomly
initialised Hugging Face model, perturbs every parameter away from its init, saves it with
transformers' own `save_pretrained` (float32), loads it back, converts it to float64 and records:

  config.json, model.safetensors (+ generation_config.json)   written by save_pretrained
  tokens.txt          T input ids, one line
  logits.npy          float64 [T, vocab], model(input_ids[None]).logits[0], eager attention, eval
  grads.safetensors   float64 d loss / d param, under the names stored in model.safetensors
  loss.txt            mean CE over t = 0..T-2 of (logits[t], tokens[t+1]), 17 significant digits
  meta.json           versions, constructor arguments, T, seed, max |logit|, diagnostics

Needs torch, transformers (5.x), safetensors and numpy. Runs on CPU. See README.md beside this
file for the exact command used to regenerate the committed fixtures.

Usage: python3 make_fixtures.py --out DIR [--src-dump FILE.tgz] [--cases mamba,llama,...]
"""

import argparse
import copy
import io
import json
import math
import os
import sys
import tarfile
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

T = 45
TOKEN_SEED = 20240601
VOCAB = 101

# Constructor arguments per case. Sizes are small and deliberately odd (hidden 15/17, head_dim 5,
# heads*head_dim != hidden, GQA, several groups, 3 SSD chunks with the last one partial) so that
# shape and indexing mistakes show up. Each is kept small so the fixtures stay well under 1 MB.
CASES = {
    "mamba": dict(
        cls="MambaForCausalLM",
        config_cls="MambaConfig",
        seed=1001,
        kwargs=dict(
            vocab_size=VOCAB,
            hidden_size=17,
            state_size=5,
            num_hidden_layers=3,
            expand=2,
            conv_kernel=4,
            use_bias=False,
            use_conv_bias=True,
            time_step_rank="auto",  # ceil(17/16) = 2
            layer_norm_epsilon=1e-5,
        ),
    ),
    "mamba2": dict(
        cls="Mamba2ForCausalLM",
        config_cls="Mamba2Config",
        seed=1002,
        kwargs=dict(
            vocab_size=VOCAB,
            hidden_size=15,
            expand=2,  # intermediate 30 = num_heads * head_dim
            num_heads=6,
            head_dim=5,
            n_groups=3,
            state_size=6,
            conv_kernel=4,
            chunk_size=16,  # T = 45 -> chunks of 16, 16, 13
            num_hidden_layers=3,
            use_bias=False,
            use_conv_bias=True,
            layer_norm_epsilon=1e-5,
            tie_word_embeddings=False,
        ),
    ),
    "nemotron_h": dict(
        cls="NemotronHForCausalLM",
        config_cls="NemotronHConfig",
        seed=1003,
        pattern="M-*M-M*-",
        kwargs=dict(
            vocab_size=VOCAB,
            hidden_size=16,
            # "M-*M-M*-" as transformers 5.x spells it (hybrid_override_pattern is the legacy alias)
            layers_block_type=[
                "linear_attention", "mlp", "full_attention", "linear_attention",
                "mlp", "linear_attention", "full_attention", "mlp",
            ],
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=6,  # 4 * 6 = 24 != hidden 16
            intermediate_size=24,
            mlp_hidden_act="relu2",
            mamba_num_heads=4,
            mamba_head_dim=6,
            n_groups=2,
            ssm_state_size=5,
            conv_kernel=4,
            chunk_size=16,
            use_conv_bias=True,
            use_bias=False,
            mlp_bias=False,
            attention_bias=False,
            layer_norm_epsilon=1e-5,
            tie_word_embeddings=False,
            use_mamba_kernels=False,  # no hub kernels on an offline machine; CPU uses torch_forward anyway
        ),
    ),
    "nemotron": dict(
        cls="NemotronForCausalLM",
        config_cls="NemotronConfig",
        seed=1004,
        rope=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5),
        kwargs=dict(
            vocab_size=VOCAB,
            hidden_size=16,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,  # 4 * 8 = 32 != hidden 16; rotary dim = 4
            intermediate_size=24,
            hidden_act="relu2",
            num_hidden_layers=3,
            norm_eps=1e-5,
            attention_bias=False,
            mlp_bias=False,
            tie_word_embeddings=False,
            max_position_embeddings=128,
        ),
    ),
    "llama": dict(
        cls="LlamaForCausalLM",
        config_cls="LlamaConfig",
        seed=1005,
        rope=dict(rope_type="default", rope_theta=10000.0),
        fallback=dict(hidden_size=24, head_dim=None),
        kwargs=dict(
            vocab_size=VOCAB,
            hidden_size=18,  # 5.x validates hidden % num_attention_heads == 0
            num_attention_heads=6,
            num_key_value_heads=3,
            head_dim=4,  # 6 * 4 = 24 != hidden 18
            intermediate_size=24,
            hidden_act="silu",
            num_hidden_layers=3,
            rms_norm_eps=1e-6,
            attention_bias=False,
            mlp_bias=False,
            tie_word_embeddings=False,
            max_position_embeddings=128,
        ),
    ),
}


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------------------------
# config construction (rope format differs between transformers 4.x and 5.x: try both)


def config_attempts(case):
    """Constructor-argument variants to try, best first (5.x `rope_parameters`, then 4.x flat keys)."""
    kw = copy.deepcopy(case["kwargs"])
    rope = case.get("rope")
    if rope is None:
        return [kw]
    a = dict(kw)
    a["rope_parameters"] = dict(rope)
    b = dict(kw)
    b["rope_theta"] = rope["rope_theta"]
    if "partial_rotary_factor" in rope:
        b["partial_rotary_factor"] = rope["partial_rotary_factor"]
    out = [a, b]
    fb = case.get("fallback")
    if fb:  # only used if the 5.x validators reject the preferred sizes
        for v in list(out):
            w = dict(v)
            w.update(fb)
            out.append({k: x for k, x in w.items() if x is not None})
    return out


def build_model(case):
    cfg_cls = getattr(transformers, case["config_cls"])
    model_cls = getattr(transformers, case["cls"])
    first = None
    for kw in config_attempts(case):
        torch.manual_seed(case["seed"])
        try:
            config = cfg_cls(**copy.deepcopy(kw))
            model = model_cls(config).to(torch.float32)
        except Exception as e:  # noqa: BLE001
            log("  config attempt failed:", repr(e))
            continue
        ok, info = check_rope(model, case)
        log("  rope ok:", ok, info)
        if ok:
            return model, kw, True
        if first is None:
            first = (model, kw, False)
    if first is None:
        raise RuntimeError("no config attempt worked")
    return first


def check_rope(model, case):
    """Return (ok, info) comparing the built rotary inv_freq with the intended rope."""
    rope = case.get("rope")
    if rope is None:
        return True, None
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rot = int(head_dim * rope.get("partial_rotary_factor", 1.0))
    want = 1.0 / (rope["rope_theta"] ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    found = []
    for name, buf in model.named_buffers():
        if name.endswith("inv_freq"):
            found.append((name, buf.detach().to(torch.float64).clone()))
    if not found:
        return False, "no inv_freq buffer"
    ok = all(b.numel() == want.numel() and torch.allclose(b, want, rtol=1e-6, atol=0) for _, b in found)
    return ok, {n: b.tolist() for n, b in found[:1]} | {"want": want.tolist()}


# ----------------------------------------------------------------------------------------------
# perturbation: every parameter moves clearly away from its init; scales keep activations O(1)


def inv_softplus(x):
    return x + torch.log(-torch.expm1(-x))


def perturb(model, case_name, gen):
    def rn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    def ru(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float32)

    seen = set()
    report = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            short = name.split(".")[-1]
            parent = name.split(".")[-2] if "." in name else ""
            if short == "A_log":
                if p.dim() == 1:  # Mamba-2: one A per head
                    p.copy_(torch.log(ru(p.shape, 0.5, 6.0)))
                else:  # Mamba-1: (d_inner, N), init log(1..N)
                    p.add_(0.3 * rn(p.shape))
                kind = "A_log"
            elif short == "D":
                p.copy_(1.0 + 0.5 * rn(p.shape))
                kind = "D"
            elif short == "dt_bias" or (parent == "dt_proj" and short == "bias"):
                dt0 = torch.exp(ru(p.shape, math.log(0.01), math.log(0.2)))
                p.copy_(inv_softplus(dt0))
                kind = "dt_bias"
            elif "norm" in name.lower() and p.dim() == 1:
                if short == "bias":
                    p.add_(0.1 * rn(p.shape))
                else:
                    p.add_(0.25 * rn(p.shape))
                kind = "norm"
            elif "embed" in name and p.dim() == 2:
                p.add_(rn(p.shape))
                kind = "embedding"
            elif name.startswith("lm_head") and p.dim() == 2:
                p.add_(1.5 / math.sqrt(p.shape[1]) * rn(p.shape))
                kind = "lm_head"
            elif p.dim() == 3:  # depthwise conv1d weight (C, 1, K)
                p.add_(1.0 / math.sqrt(p.shape[-1]) * rn(p.shape))
                kind = "conv"
            elif p.dim() == 2:
                gain = 1.0
                if parent in ("out_proj", "o_proj", "down_proj"):
                    gain = 0.8
                elif parent == "dt_proj":
                    gain = 0.5
                p.add_(gain / math.sqrt(p.shape[1]) * rn(p.shape))
                kind = "linear"
            else:  # remaining biases (conv1d.bias, ...)
                p.add_(0.1 * rn(p.shape))
                kind = "bias"
            report[name] = kind
    return report


def lm_head_is_tied(model):
    out = model.get_output_embeddings()
    inp = model.get_input_embeddings()
    return out is not None and out.weight is inp.weight


def forward_logits(model, ids):
    out = model(input_ids=ids[None], use_cache=False)
    return out.logits[0]


def tune_logit_scale(model, ids, target=6.0):
    """Scale the output projection so that max |logit| is about `target` (not saturated)."""
    tied = lm_head_is_tied(model)
    w = model.get_output_embeddings().weight
    for _ in range(4):
        with torch.no_grad():
            m = forward_logits(model, ids).abs().max().item()
        if 3.0 <= m <= 10.0:
            break
        with torch.no_grad():
            w.mul_(target / m)
    with torch.no_grad():
        m = forward_logits(model, ids).abs().max().item()
    return m, tied


# ----------------------------------------------------------------------------------------------
# diagnostic: HF's float64 run still computes some steps in float32 (norm upcasts, A_log.float(),
# residual_in_fp32, float32 inv_freq). Re-run with those downcasts suppressed to measure how far
# the committed reference is from a pure float64 evaluation.


class NoDowncast(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        fname = getattr(func, "__name__", "")
        a0 = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if a0 is not None and a0.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            # float64 stays float64; integer tensors (position ids) become float64, not float32
            if fname == "float":
                return a0 if a0.dtype == torch.float64 else a0.double()
            if fname == "to":
                args = tuple(torch.float64 if a is torch.float32 else a for a in args)
            if kwargs.get("dtype", None) is torch.float32:
                kwargs["dtype"] = torch.float64
        return func(*args, **kwargs)


def pure_f64_diagnostic(model, case, ids, logits_ref, loss_ref):
    rope = case.get("rope")
    if rope is not None:
        for mod in model.modules():
            buf = getattr(mod, "inv_freq", None)
            if isinstance(buf, torch.Tensor):
                rot = 2 * buf.numel()
                exact = 1.0 / (rope["rope_theta"] ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
                mod.inv_freq = exact
    old_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad(), NoDowncast():
            lg = forward_logits(model, ids)
            loss = F.cross_entropy(lg[:-1], ids[1:], reduction="mean")
    finally:
        torch.set_default_dtype(old_default)
    return {
        "pure_f64_logits_dtype": str(lg.dtype),
        "max_abs_diff_logits_vs_pure_f64": (lg.to(torch.float64) - logits_ref).abs().max().item(),
        "abs_diff_loss_vs_pure_f64": abs(loss.item() - loss_ref),
    }


# ----------------------------------------------------------------------------------------------


def make_case(name, case, root):
    log(f"== {name}")
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    model, used_kwargs, rope_ok = build_model(case)
    model_cls = getattr(transformers, case["cls"])
    model.eval()
    log(model)

    g = torch.Generator().manual_seed(TOKEN_SEED)
    ids = torch.randint(0, VOCAB, (T,), generator=g, dtype=torch.long)

    pg = torch.Generator().manual_seed(case["seed"])
    kinds = perturb(model, name, pg)
    max_logit_f32, tied = tune_logit_scale(model, ids)
    log(f"  tied={tied} max|logit| (f32, before save) = {max_logit_f32:.4f}")

    ref_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        model.save_pretrained(d, safe_serialization=True)
    except TypeError:
        model.save_pretrained(d)

    st_path = os.path.join(d, "model.safetensors")
    with safe_open(st_path, framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    log("  stored tensors:", len(stored))

    try:
        loaded = model_cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    except TypeError:
        loaded = model_cls.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float32)
    loaded.eval()
    # The loaded float32 weights must be exactly what we saved (nothing re-initialised).
    # save_pretrained may rename tensors (5.x: NemotronH modules live under `model.`, the file says
    # `backbone.`); match each stored name to its module parameter by name and exact value.
    stored_to_param = {}
    for k, v in stored.items():
        cands = [k]
        if "." in k:
            rest = k.split(".", 1)[1]
            cands += [n for n in ref_state if n.split(".", 1)[-1] == rest and n != k]
        for c in cands:
            if c in ref_state and ref_state[c].shape == v.shape and torch.equal(ref_state[c].float(), v.float()):
                stored_to_param[k] = c
                break
    renamed = {k: c for k, c in stored_to_param.items() if k != c}
    mismatched = ["stored-unmatched:" + k for k in stored if k not in stored_to_param]
    lstate = loaded.state_dict()
    for k, v in ref_state.items():
        if k.endswith("inv_freq"):
            continue
        if k not in lstate or lstate[k].shape != v.shape or not torch.equal(lstate[k].float(), v.float()):
            mismatched.append(k)
    log("  reload mismatches:", mismatched)

    loaded = loaded.double()
    params = dict(loaded.named_parameters(remove_duplicate=False))
    for p in params.values():
        p.grad = None

    with torch.no_grad():
        logits_ng = forward_logits(loaded, ids)
    logits = forward_logits(loaded, ids)
    logits_dtype = str(logits.dtype)
    logits64 = logits.to(torch.float64)
    loss = F.cross_entropy(logits64[:-1], ids[1:], reduction="mean")
    loss.backward()
    same_nograd = torch.equal(logits_ng.to(torch.float64), logits64.detach())

    grads = {}
    missing_grad = []
    for k in stored:
        p = params.get(stored_to_param.get(k, k))
        if p is None or p.grad is None:
            missing_grad.append(k)
            continue
        grads[k] = p.grad.detach().to(torch.float64).contiguous().clone()
    log("  missing grads:", missing_grad)
    save_file(grads, os.path.join(d, "grads.safetensors"))

    lg = logits64.detach().cpu().numpy().astype(np.float64)
    np.save(os.path.join(d, "logits.npy"), lg)
    with open(os.path.join(d, "tokens.txt"), "w") as f:
        f.write(" ".join(str(int(t)) for t in ids.tolist()) + "\n")
    loss_val = loss.item()
    with open(os.path.join(d, "loss.txt"), "w") as f:
        f.write(f"{loss_val:.17g}\n")

    max_logit = float(np.abs(lg).max())
    diag = {}
    try:
        diag = pure_f64_diagnostic(loaded, case, ids, logits64.detach(), loss_val)
    except Exception as e:  # noqa: BLE001
        diag = {"pure_f64_error": repr(e)}
        traceback.print_exc()

    cfg_saved = json.load(open(os.path.join(d, "config.json")))
    meta = {
        "case": name,
        "model_class": case["cls"],
        "config_class": case["config_cls"],
        "constructor_kwargs": used_kwargs,
        "pattern": case.get("pattern"),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "T": T,
        "token_seed": TOKEN_SEED,
        "init_seed": case["seed"],
        "perturb_seed": case["seed"],
        "vocab_size": VOCAB,
        "tied_lm_head": tied,
        "max_abs_logit": max_logit,
        "loss": loss_val,
        "hf_logits_dtype": logits_dtype,
        "logits_equal_with_and_without_grad": same_nograd,
        "reload_mismatches": mismatched,
        "missing_grads": missing_grad,
        "stored_name_to_module_name": renamed if len(renamed) <= 4 else {
            "rule": "stored name prefix differs from module name prefix",
            "example": dict(list(renamed.items())[:2]),
            "count": len(renamed),
        },
        "rope_check_ok": rope_ok,
        "param_kinds": kinds,
        "stored_tensors": {k: list(v.shape) for k, v in stored.items()},
        "n_params": int(sum(v.numel() for v in stored.values())),
        "attn_implementation": "eager",
        "dtype": "weights saved float32, evaluated after model.double() on CPU",
        "loss_definition": "mean over t=0..T-2 of cross_entropy(logits[t], tokens[t+1])",
    }
    meta.update(diag)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    log(f"  loss={loss_val:.17g} max|logit|={max_logit:.6f} params={meta['n_params']} diag={diag}")
    log("  config.json:", json.dumps(cfg_saved, sort_keys=True))
    return meta


def dump_sources(path):
    """Tar the transformers sources the README facts were read from (for verification)."""
    import transformers.models as tm

    base = os.path.dirname(transformers.__file__)
    rels = []
    for m in ["mamba", "mamba2", "nemotron_h", "nemotron", "llama", "zamba2"]:
        mdir = os.path.join(os.path.dirname(tm.__file__), m)
        for fn in sorted(os.listdir(mdir)):
            if fn.startswith(("modeling_", "configuration_")) and fn.endswith(".py"):
                rels.append(os.path.relpath(os.path.join(mdir, fn), base))
    for extra in ["modeling_rope_utils.py", "activations.py", "configuration_utils.py", "integrations/sdpa_attention.py"]:
        if os.path.exists(os.path.join(base, extra)):
            rels.append(extra)
    with tarfile.open(path, "w:gz") as tf:
        for r in rels:
            tf.add(os.path.join(base, r), arcname="transformers/" + r)
    log("source dump:", path, len(rels), "files")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--src-dump", default=None)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    log("transformers", transformers.__version__, "torch", torch.__version__, "numpy", np.__version__)
    os.makedirs(args.out, exist_ok=True)
    if args.src_dump:
        try:
            dump_sources(args.src_dump)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
    failed = []
    summary = {}
    for name in args.cases.split(","):
        try:
            m = make_case(name, CASES[name], args.out)
            summary[name] = {"max_abs_logit": m["max_abs_logit"], "loss": m["loss"], "n_params": m["n_params"]}
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed.append(name)
    log("SUMMARY", json.dumps(summary, indent=1))
    if failed:
        log("FAILED:", failed)
        sys.exit(1)


if __name__ == "__main__":
    main()
