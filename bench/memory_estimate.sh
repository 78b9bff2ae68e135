#!/usr/bin/env bash
# The memory estimate (include/lpsim/reference/memory_estimate.hpp) against the measured peak resident set of
# `lpsim run`, for each path a run can take: a long sequence (scores dominate) under each reference, a wide model
# (parameters dominate), a Llama-shaped model with an LM head, MPFR with its check. Prints estimate / peak per case
# and whether it lies within 2x either way. Usage: bench/memory_estimate.sh [build/lpsim] (about 2 minutes here).
set -euo pipefail
lpsim=${1:-build/lpsim}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model() {  # name, then [model] lines
  local name=$1; shift
  printf '[model]\n' >"$work/$name.toml"
  printf '%s\n' "$@" >>"$work/$name.toml"
}
model long 'width = 8' 'heads = 2' 'ffn = 16' 'depth = 2' 'tokens = 4096'
model long1k 'width = 8' 'heads = 2' 'ffn = 16' 'depth = 2' 'tokens = 1024'
model wide 'arch = "gpt2"' 'width = 768' 'heads = 12' 'ffn = 3072' 'depth = 6' 'tokens = 64' 'embedding = "tokens"' 'vocab = 50257'
model llama 'arch = "llama"' 'width = 512' 'heads = 8' 'kv_heads = 2' 'ffn = 1536' 'depth = 4' 'tokens = 256' 'vocab = 32000'
printf '%-34s %12s %12s %8s %s\n' case "estimate GB" "peak GB" ratio "within 2x"
bad=0
run() {  # label, then arguments of lpsim run
  local label=$1; shift
  local out
  out=$("$lpsim" run "$@" -o "$work/out.csv" 2>/dev/null | grep '^memory:')
  local est peak
  est=$(sed -E 's/.*estimated about ([0-9.]+) GB.*/\1/' <<<"$out")
  peak=$(sed -E 's/.*peak resident ([0-9.]+) GB.*/\1/' <<<"$out")
  local verdict
  verdict=$(awk -v e="$est" -v p="$peak" 'BEGIN { r = e / p; printf "%8.2f %s", r, (r >= 0.5 && r <= 2) ? "yes" : "NO" }')
  [[ $verdict == *NO ]] && bad=$((bad + 1))
  printf '%-34s %12s %12s %s\n' "$label" "$est" "$peak" "$verdict"
}
run "4096 tokens, fp32, fp64 ref"      -m "$work/long.toml" -p fp32 --reference fp64 --no-check
run "4096 tokens, bf16, dd ref+check"  -m "$work/long.toml" -p autocast-bf16 --reference dd
run "1024 tokens, fp16, mpfr+check"    -m "$work/long1k.toml" -p pure-fp16 --reference mpfr
run "GPT-2 width 768, dd ref+check"    -m "$work/wide.toml" -p autocast-bf16 --reference dd
run "GPT-2 width 768, fp8, fp64 ref"   -m "$work/wide.toml" -p fp8-e4m3 --reference fp64 --no-check
run "Llama 512/GQA, bf16, dd ref"      -m "$work/llama.toml" -p autocast-bf16 --reference dd --no-check
echo "$bad case(s) outside 2x"
exit $((bad > 0))
