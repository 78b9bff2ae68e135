#!/usr/bin/env python3
"""PyTorch's own forward of lpsim's models on the GPU, as users run them: autocast fp16/bf16, model.half() /
bfloat16 ("pure"), and fp8 e4m3 linear layers through torch._scaled_mm with per-tensor power-of-two scales.

Reads DIR/export/*.safetensors + .json (written by `lpsim-cuda export`), writes DIR/torch_forward.safetensors
with one F32 tensor per "<model file>|<plan>|<seed>|<layer>|<tap>" (taps attn, mid, ffn, block), the layout
`lpsim native-error` reads. Plan names are lpsim's presets whose semantics each mode follows (docs/CUDA.md).
Usage: cuda_torch_forward.py DIR
"""
import glob
import json
import math
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

PLANS = {"autocast-fp16": ("autocast", torch.float16), "autocast-bf16": ("autocast", torch.bfloat16),
         "pure-fp16": ("pure", torch.float16), "pure-bf16": ("pure", torch.bfloat16),
         "fp8-e4m3": ("fp8", torch.bfloat16)}
E4M3_MAX = 448.0


def pow2_scale(amax):
    """The largest power of two s with amax * s <= 448 (lpsim's pow2_scale_within)."""
    if not amax > 0 or not math.isfinite(amax):
        return 1.0
    _, e = math.frexp(E4M3_MAX / amax)
    return 2.0 ** (e - 1)


def linear_fp8(x, w, b):
    """x @ w + b with e4m3 operands scaled per tensor, fp32 accumulation in cuBLASLt, bf16 out."""
    sx, sw = pow2_scale(x.abs().max().item()), pow2_scale(w.abs().max().item())
    m = x.shape[0]
    pad = (-m) % 16  # _scaled_mm wants dimensions in multiples of 16
    xs = F.pad(x.float() * sx, (0, 0, 0, pad)).to(torch.float8_e4m3fn)
    ws = (w.float() * sw).to(torch.float8_e4m3fn).t().contiguous().t()  # column-major B
    one = torch.ones((), device=x.device)
    y = torch._scaled_mm(xs, ws, scale_a=one / sx, scale_b=one / sw, bias=None if b is None else b.to(torch.bfloat16),
                         out_dtype=torch.bfloat16)
    return y[:m]


def forward(cfg, t, mode, dtype):
    W = {k: v.cuda() for k, v in t.items()}
    if mode != "autocast":  # pure and fp8 hold every parameter and activation in the low-precision dtype
        W = {k: (v if k == "input.ids" else v.to(dtype)) for k, v in W.items()}
    width, heads, eps = cfg["width"], cfg["heads"], cfg["eps"]
    dh = width // heads
    stream = torch.float32 if mode == "autocast" else dtype

    def lin(x, name, bias, gemm=True):
        w, b = W[name], W.get(bias)
        if mode == "fp8" and gemm:
            return linear_fp8(x, w, b)
        return F.linear(x, w.t(), b)

    def norm(x, g, beta):
        if cfg["norm"] == "layernorm":
            return F.layer_norm(x, (width,), W[g], W.get(beta), eps)
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * W[g].float()
        return y.to(stream)

    def attention(h, p):
        q, k, v = lin(h, p + "wq", p + "bq"), lin(h, p + "wk", p + "bk"), lin(h, p + "wv", p + "bv")
        n = h.shape[0]
        outs = []
        for hd in range(heads):
            sl = slice(hd * dh, (hd + 1) * dh)
            s = q[:, sl] @ k[:, sl].t()
            s = s / math.sqrt(dh)
            if cfg["causal"]:
                s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
            outs.append(F.softmax(s, dim=-1) @ v[:, sl])
        return lin(torch.cat(outs, dim=1), p + "wo", p + "bo")

    def act(u):
        a = cfg["activation"]
        return F.relu(u) if a == "relu" else F.gelu(u, approximate="tanh" if a == "gelu-tanh" else "none")

    taps = []
    emb = cfg["embedding"]
    if emb == "none":
        x = W["input.x"].to(stream)
    elif emb == "patch":
        e = lin(W["input.x"], "patch_w", "patch_b", gemm=False)  # the embedding stays out of fp8
        if cfg["class_token"]:
            e = torch.cat([W["cls"][None, :].to(e.dtype), e])
        x = e + W["pos"]
    else:
        x = W["wte"][W["input.ids"].long()] + W["pos"]
    pre = cfg["position"] == "pre"
    for layer in range(cfg["depth"]):
        p = f"layers.{layer}."
        a = attention(norm(x, p + "g1", p + "beta1") if pre else x, p)
        taps.append(a)
        x = x + a
        if not pre:
            x = norm(x, p + "g1", p + "beta1")
        taps.append(x)
        h = norm(x, p + "g2", p + "beta2") if pre else x
        f = lin(act(lin(h, p + "w1", p + "b1")), p + "w2", p + "b2")
        taps.append(f)
        x = x + f
        if not pre:
            x = norm(x, p + "g2", p + "beta2")
        taps.append(x)
    return taps


def main(folder):
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    for path in sorted(glob.glob(f"{folder}/export/*.json")):
        cfg = json.load(open(path))
        t = load_file(path[:-5] + ".safetensors")
        for plan, (mode, dtype) in PLANS.items():
            try:
                with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=mode == "autocast"):
                    taps = forward(cfg, t, mode, dtype)
            except (RuntimeError, ValueError) as e:  # e.g. _scaled_mm's multiples of 16 on a width-8 model
                print(f"{cfg['model_file']:<24} {plan:<14} not run: {str(e).splitlines()[0]}")
                continue
            for i, v in enumerate(taps):
                key = f"{cfg['model_file']}|{plan}|{cfg['seed']}|{i // 4}|{('attn', 'mid', 'ffn', 'block')[i % 4]}"
                out[key] = v.float().contiguous().cpu()
            print(f"{cfg['model_file']:<24} {plan:<14} block {cfg['depth'] - 1} dtype {taps[-1].dtype}")
    save_file(out, f"{folder}/torch_forward.safetensors")
    print(f"torch {torch.__version__}: wrote {len(out)} taps to {folder}/torch_forward.safetensors")


if __name__ == "__main__":
    main(sys.argv[1])
