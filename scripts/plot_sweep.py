#!/usr/bin/python3
"""Scatter plot of a sweep's summary.csv: y against x, coloured by a column, with the least-squares line.

    /usr/bin/python3 scripts/plot_sweep.py results/quick --x u --y r_block_p95 --color plan

Writes scatter.png and scatter.svg beside the CSV (lpsim sweep calls this when it finishes).
"""
import argparse
import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "u": "unit roundoff u of the GEMM inputs",
    "r_block_p95": "95th percentile of block-output error ||E||_F/||X||_F",
    "r_block_mean": "mean block-output error ||E||_F/||X||_F",
    "r_block_median": "median block-output error ||E||_F/||X||_F",
    "r_final_mean": "final-block error ||E||_F/||X||_F",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("directory")
    ap.add_argument("--x", default="u")
    ap.add_argument("--y", default="r_block_p95")
    ap.add_argument("--color", default="plan")
    ap.add_argument("--xscale", default="log", choices=["log", "linear"])
    ap.add_argument("--yscale", default="log", choices=["log", "linear"])
    a = ap.parse_args()

    with open(os.path.join(a.directory, "summary.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    groups = {}
    for r in rows:
        x, y = float(r[a.x]), float(r[a.y])
        ok = math.isfinite(x) and math.isfinite(y) and (a.xscale == "linear" or x > 0) and (a.yscale == "linear" or y > 0)
        if ok:
            groups.setdefault(r.get(a.color, "all"), []).append((x, y))

    tx = (lambda v: math.log10(v)) if a.xscale == "log" else (lambda v: v)
    ty = (lambda v: math.log10(v)) if a.yscale == "log" else (lambda v: v)
    fig, ax = plt.subplots(figsize=(7, 5))
    markers = "osD^vP*Xh<>"
    for i, (name, pts) in enumerate(groups.items()):
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=28, marker=markers[i % len(markers)], alpha=0.8,
                   label=f"{name} ({len(pts)})")
    pts = [p for g in groups.values() for p in g]
    if len({p[0] for p in pts}) >= 2:
        xs, ys = [tx(p[0]) for p in pts], [ty(p[1]) for p in pts]
        n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        syy = sum((y - my) ** 2 for y in ys)
        slope = sxy / sxx
        r2 = sxy * sxy / (sxx * syy) if syy > 0 else float("nan")
        lo, hi = min(xs), max(xs)
        fx = [lo + (hi - lo) * k / 50 for k in range(51)]
        inv_x = (lambda v: 10 ** v) if a.xscale == "log" else (lambda v: v)
        inv_y = (lambda v: 10 ** v) if a.yscale == "log" else (lambda v: v)
        ax.plot([inv_x(v) for v in fx], [inv_y(my + slope * (v - mx)) for v in fx], "k--", lw=1,
                label=f"least squares: slope {slope:.3f}, R² {r2:.3f} (n={n})")
    ax.set_xscale(a.xscale)
    ax.set_yscale(a.yscale)
    ax.set_xlabel(LABELS.get(a.x, a.x) + (" (log)" if a.xscale == "log" else ""))
    ax.set_ylabel(LABELS.get(a.y, a.y) + (" (log)" if a.yscale == "log" else ""))
    ax.set_title(f"{os.path.basename(os.path.normpath(a.directory))}: {a.y} against {a.x}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(a.directory, f"scatter.{ext}"), dpi=130)


if __name__ == "__main__":
    main()
