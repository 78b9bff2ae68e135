#!/usr/bin/env python3
"""arXiv 2510.21770's Figures 5 and 6 from lpsim's Exp-3 table: control - intervention tail loss and tail forward mismatch
per (rho*, cap), mean and std over seeds (positive: the eps bump helped). Usage: plot_lnbump.py RESULTS_DIR"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    results = sys.argv[1]
    with open(os.path.join(results, "lnbump.csv")) as f:
        rows = list(csv.DictReader(f))
    labels = [f"rho*={r['rho_star']}\ncap={float(r['cap']):g}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, title in [(axes[0], "dloss", "tail loss: control - intervention"),
                           (axes[1], "dr", "tail r_block: control - intervention")]:
        m = [float(r[f"{key}_mean"]) for r in rows]
        s = [float(r[f"{key}_std"]) for r in rows]
        ax.bar(range(len(rows)), m, yerr=s, capsize=4, color=["C0" if v >= 0 else "C3" for v in m])
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(rows)), labels, fontsize=8)
        ax.set_title(title + f" ({rows[0]['seeds']} seeds, mean +- std)")
    fig.tight_layout()
    out = os.path.join(results, "lnbump.png")
    fig.savefig(out, dpi=110)
    print(f"plot_lnbump: wrote {out}")


if __name__ == "__main__":
    main()
