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
matplotlib.rcParams["svg.hashsalt"] = "lpsim"  # deterministic SVG ids
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "kl_mean": "KL(p_ref || p) of next tokens (mean)",
    "top1_mean": "top-1 agreement (fraction of tokens)",
    "model.depth": "depth L (blocks)",
    "final_mean_rel": "mean componentwise relative error of the output",
    "final_median_rel": "median componentwise relative error of the output",
    "u": "unit roundoff u of the GEMM inputs",
    "r_block_p95": "95th percentile of block-output error ||E||_F/||X||_F",
    "r_block_mean": "mean block-output error ||E||_F/||X||_F",
    "r_block_median": "median block-output error ||E||_F/||X||_F",
    "r_final_mean": "final-block error ||E||_F/||X||_F",
    "predictor_p95": "combined predictor (95th percentile over layers)",
    "predictor_eps_p95": "combined predictor x eps_mach (95th percentile over layers)",
    "kappa_softmax_p95": "kappa_softmax (95th percentile over layers)",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("directory")
    ap.add_argument("--x", default="u")
    ap.add_argument("--y", default="r_block_p95")
    ap.add_argument("--color", default="plan")
    ap.add_argument("--xscale", default="log", choices=["log", "linear"])
    ap.add_argument("--yscale", default="log", choices=["log", "linear"])
    ap.add_argument("--name", default="scatter", help="output file name without extension")
    ap.add_argument("--no-fit", action="store_true", help="no least-squares line (KL, top-1: no power law is claimed)")
    ap.add_argument("--aggregate", action="store_true",
                    help="mean and median of y at each x (with the 5-95%% band) instead of every point")
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
    if a.aggregate:
        plot_aggregated(ax, groups, tx, ty, a)
        finish(fig, ax, a)
        return
    # Groups at the same x (plans sharing a unit roundoff: autocast-bf16 and pure-bf16, every block-scaled plan)
    # are drawn side by side, a few percent apart, instead of on top of each other; the fit uses the true x.
    sharing = {}
    for name, pts in groups.items():
        for x in {p[0] for p in pts}:
            sharing.setdefault(x, []).append(name)
    dodged = False
    for i, (name, pts) in enumerate(groups.items()):
        xs = []
        for x, _ in pts:
            k, n = sharing[x].index(name), len(sharing[x])
            offset = 0.06 * (k - (n - 1) / 2)
            dodged = dodged or n > 1
            xs.append(x * 10 ** offset if a.xscale == "log" else x + offset * (abs(x) or 1))
        ax.scatter(xs, [p[1] for p in pts], s=28, marker=markers[i % len(markers)], alpha=0.8,
                   label=f"{name} ({len(pts)})")
    pts = [p for g in groups.values() for p in g]
    if len({p[0] for p in pts}) >= 2 and not a.no_fit:
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
    finish(fig, ax, a, " (groups at the same x drawn side by side)" if dodged else "")


def fit(xs, ys):
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def quantile(v, q):
    v = sorted(v)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def plot_aggregated(ax, groups, tx, ty, a):
    table = [[a.color, a.x, "n", f"mean_{a.y}", f"median_{a.y}", f"p5_{a.y}", f"p95_{a.y}"]]
    for i, (name, pts) in enumerate(groups.items()):
        at = {}
        for x, y in pts:
            at.setdefault(x, []).append(y)
        xs = sorted(at)
        for x in xs:
            v = at[x]
            table.append([name, x, len(v), sum(v) / len(v), quantile(v, 0.5), quantile(v, 0.05), quantile(v, 0.95)])
        mean = [sum(at[x]) / len(at[x]) for x in xs]
        median = [quantile(at[x], 0.5) for x in xs]
        color = f"C{i}"
        ax.fill_between(xs, [quantile(at[x], 0.05) for x in xs], [quantile(at[x], 0.95) for x in xs], color=color,
                        alpha=0.15, lw=0, label=f"{name}: 5-95% of {min(len(v) for v in at.values())}+ runs")
        for values, style, what in ((mean, "-o", "mean"), (median, "--s", "median")):
            label = f"{name}: {what}"
            if len(xs) >= 2 and a.yscale == "log" and min(values) > 0:
                slope, _ = fit([tx(x) for x in xs], [ty(v) for v in values])
                label += f" (x{10 ** slope:.4f} per unit of {a.x})" if a.xscale == "linear" else f" (slope {slope:.3f})"
            ax.plot(xs, values, style, color=color, ms=4, lw=1.2, label=label)
    with open(os.path.join(a.directory, "aggregate.csv"), "w", newline="") as f:
        csv.writer(f).writerows(table)


def finish(fig, ax, a, note=""):
    ax.set_xscale(a.xscale)
    ax.set_yscale(a.yscale)
    ax.set_xlabel(LABELS.get(a.x, a.x) + (" (log)" if a.xscale == "log" else "") + note)
    ax.set_ylabel(LABELS.get(a.y, a.y) + (" (log)" if a.yscale == "log" else ""))
    ax.set_title(f"{os.path.basename(os.path.normpath(a.directory))}: {a.y} against {a.x}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        # No dates and a fixed SVG id salt: the same data give the same bytes (a tracked plot stays unchanged).
        fig.savefig(os.path.join(a.directory, f"{a.name}.{ext}"), dpi=130,
                    metadata={"Date": None} if ext == "svg" else {})


if __name__ == "__main__":
    main()
