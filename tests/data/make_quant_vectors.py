#!/usr/bin/env python3
"""Makes tests/data/quant_vectors.safetensors: test vectors for llama.cpp's
quantized formats (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) from implementations
other than ours, for tests/test_quant.c.

    pip install gguf numpy
    python3 tests/data/make_quant_vectors.py --llama-cpp DIR

Sources of truth:
  * gguf-py (llama.cpp's Python package `gguf`, gguf/quants.py): numpy
    quantizers for Q8_0, Q4_0 and Q4_1 (written to match ggml bit for bit) and
    numpy dequantizers for every type. All dequantized floats in the file come
    from gguf-py.
  * llama.cpp's own C reference quantizers (quantize_row_*_ref in
    ggml/src/ggml-quants.c), which gguf-py lacks for the K formats. With
    --llama-cpp DIR (a llama.cpp source tree, e.g. the one vendored in the
    llama-cpp-python sdist: `pip download llama-cpp-python --no-deps
    --no-binary :all:`), that one file is compiled with the system C compiler
    as ggml-base is (no -march, so no FMA; a few unused ggml symbols stubbed)
    and called through ctypes. Where both exist they are cross-checked (gguf-py
    vs C quantizer for Q8_0/Q4_0/Q4_1, gguf-py vs C dequantizer for all),
    and the script fails on any difference.
  Without --llama-cpp the K-format quantized bytes are left out, and the C
  test then checks only their dequantization and error bounds.

Contents (all little-endian, safetensors layout; metadata says who made what):
  input.CASE          F32  inputs, shared by all types (CASE below)
  TYPE.CASE.q         U8   the row quantized by the reference (gguf-py or C)
  TYPE.CASE.deq       F32  gguf-py's dequantization of TYPE.CASE.q
  TYPE.random.q       U8   random block bytes (scales kept finite)
  TYPE.random.deq     F32  gguf-py's dequantization of them
"""
import argparse
import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

SEED = 20260807
TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"]
GGUF_PY_QUANTIZES = {"Q8_0", "Q4_0", "Q4_1"}
STUBS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d %s\n", file, line, fmt); abort(); }
size_t ggml_row_size(int type, int64_t ne) { (void)type; (void)ne; abort(); }
const char *ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
"""


def make_inputs(rng):
    """Rows of awkward and ordinary values; every length is a multiple of 256."""
    f = np.float32
    cases = {}
    cases["gauss"] = rng.standard_normal(1024).astype(f)
    cases["weights"] = (rng.standard_normal(512) * 0.02).astype(f)  # a typical LLM weight scale
    cases["zeros"] = np.zeros(256, f)
    cases["constant"] = np.concatenate([np.full(256, 0.37, f), np.full(256, -1.25, f)])
    x = (rng.standard_normal(256) * 0.1).astype(f)
    x[37], x[200] = 25.0, -8.0
    cases["outlier"] = x
    cases["tiny"] = (rng.standard_normal(256) * 1e-6).astype(f)  # f16 scales go subnormal
    cases["negative"] = (-np.abs(rng.standard_normal(256)) - 0.5).astype(f)
    cases["positive"] = (np.abs(rng.standard_normal(256)) + 0.5).astype(f)
    # each 32-value block at its own magnitude, and some 16-value groups zero:
    # exercises the 6-bit sub-block scales and zero-scale paths of K formats
    x = rng.standard_normal(512).astype(f)
    x *= np.repeat(10.0 ** rng.uniform(-4, 1, 16), 32).astype(f)
    x[64:80] = 0
    x[300:332] = 0
    cases["mixed"] = x.astype(f)
    # every 32-block holds 127 so Q8_0's d is exactly 1 and the others land on
    # .5: rounding ties (half away from zero in Q8_0, to even in nearest_int)
    x = (np.round(rng.standard_normal(256) * 30) + 0.5).astype(f)
    x[::32] = 127
    cases["halves"] = x
    cases["ramp"] = np.linspace(-3, 1, 256, dtype=f)
    return cases


def random_blocks(rng, qtype, n_blocks):
    """Random block bytes whose f16 scale fields hold finite, moderate values."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)

    def halves(k):
        return (rng.standard_normal(k) * 0.05).astype(np.float16).view(np.uint8).reshape(k, 2)

    if qtype in (T.Q8_0, T.Q4_0):
        b[:, 0:2] = halves(n_blocks)
    elif qtype in (T.Q4_1, T.Q4_K, T.Q5_K):
        b[:, 0:2] = halves(n_blocks)
        b[:, 2:4] = halves(n_blocks)
    elif qtype == T.Q6_K:
        b[:, size - 2 : size] = halves(n_blocks)
    return b.reshape(-1)


def cname(name):
    """ggml's spelling in function names: Q4_K -> q4_K, Q8_0 -> q8_0."""
    return name.lower().replace("_k", "_K")


