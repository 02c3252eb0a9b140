#!/usr/bin/env python3
"""Make golden fixtures for `mambalm convert --from megatron` with Megatron-LM itself.

For each of three tiny models (hybrid Mamba-2/attention/MLP, pure Mamba-2, GPT) this
script builds the model with Megatron-Core's own classes, fills every parameter with
seeded random values of realistic scale, runs one forward pass, and writes

    OUT/<model>_tp<N>/checkpoint/latest_checkpointed_iteration.txt
    OUT/<model>_tp<N>/checkpoint/iter_0000001/mp_rank_0R/model_optim_rng.pt
    OUT/<model>_tp<N>/logits.npy            [tokens, padded vocab] float32 (rank 0)
    OUT/<model>_tp<N>/tokens.json           the input token ids + model facts (rank 0)
    OUT/<model>_tp<N>/state_dict_names.txt  name, shape, dtype per line, per TP rank
    OUT/<model>_tp<N>/args.txt              the args Namespace stored in the checkpoint

Usage (GPU machine, Megatron source tree and mamba_ssm's parent on PYTHONPATH):
    python3 tests/golden/make_megatron_fixtures.py --out DIR --tp 1
    torchrun --nproc-per-node 2 tests/golden/make_megatron_fixtures.py --out DIR --tp 2

Megatron version: written against Megatron-LM tag core_v0.13.0 (megatron/core/package_info
0.13.0): the oldest tag whose `megatron.core.extensions.transformer_engine` imports
without Transformer Engine (its `import transformer_engine` is guarded from 0.13.0 on;
through core_v0.12.x it is a bare top-level import, and mamba_block.py imports TENorm
from it, so MambaStack cannot even be imported without TE there). Other versions are
accepted only with --allow-other-version.

Stand-ins and monkeypatches (no Transformer Engine, no apex, no causal_conv1d here):
  * apex: a tiny stand-in package `apex.normalization.fused_layer_norm` whose
    FusedLayerNormAffineFunction.apply(input, weight, bias, normalized_shape, eps) is
    torch.nn.functional.layer_norm. It is put in sys.modules BEFORE megatron is imported
    so that Megatron's own FusedLayerNorm (megatron/core/fusions/fused_layer_norm.py, which
    adds the 1 to the weight for zero-centred gamma, i.e. --apply-layernorm-1p) is chosen
    by the local GPT spec (models/backends.py LNImpl) and TransformerBlock's final norm
    (transformer/transformer_block.py LayerNormImpl). torch's WrappedTorchNorm refuses
    zero-centred gamma. `apex.contrib...` and `apex.optimizers` stay unimportable, so
    Megatron falls back to its own code everywhere else.
  * megatron.core.ssm.mamba_block.TENorm = WrappedTorchNorm: MambaStack hard-codes TENorm
    for its final_norm; with RMSNorm config WrappedTorchNorm gives torch.nn.RMSNorm.
  * config.use_mamba_mem_eff_path = False: the memory-efficient path calls
    mamba_split_conv1d_scan_combined, which needs the causal_conv1d CUDA extension; the
    other path uses torch's nn.Conv1d plus mamba_ssm's Triton mamba_chunk_scan_combined
    and the Triton gated RMSNorm (same parameters, same maths).
  * The Mamba stack spec is our own local spec (Megatron ships only the TE spec
    mamba_stack_spec): MambaLayer(norm=WrappedTorchNorm, mixer=MambaMixer(in_proj=
    ColumnParallelLinear, out_proj=RowParallelLinear)), attention TransformerLayer(
    input_layernorm=WrappedTorchNorm, SelfAttention(ColumnParallelLinear,
    DotProductAttention, RowParallelLinear), causal), MLP layer(pre_mlp_layernorm=
    WrappedTorchNorm, MLP(ColumnParallelLinear, RowParallelLinear)). State-dict names
    therefore differ from the TE spec (see the report that came with this script).

Numerics: fp32 parameters, TF32 off, TRITON_F32_DEFAULT=ieee (set before triton is
imported), dropout 0, eval mode, seeded.
"""

import os

# Must happen before torch/triton are imported anywhere (mamba_ssm's tl.dot in exact fp32).
os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")
if os.environ["TRITON_F32_DEFAULT"] != "ieee":
    raise SystemExit("TRITON_F32_DEFAULT is set to %r; it must be 'ieee'" % os.environ["TRITON_F32_DEFAULT"])
os.environ.setdefault("CUDA_DEVICE_MAX_CONNECTIONS", "1")
# Keep NVLink multicast off (shared machines).
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import argparse
import json
import math
import random
import sys
import traceback
import types

import numpy as np
import torch
import torch.nn.functional as F

EXPECTED_MEGATRON_VERSION = "0.13.0"
SEED = 1234
VOCAB = 256
HIDDEN = 64
SEQ_LEN = 64
N_TOKENS = 48
HYBRID_PATTERN = "M-M*-M-"
MAMBA2_PATTERN = "MMMM"

PATCHES = []  # every monkeypatch / stand-in applied, printed at the start


def log(msg):
    rank = int(os.environ.get("RANK", "0"))
    print("[rank %d] %s" % (rank, msg), flush=True)


def log0(msg):
    if int(os.environ.get("RANK", "0")) == 0:
        print(msg, flush=True)


def die(msg):
    rank = int(os.environ.get("RANK", "0"))
    sys.stderr.write("\n[rank %d] FATAL: %s\n" % (rank, msg))
    sys.stderr.flush()
    os._exit(2)


