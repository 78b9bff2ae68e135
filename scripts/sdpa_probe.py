#!/usr/bin/env python3
"""What scaled_dot_product_attention runs on this GPU, and its outputs on seeded inputs for lpsim to replay.

For fp16 and bf16, head sizes 16, 64 and 128, causal or not, and several sequence lengths: which backends accept
the call (flash, memory-efficient, cuDNN), which kernels the default call launches (torch.profiler), and for a few
shapes the inputs and the outputs of the default call and of the flash backend, saved as safetensors
(q, k, v: heads x tokens x d; out_default, out_flash) so that `lpsim sdpa-check` can compare its flash emulation
with the GPU's bits.

Usage: sdpa_probe.py OUTDIR   (writes OUTDIR/kernels.csv, OUTDIR/tensors/*.safetensors, OUTDIR/versions.txt)
Only the shapes lpsim replays are kept: d 64 and 128 at 200 tokens, d 64 at 32 tokens.
"""
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.nn.attention import SDPBackend, sdpa_kernel

OUT = sys.argv[1]
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}


def kernels_of(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = [e.key for e in prof.key_averages() if e.device_type.name == "CUDA"]
    return " | ".join(sorted(set(n.split("(")[0][:90] for n in names)))


def main():
    os.makedirs(f"{OUT}/tensors", exist_ok=True)
    with open(f"{OUT}/versions.txt", "w") as f:
        f.write(f"torch {torch.__version__}\ngpu {torch.cuda.get_device_name()}\n")
    rows = ["dtype,head_dim,tokens,causal,heads," + ",".join(f"{b}_ok" for b in BACKENDS) + ",default_kernels"]
    for dtype in (torch.float16, torch.bfloat16):
        for d in (16, 64, 128):
            for n in (32, 200, 1024, 4096):
                for causal in (False, True):
                    heads = 2
                    g = torch.Generator(device="cuda").manual_seed(1000 * d + n + causal)
                    q, k, v = (torch.randn(1, heads, n, d, generator=g, device="cuda").to(dtype) for _ in range(3))
                    ok = {}
                    outs = {}
                    for name, be in BACKENDS.items():
                        try:
                            with sdpa_kernel([be]):
                                outs[name] = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                            ok[name] = 1
                        except RuntimeError:
                            ok[name] = 0
                    default = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    ks = kernels_of(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                    tname = "fp16" if dtype == torch.float16 else "bf16"
                    rows.append(f"{tname},{d},{n},{int(causal)},{heads}," + ",".join(str(ok[b]) for b in BACKENDS)
                                + f",\"{ks}\"")
                    if (n == 200 and d in (64, 128)) or (n == 32 and d == 64):
                        t = {"q": q[0], "k": k[0], "v": v[0], "out_default": default[0]}
                        if "flash" in outs:
                            t["out_flash"] = outs["flash"][0]
                        save_file({a: b.contiguous().cpu() for a, b in t.items()},
                                  f"{OUT}/tensors/{tname}-d{d}-n{n}-{'causal' if causal else 'full'}.safetensors")
                    same = (outs.get("flash") is not None and torch.equal(outs["flash"], default))
                    print(rows[-1][:160], "default==flash" if same else "", flush=True)
    with open(f"{OUT}/kernels.csv", "w") as f:
        f.write("\n".join(rows) + "\n")


main()