class GgmlC:
    """llama.cpp's ggml-quants.c compiled into a small shared library."""

    def __init__(self, root):
        src = os.path.join(root, "ggml", "src", "ggml-quants.c")
        self.tmp = tempfile.mkdtemp(prefix="ggml-quants-")
        stubs = os.path.join(self.tmp, "stubs.c")
        with open(stubs, "w") as fp:
            fp.write(STUBS)
        lib = os.path.join(self.tmp, "libggml-quants.so")
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-O3", "-DNDEBUG", "-std=gnu11", "-fPIC", "-shared", "-I", os.path.join(root, "ggml", "include"),
               "-I", os.path.join(root, "ggml", "src"), src, stubs, "-o", lib, "-lm", "-Wl,--no-undefined"]
        subprocess.run(cmd, check=True)
        self.lib = ctypes.CDLL(lib)
        try:
            rev = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
            self.commit = rev.stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            self.commit = "unknown"
        for name in TYPES:
            for fn in (f"quantize_row_{cname(name)}_ref", f"dequantize_row_{cname(name)}"):
                getattr(self.lib, fn).restype = None

    def quantize(self, name, x):
        qtype = T[name]
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        out = np.zeros(len(x) // block * size, np.uint8)
        x = np.ascontiguousarray(x, np.float32)
        fn = getattr(self.lib, f"quantize_row_{cname(name)}_ref")
        fn(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(len(x)))
        return out

    def dequantize(self, name, q, n):
        out = np.zeros(n, np.float32)
        q = np.ascontiguousarray(q, np.uint8)
        fn = getattr(self.lib, f"dequantize_row_{cname(name)}")
        fn(q.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
        return out


def same_bits(a, b):
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    off = 0
    blobs = []
    for name, arr in tensors:
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}[arr.dtype]
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": [int(arr.size)], "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fp:
        fp.write(struct.pack("<Q", len(h)))
        fp.write(h)
        for raw in blobs:
            fp.write(raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", help="llama.cpp source tree: adds llama.cpp's C quantizers (K formats)")
    ap.add_argument("-o", "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                          "quant_vectors.safetensors"))
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    inputs = make_inputs(rng)
    ggml = GgmlC(args.llama_cpp) if args.llama_cpp else None

    tensors = [(f"input.{c}", x) for c, x in inputs.items()]
    meta = {
        "generator": "tests/data/make_quant_vectors.py",
        "seed": str(SEED),
        "gguf-py": getattr(gguf, "__version__", None) or _dist_version("gguf"),
        "numpy": np.__version__,
        "deq": "gguf-py gguf.quants.dequantize",
    }
    for name in TYPES:
        qtype = T[name]
        if name in GGUF_PY_QUANTIZES:
            meta[f"{name}.q"] = "gguf-py gguf.quants.quantize"
        elif ggml:
            meta[f"{name}.q"] = f"llama.cpp ggml-quants.c quantize_row_{cname(name)}_ref, commit {ggml.commit}"
        for case, x in inputs.items():
            q = None
            if name in GGUF_PY_QUANTIZES:
                q = np.asarray(quants.quantize(x, qtype)).reshape(-1)
                if ggml is not None:
                    qc = ggml.quantize(name, x)
                    if not np.array_equal(q, qc):
                        sys.exit(f"{name}.{case}: gguf-py and llama.cpp's C quantizer differ")
            elif ggml is not None:
                q = ggml.quantize(name, x)
            if q is None:
                continue
            deq = np.asarray(quants.dequantize(q, qtype), np.float32).reshape(-1)
            if ggml is not None and not same_bits(deq, ggml.dequantize(name, q, len(x))):
                sys.exit(f"{name}.{case}: gguf-py and llama.cpp's C dequantizer differ")
            tensors += [(f"{name}.{case}.q", q.astype(np.uint8)), (f"{name}.{case}.deq", deq)]
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        n_blocks = 4 if block == 256 else 16
        q = random_blocks(rng, qtype, n_blocks)
        deq = np.asarray(quants.dequantize(q, qtype), np.float32).reshape(-1)
        if ggml is not None and not same_bits(deq, ggml.dequantize(name, q, n_blocks * block)):
            sys.exit(f"{name}.random: gguf-py and llama.cpp's C dequantizer differ")
        tensors += [(f"{name}.random.q", q), (f"{name}.random.deq", deq)]
    if ggml is not None:
        meta["cross-checked"] = ("gguf-py quantize == llama.cpp C quantize_row_*_ref for Q8_0/Q4_0/Q4_1; "
                                 "gguf-py dequantize == llama.cpp C dequantize_row_* for all types")
    write_safetensors(args.output, tensors, meta)
    print(f"wrote {args.output}: {len(tensors)} tensors, {os.path.getsize(args.output)} bytes")


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "unknown"


if __name__ == "__main__":
    main()