# --------------------------------------------------------------------------------------
# apex stand-in (must be installed before megatron is imported)
# --------------------------------------------------------------------------------------
def install_apex_standin():
    if "apex" in sys.modules:
        die("a module 'apex' is already imported; this script wants its own stand-in")
    try:
        import importlib.util

        if importlib.util.find_spec("apex") is not None:
            log0("WARNING: a real apex is installed; the stand-in in sys.modules shadows it")
    except Exception:
        pass

    class FusedLayerNormAffineFunction:
        """Stand-in for apex.normalization.fused_layer_norm.FusedLayerNormAffineFunction.

        Megatron (fusions/fused_layer_norm.py, core_v0.13.0) inspects
        `inspect.getfullargspec(FusedLayerNormAffineFunction.forward).args` for
        'memory_efficient' and then calls
            FusedLayerNormAffineFunction.apply(input, weight, bias, hidden_size, eps[, mem_eff])
        where `weight` already has the +1 of zero-centred gamma applied.
        """

        @staticmethod
        def forward(ctx, input, weight, bias, normalized_shape, eps, memory_efficient=False):
            return F.layer_norm(input, tuple(normalized_shape), weight, bias, eps)

        @staticmethod
        def apply(input, weight, bias, normalized_shape, eps, memory_efficient=False):
            return F.layer_norm(input, tuple(normalized_shape), weight, bias, eps)

    apex = types.ModuleType("apex")
    apex.__path__ = []  # a package, but with no real submodules on disk
    apex.__file__ = "<mambalm apex stand-in>"
    normalization = types.ModuleType("apex.normalization")
    normalization.__path__ = []
    fln = types.ModuleType("apex.normalization.fused_layer_norm")
    fln.FusedLayerNormAffineFunction = FusedLayerNormAffineFunction
    normalization.fused_layer_norm = fln
    apex.normalization = normalization
    sys.modules["apex"] = apex
    sys.modules["apex.normalization"] = normalization
    sys.modules["apex.normalization.fused_layer_norm"] = fln
    PATCHES.append(
        "sys.modules['apex'] = stand-in; apex.normalization.fused_layer_norm."
        "FusedLayerNormAffineFunction.apply -> torch.nn.functional.layer_norm"
    )


# --------------------------------------------------------------------------------------
# distributed setup
# --------------------------------------------------------------------------------------
def init_distributed(tp, backend):
    if not torch.cuda.is_available():
        die("CUDA is not available; this script needs a GPU (Megatron's Mamba mixer and "
            "mamba_ssm's Triton kernels are CUDA-only)")
    under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if not under_torchrun:
        os.environ["RANK"] = "0"
        os.environ["WORLD_SIZE"] = "1"
        os.environ["LOCAL_RANK"] = "0"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world != tp:
        die("world size %d != --tp %d: run tp 1 as a plain python3 process and tp N with "
            "`torchrun --nproc-per-node N` (one data-parallel replica only)" % (world, tp))
    if backend == "gloo":
        # Every rank on one GPU (NCCL refuses two ranks on one device): gloo all-reduces CUDA
        # tensors, which is all the forward pass of tensor parallelism needs.
        local_rank = local_rank % torch.cuda.device_count()
    if torch.cuda.device_count() <= local_rank:
        die("LOCAL_RANK %d but only %d CUDA devices" % (local_rank, torch.cuda.device_count()))
    torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend=backend, init_method="env://",
                                         world_size=world, rank=rank)
    return rank, world


def set_numerics(seed):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.set_float32_matmul_precision("highest")
    except Exception:
        pass
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


# --------------------------------------------------------------------------------------
# Megatron imports and checks
# --------------------------------------------------------------------------------------
def import_megatron(allow_other):
    try:
        import megatron.core  # noqa: F401
        from megatron.core import package_info
    except Exception:
        traceback.print_exc()
        die("cannot import megatron.core; put the Megatron-LM tree (git archive core_v0.13.0 "
            "megatron) on PYTHONPATH")
    ver = getattr(package_info, "__version__", None) or ".".join(
        str(x) for x in package_info.VERSION[:3])
    log0("Megatron-Core version: %s (from %s)" % (ver, os.path.dirname(package_info.__file__)))
    if not ver.startswith(EXPECTED_MEGATRON_VERSION):
        msg = ("Megatron-Core %s found, this script was written for %s (tag core_v%s)"
               % (ver, EXPECTED_MEGATRON_VERSION, EXPECTED_MEGATRON_VERSION))
        if not allow_other:
            die(msg + "; pass --allow-other-version to try anyway")
        log0("WARNING: " + msg)
    for mod in ("mamba_ssm.ops.triton.ssd_combined", "mamba_ssm.ops.triton.layernorm_gated",
                "mamba_ssm.ops.triton.selective_state_update", "einops"):
        try:
            __import__(mod)
        except Exception:
            traceback.print_exc()
            die("cannot import %s (needed by megatron/core/ssm/mamba_mixer.py); put the parent "
                "of the mamba_ssm copy on PYTHONPATH" % mod)
    from megatron.core.ssm import mamba_mixer

    if not getattr(mamba_mixer, "HAVE_MAMBA_SSM", True):
        die("megatron.core.ssm.mamba_mixer could not import mamba_ssm (HAVE_MAMBA_SSM False)")
    return ver


