#!/usr/bin/env bash
# Issue 7's whole GPU cycle in one command, for the H100 machine (device tool) or any CUDA machine:
#   1. the conversion tests (fp16/bf16/fp8 intrinsics against lpsim's rounding, bit for bit);
#   2. tensor-core probes through mma.sync (lpsim-cuda probe) and through PyTorch/cuBLAS(Lt);
#   3. deterministic native forwards of every model under autocast/pure fp16/bf16 and half accumulation,
#      compared bit for bit with the emulation (lpsim-cuda forward);
#   4. PyTorch's own autocast forwards of the same weights and inputs (scripts/cuda_torch_forward.py).
# Binaries come prebuilt in BIN (default .devrun, with the shared libraries the GPU machine lacks).
# Writes to OUT (default results/cuda/raw); `lpsim cuda-report OUT` turns the files into results/cuda/.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.devrun}
OUT=${OUT:-results/cuda/raw}
export LD_LIBRARY_PATH="$PWD/$BIN:${LD_LIBRARY_PATH:-}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
"$BIN/lpsim_cuda_tests" --gtest_brief=1 2>&1 | tail -n 3 | tee "$OUT/conversions.txt" || status=1
"$BIN/lpsim-cuda" probe --out "$OUT" || status=1
PYTHONUNBUFFERED=1 python3 scripts/cuda_torch_probe.py "$OUT" || status=1
"$BIN/lpsim-cuda" forward --out "$OUT" -m models/tiny.toml models/encoder.toml models/tiny-vit.toml \
  models/gpt2-tiny.toml models/decoder002.toml models/post-ln.toml -p autocast-fp16 autocast-bf16 pure-fp16 pure-bf16 cuda/plans/half-accumulation.toml \
  autocast-fp16+flash autocast-bf16+flash pure-fp16+flash pure-bf16+flash cuda/plans/flash-small-tiles.toml cuda/plans/flash-tiles-fp16.toml 2>&1 | tee "$OUT/forward.txt" || status=1
MODELS="models/tiny.toml models/encoder.toml models/tiny-vit.toml models/gpt2-tiny.toml models/decoder002.toml models/post-ln.toml"
"$BIN/lpsim-cuda" export --out "$OUT" -m $MODELS || status=1
PYTHONUNBUFFERED=1 python3 scripts/cuda_torch_forward.py "$OUT" || status=1
rm -rf "$OUT/export" "$OUT/native.safetensors" "$OUT/probes.safetensors"  # CI keeps digests; probes regenerate from the seed
exit $status
