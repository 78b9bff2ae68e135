#!/usr/bin/env python3
"""The tensor-core probes through PyTorch, as users call matrix products (cuBLAS / cuBLASLt on the GPU).

Reads probes.safetensors (written by `lpsim-cuda probe`), multiplies every 16 x K by K x 8 tile on the GPU and
writes torch.safetensors with one F32 tensor per probe set and engine, keyed "<format>.<kind>.<engine>.<out>":
engine mm (torch.mm for fp16/bf16), scaled (torch._scaled_mm for fp8, cuBLASLt's default promotion) or
scaledfast (use_fast_accum=True); out is the dtype the product was returned in (fp32 where PyTorch offers an fp32
output, else the operand dtype, whose rounding the fit then models).
Usage: cuda_torch_probe.py DIR
"""
import sys

import torch
from safetensors.torch import load_file, save_file

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16,
          "e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}


def mm_fp32_out(a, b):
    """a @ b with an fp32 result where this PyTorch can return one (out_dtype), else in the operand dtype."""
    try:
        return torch.mm(a, b, out_dtype=torch.float32), "fp32"
    except (TypeError, RuntimeError):
        return torch.mm(a, b), "fp16" if a.dtype == torch.float16 else "bf16"


def main(folder):
    probes = load_file(f"{folder}/probes.safetensors")
    out = {}
    one = torch.ones((), device="cuda")
    for name in sorted(k for k in probes if k.endswith(".a")):
        key = name[:-2]
        fmt = key.split(".")[0]
        a, b = probes[name].cuda(), probes[key + ".b"].cuda()
        tiles = a.shape[0]
        dtype = DTYPES[fmt]
        if fmt in ("fp16", "bf16"):
            results, outname = [], None
            for t in range(tiles):
                d, outname = mm_fp32_out(a[t].to(dtype), b[t].to(dtype))
                results.append(d.float())
            out[f"{key}.mm.{outname}"] = torch.stack(results).cpu()
            continue
        for engine, fast in (("scaled", False), ("scaledfast", True)):
            try:
                results = []
                for t in range(tiles):
                    bt = torch.zeros(b.shape[1], 16, device="cuda")  # N padded to 16 with zero columns
                    bt[:, :8] = b[t]
                    bt = bt.to(dtype).t().contiguous().t()  # column-major, as cuBLASLt wants B
                    d = torch._scaled_mm(a[t].to(dtype), bt, scale_a=one, scale_b=one, out_dtype=torch.float32,
                                         use_fast_accum=fast)
                    results.append(d[:, :8])
                out[f"{key}.{engine}.fp32"] = torch.stack(results).cpu()
            except (RuntimeError, ValueError) as e:
                print(f"{key} {engine}: not run ({str(e).splitlines()[0]})")
    save_file(out, f"{folder}/torch.safetensors")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"allow_fp16_reduced_precision_reduction={torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction}: "
          f"wrote {len(out)} probe outputs to {folder}/torch.safetensors")


if __name__ == "__main__":
    main(sys.argv[1])