# --------------------------------------------------------------------------------------
# args: a genuine Megatron Namespace from megatron.training.arguments
# --------------------------------------------------------------------------------------
def model_argv(kind, tp, save_dir):
    common = [
        "--tensor-model-parallel-size", str(tp),
        "--pipeline-model-parallel-size", "1",
        "--hidden-size", str(HIDDEN),
        "--ffn-hidden-size", "128",
        "--num-attention-heads", "4",
        "--kv-channels", "16",
        "--group-query-attention", "--num-query-groups", "2",
        "--seq-length", str(SEQ_LEN),
        "--max-position-embeddings", str(SEQ_LEN),
        "--micro-batch-size", "1",
        "--global-batch-size", "1",
        "--squared-relu",
        "--disable-bias-linear",
        "--untie-embeddings-and-output-weights",
        "--norm-epsilon", "1e-5",
        "--hidden-dropout", "0.0",
        "--attention-dropout", "0.0",
        "--vocab-size", str(VOCAB),
        "--make-vocab-size-divisible-by", "128",
        "--transformer-impl", "local",
        "--no-persist-layer-norm",
        "--no-gradient-accumulation-fusion",
        "--no-masked-softmax-fusion",
        "--no-bias-gelu-fusion",
        "--no-bias-dropout-fusion",
        "--no-rope-fusion",
        "--ckpt-format", "torch",
        "--no-save-optim",
        "--no-save-rng",
        "--save", save_dir,
        "--save-interval", "1",
        "--seed", str(SEED),
        "--init-method-std", "0.02",
    ]
    if kind == "gpt":
        return common + [
            "--num-layers", "2",
            "--normalization", "LayerNorm",
            "--apply-layernorm-1p",
            "--position-embedding-type", "rope",
            "--rotary-percent", "0.5",
            "--rotary-base", "10000",
        ]
    pattern = HYBRID_PATTERN if kind == "hybrid" else MAMBA2_PATTERN
    return common + [
        "--num-layers", str(len(pattern)),
        "--hybrid-override-pattern", pattern,
        "--hybrid-attention-ratio", "0.0",
        "--hybrid-mlp-ratio", "0.0",
        "--is-hybrid-model",
        "--normalization", "RMSNorm",
        "--position-embedding-type", "none",
        "--mamba-state-dim", "16",
        "--mamba-head-dim", "16",
        "--mamba-num-groups", "2",
        "--disable-mamba-mem-eff-path",
        "--spec", "megatron.core.models.mamba.mamba_layer_specs", "mamba_stack_spec",
    ]


def fill_derived_args(args, tp):
    """What validate_args / the tokenizer would have set; only used on fallbacks."""
    args.params_dtype = torch.float32
    args.data_parallel_size = 1
    args.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    args.rank = int(os.environ.get("RANK", "0"))
    args.encoder_seq_length = args.seq_length
    args.transformer_pipeline_model_parallel_size = args.pipeline_model_parallel_size
    if getattr(args, "use_dist_ckpt", None) is None:
        args.use_dist_ckpt = args.ckpt_format != "torch"
    return args


def make_args(kind, tp, save_dir):
    """Returns (args, how)."""
    argv = model_argv(kind, tp, save_dir)
    saved_argv = sys.argv
    sys.argv = ["pretrain_%s.py" % ("gpt" if kind == "gpt" else "mamba")] + argv
    how = None
    args = None
    try:
        from megatron.training import arguments as margs

        args = margs.parse_args()
        how = "megatron.training.arguments.parse_args"
        try:
            margs.validate_args(args, {})
            how += " + validate_args"
        except Exception:
            traceback.print_exc()
            log0("WARNING: validate_args failed (see above); filling derived args by hand")
            args = fill_derived_args(args, tp)
            how += " (validate_args FAILED, derived fields filled by hand)"
    except Exception:
        traceback.print_exc()
        log0("WARNING: parse_args failed (see above); building the args Namespace by hand")
        args = None
    finally:
        sys.argv = saved_argv
    if args is None:
        args = manual_args(kind, tp, save_dir)
        how = "hand-built argparse.Namespace (parse_args failed)"
    # The tokenizer normally sets this (megatron/training/tokenizer/tokenizer.py
    # _vocab_size_with_padding): multiple of make_vocab_size_divisible_by * tp.
    try:
        from megatron.training.tokenizer.tokenizer import _vocab_size_with_padding

        args.padded_vocab_size = _vocab_size_with_padding(VOCAB, args)
    except Exception:
        mult = args.make_vocab_size_divisible_by * tp
        args.padded_vocab_size = int(math.ceil(VOCAB / mult) * mult)
    if args.padded_vocab_size != VOCAB:
        die("padded vocab %d != %d" % (args.padded_vocab_size, VOCAB))
    # Aliases under the names the brief asks for (core_v0.13.0 uses mamba_state_dim,
    # mamba_head_dim, mamba_num_groups already; these are no-ops there).
    for k, v in (("mamba_state_dim", 16), ("mamba_head_dim", 16), ("mamba_num_groups", 2)):
        if kind != "gpt" and getattr(args, k, None) is None:
            setattr(args, k, v)
    args.iteration = 1
    # pretrain() sets args.model_type (megatron/training/training.py).
    try:
        from megatron.core.enums import ModelType

        args.model_type = ModelType.encoder_or_decoder
    except Exception:
        args.model_type = "encoder_or_decoder"
    return args, how


