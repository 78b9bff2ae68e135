#!/usr/bin/python3
"""Scatter of lpsim's predicted forward error against PyTorch's observed one on the H100, every tap.

Reads results/cuda/native_error.csv (`lpsim native-error`), writes results/cuda/native_error.png.
Usage: plot_native_error.py [CSV] [PNG]
"""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

src = sys.argv[1] if len(sys.argv) > 1 else "results/cuda/native_error.csv"
dst = sys.argv[2] if len(sys.argv) > 2 else "results/cuda/native_error.png"
rows = list(csv.DictReader(open(src)))
plans = sorted({r["plan"] for r in rows})
fig, ax = plt.subplots(figsize=(6.4, 5.4))
for i, plan in enumerate(plans):
    pts = [(float(r["predicted_tc_rel_fro"]), float(r["observed_rel_fro"])) for r in rows if r["plan"] == plan]
    pts = [(x, y) for x, y in pts if x > 0 and y > 0]
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, alpha=0.7, label=plan, color=f"C{i}")
lo = min(min(float(r["predicted_tc_rel_fro"]), float(r["observed_rel_fro"])) for r in rows if float(r["observed_rel_fro"]) > 0)
hi = max(max(float(r["predicted_tc_rel_fro"]), float(r["observed_rel_fro"])) for r in rows)
ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="observed = predicted")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("predicted: lpsim emulation (H100 tensor-core model) vs MPFR, $\\|E\\|_F/\\|X\\|_F$")
ax.set_ylabel("observed: PyTorch on the H100 vs MPFR")
ax.set_title("Every tap of 6 models, PyTorch 2.11 on an H100")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(dst, dpi=120)
print(f"wrote {dst}")
