#!/usr/bin/env python3
"""Trains lpsim's pre-LN Tiny-ViT on scikit-learn's handwritten digits, as arXiv 2510.21770's Exp-2/3 train theirs.

One run = (precision, seed, intervention). Every step writes a safetensors checkpoint with Hugging Face ViT names
(lpsim loads it directly), the loss goes to log.csv, and the minibatch order to order.csv. Exp-3's LayerNorm-eps
bump (Algorithm 1 of arXiv 2510.21770) runs inside training when --rho-star is given; control and intervention runs of a
seed see the same initial weights, the same minibatches and the same rho_LN subsamples.

Low precision: on CUDA, torch.autocast (fp16 with a GradScaler). On the CPU (Debian's PyTorch 1.13 has no fp16
autocast there), autocast is emulated: the inputs, weights and outputs of every linear layer, convolution and
attention matmul are rounded to fp16/bf16 (straight-through gradients), softmax and LayerNorm run in fp32, as
autocast's op lists say. Runs are single-threaded so that a seed gives the same bits on every machine.
Usage: train_digits.py --out DIR --seed 0 --precision fp16 [--rho-star 0.7 --cap 5e-3] [--config sweeps/exp2.toml]
"""
import argparse
import contextlib
import json
import math
import os
import struct
import sys
import tomllib

import numpy as np

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (use_deterministic_algorithms)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULTS = dict(data="digits", width=64, heads=4, ffn=128, depth=4, patch=2, steps=195, batch=32, lr=1e-3, weight_decay=0.05,
                warmup=10, norm_eps=1e-5, init_std=0.02, probe=16, check_every=5, subsample=16, eps_min=1e-6,
                save_from=0)
EPS_MACH = {"fp16": 2.0 ** -10, "bf16": 2.0 ** -7, "fp32": 2.0 ** -23}  # 2^(1-p), the papers' eps_mach
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


# ---- data: 8x8 digits (a fixed split: every fifth image is held out), or CIFAR-10's binary batches ----
def digits():
    """scikit-learn's digits; where scikit-learn is missing, its data file named by LPSIM_DIGITS (digits.csv.gz)."""
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        images, target = d.images, d.target
    except ImportError:
        path = os.environ.get("LPSIM_DIGITS")
        if not path:
            sys.exit("train_digits: scikit-learn is not installed (apt install python3-sklearn), and LPSIM_DIGITS does not "
                     "name its digits.csv.gz")
        a = np.loadtxt(path, delimiter=",")
        images, target = a[:, :64].reshape(-1, 8, 8), a[:, 64]
    x = images.astype(np.float32) / 16.0
    y = target.astype(np.int64)
    test = np.arange(len(y)) % 5 == 0
    mean, std = x[~test].mean(), x[~test].std()
    x = ((x - mean) / std).astype(np.float32)[:, None, :, :]  # N x 1 x 8 x 8
    return torch.from_numpy(x[~test]), torch.from_numpy(y[~test]), torch.from_numpy(x[test]), torch.from_numpy(y[test])


def cifar10(folder):
    """data_batch_1..5.bin and test_batch.bin of CIFAR-10's binary version: records of 1 label byte + 3072 pixels."""
    def read(names):
        raw = b"".join(open(os.path.join(folder, n), "rb").read() for n in names)
        if len(raw) % 3073:
            sys.exit(f"cifar10: {folder}: {names}: not whole 3073-byte records")
        a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        return a[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, a[:, 0].astype(np.int64)
    for n in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        if not os.path.exists(os.path.join(folder, n)):
            sys.exit(f"cifar10: {folder} has no {n} (the 'CIFAR-10 binary version' archive, unpacked)")
    xtr, ytr = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = read(["test_batch.bin"])
    mean, std = xtr.mean(axis=(0, 2, 3), keepdims=True), xtr.std(axis=(0, 2, 3), keepdims=True)
    f = lambda x: torch.from_numpy(((x - mean) / std).astype(np.float32))
    return f(xtr), torch.from_numpy(ytr), f(xte), torch.from_numpy(yte)


def dataset(c):
    """(train images, labels, test images, labels) of c["data"]; sets c["image"] and c["channels"]."""
    if c["data"] == "digits":
        c.update(image=8, channels=1)
        return digits()
    if c["data"].startswith("cifar10:"):
        c.update(image=32, channels=3)
        return cifar10(c["data"][len("cifar10:"):])
    sys.exit(f"[train] data = {c['data']!r}: use 'digits' or 'cifar10:<folder with the binary batches>'")


# ---- rounding: autocast emulated by straight-through rounding to a 16-bit dtype ----
class Rounding:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, t):
        if self.dtype is None or t is None:
            return t
        return t + (t.to(self.dtype).float() - t).detach()


