#!/usr/bin/env python3
"""arXiv 2510.21770's Exp-2 (forecasting) and Exp-3 (LayerNorm-eps bump) end to end from one sweep file: train the runs
(scripts/train_digits.py, in parallel, skipping finished ones), analyse them with lpsim (trajectory + forecast, or
lnbump), and plot. Usage: trajectory_study.py sweeps/exp2.toml [--jobs N] [--lpsim build/lpsim] [--seeds 0,1]
"""
import argparse
import concurrent.futures as cf
import os
import subprocess
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_digits  # noqa: E402  (the same model definition and data the runs use)

STUDY_KEYS = {"kind", "results", "precisions", "seeds", "rho_star", "cap", "tail", "signal", "targets", "permutations", "null",
              "device"}


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def train_one(args):
    sweep, out, seed, precision, device, extra = args
    if os.path.exists(os.path.join(out, "result.json")):
        return f"{out}: done before"
    cmd = [sys.executable, os.path.join(HERE, "train_digits.py"), "--config", sweep, "--out", out, "--seed", str(seed),
           "--precision", precision, "--device", device] + extra
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return p.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--lpsim", default=os.path.join(HERE, "..", "build", "lpsim"))
    ap.add_argument("--seeds", help="comma-separated subset of the sweep's seeds")
    ap.add_argument("--results", help="results folder instead of the sweep's")
    ap.add_argument("--device", help="cpu or cuda instead of the sweep's")
    a = ap.parse_args()
    with open(a.sweep, "rb") as f:
        t = tomllib.load(f)
    s = t.get("study", {})
    unknown = set(s) - STUDY_KEYS
    if unknown:
        sys.exit(f"{a.sweep}: [study] key(s) {sorted(unknown)} unknown; known: {sorted(STUDY_KEYS)}")
    kind = s.get("kind")
    if kind not in ("forecast", "lnbump"):
        sys.exit(f"{a.sweep}: [study] kind must be 'forecast' (Exp-2) or 'lnbump' (Exp-3), not {kind!r}")
    results = a.results or s.get("results", os.path.join("results", os.path.splitext(os.path.basename(a.sweep))[0]))
    precisions, seeds = s.get("precisions", ["fp16"]), s.get("seeds", [0, 1, 2, 3, 4])
    device = a.device or s.get("device", "cpu")  # cuda: native torch.autocast (the H100 machine); cpu: emulated autocast
    if a.seeds:
        seeds = [int(x) for x in a.seeds.split(",")]
    c = dict(train_digits.DEFAULTS)
    c.update(t.get("train", {}))
    os.makedirs(os.path.join(results, "runs"), exist_ok=True)
    train_digits.write_probe(os.path.join(results, "probe.safetensors"), c)  # also sets image size and channels
    with open(os.path.join(results, "model.toml"), "w") as f:
        f.write(train_digits.model_toml(c))

    jobs = []
    for p in precisions:
        for k in seeds:
            jobs.append((a.sweep, os.path.join(results, "runs", f"{p}_seed{k}_control"), k, p, device, []))
            if kind == "lnbump":
                tail_from = str(c["steps"] - s.get("tail", 50) + 1)
                jobs[-1][5].extend(["--save-from", tail_from])
                for r in s.get("rho_star", [0.5, 0.6, 0.7]):
                    for cap in s.get("cap", [5e-3, 1e-2]):
                        jobs.append((a.sweep, os.path.join(results, "runs", f"{p}_seed{k}_rho{r}_cap{cap}"), k, p, device,
                                     ["--rho-star", str(r), "--cap", str(cap), "--save-from", tail_from]))
    print(f"trajectory_study: {len(jobs)} training runs, {a.jobs} at a time", flush=True)
    with cf.ProcessPoolExecutor(max_workers=a.jobs) as ex:
        for msg in ex.map(train_one, jobs):
            print(msg, flush=True)

    lpsim = a.lpsim
    if kind == "forecast":
        for p in precisions:
            runs = [os.path.join(results, "runs", f"{p}_seed{k}_control") for k in seeds]
            for r in runs:
                run([lpsim, "trajectory", r, "--plan", f"autocast-{p}"])
            cmd = [lpsim, "forecast"] + [os.path.join(r, "series.csv") for r in runs] + [
                "--out", os.path.join(results, f"forecast_{p}.csv"), "--signal", s.get("signal", "kappa_softmax_max"),
                "--permutations", str(s.get("permutations", 999)), "--null", s.get("null", "phase")]
            for target in s.get("targets", ["r_block_final", "loss"]):
                cmd += ["--target", target]
            run(cmd)
            # The same with each series' linear trend removed: a shared trend alone makes lagged series correlate.
            detrended = [x if x != os.path.join(results, f"forecast_{p}.csv") else os.path.join(results, f"forecast_{p}_detrended.csv") for x in cmd]
            run(detrended + ["--detrend"])
            run([sys.executable, os.path.join(HERE, "plot_forecast.py"), results, p])
    else:
        for p in precisions:
            run([lpsim, "lnbump", results, "--precision", p, "--tail", str(s.get("tail", 50))])
        run([sys.executable, os.path.join(HERE, "plot_lnbump.py"), results])


if __name__ == "__main__":
    main()