def manual_args(kind, tp, save_dir):
    a = argparse.Namespace()
    pattern = {"hybrid": HYBRID_PATTERN, "mamba2": MAMBA2_PATTERN}.get(kind)
    a.num_layers = 2 if kind == "gpt" else len(pattern)
    a.hidden_size = HIDDEN
    a.ffn_hidden_size = 128
    a.num_attention_heads = 4
    a.kv_channels = 16
    a.group_query_attention = True
    a.num_query_groups = 2
    a.normalization = "LayerNorm" if kind == "gpt" else "RMSNorm"
    a.norm_epsilon = 1e-5
    a.apply_layernorm_1p = kind == "gpt"
    a.squared_relu = True
    a.swiglu = False
    a.position_embedding_type = "rope" if kind == "gpt" else "none"
    a.rotary_percent = 0.5 if kind == "gpt" else 1.0
    a.rotary_base = 10000
    a.rotary_interleaved = False
    a.untie_embeddings_and_output_weights = True
    a.add_bias_linear = False
    a.add_qkv_bias = False
    a.padded_vocab_size = VOCAB
    a.vocab_size = VOCAB
    a.make_vocab_size_divisible_by = 128
    a.max_position_embeddings = SEQ_LEN
    a.seq_length = SEQ_LEN
    a.tensor_model_parallel_size = tp
    a.pipeline_model_parallel_size = 1
    a.hybrid_attention_ratio = 0.0
    a.hybrid_mlp_ratio = 0.0
    a.hybrid_override_pattern = pattern
    a.is_hybrid_model = kind != "gpt"
    a.mamba_state_dim = 16
    a.mamba_head_dim = 16
    a.mamba_num_groups = 2
    a.mamba_num_heads = None
    a.params_dtype = torch.float32
    a.bf16 = False
    a.fp16 = False
    a.hidden_dropout = 0.0
    a.attention_dropout = 0.0
    a.transformer_impl = "local"
    a.ckpt_format = "torch"
    a.use_dist_ckpt = False
    a.no_save_optim = True
    a.no_save_rng = True
    a.save = save_dir
    a.seed = SEED
    a.use_legacy_models = False
    a.spec = None if kind == "gpt" else ["megatron.core.models.mamba.mamba_layer_specs",
                                         "mamba_stack_spec"]
    a.model_type = "encoder_or_decoder"
    a.world_size = tp
    a.rank = int(os.environ.get("RANK", "0"))
    a.data_parallel_size = 1
    return a


def make_config(kind, args):
    from megatron.core.transformer.transformer_config import TransformerConfig

    config = None
    try:
        from megatron.training.arguments import core_transformer_config_from_args

        config = core_transformer_config_from_args(args, TransformerConfig)
        log0("config: megatron.training.arguments.core_transformer_config_from_args")
    except Exception:
        traceback.print_exc()
        log0("WARNING: core_transformer_config_from_args failed; building TransformerConfig by hand")
    if config is None:
        from megatron.training.activations import squared_relu

        kw = dict(
            num_layers=args.num_layers, hidden_size=HIDDEN, ffn_hidden_size=128,
            num_attention_heads=4, kv_channels=16, num_query_groups=2,
            normalization=args.normalization, layernorm_epsilon=1e-5,
            layernorm_zero_centered_gamma=(kind == "gpt"), activation_func=squared_relu,
            gated_linear_unit=False, add_bias_linear=False, add_qkv_bias=False,
            hidden_dropout=0.0, attention_dropout=0.0, params_dtype=torch.float32,
            tensor_model_parallel_size=args.tensor_model_parallel_size,
            pipeline_model_parallel_size=1, persist_layer_norm=False,
            gradient_accumulation_fusion=False, masked_softmax_fusion=False,
            bias_activation_fusion=False, bias_dropout_fusion=False, apply_rope_fusion=False,
            init_method_std=0.02,
        )
        if kind != "gpt":
            kw.update(mamba_state_dim=16, mamba_head_dim=16, mamba_num_groups=2,
                      is_hybrid_model=True)
        config = TransformerConfig(**kw)
    # Facts the fixtures rely on; fail loudly if the args->config path changed them.
    checks = {
        "hidden_dropout": 0.0, "attention_dropout": 0.0, "params_dtype": torch.float32,
        "add_bias_linear": False, "gated_linear_unit": False, "num_query_groups": 2,
        "kv_channels": 16, "ffn_hidden_size": 128, "layernorm_epsilon": 1e-5,
        "layernorm_zero_centered_gamma": kind == "gpt", "persist_layer_norm": False,
        "sequence_parallel": False, "normalization": args.normalization,
    }
    if kind != "gpt":
        checks.update(mamba_state_dim=16, mamba_head_dim=16, mamba_num_groups=2)
    for k, v in checks.items():
        if not hasattr(config, k):
            die("TransformerConfig has no field %r in this Megatron version" % k)
        if getattr(config, k) != v:
            die("config.%s = %r, expected %r" % (k, getattr(config, k), v))
    if config.activation_func(torch.tensor([-2.0, 3.0])).tolist() != [0.0, 9.0]:
        die("config.activation_func is not squared ReLU")
    if kind != "gpt":
        if not hasattr(config, "use_mamba_mem_eff_path"):
            die("TransformerConfig has no use_mamba_mem_eff_path")
        # core_v0.13.0 has --disable-mamba-mem-eff-path in arguments.py but does not wire it
        # into the config; the mem-eff path needs the causal_conv1d CUDA extension.
        config.use_mamba_mem_eff_path = False
        PATCHES.append("config.use_mamba_mem_eff_path = False (no causal_conv1d extension)")
    return config


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------
def local_mamba_stack_spec():
    from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
    from megatron.core.ssm.mamba_block import MambaStack, MambaStackSubmodules
    from megatron.core.ssm.mamba_layer import MambaLayer, MambaLayerSubmodules
    from megatron.core.ssm.mamba_mixer import MambaMixer, MambaMixerSubmodules
    from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
    from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.mlp import MLP, MLPSubmodules
    from megatron.core.transformer.spec_utils import ModuleSpec
    from megatron.core.transformer.torch_norm import WrappedTorchNorm
    from megatron.core.transformer.transformer_layer import (
        TransformerLayer,
        TransformerLayerSubmodules,
    )

    try:  # core_v0.12+: the TE spec uses MLPLayer (a TransformerLayer subclass)
        from megatron.core.ssm.mlp_layer import MLPLayer
    except ImportError:
        MLPLayer = TransformerLayer

    import megatron.core.ssm.mamba_block as mamba_block

    if not hasattr(mamba_block, "TENorm"):
        die("megatron.core.ssm.mamba_block has no TENorm to replace; check the version")
    # MambaStack hard-codes TENorm for final_norm (mamba_block.py); replace the name in the
    # module that uses it by Megatron's torch norm (RMSNorm -> torch.nn.RMSNorm).
    mamba_block.TENorm = WrappedTorchNorm
    PATCHES.append("megatron.core.ssm.mamba_block.TENorm = "
                   "megatron.core.transformer.torch_norm.WrappedTorchNorm")

    return ModuleSpec(
        module=MambaStack,
        submodules=MambaStackSubmodules(
            mamba_layer=ModuleSpec(
                module=MambaLayer,
                submodules=MambaLayerSubmodules(
                    norm=WrappedTorchNorm,
                    mixer=ModuleSpec(
                        module=MambaMixer,
                        submodules=MambaMixerSubmodules(
                            in_proj=ColumnParallelLinear, out_proj=RowParallelLinear
                        ),
                    ),
                    mamba_bda=get_bias_dropout_add,
                ),
            ),
            attention_layer=ModuleSpec(
                module=TransformerLayer,
                submodules=TransformerLayerSubmodules(
                    input_layernorm=WrappedTorchNorm,
                    self_attention=ModuleSpec(
                        module=SelfAttention,
                        params={"attn_mask_type": AttnMaskType.causal},
                        submodules=SelfAttentionSubmodules(
                            linear_qkv=ColumnParallelLinear,
                            core_attention=DotProductAttention,
                            linear_proj=RowParallelLinear,
                        ),
                    ),
                    self_attn_bda=get_bias_dropout_add,
                ),
            ),
            mlp_layer=ModuleSpec(
                module=MLPLayer,
                submodules=TransformerLayerSubmodules(
                    pre_mlp_layernorm=WrappedTorchNorm,
                    mlp=ModuleSpec(
                        module=MLP,
                        submodules=MLPSubmodules(
                            linear_fc1=ColumnParallelLinear, linear_fc2=RowParallelLinear
                        ),
                    ),
                    mlp_bda=get_bias_dropout_add,
                ),
            ),
        ),
    )


