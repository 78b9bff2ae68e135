#!/usr/bin/python3
"""Plot `lpsim compare`'s taps.csv: each plan's block-output error against depth, with the final norm and the
logits after the last block; writes error_vs_depth.png beside it.

    /usr/bin/python3 scripts/plot_compare.py results/compare/<model>
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(folder: str) -> None:
    blocks, after = defaultdict(list), defaultdict(dict)
    model = folder.rstrip("/").split("/")[-1]
    with open(f"{folder}/taps.csv", newline="") as f:
        for r in csv.DictReader(f):
            model = r["model"]
            err = float(r["rel_fro"])
            if r["tap"] == "block":
                blocks[r["plan"]].append((int(r["layer"]), err))
            elif r["tap"] in ("final", "logits"):
                after[r["plan"]][r["tap"]] = err
    fig, ax = plt.subplots(figsize=(7, 4.2))
    depth = max((l for rows in blocks.values() for l, _ in rows), default=0) + 1
    for plan, rows in blocks.items():
        rows.sort()
        xs, ys = [l for l, _ in rows], [e for _, e in rows]
        line, = ax.plot(xs, ys, marker="o", label=plan)
        for i, tap in enumerate(("final", "logits")):
            if tap in after[plan]:
                ax.plot(depth + i, after[plan][tap], marker="s^"[i], color=line.get_color(), linestyle="none")
    ticks = list(range(depth)) + [depth, depth + 1]
    ax.set_xticks(ticks, [str(t) for t in range(depth)] + ["final", "logits"])
    ax.set_yscale("log")
    ax.set_xlabel("block (then the final norm and the logits)")
    ax.set_ylabel("||E||_F / ||X||_F against the reference")
    ax.set_title(f"forward error per plan: {model}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{folder}/error_vs_depth.png", dpi=120)
    print(f"wrote {folder}/error_vs_depth.png")


if __name__ == "__main__":
    main(sys.argv[1])
