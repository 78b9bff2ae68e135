#!/usr/bin/env python3
"""The training side of Exp-2/3 checked against independent oracles (issue 8):
  - the trainer learns: the loss falls and held-out digits are classified well above chance (10%);
  - control and eps-bump runs of a seed see the same minibatches and the same weights until the first bump;
  - lpsim loads a checkpoint bit-identically (it writes back what it loaded; every tensor equals PyTorch's);
  - lpsim's float64 forward equals PyTorch's float64 forward of the same checkpoint (including the bumped LayerNorm
    eps) to 1e-12, and its float32 forward matches PyTorch's float32 forward to within float32 rounding.
Exit 77 (a skip for ctest) when PyTorch or scikit-learn is not installed.
Usage: check_trainer.py --lpsim build/lpsim --work DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

try:
    import torch
    import sklearn  # noqa: F401
except ImportError as e:
    print(f"check_trainer: skipped ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import train_digits as td  # noqa: E402

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def train(work, name, extra):
    out = os.path.join(work, "runs", name)
    subprocess.run([sys.executable, td.__file__, "--out", out, "--seed", "0", "--precision", "fp16",
                    "--config", os.path.join(work, "train.toml")] + extra, check=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lpsim", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    with open(os.path.join(a.work, "train.toml"), "w") as f:
        f.write("[train]\nnorm_eps = 1e-4\n")  # seed 0's first LayerNorm starts at rho_LN 0.82: the bump fires at step 5
    c = dict(td.DEFAULTS, norm_eps=1e-4)
    _, _, xte, yte = td.dataset(c)
    model_toml, probe = os.path.join(a.work, "model.toml"), os.path.join(a.work, "probe.safetensors")
    with open(model_toml, "w") as f:
        f.write(td.model_toml(c))
    td.write_probe(probe, c, 8)

    control = train(a.work, "control", [])
    bump = train(a.work, "bump", ["--rho-star", "0.7", "--cap", "5e-3"])

    import json
    loss = [float(l.split(",")[1]) for l in open(os.path.join(control, "log.csv")).read().split("\n")[1:] if l]
    first, last = sum(loss[:20]) / 20, sum(loss[-20:]) / 20
    check(last < first - 0.3, f"training loss falls: mean of the first 20 steps {first:.3f}, of the last 20 {last:.3f}")
    acc = json.load(open(os.path.join(control, "result.json")))["test_accuracy"]
    check(acc > 0.3, f"held-out accuracy {acc:.3f} > 0.3 (chance 0.1)")
    check(open(os.path.join(control, "order.csv")).read() == open(os.path.join(bump, "order.csv")).read(),
          "control and intervention runs see the same minibatch order")
    bumps = [l.split(",") for l in open(os.path.join(bump, "ln_eps.csv")).read().split("\n")[1:] if l]
    first_bump = min((int(b[0]) for b in bumps if float(b[5]) > float(b[4])), default=None)
    check(first_bump is not None, f"the eps bump fired (first at step {first_bump})")
    if first_bump:
        ck = f"step_{first_bump:04d}.safetensors"
        t_c, t_b = td.read_safetensors(os.path.join(control, "ckpt", ck)), td.read_safetensors(os.path.join(bump, "ckpt", ck))
        same = all(torch.equal(t_c[k], t_b[k]) for k in t_c if not k.endswith(".eps"))
        differ = any(not torch.equal(t_c[k], t_b[k]) for k in t_c if k.endswith(".eps"))
        check(same and differ, f"step {first_bump}: same weights in both runs, a larger eps in the intervention")

    # The intervention's last checkpoint: its LayerNorms carry their own eps.
    ckpt = os.path.join(bump, "ckpt", "step_0195.safetensors")
    tensors = td.read_safetensors(ckpt)
    model = td.TinyViT(c)
    td.load_checkpoint(model, ckpt)
    check(any(abs(ln.eps - 1e-4) > 1e-12 for _, ln in model.norms()), "the checkpoint carries bumped eps values")
    blocks = {}
    for plan in ("fp64", "fp32"):
        out = os.path.join(a.work, f"lpsim_{plan}.safetensors")
        subprocess.run([a.lpsim, "checkpoint-forward", ckpt, "--model", model_toml, "--probe", probe, "--plan", plan,
                        "--out", out, "--weights-out", os.path.join(a.work, "lpsim_weights.safetensors")], check=True)
        blocks[plan] = td.read_safetensors(out)
    back = td.read_safetensors(os.path.join(a.work, "lpsim_weights.safetensors"))
    wanted = [k for k in tensors if not k.startswith(("classifier", "layernorm."))]
    check(set(back) == set(wanted) and all(torch.equal(back[k].to(tensors[k].dtype), tensors[k]) for k in wanted),
          f"lpsim loads all {len(wanted)} tensors bit-identically (written back, compared with torch.equal)")

    images = xte[:8]
    q = td.Rounding(None)
    with torch.no_grad():
        t32 = model.float().blocks(images.float(), q)
        t64 = model.double().blocks(images.double(), q)
    u32 = 2.0 ** -24
    for l in range(c["depth"]):
        ref = t64[l].reshape(-1)
        l64 = blocks["fp64"][f"block.{l}"].reshape(-1)
        l32 = blocks["fp32"][f"block.{l}"].reshape(-1)
        d64 = float((l64 - ref).norm() / ref.norm())
        check(d64 < 1e-12, f"block {l}: lpsim fp64 vs PyTorch fp64: {d64:.2e} < 1e-12")
        # Each float32 forward is within a few units of float32 rounding of the exact one; so are they of each other.
        e_torch = float((t32[l].double().reshape(-1) - ref).norm() / ref.norm())
        e_lpsim = float((l32 - ref).norm() / ref.norm())
        d32 = float((l32 - t32[l].double().reshape(-1)).norm() / ref.norm())
        check(d32 < 64 * u32 and e_lpsim < 64 * u32,
              f"block {l}: lpsim fp32 vs PyTorch fp32: {d32:.2e} (each vs fp64: lpsim {e_lpsim:.2e}, "
              f"PyTorch {e_torch:.2e}; bound 64 u32 = {64 * u32:.1e})")
    print(f"check_trainer: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