def build_model(kind, args, config):
    if kind == "gpt":
        from megatron.core.fusions.fused_layer_norm import FusedLayerNorm
        from megatron.core.models.gpt import GPTModel
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

        # As pretrain_gpt.py's _get_transformer_layer_spec(use_te=False, config) does.
        # (keywords: pretrain_gpt.py passes moe_use_legacy_grouped_gemm positionally into
        # the deprecated, unused fp8 slot, which only triggers a warning.)
        spec = get_gpt_layer_local_spec(
            num_experts=getattr(args, "num_experts", None),
            moe_grouped_gemm=getattr(args, "moe_grouped_gemm", False),
            qk_layernorm=getattr(args, "qk_layernorm", False),
            multi_latent_attention=getattr(args, "multi_latent_attention", False),
            moe_use_legacy_grouped_gemm=getattr(args, "moe_use_legacy_grouped_gemm", False),
            normalization=args.normalization,
        )
        model = GPTModel(
            config=config,
            transformer_layer_spec=spec,
            vocab_size=args.padded_vocab_size,
            max_sequence_length=args.max_position_embeddings,
            pre_process=True,
            post_process=True,
            fp16_lm_cross_entropy=False,
            parallel_output=True,
            share_embeddings_and_output_weights=not args.untie_embeddings_and_output_weights,
            position_embedding_type=args.position_embedding_type,
            rotary_percent=args.rotary_percent,
            rotary_base=args.rotary_base,
        )
        norms = [m for n, m in model.named_modules()
                 if n.split(".")[-1] in ("input_layernorm", "pre_mlp_layernorm", "final_layernorm")]
        if not norms or not all(isinstance(m, FusedLayerNorm) for m in norms):
            die("GPT norms are not Megatron's FusedLayerNorm (apex stand-in not picked up?): %s"
                % [type(m).__name__ for m in norms])
    else:
        from megatron.core.models.mamba import MambaModel

        model = MambaModel(
            config=config,
            mamba_stack_spec=local_mamba_stack_spec(),
            vocab_size=args.padded_vocab_size,
            max_sequence_length=args.max_position_embeddings,
            pre_process=True,
            hybrid_attention_ratio=args.hybrid_attention_ratio,
            hybrid_mlp_ratio=args.hybrid_mlp_ratio,
            hybrid_override_pattern=args.hybrid_override_pattern,
            post_process=True,
            fp16_lm_cross_entropy=False,
            parallel_output=True,
            share_embeddings_and_output_weights=not args.untie_embeddings_and_output_weights,
            position_embedding_type=args.position_embedding_type,
            rotary_percent=args.rotary_percent,
            rotary_base=args.rotary_base,
        )
        for layer in model.decoder.layers:
            if hasattr(layer, "mixer") and layer.mixer.use_mem_eff_path:
                die("MambaMixer.use_mem_eff_path is still True")
    model = model.cuda()
    model.eval()
    return model


