#!/usr/bin/env python3
"""Observed forward error of transformers' own model classes on the GPU, against the same model in float64.

Makes small seeded checkpoints with transformers' classes (GPT-2, ViT, Llama with GQA and llama3 rope scaling,
Qwen2 with q/k/v biases and tied embeddings, Mistral, Qwen3 with QK-norm (sharded), Phi-3 with fused projections,
Gemma 2 with sandwich norms and soft-capping (its branch taps after the post-norms), Gemma 3 with QK-norm and
per-layer RoPE bases, Mixtral and Qwen3-MoE),
saves them with save_pretrained, writes the input each is run
on, then runs each as users do, eager attention: torch.autocast fp16 and bf16, model.half(), model.to(bfloat16),
each against model.to(float64). Per block: the attention branch (output of the out projection), the MLP branch
(output of the down projection) and the block output; then the final norm and the logits, with KL(p_ref || p),
top-1 agreement and the largest logit difference. `lpsim hf-check` replays the CSV against lpsim's prediction.

Each model runs twice: attn_implementation="eager" (mode names as lpsim's presets: autocast-fp16, ...) and "sdpa"
(modes autocast-fp16+flash, ...: lpsim's flash kernel predicts them); OUTDIR/kernels.csv lists the attention kernels
the sdpa forwards launched (torch.profiler). GPT-2, ViT and Llama also run as "-sharp" checkpoints whose query and
key weights are four times the initial ones (sharper attention, where the kernels differ most). Mixture-of-experts
models (Mixtral, Qwen3-MoE) also write OUTDIR/routes.csv: per mode, layer and token the experts the router chose,
in its order, as transformers ran them on the GPU (lpsim's route columns are measured against its own reference).

Usage: hf_observe.py OUTDIR [FAMILIES]   (FAMILIES: comma-separated names, e.g. qwen3; writes OUTDIR/models/<name>/, OUTDIR/observed.csv, OUTDIR/versions.txt)
"""
import json
import os
import re
import sys

import torch
import transformers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig,
                          MixtralConfig, MixtralForCausalLM, Phi3Config, Phi3ForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM, ViTConfig, ViTModel)

OUT = sys.argv[1]
ONLY = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None  # e.g. "qwen3": only those families
TOKENS, VOCAB = 32, 256
MODES = {"autocast-fp16": ("autocast", torch.float16), "autocast-bf16": ("autocast", torch.bfloat16),
         "pure-fp16": ("pure", torch.float16), "pure-bf16": ("pure", torch.bfloat16)}


