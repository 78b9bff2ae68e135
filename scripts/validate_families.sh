#!/usr/bin/env bash
# The GPU side of the family descriptions (docs/DESIGN.md) in one command, for the H100/H200 machine (device tool):
#   1. transformers' own classes of the new families against float64 (scripts/hf_observe.py FAMILIES)
#      -> OUT/hf.tar.gz (observed.csv, kernels.csv, routes.csv, versions.txt, the checkpoints and their inputs);
#   2. the defaults of the new families' config classes that lpsim's descriptions assume -> OUT/config_defaults.txt;
#   3. transformers' MoE classes' source and a tiny Mixtral's and Qwen3-MoE's tensor names -> OUT/moe_source.txt;
#   4. the GPU emulation of every tiny model x plan that ran before, and of the new families, against the CPU
#      emulation tap by tap with range events (lpsim-cuda emulate --check) -> OUT/emulated_forward.csv, within
#      EMULATE_SECONDS (default 300).
# Binaries come prebuilt in BIN (default .devrun: lpsim-cuda and lib/ with the shared libraries the machine lacks).
# Usage: validate_families.sh OUT [FAMILIES]   (FAMILIES default gemma2,gemma3,mixtral,qwen3_moe)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$1
FAMILIES=${2:-gemma2,gemma3,mixtral,qwen3_moe}
BIN=${BIN:-.devrun}
export LD_LIBRARY_PATH="$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}"
mkdir -p "$OUT"
status=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# transformers first (what the other steps cannot replace), then the GPU emulation within what time is left.
PYTHONUNBUFFERED=1 python3 scripts/hf_observe.py "$OUT/hf" "$FAMILIES" 2>&1 | tail -n 20 | tee "$OUT/hf_observe.txt" || status=1
python3 - > "$OUT/config_defaults.txt" 2>&1 <<'PY' || status=1
import transformers
from transformers import MixtralConfig, Phi3Config, Qwen3Config, Qwen3MoeConfig
q, p, mx, qm = Qwen3Config(), Phi3Config(), MixtralConfig(), Qwen3MoeConfig()
print("MixtralConfig num_local_experts", mx.num_local_experts, "num_experts_per_tok", mx.num_experts_per_tok,
      "sliding_window", mx.sliding_window, "rms_norm_eps", mx.rms_norm_eps)
print("Qwen3MoeConfig head_dim", qm.head_dim, "num_experts", qm.num_experts, "num_experts_per_tok", qm.num_experts_per_tok,
      "moe_intermediate_size", qm.moe_intermediate_size, "norm_topk_prob", qm.norm_topk_prob,
      "decoder_sparse_step", qm.decoder_sparse_step, "mlp_only_layers", qm.mlp_only_layers)
print("transformers", transformers.__version__)
print("Qwen3Config head_dim", q.head_dim, "tie_word_embeddings", q.tie_word_embeddings, "rms_norm_eps", q.rms_norm_eps)
print("Phi3Config rms_norm_eps", p.rms_norm_eps, "tie_word_embeddings", p.tie_word_embeddings,
      "partial_rotary_factor", getattr(p, "partial_rotary_factor", None), "sliding_window", p.sliding_window)
PY
# What the next families will be modelled from: transformers' own MoE code and checkpoint names, as installed.
python3 - > "$OUT/moe_source.txt" 2>&1 <<'PY' || true
import inspect, tempfile, torch
import transformers.models.mixtral.modeling_mixtral as mx
import transformers.models.qwen3_moe.modeling_qwen3_moe as qm
from safetensors import safe_open
for mod in (mx, qm):
    for name, obj in vars(mod).items():
        if inspect.isclass(obj) and obj.__module__ == mod.__name__ and any(k in name for k in ("Moe", "MoE", "Expert", "Router", "Sparse")):
            print("=" * 20, mod.__name__, name); print(inspect.getsource(obj))
from transformers import MixtralConfig, MixtralForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM
small = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, vocab_size=64)
for cls, cfg in ((MixtralForCausalLM, MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **small)),
                 (Qwen3MoeForCausalLM, Qwen3MoeConfig(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24, head_dim=8, **small))):
    d = tempfile.mkdtemp(); torch.manual_seed(0); cls(cfg).save_pretrained(d)
    print("=" * 20, cls.__name__, "config.json"); print(open(d + "/config.json").read())
    with safe_open(d + "/model.safetensors", "pt") as st:
        for k in sorted(st.keys()): print(k, list(st.get_slice(k).get_shape()))
PY
timeout "${EMULATE_SECONDS:-300}" "$BIN/lpsim-cuda" emulate -o "$OUT" -m models/gpt2-tiny.toml models/llama-tiny.toml models/tiny-vit.toml \
  models/qwen3-tiny.toml models/phi3-tiny.toml models/mixtral-tiny.toml models/qwen3-moe-tiny.toml models/gemma2-tiny.toml \
  models/gemma3-tiny.toml \
  -p autocast-bf16 pure-fp16 fp8-e4m3 mxfp8 nvfp4 fp8-deepseek cuda/plans/autocast-fp16-tc.toml \
  cuda/plans/bf16-acc-sr.toml --check 2>&1 | tail -n 60 | tee "$OUT/emulate.txt" || status=1
tar -czf "$OUT/hf.tar.gz" -C "$OUT" hf && rm -rf "$OUT/hf"
exit $status
