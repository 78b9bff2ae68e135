"""Probes of one Hopper mma.sync.m16n8k32 fp8 instruction (cuda/mma_single.cu), D = A B + C with C != 0.

  python3 scripts/fp8_mma_single.py gen DIR            # writes DIR/<fmt>.<kind>.in (256 tiles each)
  for f in DIR/*.in; do build/lpsim-mma-single $f ${f%.in}.out; done   # on the GPU (built by CMake, sm_90)
  python3 scripts/fp8_mma_single.py pack DIR results/cuda/raw/mma_single.safetensors   # 8 tiles of each set

Kinds: wide (every finite value of the format), sparse (90% of A zero: few products, alignment shows), narrow
(values in [1/4, 4]); the C variants add an accumulator spread over 2^-30..2^10 of the products' scale. ctest
H100Bits.FpEightMmaSyncSingleInstructions checks fp8e4m3-mma / fp8e5m2-mma against the packed outputs.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

KINDS = ("wide", "wideC", "sparse", "sparseC", "narrow", "narrowC")
FORMATS = ((0, "e4m3"), (1, "e5m2"))
PER_TILE = 16 * 32 + 32 * 8 + 16 * 8


def values(fmt):
    """Every finite positive value of the format, decoded from its bit patterns."""
    v = set()
    for code in range(1, 128):
        if fmt == 0:
            e, m = code >> 3, code & 7
            if e == 15 and m == 7:
                continue  # NaN
            x = (m / 8) * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
        else:
            e, m = code >> 2, code & 3
            if e == 31:
                continue  # inf, NaN
            x = (m / 4) * 2.0 ** -14 if e == 0 else (1 + m / 4) * 2.0 ** (e - 15)
        v.add(x)
    return np.array(sorted(v))


def tiles(rng, fmt, n, kind):
    vals = values(fmt)
    near_one = vals[(vals > 0.25) & (vals < 4)]
    out = []
    for _ in range(n):
        pool = near_one if kind.startswith("narrow") else vals
        A = rng.choice(pool, (16, 32)) * rng.choice([-1, 1], (16, 32))
        B = rng.choice(pool, (32, 8)) * rng.choice([-1, 1], (32, 8))
        if kind.startswith("sparse"):
            A = A * (rng.random((16, 32)) < 0.1)
        C = np.zeros((16, 8))
        if kind.endswith("C"):
            scale = np.abs(A).max() * np.abs(B).max()
            C = (rng.standard_normal((16, 8)) * scale * 2.0 ** rng.integers(-30, 10, (16, 8))).astype(np.float32)
        out.append(np.concatenate([A.ravel(), B.ravel(), C.ravel()]).astype(np.float32))
    return out


def gen(d):
    rng = np.random.default_rng(1)
    d.mkdir(parents=True, exist_ok=True)
    for fmt, name in FORMATS:
        for kind in KINDS:
            ts = tiles(rng, fmt, 256, kind)
            with open(d / f"{name}.{kind}.in", "wb") as f:
                f.write(struct.pack("ii", fmt, len(ts)))
                for t in ts:
                    f.write(t.tobytes())


def pack(d, dest, keep=8):
    tensors = {}
    for _, name in FORMATS:
        for kind in KINDS:
            raw = (d / f"{name}.{kind}.in").read_bytes()
            x = np.frombuffer(raw[8:], dtype=np.float32).reshape(-1, PER_TILE)[:keep]
            y = np.fromfile(d / f"{name}.{kind}.out", dtype=np.float32).reshape(-1, 128)[:keep]
            tensors[f"{name}.{kind}.a"] = x[:, :512].reshape(keep, 16, 32)
            tensors[f"{name}.{kind}.b"] = x[:, 512:768].reshape(keep, 32, 8)
            tensors[f"{name}.{kind}.c"] = x[:, 768:].reshape(keep, 16, 8)
            tensors[f"{name}.{kind}.d"] = y.reshape(keep, 16, 8)
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        b = np.ascontiguousarray(tensors[key]).tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(dest).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"wrote {dest}: {len(tensors)} tensors")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "gen":
        gen(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "pack":
        pack(Path(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