def models():
    common = {}
    yield "gpt2", GPT2LMHeadModel, GPT2Config(n_embd=64, n_layer=3, n_head=4, vocab_size=VOCAB, n_positions=64,
                                              resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, **common)
    yield "vit", ViTModel, ViTConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
                                     image_size=16, patch_size=4, num_channels=3, hidden_dropout_prob=0,
                                     attention_probs_dropout_prob=0, **common)
    llama = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=172, vocab_size=VOCAB, max_position_embeddings=256, **common)
    yield "llama", LlamaForCausalLM, LlamaConfig(rope_theta=500000.0, tie_word_embeddings=False,
                                                 rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                               "original_max_position_embeddings": 16}, **llama)
    yield "qwen2", Qwen2ForCausalLM, Qwen2Config(rope_theta=1000000.0, tie_word_embeddings=True, **llama)
    yield "mistral", MistralForCausalLM, MistralConfig(rope_theta=10000.0, sliding_window=None,
                                                       tie_word_embeddings=False, **llama)
    # Qwen3: QK-norm, head_dim 32 apart from hidden / heads = 16, tied embeddings; sharded on save.
    yield "qwen3", Qwen3ForCausalLM, Qwen3Config(rope_theta=1000000.0, tie_word_embeddings=True, head_dim=32, **llama)
    # Phi-3: fused qkv_proj and gate_up_proj; its default pad_token_id (32000) is outside this vocabulary.
    yield "phi3", Phi3ForCausalLM, Phi3Config(rope_theta=10000.0, tie_word_embeddings=False, pad_token_id=None,
                                              resid_pdrop=0, embd_pdrop=0, attention_dropout=0, **llama)
    # Gemma 2: sandwich norms with 1 + w, the embedding times sqrt(64), GeGLU, scores times 32^-1/2 soft-capped at 50,
    # logits at 30, a tied head (eager only: sdpa cannot soft-cap).
    yield "gemma2", Gemma2ForCausalLM, Gemma2Config(rope_theta=10000.0, head_dim=32, query_pre_attn_scalar=32,
                                                    attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                                                    sliding_window=4096, tie_word_embeddings=True, **llama)
    # Gemma 3 text: Gemma 2's block with QK-norm, no soft-capping, layers 0 and 2 sliding (local rope base 10^4),
    # layer 1 full (10^6); the window is longer than the input.
    yield "gemma3", Gemma3ForCausalLM, Gemma3TextConfig(head_dim=32, query_pre_attn_scalar=32, sliding_window=512,
                                                        layer_types=["sliding_attention", "full_attention",
                                                                     "sliding_attention"],
                                                        tie_word_embeddings=True, **llama)
    # Mixtral: four experts, top-2 renormalised, fp32 routing weights.
    yield "mixtral", MixtralForCausalLM, MixtralConfig(rope_theta=1000000.0, sliding_window=None, num_local_experts=4,
                                                       num_experts_per_tok=2, router_jitter_noise=0.0,
                                                       tie_word_embeddings=False, **llama)
    # Qwen3-MoE: QK-norm, eight experts of width 48, top-2 without renormalisation, weights cast to the logits' dtype.
    yield "qwen3_moe", Qwen3MoeForCausalLM, Qwen3MoeConfig(rope_theta=1000000.0, head_dim=32, num_experts=8,
                                                           num_experts_per_tok=2, moe_intermediate_size=48,
                                                           norm_topk_prob=False, decoder_sparse_step=1,
                                                           mlp_only_layers=[], tie_word_embeddings=False, **llama)