# --------------------------------------------------------------------------------------
# perturbation: no tensor left at an init constant
# --------------------------------------------------------------------------------------
def is_tp_split(name, p):
    if getattr(p, "tensor_model_parallel", False):
        return True
    # The mixer's gated RMSNorm weight has d_inner/tp entries but is not marked.
    return name.endswith("mixer.norm.weight")


def perturb(model, kind, seed, tp_rank):
    """Fresh random values, realistic scales. Split tensors get per-rank values (so a
    wrong rank order is visible); replicated tensors get the same values on every rank."""
    with torch.no_grad():
        for idx, (name, p) in enumerate(model.named_parameters()):
            split = is_tp_split(name, p)
            g = torch.Generator(device="cpu")
            g.manual_seed(seed * 1000003 + idx * 101 + (tp_rank + 1 if split else 0) * 7919)
            shape = tuple(p.shape)

            def normal(std, mean=0.0):
                return torch.randn(shape, generator=g, dtype=torch.float64) * std + mean

            def uniform(lo, hi):
                return torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo

            leaf = name.split(".")[-1]
            if leaf == "A_log":
                v = torch.log(uniform(1.0, 16.0))
            elif leaf == "dt_bias":
                dt = torch.exp(uniform(math.log(1e-3), math.log(1e-1)))
                v = dt + torch.log(-torch.expm1(-dt))  # inverse softplus
            elif leaf == "D":
                v = uniform(0.5, 1.5)
            elif "conv1d" in name and leaf == "weight":
                v = uniform(-0.5, 0.5)
            elif "conv1d" in name and leaf == "bias":
                v = normal(0.1)
            elif ("norm" in name or "layernorm" in name) and leaf == "weight":
                if kind == "gpt" and "mixer" not in name:
                    v = normal(0.1)  # zero-centred gamma: stored weight ~ 0 (used as 1 + w)
                else:
                    v = normal(0.1, 1.0)  # RMSNorm / gated RMSNorm: ~ 1
            elif leaf == "bias":
                v = normal(0.05)  # LayerNorm biases (no linear biases here)
            elif "word_embeddings" in name:
                v = normal(0.5)
            elif p.dim() >= 2:
                v = normal(0.05)
            else:
                die("no perturbation rule for parameter %s %s" % (name, shape))
            p.copy_(v.to(dtype=p.dtype))
    # Buffers (e.g. rotary inv_freq) are not parameters and are not in the state dict
    # unless persistent; report them so a reader knows.
    for name, b in model.named_buffers():
        log0("  buffer (not perturbed): %s %s" % (name, tuple(b.shape)))


def check_no_constant(sd):
    bad = []
    for k, v in sd.items():
        if torch.is_tensor(v) and v.numel() > 1 and v.is_floating_point():
            if torch.all(v == v.flatten()[0]):
                bad.append(k)
    if bad:
        die("tensors left constant after perturbation: %s" % bad)


# --------------------------------------------------------------------------------------
# forward + logits
# --------------------------------------------------------------------------------------
def fixed_tokens():
    g = torch.Generator(device="cpu")
    g.manual_seed(SEED + 7)
    return torch.randint(0, VOCAB, (N_TOKENS,), generator=g).tolist()


def run_forward(model, tokens):
    from megatron.core import tensor_parallel

    ids = torch.tensor([tokens], dtype=torch.long, device="cuda")
    s = ids.shape[1]
    pos = torch.arange(s, dtype=torch.long, device="cuda").unsqueeze(0)
    # Megatron convention (get_ltor_masks_and_position_ids): True = masked out.
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool, device="cuda"), diagonal=1)
    mask = mask.view(1, 1, s, s)
    with torch.no_grad():
        out = model(input_ids=ids, position_ids=pos, attention_mask=mask)
        if out.dim() != 3 or out.shape[0] != 1 or out.shape[1] != s:
            die("unexpected logits shape %s" % (tuple(out.shape),))
        if torch.distributed.get_backend() == "gloo":
            # gloo gathers host tensors only: gather the vocabulary shards on the CPU.
            local = out.contiguous().float().cpu()
            parts = [torch.empty_like(local) for _ in range(torch.distributed.get_world_size())]
            torch.distributed.all_gather(parts, local)
            full = torch.cat(parts, dim=-1)
        else:
            full = tensor_parallel.gather_from_tensor_model_parallel_region(out.contiguous())
    full = full[0].float().cpu().numpy()
    if full.shape != (s, VOCAB):
        die("gathered logits shape %s != %s" % (full.shape, (s, VOCAB)))
    if not np.all(np.isfinite(full)):
        die("non-finite logits")
    return full


