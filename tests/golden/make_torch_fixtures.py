#!/usr/bin/env python3
"""Writes the PyTorch-checkpoint fixtures of tests/test_torch_checkpoint.cpp into tests/golden/torch/.

Standard library only (zipfile + pickle): no PyTorch is needed to run it. It IMITATES torch.save
(PyTorch >= 1.6, zip container, pickle protocol 2): the same zip layout (`<dir>/data.pkl`,
`<dir>/.format_version`, `<dir>/.storage_alignment`, `<dir>/byteorder`, `<dir>/data/<key>` stored
uncompressed at 64-byte aligned offsets, `<dir>/version`, `<dir>/.data/serialization_id`) and the
same pickle records: tensors as REDUCE of the global torch._utils._rebuild_tensor_v2 over
(storage, offset, size, stride, requires_grad, OrderedDict()), storages as BINPERSID of
('storage', torch.<Type>Storage, key, 'cpu', numel), the state dict as a collections.OrderedDict
carrying a `_metadata` attribute, Megatron-LM's arguments as an argparse.Namespace. To get those
records without torch, a stand-in module named `torch` (and `torch._utils`) is put in
sys.modules of this process only, holding placeholder classes and functions that are never called.

Because it is an imitation, its output must be checked against real torch.save output on a
machine with PyTorch: `python3 make_torch_fixtures.py --check` (needs torch) loads every good
fixture with torch.load(weights_only=True) and compares it with expected.json, and writes
torch_saved.pt, the same checkpoint saved by torch.save itself, for the C++ test to read
(test_torch_checkpoint reads it when present).

Usage: python3 tests/golden/make_torch_fixtures.py [--check]
"""
import argparse
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch")
STAMP = (2024, 6, 1, 0, 0, 0)  # fixed zip timestamps: the files are byte-reproducible

# ---- the stand-in torch module (names only; nothing here is ever called) --------------------

STORAGES = {"float32": ("FloatStorage", "<f", 4), "float64": ("DoubleStorage", "<d", 8),
            "float16": ("HalfStorage", "<e", 2), "bfloat16": ("BFloat16Storage", None, 2),
            "int64": ("LongStorage", "<q", 8)}


def install_fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    linear = types.ModuleType("torch.nn.modules.linear")

    def _rebuild_tensor_v2(*args):
        raise RuntimeError("placeholder: never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name, _, _ in STORAGES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    class dtype:  # torch.dtype pickles as the global torch.<name>
        __module__ = "torch"

        def __init__(self, name):
            self.name = name

        def __reduce__(self):
            return self.name

    torch.bfloat16 = dtype("bfloat16")
    torch.float32 = dtype("float32")
    linear.Linear = type("Linear", (), {"__module__": "torch.nn.modules.linear"})
    sys.modules.update({"torch": torch, "torch._utils": utils, "torch.nn.modules.linear": linear})
    return torch


# ---- storages, tensors and the pickler ------------------------------------------------------

class Storage:
    def __init__(self, key, dtype, values, numel=None):
        self.key, self.dtype, self.values = key, dtype, list(values)
        self.numel = len(self.values) if numel is None else numel

    def data(self):
        _, fmt, _ = STORAGES[self.dtype]
        if self.dtype == "bfloat16":  # the upper half of float32 (values are exact in bfloat16)
            return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in self.values)
        return b"".join(struct.pack(fmt, v) for v in self.values)


class Tensor:
    def __init__(self, storage, offset, shape, stride=None):
        self.storage, self.offset, self.shape = storage, offset, tuple(shape)
        if stride is None:  # row-major
            stride, n = [], 1
            for d in reversed(self.shape):
                stride.insert(0, n)
                n *= d
        self.stride = tuple(stride)

    def __reduce_ex__(self, protocol):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return (rebuild, (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()))

    def logical_values(self):
        out = []

        def walk(d, at):
            if d == len(self.shape):
                out.append(self.storage.values[at])
                return
            for i in range(self.shape[d]):
                walk(d + 1, at + i * self.stride[d])

        walk(0, self.offset)
        return out


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            cls = getattr(sys.modules["torch"], STORAGES[obj.dtype][0])
            return ("storage", cls, obj.key, "cpu", obj.numel)
        return None


