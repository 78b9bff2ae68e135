#!/usr/bin/env python3
"""arXiv 2510.21770's Figure 4 from lpsim's Exp-2 output: seed 0's z-scored max kappa_softmax and forward mismatch over
training, and every seed's correlation by lag for each target. Usage: plot_forecast.py RESULTS_DIR PRECISION"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    results, precision = sys.argv[1], sys.argv[2]
    table = read(os.path.join(results, f"forecast_{precision}.csv"))
    curves = read(os.path.join(results, f"forecast_{precision}_curves.csv"))
    targets = list(dict.fromkeys(r["target"] for r in curves))
    fig, axes = plt.subplots(1, 1 + len(targets), figsize=(5 * (1 + len(targets)), 3.8))
    first = sorted({r["series"] for r in curves})[0]
    rows = sorted(read(os.path.join(results, "runs", first, "series.csv")), key=lambda r: int(r["step"]))
    step = np.array([int(r["step"]) for r in rows])
    z = lambda v: (v - v.mean()) / v.std()
    ks = np.array([float(r["kappa_softmax_max"]) for r in rows])
    rb = np.array([float(r["r_block_final"]) for r in rows])
    best = next(r for r in table if r["series"] == first and r["target"] == "r_block_final")
    ax = axes[0]
    ax.plot(step, z(ks), label="max kappa_softmax (z)", lw=1.2)
    ax.plot(step, z(rb), label="r_block, final block (z)", lw=1.2)
    ax.set_xlabel("training step")
    ax.set_title(f"{first}: best lag {best['best_lag']}, corr {float(best['best_corr']):.2f}")
    ax.legend(fontsize=8)
    for ax, target in zip(axes[1:], targets):
        for series in sorted({r["series"] for r in curves}):
            pts = [(int(r["lag"]), float(r["corr"])) for r in curves if r["series"] == series and r["target"] == target]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=series.replace(f"{precision}_", "").replace("_control", ""))
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("lag (steps; > 0: kappa_softmax leads)")
        ax.set_ylabel("correlation")
        ax.set_title(f"kappa_softmax vs {target} ({precision})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = os.path.join(results, f"forecast_{precision}.png")
    fig.savefig(out, dpi=110)
    print(f"plot_forecast: wrote {out}")


if __name__ == "__main__":
    main()