# --------------------------------------------------------------------------------------
# checkpoint
# --------------------------------------------------------------------------------------
def save_ckpt(model, args, save_dir):
    """Megatron's own save_checkpoint (legacy torch format); fallback: the same state dict
    built as megatron/training/checkpointing.py generate_state_dict does, torch.save'd to
    get_checkpoint_name(...)."""
    from megatron.training import global_vars

    os.makedirs(save_dir, exist_ok=True)
    global_vars.set_args(args)
    try:
        from megatron.training.checkpointing import save_checkpoint

        save_checkpoint(1, [model], None, None, 0)
        log0("checkpoint: saved with megatron.training.checkpointing.save_checkpoint")
        return "megatron.training.checkpointing.save_checkpoint"
    except Exception:
        traceback.print_exc()
        log("WARNING: save_checkpoint failed (see above); using the manual fallback")
    from megatron.core import parallel_state as mpu

    try:
        from megatron.training.checkpointing import get_checkpoint_name, get_checkpoint_tracker_filename

        name = get_checkpoint_name(save_dir, 1)
        tracker = get_checkpoint_tracker_filename(save_dir)
    except Exception:
        traceback.print_exc()
        name = os.path.join(save_dir, "iter_0000001",
                            "mp_rank_%02d" % mpu.get_tensor_model_parallel_rank(),
                            "model_optim_rng.pt")
        tracker = os.path.join(save_dir, "latest_checkpointed_iteration.txt")
    state = {
        "args": args,
        "checkpoint_version": 3.0,
        "iteration": 1,
        "model": model.state_dict_for_save_checkpoint(),
        "num_floating_point_operations_so_far": 0,
    }
    try:
        from megatron.core.rerun_state_machine import get_rerun_state_machine

        state["rerun_state_machine"] = get_rerun_state_machine().state_dict(
            data_iterator=None, ckpt_format="torch")
    except Exception:
        traceback.print_exc()
    if mpu.get_data_parallel_rank() == 0:
        os.makedirs(os.path.dirname(name), exist_ok=True)
        torch.save(state, name)
    torch.distributed.barrier()
    if torch.distributed.get_rank() == 0:
        with open(tracker, "w") as f:
            f.write("1")
    torch.distributed.barrier()
    log0("checkpoint: saved with the manual fallback (generate_state_dict layout)")
    return "manual fallback (generate_state_dict layout + torch.save)"


def verify_ckpt(model, save_dir, tp_rank):
    path = os.path.join(save_dir, "iter_0000001", "mp_rank_%02d" % tp_rank, "model_optim_rng.pt")
    if not os.path.isfile(path):
        die("expected checkpoint file %s is missing" % path)
    tracker = os.path.join(save_dir, "latest_checkpointed_iteration.txt")
    if not os.path.isfile(tracker) or open(tracker).read().strip() != "1":
        die("tracker file %s missing or not '1'" % tracker)
    sd = torch.load(path, map_location="cpu", weights_only=False)
    live = model.state_dict_for_save_checkpoint()
    for k, v in live.items():
        if k not in sd["model"]:
            die("saved checkpoint lacks %s" % k)
        if torch.is_tensor(v) and not torch.equal(v.cpu(), sd["model"][k]):
            die("saved %s differs from the live model" % k)
    check_no_constant(sd["model"])
    size = os.path.getsize(path)
    log("checkpoint %s: %d bytes, keys %s" % (path, size, sorted(sd.keys())))
    return sd


def describe_sd(sd):
    lines = []
    for k, v in sd.items():
        if torch.is_tensor(v):
            lines.append("%s\t%s\t%s" % (k, list(v.shape), str(v.dtype).replace("torch.", "")))
        else:
            lines.append("%s\t-\t%s" % (k, type(v).__name__ if v is not None else "None"))
    return lines


# --------------------------------------------------------------------------------------
def make_one(kind, tp, out_root, rank):
    from megatron.core import parallel_state as mpu
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    tp_rank = mpu.get_tensor_model_parallel_rank()
    fdir = os.path.join(out_root, "%s_tp%d" % (kind, tp))
    save_dir = os.path.join(fdir, "checkpoint")
    if rank == 0:
        os.makedirs(fdir, exist_ok=True)
    torch.distributed.barrier()
    log0("\n=== %s, tp %d ===" % (kind, tp))

    set_numerics(SEED)
    model_parallel_cuda_manual_seed(SEED)
    args, args_how = make_args(kind, tp, save_dir)
    log0("args: " + args_how)
    config = make_config(kind, args)
    model = build_model(kind, args, config)
    perturb(model, kind, SEED, tp_rank)
    check_no_constant(model.state_dict_for_save_checkpoint())

    tokens = fixed_tokens()
    logits = run_forward(model, tokens)
    saver = save_ckpt(model, args, save_dir)
    torch.distributed.barrier()
    sd = verify_ckpt(model, save_dir, tp_rank)

    # state_dict_names.txt: every rank's names/shapes, rank by rank.
    lines = ["# rank %d (tp_rank %d), file iter_0000001/mp_rank_%02d/model_optim_rng.pt"
             % (rank, tp_rank, tp_rank)]
    lines += ["# top-level keys: %s" % sorted(sd.keys())]
    lines += describe_sd(sd["model"])
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, lines)
    if rank == 0:
        with open(os.path.join(fdir, "state_dict_names.txt"), "w") as f:
            for part in gathered:
                f.write("\n".join(part) + "\n")
        np.save(os.path.join(fdir, "logits.npy"), logits.astype(np.float32))
        from megatron.core import package_info

        pattern = getattr(args, "hybrid_override_pattern", None)
        meta = {
            "model": kind,
            "tokens": tokens,
            "logits_shape": list(logits.shape),
            "tensor_model_parallel_size": tp,
            "megatron_core_version": package_info.__version__,
            "megatron_tag": "core_v%s" % EXPECTED_MEGATRON_VERSION,
            "torch_version": torch.__version__,
            "args_from": args_how,
            "checkpoint_saved_with": saver,
            "checkpoint_dir": "checkpoint",
            "seed": SEED,
            "hybrid_override_pattern": pattern if kind != "gpt" else None,
            "spec": "local (see make_megatron_fixtures.py header)",
            "patches": list(PATCHES),
        }
        with open(os.path.join(fdir, "tokens.json"), "w") as f:
            json.dump(meta, f, indent=1)
        with open(os.path.join(fdir, "args.txt"), "w") as f:
            for k in sorted(vars(args)):
                f.write("%s = %r\n" % (k, getattr(args, k)))
        log0("wrote %s (logits %s, |logits| max %.4f, std %.4f)"
             % (fdir, logits.shape, float(np.abs(logits).max()), float(logits.std())))
    torch.distributed.barrier()
    del model
    torch.cuda.empty_cache()