def pickle_bytes(obj, protocol=2):
    buf = io.BytesIO()
    TorchLikePickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def storages_of(obj, found):
    if isinstance(obj, Tensor):
        found.setdefault(obj.storage.key, obj.storage)
    elif isinstance(obj, dict):
        for v in obj.values():
            storages_of(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            storages_of(v, found)
    return found


def write_zip(path, archive_dir, pickled, storages):
    """The zip layout torch.save writes: stored entries, data aligned to 64 bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        def put(name, data):
            info = zipfile.ZipInfo(f"{archive_dir}/{name}", date_time=STAMP)
            info.compress_type = zipfile.ZIP_STORED
            start = zf.fp.tell() + 30 + len(info.filename.encode()) + 4
            pad = (-start) % 64
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zf.writestr(info, data)

        put("data.pkl", pickled)
        put(".format_version", b"1")
        put(".storage_alignment", b"64")
        put("byteorder", b"little")
        for key, storage in storages.items():
            put(f"data/{key}", storage.data())
        put("version", b"3\n")
        put(".data/serialization_id", b"0123456789012345678901234567890123456789")


def save(path, obj, archive_dir=None, protocol=2, raw_pickle=None, storages=None):
    archive_dir = archive_dir or os.path.splitext(os.path.basename(path))[0]
    pickled = raw_pickle if raw_pickle is not None else pickle_bytes(obj, protocol)
    write_zip(path, archive_dir, pickled, storages if storages is not None else storages_of(obj, {}))


# ---- the fixtures ---------------------------------------------------------------------------

def good_checkpoint(torch):
    s_emb = Storage("0", "float32", [(i - 11.5) / 4 for i in range(24)])
    s_alog = Storage("1", "float32", [1 + 0.5 * i for i in range(10)])
    s_inproj = Storage("2", "bfloat16", [(i - 6) / 8 for i in range(12)])
    s_d = Storage("3", "float16", [1 + i / 4 for i in range(5)])
    s_dt = Storage("4", "float64", [-4.5, 0.125, 3.0])
    s_shared = Storage("5", "float32", [1.5 * i - 2 for i in range(12)])
    s_out = Storage("6", "float32", [0.25 * i for i in range(6)])
    s_pos = Storage("7", "int64", [0, 1, 2 ** 40])
    model = collections.OrderedDict()
    model["embedding.word_embeddings.weight"] = Tensor(s_emb, 0, (4, 6))
    model["decoder.layers.0.mixer.A_log"] = Tensor(s_alog, 3, (4,))           # non-zero offset
    model["decoder.layers.0.mixer.in_proj.weight"] = Tensor(s_inproj, 0, (3, 4))
    model["decoder.layers.0.mixer.in_proj._extra_state"] = None              # as Transformer Engine leaves it
    model["decoder.layers.0.mixer.D"] = Tensor(s_d, 0, (5,))
    model["decoder.layers.0.mixer.dt_bias"] = Tensor(s_dt, 0, (3,))
    model["decoder.layers.0.mlp.linear_fc1.weight"] = Tensor(s_shared, 0, (2, 3))  # one storage,
    model["decoder.layers.0.mlp.linear_fc2.weight"] = Tensor(s_shared, 6, (3, 2))  # two tensors
    model["output_layer.weight"] = Tensor(s_out, 0, (3, 2), stride=(1, 3))   # a transposed view
    model["position_ids"] = Tensor(s_pos, 0, (3,))
    model._metadata = collections.OrderedDict([("", {"version": 1})])         # as Module.state_dict()
    args = argparse.Namespace(
        num_layers=4, hidden_size=16, ffn_hidden_size=64, num_attention_heads=4, seq_length=4096,
        norm_epsilon=1e-05, init_method_std=0.02, tokenizer_type="GPTSentencePieceTokenizer",
        hybrid_override_pattern="M-M*", hybrid_attention_ratio=0.0,
        untie_embeddings_and_output_weights=True, add_bias_linear=False, kv_channels=None,
        params_dtype=torch.bfloat16, big_int=2 ** 40, negative_int=-70000, small_negative=-3,
        vocab_sizes=[256000, 128], ratios=(0.08, 0.5), nested={"a": 1, "b": [True, None]})
    ckpt = {"args": args, "checkpoint_version": 3.0, "iteration": 1000, "model": model}
    return ckpt, model


def expected_json(ckpt, model):
    tensors = collections.OrderedDict()
    for name, t in model.items():
        if isinstance(t, Tensor):
            tensors[name] = {"dtype": t.storage.dtype, "shape": list(t.shape), "stride": list(t.stride),
                             "offset": t.offset, "storage_key": t.storage.key,
                             "storage_numel": t.storage.numel, "values": t.logical_values()}
    args = dict(vars(ckpt["args"]))
    args["params_dtype"] = "torch.bfloat16"
    args["ratios"] = list(args["ratios"])
    return {"top_level_keys": list(ckpt.keys()), "tensors": tensors,
            "other_entries": [n for n, t in model.items() if not isinstance(t, Tensor)], "args": args}


class Evil:  # pickles as a call of an arbitrary global; never called here
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def hostile(torch, good_path):
    files = {}
    # 1. A hand-written pickle calling os.system, as an attacker would write it.
    os_system = (b"\x80\x02" b"cos\nsystem\nq\x00" b"X\x0a\x00\x00\x00echo owned" b"\x85q\x01" b"Rq\x02" b".")
    save(os.path.join(OUT, "hostile_os_system.pt"), None, raw_pickle=os_system, storages={})
    files["hostile_os_system.pt"] = "refused global 'os.system'"
    # 2. A global outside the allow-list, deep inside the state dict (a pickled nn.Linear).
    model = collections.OrderedDict()
    model["a.weight"] = Tensor(Storage("0", "float32", [1.0, 2.0]), 0, (2,))
    model["a.module"] = sys.modules["torch.nn.modules.linear"].Linear()
    save(os.path.join(OUT, "hostile_global.pt"), {"model": model})
    files["hostile_global.pt"] = "refused global 'torch.nn.modules.linear.Linear'"
    # 3. Storages pointing past their data: one claims more elements than its entry holds, one
    #    tensor reaches past the end of its storage.
    short = Storage("0", "float32", [1.0, 2.0, 3.0, 4.0], numel=1000)
    ok = Storage("1", "float32", [float(i) for i in range(10)])
    #    A third is a stride-0 view asking for a million elements from a storage of ten.
    model = collections.OrderedDict([("past_entry", Tensor(short, 0, (4,))), ("past_storage", Tensor(ok, 3, (8,))),
                                     ("overlapping", Tensor(ok, 0, (10 ** 6,), stride=(0,)))])
    save(os.path.join(OUT, "hostile_storage_past_end.pt"), {"model": model})
    files["hostile_storage_past_end.pt"] = "claims 1000 elements / lie past its storage / overlap"
    # 4. A truncated zip: the good checkpoint cut at 60 percent (the central directory is lost).
    with open(good_path, "rb") as f:
        data = f.read()
    with open(os.path.join(OUT, "hostile_truncated.pt"), "wb") as f:
        f.write(data[: len(data) * 6 // 10])
    files["hostile_truncated.pt"] = "cannot open as a zip archive"
    # 5. Saved arguments of the wrong type: a list where Megatron writes an argparse.Namespace.
    save(os.path.join(OUT, "hostile_args_type.pt"), {"args": [4, 16], "model": collections.OrderedDict()})
    files["hostile_args_type.pt"] = "is a list, not an argparse.Namespace"
    return files


def check_with_torch():
    import torch  # the real one; only in --check mode

    with open(os.path.join(OUT, "expected.json")) as f:
        expected = json.load(f)
    for name in ("model_optim_rng.pt", "proto4.pt"):
        ckpt = torch.load(os.path.join(OUT, name), weights_only=False, map_location="cpu")
        for key, want in expected["tensors"].items():
            got = ckpt["model"][key]
            assert list(got.shape) == want["shape"] and list(got.stride()) == want["stride"], key
            assert got.storage_offset() == want["offset"], key
            assert got.flatten().tolist() == want["values"], key
        print(f"{name}: torch.load reads what expected.json says")
    real = {"args": ckpt["args"], "checkpoint_version": 3.0, "iteration": 1000, "model": ckpt["model"]}
    torch.save(real, os.path.join(OUT, "torch_saved.pt"))
    print("wrote torch_saved.pt with torch.save", torch.__version__)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with real torch (needs PyTorch)")
    if parser.parse_args().check:
        return check_with_torch()
    os.makedirs(OUT, exist_ok=True)
    torch = install_fake_torch()
    ckpt, model = good_checkpoint(torch)
    good = os.path.join(OUT, "model_optim_rng.pt")
    save(good, ckpt)
    save(os.path.join(OUT, "proto4.pt"), ckpt, archive_dir="archive", protocol=4)
    expected = expected_json(ckpt, model)
    expected["hostile"] = hostile(torch, good)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
