#!/usr/bin/env bash
# A sweep killed with SIGKILL at random moments (mid-unit, mid-write, during assembly), then resumed until it
# finishes, writes the same taps.csv, summary.csv, stats.csv and manifest.json as one uninterrupted run, and leaves
# no temporary files behind. Usage: kill_resume.sh LPSIM SOURCE_DIR
set -euo pipefail
lpsim=$1 src=$2
dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
cat > "$dir/k.toml" <<TOML
[sweep]
name = "k"
model = "$src/models/tiny.toml"
seeds = 300
batches = 2
reference = "mpfr"
[axes]
plan = ["autocast-fp16", "pure-bf16", "fp8-e4m3"]
TOML
"$lpsim" sweep "$dir/k.toml" --results "$dir/clean" --quiet --no-plot --threads 2 > /dev/null
kills=0
for attempt in $(seq 1 60); do
  "$lpsim" sweep "$dir/k.toml" --results "$dir/killed" --quiet --no-plot --threads 2 > /dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%02d' $((RANDOM % 40)))"
  if kill -9 "$pid" 2> /dev/null; then kills=$((kills + 1)); fi
  status=0
  wait "$pid" 2> /dev/null || status=$?
  if [ "$status" -eq 0 ]; then break; fi  # it finished before the kill
done
"$lpsim" sweep "$dir/k.toml" --results "$dir/killed" --quiet --no-plot --threads 1 > /dev/null  # finish, if killed last
for f in taps.csv summary.csv stats.csv manifest.json; do
  cmp "$dir/clean/k/$f" "$dir/killed/k/$f" || { echo "$f differs after $kills kills"; exit 1; }
done
leftovers=$(find "$dir/killed" -name '*.tmp*' | wc -l)
[ "$leftovers" -eq 0 ] || { echo "$leftovers temporary files left"; find "$dir/killed" -name '*.tmp*'; exit 1; }
echo "identical after $kills SIGKILLs"
