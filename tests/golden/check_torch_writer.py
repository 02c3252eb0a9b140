#!/usr/bin/env python3
"""Checks a file written by mambalm's torch writer (src/io/torch/torch_writer.h) with real PyTorch.

    python3 tests/golden/check_torch_writer.py FILE.pt EXPECT.json

EXPECT.json (written by tests/test_torch_writer.cpp next to the file) holds:
  value        the value in the writer's tagged JSON ({"__tuple__": [...]}, {"__namespace__": {...}},
               {"__ordered_dict__": {...}}, {"__tensor__": key}, {"__dtype__": name})
  tensors      key -> {dtype, shape, hex (the raw little-endian bytes)}
  archive_dir  the zip's top folder

torch.load(FILE, weights_only=False) must give exactly that value: the same Python types (list vs
tuple, dict vs OrderedDict, argparse.Namespace, torch.dtype), the same keys in the same order,
the same numbers, and tensors with the same dtype, shape and bytes; tensors of one key share one
storage. The zip must hold the expected entries, stored, each entry's data 64-byte aligned.
Prints "ok" and exits 0, or prints every difference and exits 1. Needs PyTorch (Debian 12:
python3-torch, 1.13) and numpy.
"""
import argparse
import collections
import json
import struct
import sys
import zipfile

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64, "int64": torch.int64, "int32": torch.int32}
problems = []
shared = {}  # tensor key -> (storage pointer, path) of its first occurrence


def tensor_hex(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()


def storage_ptr(t):
    s = t.storage()
    return s.data_ptr() if hasattr(s, "data_ptr") else s._cdata


def compare(want, got, path, tensors):
    def bad(msg):
        problems.append(f"{path}: {msg}")

    if isinstance(want, dict) and len(want) == 1:
        (tag, inner), = want.items()
        if tag == "__tuple__":
            if type(got) is not tuple:
                return bad(f"is {type(got).__name__}, not tuple")
            return compare_seq(inner, got, path, tensors)
        if tag == "__ordered_dict__":
            if type(got) is not collections.OrderedDict:
                return bad(f"is {type(got).__name__}, not OrderedDict")
            return compare_map(inner, got, path, tensors)
        if tag == "__namespace__":
            if type(got) is not argparse.Namespace:
                return bad(f"is {type(got).__name__}, not argparse.Namespace")
            return compare_map(inner, vars(got), path, tensors)
        if tag == "__dtype__":
            if got is not getattr(torch, inner):
                bad(f"is {got!r}, not torch.{inner}")
            return
        if tag == "__tensor__":
            if not isinstance(got, torch.Tensor):
                return bad(f"is {type(got).__name__}, not a tensor")
            spec = tensors[inner]
            if got.dtype != DTYPES[spec["dtype"]]:
                bad(f"dtype {got.dtype}, not {spec['dtype']}")
            if list(got.shape) != spec["shape"]:
                bad(f"shape {list(got.shape)}, not {spec['shape']}")
            elif got.dtype == DTYPES[spec["dtype"]] and tensor_hex(got) != spec["hex"]:
                bad("bytes differ")
            if got.requires_grad or not got.is_contiguous() or got.device.type != "cpu":
                bad("not a plain contiguous CPU tensor")
            if got.numel() > 0:
                first = shared.setdefault(inner, (storage_ptr(got), path))
                if first[0] != storage_ptr(got):
                    bad(f"does not share its storage with {first[1]} (both are tensor '{inner}')")
            return
    if want is None or isinstance(want, bool):
        if got is not want:
            bad(f"is {got!r}, not {want!r}")
    elif isinstance(want, int):
        if type(got) is not int or got != want:
            bad(f"is {got!r} ({type(got).__name__}), not int {want}")
    elif isinstance(want, float):
        if type(got) is not float or struct.pack("<d", got) != struct.pack("<d", want):
            bad(f"is {got!r} ({type(got).__name__}), not float {want!r}")
    elif isinstance(want, str):
        if type(got) is not str or got != want:
            bad(f"is {got!r}, not {want!r}")
    elif isinstance(want, list):
        if type(got) is not list:
            return bad(f"is {type(got).__name__}, not list")
        compare_seq(want, got, path, tensors)
    elif isinstance(want, dict):
        if type(got) is not dict:
            return bad(f"is {type(got).__name__}, not dict")
        compare_map(want, got, path, tensors)
    else:
        bad(f"unexpected expectation {want!r}")


def compare_seq(want, got, path, tensors):
    if len(want) != len(got):
        problems.append(f"{path}: {len(got)} items, not {len(want)}")
        return
    for i, (w, g) in enumerate(zip(want, got)):
        compare(w, g, f"{path}[{i}]", tensors)


def compare_map(want, got, path, tensors):
    if list(got.keys()) != list(want.keys()):
        problems.append(f"{path}: keys {list(got.keys())}, not {list(want.keys())} (in this order)")
        return
    for k in want:
        compare(want[k], got[k], f"{path}.{k}", tensors)


def check_zip(path, top):
    with open(path, "rb") as f:
        raw = f.read()
    with zipfile.ZipFile(path) as z:
        names = [i.filename for i in z.infolist()]
        if not names or any(not n.startswith(top + "/") for n in names):
            problems.append(f"zip: entries {names} are not all under '{top}/'")
        for need in ("data.pkl", "byteorder", "version", ".data/serialization_id"):
            if f"{top}/{need}" not in names:
                problems.append(f"zip: no entry '{top}/{need}'")
        if z.read(f"{top}/byteorder") != b"little" or z.read(f"{top}/version") != b"3\n":
            problems.append("zip: byteorder or version differ from torch.save's")
        for i in z.infolist():
            if i.compress_type != zipfile.ZIP_STORED:
                problems.append(f"zip: '{i.filename}' is compressed")
            # Local header: 30 bytes, then the name and the local extra field (the padding).
            name_len, extra_len = struct.unpack("<HH", raw[i.header_offset + 26:i.header_offset + 30])
            data = i.header_offset + 30 + name_len + extra_len
            if data % 64:
                problems.append(f"zip: '{i.filename}' data at offset {data}, not 64-byte aligned")
    return names


def main():
    path, expect_path = sys.argv[1], sys.argv[2]
    with open(expect_path) as f:
        expect = json.load(f)
    names = check_zip(path, expect["archive_dir"])
    got = torch.load(path, map_location="cpu", weights_only=False)
    compare(expect["value"], got, "value", expect["tensors"])
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"ok: torch {torch.__version__} loads {path} ({len(names)} zip entries, "
          f"{len(expect['tensors'])} tensors) exactly as expected")


if __name__ == "__main__":
    main()