def sharpen(name, model):
    """Query and key weights (and biases) times four (Qwen3: its QK-norm gains times two)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if name == "gpt2" and n.endswith("attn.c_attn.weight"):  # Conv1D, in x 3*out: q | k | v
                p[:, : 2 * p.shape[1] // 3] *= 4
            elif name == "gpt2" and n.endswith("attn.c_attn.bias"):
                p[: 2 * p.shape[0] // 3] *= 4
            elif name == "qwen3" and re.search(r"(q_norm|k_norm)\.weight$", n):  # QK-norm undoes a scaled q_proj;
                p *= 2  # its scores start O(1), so the gains times two (scores times four) make it sharp
            elif name != "qwen3" and re.search(r"(q_proj|k_proj|query|key)\.(weight|bias)$", n):
                p *= 4


def probes(model):
    """Forward hooks by module name: per layer the out projection, the down projection and the layer itself."""
    found, final = {}, None
    for name, mod in model.named_modules():
        m = re.search(r"(?:^|\.)(?:h|layer|layers)\.(\d+)(?:\.(.*))?$", name)
        if m:
            layer, rest = int(m.group(1)), m.group(2) or ""
            if rest == "":
                found[(layer, "block")] = mod
            elif rest in ("attn.c_proj", "self_attn.o_proj", "attention.output.dense", "attention.o_proj",
                          "attention.out_proj", "attention.dense"):
                found[(layer, "attn")] = mod
            elif rest in ("mlp.c_proj", "mlp.down_proj", "output.dense", "mlp.fc2", "mlp.dense2"):
                found[(layer, "ffn")] = mod
            elif rest in ("post_attention_layernorm", "post_feedforward_layernorm") and "Gemma" in type(mod).__name__:
                found[(layer, "attn" if rest.startswith("post_attention") else "ffn")] = mod  # the sandwich's post-norms
            elif rest in ("mlp", "block_sparse_moe") and re.search("Sparse|Moe|MoE", type(mod).__name__):
                found[(layer, "ffn")] = mod  # a mixture of experts: the block's output is the branch
            elif rest in ("mlp.gate", "block_sparse_moe.gate"):
                found[(layer, "router")] = mod
        elif re.search(r"(^|\.)(ln_f|norm|layernorm|final_layernorm)$", name):
            final = mod
    return found, final


def run(model, inputs, autocast_dtype):
    found, final = probes(model)
    got = {}

    def hook(key):
        def f(_m, _i, out):
            if key[1] == "router":  # the logits (tokens x experts), whatever else the router returns
                t = out[0] if isinstance(out, tuple) else out
                got[key] = t.detach().double().cpu().reshape(-1, t.shape[-1])
                return
            got[key] = (out[0] if isinstance(out, tuple) else out).detach().double().cpu()[0]
        return f

    hs = [mod.register_forward_hook(hook(k)) for k, mod in found.items()]
    if final is not None:
        hs.append(final.register_forward_hook(hook((-1, "final"))))
    with torch.no_grad(), torch.autocast("cuda", dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None):
        out = model(**inputs)
    for h in hs:
        h.remove()
    if hasattr(out, "logits"):
        got[(-1, "logits")] = out.logits.detach().double().cpu()[0]
    return got


def main():
    os.makedirs(f"{OUT}/models", exist_ok=True)
    with open(f"{OUT}/versions.txt", "w") as f:
        f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\n"
                f"gpu {torch.cuda.get_device_name()}\n")
    rows = ["model,mode,layer,tap,rel_fro,kl_mean,kl_max,top1,max_abs_diff"]
    kernels = ["model,mode,kernel"]
    routes = ["model,mode,layer,token,experts"]
    for name, cls, cfg in models():
        for sharp in (False, True):
            if sharp and name not in ("gpt2", "vit", "llama", "qwen3", "gemma2"):  # Gemma 3: QK-norm undoes it
                continue
            if ONLY and name not in ONLY:
                continue
            try:
                observe(name + ("-sharp" if sharp else ""), cls, cfg, rows, kernels, routes, sharp)
            except Exception as e:  # one family's failure must not lose the others
                print(name, "FAILED:", repr(e), flush=True)
    with open(f"{OUT}/observed.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(f"{OUT}/kernels.csv", "w") as f:
        f.write("\n".join(kernels) + "\n")
    if DEFAULT_EXPERTS:
        with open(f"{OUT}/versions.txt", "a") as f:
            f.write(f"experts_implementation default {' '.join(sorted(DEFAULT_EXPERTS))}; observed with eager\n")
    if len(routes) > 1:
        with open(f"{OUT}/routes.csv", "w") as f:
            f.write("\n".join(routes) + "\n")


def attention_kernels(model, inputs, autocast_dtype):
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), torch.autocast("cuda", dtype=autocast_dtype or torch.float16,
                                         enabled=autocast_dtype is not None):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(**inputs)
            torch.cuda.synchronize()
    names = {e.key.split("(")[0][:100] for e in prof.key_averages() if e.device_type.name == "CUDA"}
    return " | ".join(sorted(n for n in names if re.search(r"sdpa|flash|fmha|attention|softmax", n, re.I)))


def top_k(logits, k):
    """The experts a router's logits choose, largest first, as softmax then topk does (softmax keeps the order)."""
    return torch.topk(torch.softmax(logits.float(), -1), k, dim=-1).indices.tolist()


def eager_experts(model):
    """The MoE experts as transformers' eager loop over experts (one F.linear per expert and projection), the
    arithmetic lpsim's MoE description models; the default grouped_mm/batched_mm kernels take no float64 and run
    outside autocast's cast list. The implementation a plain from_pretrained picks is recorded in versions.txt."""
    for mod in model.modules():
        c = getattr(mod, "config", None)
        if c is not None and hasattr(c, "_experts_implementation"):
            DEFAULT_EXPERTS.add(str(c._experts_implementation))
            c._experts_implementation = "eager"
    return model