def wide(t):
    """fp32 for a 16-bit tensor (autocast's outputs), anything else as it is (a float64 peer check stays float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


# ---- the model: the module names are Hugging Face ViT's, so the state dict is what lpsim's loader reads ----
class Linear(nn.Linear):
    def forward(self, x, q):
        return q(F.linear(q(x), q(self.weight), q(self.bias)))


class LayerNorm(nn.LayerNorm):
    def forward(self, x, q=None):  # fp32 under autocast; self.eps is changed by the eps bump
        return F.layer_norm(wide(x), self.normalized_shape, self.weight, self.bias, self.eps)


class SelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = Linear(d, d), Linear(d, d), Linear(d, d)

    def forward(self, h, q):
        n, t, d = h.shape
        split = lambda z: z.view(n, t, self.heads, d // self.heads).transpose(1, 2)
        qh, kh, vh = split(self.query(h, q)), split(self.key(h, q)), split(self.value(h, q))
        s = q(q(q(qh) @ q(kh).transpose(-1, -2)) / math.sqrt(d // self.heads))
        p = torch.softmax(wide(s), dim=-1)  # autocast runs softmax in fp32
        return q(q(p) @ q(vh)).transpose(1, 2).reshape(n, t, d)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attention = SelfAttention(d, heads)
        self.output = nn.Module()
        self.output.dense = Linear(d, d)

    def forward(self, h, q):
        return self.output.dense(self.attention(h, q), q)


class Block(nn.Module):
    def __init__(self, d, heads, ffn, eps):
        super().__init__()
        self.layernorm_before, self.layernorm_after = LayerNorm(d, eps=eps), LayerNorm(d, eps=eps)
        self.attention = Attention(d, heads)
        self.intermediate, self.output = nn.Module(), nn.Module()
        self.intermediate.dense, self.output.dense = Linear(d, ffn), Linear(ffn, d)

    def forward(self, x, q):
        x = x + wide(self.attention(self.layernorm_before(x), q))
        u = q(F.gelu(self.intermediate.dense(self.layernorm_after(x), q)))  # exact (erf) GELU
        return x + wide(self.output.dense(u, q))


class TinyViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, tokens = c["width"], (c["image"] // c["patch"]) ** 2 + 1
        self.embeddings = nn.Module()
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, tokens, d))
        self.embeddings.patch_embeddings = nn.Module()
        self.embeddings.patch_embeddings.projection = nn.Conv2d(c["channels"], d, c["patch"], stride=c["patch"])
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(Block(d, c["heads"], c["ffn"], c["norm_eps"]) for _ in range(c["depth"]))
        self.layernorm = LayerNorm(d, eps=c["norm_eps"])
        self.classifier = nn.Linear(d, 10)
        for m in self.modules():  # Hugging Face ViT's initialisation: N(0, 0.02^2) weights, zero biases
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=c["init_std"])
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.embeddings.cls_token, std=c["init_std"])
        nn.init.trunc_normal_(self.embeddings.position_embeddings, std=c["init_std"])

    def norms(self):
        for l, b in enumerate(self.encoder.layer):
            yield f"encoder.layer.{l}.layernorm_before", b.layernorm_before
            yield f"encoder.layer.{l}.layernorm_after", b.layernorm_after
        yield "layernorm", self.layernorm

    def blocks(self, images, q):
        """The residual stream after every block (the list lpsim's block taps compare with)."""
        pr = self.embeddings.patch_embeddings.projection
        e = wide(q(F.conv2d(q(images), q(pr.weight), q(pr.bias), stride=pr.stride))).flatten(2).transpose(1, 2)
        cls = self.embeddings.cls_token.expand(len(images), -1, -1)
        x = torch.cat([cls, e], dim=1) + self.embeddings.position_embeddings
        out = []
        for b in self.encoder.layer:
            x = b(x, q)
            out.append(x)
        return out

    def forward(self, images, q):
        x = self.blocks(images, q)[-1]
        return self.classifier(self.layernorm(x)[:, 0])  # the head stays fp32 (not studied)


# ---- safetensors, written by hand (Debian 12 has no python3-safetensors) ----
def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy()
        dtype = {np.float32: "F32", np.float64: "F64"}[a.dtype.type]
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)  # a checkpoint is either whole or absent


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "F64": np.float64}[h["dtype"]]
        a, b = h["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.dtype(dt).newbyteorder("<")).astype(dt).reshape(h["shape"]))
    return out


def write_probe(path, c, n=None):
    """The fixed probe batch lpsim measures on: the first n (default c["probe"]) held-out images and labels."""
    _, _, xte, yte = dataset(c)
    n = n or c["probe"]
    write_safetensors(path, {"images": xte[:n], "labels": yte[:n].double()})


def checkpoint_tensors(model):
    t = {k: v.float() for k, v in model.state_dict().items()}
    for name, ln in model.norms():  # the current eps of every LayerNorm (the bump changes it)
        t[name + ".eps"] = torch.tensor([ln.eps], dtype=torch.float64)
    return t


def load_checkpoint(model, path):
    t = read_safetensors(path)
    eps = {k[:-4]: float(v[0]) for k, v in t.items() if k.endswith(".eps")}
    model.load_state_dict({k: v for k, v in t.items() if not k.endswith(".eps")})
    for name, ln in model.norms():
        ln.eps = eps.get(name, ln.eps)


def model_toml(c):
    return (f'# Written by scripts/train_digits.py: the architecture of its checkpoints, for lpsim.\n[model]\n'
            f'arch = "encoder"\nwidth = {c["width"]}\nheads = {c["heads"]}\nffn = {c["ffn"]}\ndepth = {c["depth"]}\n'
            f'tokens = {(c["image"] // c["patch"]) ** 2 + 1}\nembedding = "patch"\nimage = {c["image"]}\npatch = {c["patch"]}\n'
            f'channels = {c["channels"]}\n'
            f'norm_eps = {c["norm_eps"]}\nactivation = "gelu"\n\n[init]\nstorage = "fp32"\n')


# ---- Exp-3: rho_LN per LayerNorm on a subsample, and Algorithm 1's monotone eps bump ----
def norm_inputs(model, images, q):
    seen = {}
    hooks = [ln.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, i[0].detach().float()))
             for name, ln in model.norms()]
    with torch.no_grad():
        model(images, q)
    for h in hooks:
        h.remove()
    return seen


