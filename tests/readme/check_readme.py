"""The README as a user meets it, from a clone: every file its command lines name is shipped, and the numbers it
quotes are the ones lpsim prints (issue 39: pairs.txt, x.txt and my_plan.toml were not shipped, and Tiny-ViT's fp8
block error was quoted as 7.2e-2 (1.2 u) while lpsim printed 7.0e-2 (1.1 u)).

usage: check_readme.py SOURCE_DIR LPSIM_BINARY"""
import csv
import glob
import re
import shlex
import subprocess
import sys
from pathlib import Path

root, lpsim = Path(sys.argv[1]), sys.argv[2]
readme = (root / "README.md").read_text()
failures = []

# 1. Files named by the command lines of the README's sh blocks (outputs and placeholders aside).
outputs = {"-o", "--output", "--out", "--results", "--write-probes", "--shard"}
lines = []
for block in re.findall(r"```(?:sh)?\n(.*?)```", readme, re.S):
    for line in block.splitlines():
        line = line.split("  #")[0].split(" # ")[0].strip()
        if line.startswith(("lpsim ", "python3 ")):
            lines.append(line)
checked = 0
for line in lines:
    words = shlex.split(line.replace("[", " ").replace("]", " "))
    for previous, word in zip([""] + words, words):
        if previous in outputs or word.startswith("-") or word.isupper() or "=" in word:
            continue
        if "/" in word or word.endswith((".toml", ".txt", ".csv", ".py")):
            checked += 1
            if not glob.glob(str(root / word)):
                failures.append(f"README command '{line}': '{word}' is not in the repository")
print(f"{len(lines)} README command lines, {checked} files named")

# 2. Tiny-ViT's block 5 error per plan, as quoted: "<plan> <rel_fro> (<x> u...)".
sentence = re.search(r"Tiny-ViT, seed 0, block 5, \|\|E\|\|_F/\|\|X\|\|_F: (.*?)\.\n\n", readme, re.S).group(1)
quoted = re.findall(r"([a-z0-9-]+) ([0-9.]+e-[0-9]+) \(([0-9.]+) u", sentence.replace("\n", " "))
assert len(quoted) == 6, quoted
for plan, rel, in_u in quoted:
    out = subprocess.run([lpsim, "run", "-m", str(root / "models/tiny-vit.toml"), "-p", plan, "--seed", "0", "--quiet",
                          "--no-check", "-o", "/dev/null"], capture_output=True, text=True, check=True).stdout
    row = re.search(r"^ +5 block +([0-9.e+-]+) +([0-9.]+)", out, re.M)
    printed = (f"{float(row.group(1)):.1e}".replace("e-0", "e-"), f"{float(row.group(2)):.1f}")
    if printed != (rel, in_u):
        failures.append(f"README quotes Tiny-ViT {plan} block 5 as {rel} ({in_u} u); lpsim prints {printed[0]} ({printed[1]} u)")
print(f"{len(quoted)} Tiny-ViT numbers compared")

# 3. The main job's regression, as quoted, against the shipped results/quick/stats.csv.
m = re.search(r"log10 u: Pearson ([0-9.]+), R\^2 ([0-9.]+), slope ([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", readme)
row = next(r for r in csv.DictReader(open(root / "results/quick/stats.csv")) if r["group"] == "all")
for name, value in zip(["pearson", "r2", "slope", "slope_lo", "slope_hi"], m.groups()):
    if f"{float(row[name]):.3f}" != value:
        failures.append(f"README quotes the quick sweep's {name} as {value}; results/quick/stats.csv has {float(row[name]):.3f}")
print("quick sweep regression compared")

# 4. The deployment table, as quoted, against the shipped results/deploy-{llama,moe}/summary.csv (medians of 3 seeds).
def medians(sweep):
    by = {}
    for r in csv.DictReader(open(root / f"results/{sweep}/summary.csv")):
        by.setdefault(r["plan"], []).append(r)
    med = lambda rows, key: sorted(float(r[key]) for r in rows)[len(rows) // 2]
    return {plan: {k: med(rows, k) for k in ("r_block_mean", "kl_mean", "top1_mean", "route_flip_mean")
                   if rows[0][k] not in ("", "nan")} for plan, rows in by.items()}

def shown(value):  # the README's two significant figures
    return f"{value:.1e}".replace("e-0", "e-")

llama, moe = medians("deploy-llama"), medians("deploy-moe")
table = re.findall(r"^\| ([a-z0-9+-]+) \| ([0-9.e-]+) \| ([0-9.e-]+) \| ([0-9.]+) \| ([0-9.e-]+) \| ([0-9.e-]+) \| ([0-9.]+)% \|$",
                   readme, re.M)
assert len(table) == 8, table
for plan, block, kl, top1, mblock, mkl, flips in table:
    l, m = llama[plan], moe[plan]
    printed = (shown(l["r_block_mean"]), shown(l["kl_mean"]), f"{l['top1_mean']:.2f}", shown(m["r_block_mean"]),
               shown(m["kl_mean"]), f"{100 * m['route_flip_mean']:.1f}" if "." in flips else f"{100 * m['route_flip_mean']:.0f}")
    if printed != (block, kl, top1, mblock, mkl, flips):
        failures.append(f"README's deployment row {plan} quotes {(block, kl, top1, mblock, mkl, flips)}; results have {printed}")
print(f"{len(table)} deployment rows compared")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} README discrepancies")
sys.exit(1 if failures else 0)