DEFAULT_EXPERTS = set()


def observe(name, cls, cfg, rows, kernels, routes, sharp):
    if True:
        torch.manual_seed(0)
        model = cls(cfg).eval()
        if sharp:
            sharpen(name.split("-")[0], model)
        d = f"{OUT}/models/{name}"
        model.save_pretrained(d, **({"max_shard_size": "100KB"} if name.startswith("qwen3") else {}))
        g = torch.Generator().manual_seed(1)
        if name.startswith("vit"):
            px = torch.randn(1, 3, 16, 16, generator=g)
            inputs = {"pixel_values": px}
            with open(f"{d}/input.txt", "w") as f:  # channel, row, column
                f.write("\n".join(" ".join(f"{v:.9g}" for v in row) for row in px[0].reshape(-1, 16).tolist()) + "\n")
        else:
            ids = torch.randint(0, VOCAB, (1, TOKENS), generator=g)
            inputs = {"input_ids": ids}
            with open(f"{d}/input.txt", "w") as f:
                f.write(" ".join(str(i) for i in ids[0].tolist()) + "\n")
        with open(f"{d}/tensor_names.txt", "w") as f:
            from safetensors import safe_open
            import glob
            keys = []
            for shard in sorted(glob.glob(f"{d}/*.safetensors")):
                with safe_open(shard, "pt") as st:
                    keys += list(st.keys())
            f.write("\n".join(sorted(keys)) + "\n")
        ref_model = eager_experts(cls.from_pretrained(d, attn_implementation="eager")).to("cuda", torch.float64).eval()
        gpu_in = {k: (v.to("cuda", torch.float64) if v.is_floating_point() else v.cuda()) for k, v in inputs.items()}
        ref = run(ref_model, gpu_in, None)
        del ref_model
        kernels_run = ("eager",) if name.startswith("gemma") else ("eager", "sdpa")  # sdpa has no soft-capping
        for (mode, (kind, dtype)), attn in [(md, a) for a in kernels_run for md in MODES.items()]:
            m = eager_experts(cls.from_pretrained(d, attn_implementation=attn)).cuda().eval()
            if kind == "pure":
                m = m.to(dtype)
            xin = {k: (v.to(torch.float32 if kind == "autocast" else dtype) if v.is_floating_point() else v)
                   for k, v in gpu_in.items()}
            got = run(m, xin, dtype if kind == "autocast" else None)
            if attn == "sdpa":
                mode = mode + "+flash"
                kernels.append(f"{name},{mode},\"{attention_kernels(m, xin, dtype if kind == 'autocast' else None)}\"")
            k = getattr(cfg, "num_experts_per_tok", 0)
            for key in sorted(ref, key=lambda k: (k[0] if k[0] >= 0 else 1 << 20, k[1])):
                r, e = ref[key], got[key]
                if key[1] == "router":
                    for mname, logits in (("fp64", r), (mode, e)):
                        if mname == "fp64" and (mode != "autocast-fp16" or attn != "eager"):
                            continue  # the reference's choice once
                        for t, chosen in enumerate(top_k(logits, k)):
                            routes.append(f"{name},{mname},{key[0]},{t},{' '.join(map(str, chosen))}")
                    continue
                rel = ((e - r).norm() / r.norm()).item()
                extra = ",nan,nan,nan,nan"
                if key[1] == "logits":
                    lp_ref, lp = torch.log_softmax(r, -1), torch.log_softmax(e, -1)
                    kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)
                    top1 = (r.argmax(-1) == e.argmax(-1)).double().mean().item()
                    extra = f",{kl.mean().item():.6e},{kl.max().item():.6e},{top1:.6f},{(e - r).abs().max().item():.6e}"
                rows.append(f"{name},{mode},{key[0]},{key[1]},{rel:.6e}{extra}")
            del m
        print(name, "done", flush=True)


main()