def reload_one(kind, tp, out_root, reload_root, rank):
    """The round trip back into Megatron: the checkpoint `mambalm convert --to megatron
    --megatron-spec local` wrote from this fixture's conversion (RELOAD/<kind>_tp<N>/) is
    loaded by Megatron's own load_checkpoint (--finetune: weights only) into the same model,
    strictly; its logits must equal the fixture's. Writes OUT/<kind>_tp<N>/reload.json."""
    from megatron.core import parallel_state as mpu
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
    from megatron.training import global_vars

    fdir = os.path.join(out_root, "%s_tp%d" % (kind, tp))
    load_dir = os.path.join(os.path.abspath(reload_root), "%s_tp%d" % (kind, tp))
    if not os.path.isfile(os.path.join(load_dir, "latest_checkpointed_iteration.txt")):
        die("no mambalm-written checkpoint at %s" % load_dir)
    log0("\n=== reload %s, tp %d from %s ===" % (kind, tp, load_dir))
    set_numerics(SEED)
    model_parallel_cuda_manual_seed(SEED)
    args, _ = make_args(kind, tp, os.path.join(fdir, "unused-save"))
    config = make_config(kind, args)
    model = build_model(kind, args, config)
    args.load = load_dir
    args.finetune = True
    args.no_load_optim = True
    args.no_load_rng = True
    global_vars.set_args(args)
    how = "megatron.training.checkpointing.load_checkpoint (strict, --finetune)"
    try:
        from megatron.training.checkpointing import load_checkpoint

        load_checkpoint([model], None, None, strict=True)
    except Exception:
        traceback.print_exc()
        log("WARNING: load_checkpoint failed (see above); loading the state dict directly")
        path = os.path.join(load_dir, "release", "mp_rank_%02d" % mpu.get_tensor_model_parallel_rank(),
                            "model_optim_rng.pt")
        sd = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(sd["model"], strict=True)
        how = "torch.load + model.load_state_dict(strict=True) (load_checkpoint failed)"
    logits = run_forward(model, fixed_tokens())
    if rank == 0:
        want = np.load(os.path.join(fdir, "logits.npy"))
        rel = float(np.linalg.norm(logits.astype(np.float64) - want) / np.linalg.norm(want.astype(np.float64)))
        result = {"model": kind, "tp": tp, "loaded_with": how, "relative_l2_vs_fixture": rel,
                  "max_abs_diff": float(np.abs(logits - want).max())}
        with open(os.path.join(fdir, "reload.json"), "w") as f:
            json.dump(result, f, indent=1)
        log0("reload %s tp %d: %s; logits relative L2 vs the fixture %.3e" % (kind, tp, how, rel))
    torch.distributed.barrier()
    del model
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel size (1 or 2)")
    ap.add_argument("--models", default="hybrid,mamba2,gpt",
                    help="comma list of hybrid,mamba2,gpt")
    ap.add_argument("--backend", default="nccl", choices=["nccl", "gloo"],
                    help="gloo: every tensor-parallel rank on one GPU (when only one is available)")
    ap.add_argument("--reload", default=None,
                    help="instead of making fixtures: load the checkpoints mambalm wrote from them "
                         "(RELOAD/<model>_tp<N>/) with Megatron's load_checkpoint and compare logits")
    ap.add_argument("--allow-other-version", action="store_true",
                    help="run even if Megatron-Core is not %s" % EXPECTED_MEGATRON_VERSION)
    opts = ap.parse_args()
    kinds = [k for k in opts.models.split(",") if k]
    for k in kinds:
        if k not in ("hybrid", "mamba2", "gpt"):
            die("unknown model %r" % k)
    if opts.tp not in (1, 2):
        die("--tp must be 1 or 2 (the model sizes are chosen for those)")
    out_root = os.path.abspath(opts.out)

    install_apex_standin()
    rank, world = init_distributed(opts.tp, opts.backend)
    set_numerics(SEED)
    ver = import_megatron(opts.allow_other_version)

    from megatron.core import parallel_state as mpu

    mpu.initialize_model_parallel(tensor_model_parallel_size=opts.tp)
    log0("torch %s, CUDA device %s, world %d, tp %d"
         % (torch.__version__, torch.cuda.get_device_name(), world, opts.tp))
    log0("TF32: matmul %s cudnn %s; TRITON_F32_DEFAULT=%s"
         % (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            os.environ.get("TRITON_F32_DEFAULT")))
    for k in kinds:
        if opts.reload:
            reload_one(k, opts.tp, out_root, opts.reload, rank)
        else:
            make_one(k, opts.tp, out_root, rank)
    log0("\nMegatron-Core %s; monkeypatches / stand-ins applied:" % ver)
    for p in dict.fromkeys(PATCHES):
        log0("  - " + p)
    torch.distributed.barrier()
    mpu.destroy_model_parallel()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