def eps_bump(model, images, q, c, eps_mach):
    """Returns (name, rho, sigma2, eps_before, eps_after) per LayerNorm; changes eps where Algorithm 1 says so."""
    rows = []
    inputs = norm_inputs(model, images, q)
    for name, ln in model.norms():
        x = inputs[name].reshape(-1, c["width"])
        sigma2 = float(x.double().var(dim=1, unbiased=False).median())
        rho = sigma2 / ln.eps * c["width"] * eps_mach
        before = ln.eps
        if c.get("rho_star") and rho < 1:
            new = min(max(sigma2 * c["width"] * eps_mach / c["rho_star"], c["eps_min"]), c["cap"])
            if new > ln.eps:
                ln.eps = new
        rows.append((name, rho, sigma2, before, ln.eps))
    return rows


def minibatch_order(seed, n, steps, batch):
    g = torch.Generator().manual_seed(seed)
    order = []
    while len(order) < steps:
        perm = torch.randperm(n, generator=g)
        order += [perm[i:i + batch].tolist() for i in range(0, n - batch + 1, batch)]
    return order[:steps]


def train(c, out):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    xtr, ytr, xte, yte = dataset(c)
    device = torch.device(c["device"])
    precision = c["precision"]
    native = device.type == "cuda" and precision != "fp32"
    q = Rounding(None if precision == "fp32" or native else DTYPES[precision])
    torch.manual_seed(c["seed"])
    model = TinyViT(c).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / c["warmup"]))
    scaling = native and precision == "fp16"
    scaler = (torch.amp.GradScaler("cuda", enabled=scaling) if hasattr(torch.amp, "GradScaler")  # PyTorch 2.x
              else torch.cuda.amp.GradScaler(enabled=scaling))                                  # 1.13
    order = minibatch_order(c["seed"], len(ytr), c["steps"], c["batch"])
    sub_gen = torch.Generator().manual_seed(10_000 + c["seed"])  # the rho_LN subsamples, the same in every run
    os.makedirs(os.path.join(out, "ckpt"), exist_ok=True)
    with open(os.path.join(out, "order.csv"), "w") as f:
        f.write("step,indices\n")
        for s, idx in enumerate(order, 1):
            f.write(f"{s},{' '.join(map(str, idx))}\n")
    log = open(os.path.join(out, "log.csv"), "w")
    log.write("step,loss,lr,train_acc\n")
    bumps = open(os.path.join(out, "ln_eps.csv"), "w")
    bumps.write("step,norm,rho_ln,sigma2_median,eps_before,eps_after\n")
    autocast = (lambda: torch.autocast("cuda", dtype=DTYPES[precision])) if native else contextlib.nullcontext
    for step, idx in enumerate(order, 1):
        model.train()
        xb, yb = xtr[idx].to(device), ytr[idx].to(device)
        with autocast():
            logits = model(xb, q)
            loss = F.cross_entropy(logits.float(), yb)
        if not math.isfinite(loss.item()):
            print(f"train_digits: step {step}: loss is {loss.item()} (a finding: kept going)", file=sys.stderr)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        if step % c["check_every"] == 0:  # Algorithm 1 (logged in control runs too, with no bump)
            sub = torch.randperm(len(ytr), generator=sub_gen)[:c["subsample"]]
            with autocast():
                for row in eps_bump(model, xtr[sub].to(device), q, c, EPS_MACH[precision]):
                    bumps.write(f"{step},{row[0]},{row[1]:.6e},{row[2]:.6e},{row[3]:.6e},{row[4]:.6e}\n")
        acc = float((logits.argmax(1) == yb).float().mean())
        log.write(f"{step},{loss.item():.9g},{sched.get_last_lr()[0]:.6g},{acc:.4f}\n")
        if step >= c["save_from"]:
            write_safetensors(os.path.join(out, "ckpt", f"step_{step:04d}.safetensors"), checkpoint_tensors(model))
    log.close(), bumps.close()
    model.eval()
    with torch.no_grad(), autocast():
        test_acc = float((model(xte.to(device), q).argmax(1).cpu() == yte).float().mean())
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump({"test_accuracy": test_acc, "autocast": "native" if native else ("none" if precision == "fp32" else "emulated"),
                   "torch": torch.__version__, "final_loss": loss.item(), "steps": c["steps"], "config": c}, f, indent=1)
    return test_acc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="run directory (checkpoints, log.csv, order.csv, ln_eps.csv)")
    ap.add_argument("--config", help="TOML file whose [train] table overrides the defaults")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--steps", type=int)
    ap.add_argument("--rho-star", type=float, help="Exp-3 intervention target (omit for a control run)")
    ap.add_argument("--cap", type=float, help="Exp-3 eps cap")
    ap.add_argument("--save-from", type=int, help="first step to checkpoint (default every step)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--probe-out", help="also write the probe batch (the first test images) here")
    ap.add_argument("--model-out", help="also write the lpsim model TOML of the checkpoints here")
    a = ap.parse_args()
    c = dict(DEFAULTS)
    if a.config:
        with open(a.config, "rb") as f:
            t = tomllib.load(f).get("train", {})
        unknown = set(t) - set(DEFAULTS)
        if unknown:
            sys.exit(f"{a.config}: [train] key(s) {sorted(unknown)} unknown; known: {sorted(DEFAULTS)}")
        c.update(t)
    for k in ("steps", "save_from"):
        if getattr(a, k) is not None:
            c[k] = getattr(a, k)
    if (a.rho_star is None) != (a.cap is None):
        sys.exit("--rho-star and --cap go together")
    c.update(seed=a.seed, precision=a.precision, device=a.device, rho_star=a.rho_star, cap=a.cap)
    if a.probe_out:
        write_probe(a.probe_out, c)
    if a.model_out:
        dataset(c)
        with open(a.model_out, "w") as f:
            f.write(model_toml(c))
    acc = train(c, a.out)
    print(f"train_digits: {a.out}: test accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
