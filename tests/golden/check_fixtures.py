#!/usr/bin/env python3
"""Consistency check of the committed golden fixtures, standard library only (no numpy/torch).

For each case: model.safetensors and grads.safetensors hold the same names and shapes (F32 vs F64),
logits.npy is float64 [T, vocab], tokens are < vocab, and the loss recomputed from logits.npy and
tokens.txt matches loss.txt. Exit status 1 on any failure.

Usage: python3 check_fixtures.py [FIXTURES_DIR]
"""

import json
import math
import os
import struct
import sys


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return header, data


def read_npy_f64(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:6] == b"\x93NUMPY", "not an npy file"
    major = raw[6]
    if major == 1:
        hlen = struct.unpack("<H", raw[8:10])[0]
        start = 10
    else:
        hlen = struct.unpack("<I", raw[8:12])[0]
        start = 12
    header = eval(raw[start:start + hlen].decode("latin1"))  # a Python dict literal by spec
    assert header["descr"] == "<f8" and not header["fortran_order"], header
    shape = header["shape"]
    body = raw[start + hlen:]
    count = 1
    for s in shape:
        count *= s
    vals = struct.unpack("<%dd" % count, body[: 8 * count])
    return shape, vals


def check_case(d):
    errors = []
    cfg = json.load(open(os.path.join(d, "config.json")))
    meta = json.load(open(os.path.join(d, "meta.json")))
    vocab = cfg["vocab_size"]
    tokens = [int(t) for t in open(os.path.join(d, "tokens.txt")).read().split()]
    T = len(tokens)
    if T != meta["T"]:
        errors.append(f"T {T} != meta {meta['T']}")
    if any(t < 0 or t >= vocab for t in tokens):
        errors.append("token out of range")
    mh, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    gh, _ = read_safetensors(os.path.join(d, "grads.safetensors"))
    if set(mh) != set(gh):
        errors.append(f"name sets differ: {sorted(set(mh) ^ set(gh))}")
    for k in mh:
        if k in gh and mh[k]["shape"] != gh[k]["shape"]:
            errors.append(f"shape differs for {k}")
        if mh[k]["dtype"] != "F32":
            errors.append(f"{k} weight dtype {mh[k]['dtype']}")
        if k in gh and gh[k]["dtype"] != "F64":
            errors.append(f"{k} grad dtype {gh[k]['dtype']}")
    shape, vals = read_npy_f64(os.path.join(d, "logits.npy"))
    if tuple(shape) != (T, vocab):
        errors.append(f"logits shape {shape}")
    # mean cross-entropy of logits[t] against tokens[t+1], t = 0..T-2
    total = 0.0
    for t in range(T - 1):
        row = vals[t * vocab:(t + 1) * vocab]
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(x - m) for x in row))
        total += lse - row[tokens[t + 1]]
    loss = total / (T - 1)
    ref = float(open(os.path.join(d, "loss.txt")).read())
    if abs(loss - ref) > 1e-12 * max(1.0, abs(ref)):
        errors.append(f"loss {loss!r} != loss.txt {ref!r}")
    maxlog = max(abs(v) for v in vals)
    if abs(maxlog - meta["max_abs_logit"]) > 1e-12:
        errors.append("max_abs_logit mismatch")
    return errors, dict(T=T, vocab=vocab, tensors=len(mh), loss=loss, max_abs_logit=maxlog)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    bad = 0
    for case in sorted(os.listdir(root)):
        d = os.path.join(root, case)
        if not os.path.isdir(d):
            continue
        errors, info = check_case(d)
        status = "ok" if not errors else "FAIL"
        print(f"{case:12s} {status} {info}")
        for e in errors:
            print("   ", e)
        bad += bool(errors)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
