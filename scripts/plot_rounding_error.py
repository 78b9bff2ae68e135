#!/usr/bin/python3
"""Plot results/demo/rounding_error.csv: relative rounding error against magnitude, one panel per format.

Run with Debian's python3 (matplotlib from python3-matplotlib): /usr/bin/python3 scripts/plot_rounding_error.py DIR
"""
import csv
import math
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(folder: str) -> None:
    rows = defaultdict(lambda: ([], [], []))
    with open(f"{folder}/rounding_error.csv", newline="") as f:
        for r in csv.DictReader(f):
            xs, errs, lost = rows[r["format"]]
            x, e = float(r["x"]), float(r["rel_error"])
            if math.isnan(e):
                lost.append(x)  # overflow to inf/NaN: a finding, drawn as a rug
            else:
                xs.append(x)
                errs.append(max(e, 1e-12))  # exact results drawn on the floor of the plot
    names = list(rows)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.9 * len(names)), sharex=True)
    for ax, name in zip(axes, names):
        xs, errs, lost = rows[name]
        ax.scatter(xs, errs, s=1, alpha=0.5)
        if lost:
            ax.scatter(lost, [1.0] * len(lost), s=4, marker="|", color="red", label="inf/NaN")
            ax.legend(loc="lower left", fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-12, 2)
        ax.set_ylabel("rel. error")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("|x| (float32 input, round to nearest even)")
    fig.suptitle("lpsim: relative rounding error per format (plateau = unit roundoff; ramps = subnormals)")
    fig.tight_layout()
    out = f"{folder}/rounding_error.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/demo")
