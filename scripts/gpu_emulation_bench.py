#!/usr/bin/env python3
"""The emulated forward with its GEMMs on the GPU against PyTorch's native forward of the same shape, in one run.

For GPT-2-small at 1024 tokens and Llama-3.2-1B's shape (models/gpt2-small.toml, models/llama-1b.toml): transformers'
own model class with random weights, under autocast bf16 on the GPU (median of 10 forwards after a warm-up), then
`lpsim-cuda emulate` under lpsim plans. Prints seconds per forward and the ratio emulated / native.

    python3 scripts/gpu_emulation_bench.py --lpsim-cuda build/lpsim-cuda --out DIR [--tokens 1024] [--plans ...]
"""
import argparse
import re
import statistics
import subprocess
import time

import torch
import transformers


def native_seconds(model, tokens, vocab):
    ids = torch.randint(0, vocab, (1, tokens), device="cuda")
    times = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for r in range(11):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(ids)
            torch.cuda.synchronize()
            if r:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def native_models():
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                                                                vocab_size=50257))
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
        vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0, max_position_embeddings=8192))
    return {"gpt2-small": (gpt2, 50257), "llama-1b": (llama, 128256)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lpsim-cuda", default="build/lpsim-cuda")
    ap.add_argument("--out", default=".")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--models", nargs="+", default=["gpt2-small", "llama-1b"])
    ap.add_argument("--timeout", type=float, default=240, help="seconds allowed to one emulated run")
    ap.add_argument("--reps", type=int, default=4, help="emulated forwards per run (the median after the first counts)")
    ap.add_argument("--plans", nargs="+", default=["autocast-bf16", "cuda/plans/autocast-fp16-tc.toml"])
    args = ap.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}")
    models = native_models()
    for name in args.models:
        model, vocab = models[name]
        model = model.cuda().eval()
        native = native_seconds(model, args.tokens, vocab)
        print(f"{name} {args.tokens} tokens: native autocast-bf16 forward {native * 1e3:.2f} ms", flush=True)
        del model
        torch.cuda.empty_cache()
        for plan in args.plans:
            try:
                out = subprocess.run([args.lpsim_cuda, "emulate", "-o", args.out, "-m", f"models/{name}.toml", "-p",
                                      plan, "--tokens", str(args.tokens), "--reps", str(args.reps)], capture_output=True, text=True,
                                     timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"  -> {plan}: not finished in {args.timeout} s", flush=True)
                continue
            print(out.stdout.strip(), out.stderr.strip(), flush=True)
            m = re.search(r"GPU GEMMs\s+([0-9.]+) s/forward", out.stdout)
            if m:
                print(f"  -> {plan}: {float(m.group(1)):.3f} s = {float(m.group(1)) / native:.0f}x native", flush=True)


if __name__ == "__main__":
    main()
