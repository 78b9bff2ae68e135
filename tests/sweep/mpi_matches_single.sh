#!/usr/bin/env bash
# mpirun -np 3 lpsim sweep gives the same taps.csv and summary.csv as one process.
set -euo pipefail
lpsim=$1 source_dir=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cat > "$work/mpi.toml" <<TOML
[sweep]
name = "mpi"
model = "$source_dir/models/tiny.toml"
seeds = 3
batches = 2
[axes]
plan = ["autocast-fp16", "pure-bf16"]
"model.depth" = [1, 2]
TOML
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
mpirun --oversubscribe -np 3 "$lpsim" sweep "$work/mpi.toml" --results "$work/mpi" --no-plot --quiet
"$lpsim" sweep "$work/mpi.toml" --results "$work/single" --no-plot --quiet
cmp "$work/mpi/mpi/taps.csv" "$work/single/mpi/taps.csv"
cmp "$work/mpi/mpi/summary.csv" "$work/single/mpi/summary.csv"
test -f "$work/mpi/mpi/manifest-shard2of3.json"
echo "mpirun -np 3 and one process gave identical files"
