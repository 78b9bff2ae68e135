"""What the GPU machine's libraries do with pre-quantized weights and E8M0 scales, stored for lpsim's tests.

Writes OUT/:
  sources/<module>.py        transformers' quantization integrations as installed (read, not copied into lpsim);
  e8m0.csv                   float32 -> torch.float8_e8m0fnu and ml_dtypes.float8_e8m0fnu, value by value;
  mxfp4_dequant.safetensors  random GPT-OSS-style blocks (uint8, two E2M1 codes each) and scales (uint8 E8M0),
                             and transformers' own convert_moe_packed_tensors output (bf16);
  fp8_dequant.safetensors    random E4M3 weights with 128x128 weight_scale_inv, and transformers' own dequantised
                             weight where the installed version offers a function for it;
  packages.txt               the quantization packages installed.
Usage: probe_quantized.py OUT
"""
import importlib
import inspect
import os
import subprocess
import sys

import torch
from safetensors.torch import save_file

OUT = sys.argv[1]
os.makedirs(f"{OUT}/sources", exist_ok=True)

for name in ("transformers.integrations.mxfp4", "transformers.integrations.finegrained_fp8",
             "transformers.quantizers.quantizer_mxfp4", "transformers.quantizers.quantizer_finegrained_fp8",
             "transformers.integrations.moe", "transformers.models.gpt_oss.modeling_gpt_oss",
             "transformers.models.deepseek_v3.modeling_deepseek_v3"):
    try:
        with open(f"{OUT}/sources/{name}.py", "w") as f:
            f.write(inspect.getsource(importlib.import_module(name)))
    except Exception as e:  # a module this version lacks is a fact too
        print(name, "unavailable:", repr(e))

with open(f"{OUT}/packages.txt", "w") as f:
    f.write(subprocess.run([sys.executable, "-m", "pip", "list"], capture_output=True, text=True).stdout)

# E8M0 conversions: powers of two, values between them (ties at 1.5 * 2^k in the log sense are not ties), range ends.
vals = [0.0, -1.0, float("inf"), float("nan"), 2.0 ** -127, 2.0 ** -128, 2.0 ** -130, 2.0 ** 127, 2.0 ** 128,
        3.4e38, 1e-45]
for k in (-3, 0, 1, 5):
    for m in (1.0, 1.25, 1.4142135, 1.4142137, 1.5, 1.75, 1.999):
        vals.append(m * 2.0 ** k)
x = torch.tensor(vals, dtype=torch.float32)
rows = ["input,torch_bits,torch_value,ml_dtypes_bits,ml_dtypes_value"]
try:
    import ml_dtypes
    import numpy as np
    md = np.array(vals, dtype=np.float32).astype(ml_dtypes.float8_e8m0fnu)
    md_bits, md_vals = md.view(np.uint8).tolist(), md.astype(np.float32).tolist()
except Exception as e:
    print("ml_dtypes e8m0 unavailable:", repr(e))
    md_bits, md_vals = ["na"] * len(vals), ["na"] * len(vals)
try:
    t = x.to(torch.float8_e8m0fnu)
    t_bits, t_vals = t.view(torch.uint8).tolist(), t.to(torch.float32).tolist()
except Exception as e:
    print("torch e8m0 unavailable:", repr(e))
    t_bits, t_vals = ["na"] * len(vals), ["na"] * len(vals)
for v, tb, tv, mb, mv in zip(vals, t_bits, t_vals, md_bits, md_vals):
    rows.append(f"{v!r},{tb},{tv!r},{mb},{mv!r}")
with open(f"{OUT}/e8m0.csv", "w") as f:
    f.write("\n".join(rows) + "\n")

# GPT-OSS MXFP4: blocks [experts, rows, groups, 16] uint8, scales [experts, rows, groups] uint8.
g = torch.Generator().manual_seed(0)
blocks = torch.randint(0, 256, (2, 6, 4, 16), dtype=torch.uint8, generator=g)
scales = torch.randint(110, 140, (2, 6, 4), dtype=torch.uint8, generator=g)
scales[0, 0, :4] = torch.tensor([0, 1, 254, 255], dtype=torch.uint8)  # the range ends and E8M0's NaN
try:
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    deq = convert_moe_packed_tensors(blocks.cuda(), scales.cuda()).cpu().contiguous()
    save_file({"blocks": blocks, "scales": scales, "dequantized": deq}, f"{OUT}/mxfp4_dequant.safetensors")
    print("mxfp4 dequantized", tuple(deq.shape), deq.dtype)
except Exception as e:
    print("mxfp4 convert failed:", repr(e))

# Fine-grained FP8 (DeepSeek-V3, Qwen3-FP8): weight [out, in] e4m3 with weight_scale_inv [ceil(out/128), ceil(in/128)].
w = (torch.randn(200, 300, generator=g) * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
s = torch.rand(2, 3, generator=g, dtype=torch.float32) * 1e-2 + 1e-4
tensors = {"weight": w.view(torch.uint8).contiguous(), "weight_scale_inv": s}
try:
    fp8 = importlib.import_module("transformers.integrations.finegrained_fp8")
    cands = [n for n, o in vars(fp8).items() if callable(o) and "dequant" in n.lower()]
    print("finegrained_fp8 dequant candidates:", cands)
    for n in cands:
        fn = getattr(fp8, n)
        try:
            if inspect.isclass(fn):
                continue
            out = fn(w.cuda(), s.cuda(), [128, 128]) if len(inspect.signature(fn).parameters) >= 3 else fn(w.cuda(), s.cuda())
            if isinstance(out, torch.Tensor):
                tensors[f"dequantized_{n}"] = out.cpu().contiguous()
                print("fp8", n, tuple(out.shape), out.dtype)
        except Exception as e:
            print("fp8", n, "failed:", repr(e))
except Exception as e:
    print("finegrained_fp8 unavailable:", repr(e))
save_file(tensors, f"{OUT}/fp8_dequant.safetensors")
print("done")
