"""Sample quality of the mnist preset beside PyTorch at equal steps, per BatchNorm inference mode.

Trains dcgan's ``mnist`` preset (batch 64, Adam 2e-4 / beta1 0.5 by default) for ``--steps``
steps (default: one epoch of MNIST), then scores 5000 samples drawn with each
``bn_inference`` mode ("precise", "running", "batch") with the engine's own MNIST FeatureNet:
FID and KID against the MNIST training set, coverage, the classifier's mean confidence and the
class histogram's KL divergence from uniform. The same architecture and recipe is trained in
PyTorch for the same steps (the reference script's mnist model, ../shared/anchors/torch_dcgan.py,
imported from there; its BatchNorm keeps PyTorch's defaults) and scored in eval() and train()
mode. Prints a table and one JSON line per row.

With ``--precision fp32,bf16 --seeds 0,1`` it trains dcgan once per (seed, precision) and scores
the "precise" samples only: bf16 beside fp32 at equal steps, with the seed-to-seed spread beside
the difference.

usage: python bench/sample_quality.py [--steps 937] [--threads 2] [--no-torch] [--bn-momentum 0.1]
                                      [--precision fp32,bf16] [--seeds 0,1]
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "anchors" / "torch_dcgan.py"
DATA = Path(os.environ.get("DCGAN_DATA", ROOT.parent / "shared" / "data"))


def score(net, ref, samples: np.ndarray, value_range=(-1.0, 1.0)) -> dict:
    from dcgan import metrics

    feats = net.features(samples, input_range=value_range)
    mean, cov = metrics.feature_stats(feats)
    probs = net.predict_proba(samples, input_range=value_range)
    rep = metrics.mode_report(metrics.class_histogram(probs, 10))
    kid, _ = metrics.kid(feats, ref.features, subsets=50, subset_size=1000)
    n = min(len(feats), len(ref.features))
    prdc = metrics.prdc(ref.features[:n], feats[:n], k=5)
    return {"fid": metrics.fid_from_stats(mean, cov, ref.mean, ref.cov), "kid": kid, "coverage": prdc["coverage"],
            "precision": prdc["precision"], "recall": prdc["recall"],
            "confidence": float(probs.max(1).mean()), "kl_to_uniform": rep["kl_to_uniform"],
            "missing": rep["missing"]}


def train_dcgan(x: np.ndarray, steps: int, threads: int, momentum: float | None, seed: int,
                precision: str = "fp32"):
    import dcgan

    kw = {} if momentum is None else {"bn_momentum": momentum}
    tr = dcgan.Trainer(dcgan.Config.mnist(batch_size=64, seed=seed, threads=threads, precision=precision, **kw))
    t = time.time()
    tr.fit(x, steps=steps, progress=False)
    return tr, time.time() - t


def train_torch(x: np.ndarray, steps: int, threads: int, seed: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    spec = importlib.util.spec_from_file_location("torch_dcgan", ANCHOR)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    G, D, nz, _ = mod.mnist_dcgan()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = torch.tensor(x.reshape(-1, 1, 28, 28).astype(np.float32) * (2 / 255) - 1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    rng = np.random.default_rng(seed)
    perm, pos = rng.permutation(len(data)), 0
    t = time.time()
    for _ in range(steps):
        if pos + 64 > len(perm):
            perm, pos = rng.permutation(len(data)), 0
        real = data[perm[pos:pos + 64]]
        pos += 64
        z = torch.randn(64, nz)
        fake = G(z)
        opt_d.zero_grad()
        out_r, out_f = D(real), D(fake.detach())
        (bce(out_r, torch.ones_like(out_r)) + bce(out_f, torch.zeros_like(out_f))).backward()
        opt_d.step()
        opt_g.zero_grad()
        out = D(fake)
        bce(out, torch.ones_like(out)).backward()
        opt_g.step()
    elapsed = time.time() - t

    def sample(train_mode: bool) -> np.ndarray:
        G.train(train_mode)
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            return torch.cat([G(torch.randn(500, nz, generator=gen)) for _ in range(10)]).numpy()
    return sample, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=937, help="training steps (default: one epoch at batch 64)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch run")
    ap.add_argument("--bn-momentum", type=float, default=None,
                    help="also train dcgan with this BatchNorm momentum (the preset's is 0.01)")
    ap.add_argument("--precision", default="fp32", help="comma list of fp32, bf16 (Config.precision)")
    ap.add_argument("--seeds", default=None, help="comma list of seeds for the dcgan runs (default: --seed)")
    args = ap.parse_args()

    import dcgan
    from dcgan import datasets

    x, _ = datasets.load("mnist", root=DATA / "mnist")
    net = dcgan.FeatureNet.train("mnist", root=DATA / "mnist", threads=args.threads)
    ref = net.reference_stats("mnist", root=DATA / "mnist")
    isa = next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu")
    head = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "isa": isa, "threads": args.threads, "steps": args.steps, "batch": 64,
            "featurenet_test_accuracy": net.test_accuracy}
    print(json.dumps(head), flush=True)
    rows = []
    real = score(net, ref, x[:args.samples], value_range=None)
    rows.append(("MNIST training images", "-", real, 0.0))
    precisions = args.precision.split(",")
    seeds = [int(v) for v in args.seeds.split(",")] if args.seeds else [args.seed]
    variants = len(precisions) > 1 or len(seeds) > 1
    for seed in seeds:
        for prec in precisions:
            for momentum in [None] + ([args.bn_momentum] if args.bn_momentum is not None else []):
                tr, secs = train_dcgan(x, args.steps, args.threads, momentum, seed, prec)
                name = f"dcgan mnist (bn_momentum {tr.cfg.bn_momentum:g})"
                if variants:
                    name = f"dcgan mnist {prec} seed {seed}"
                for mode in (("precise",) if variants else ("precise", "running", "batch")):
                    rows.append((name, mode, score(net, ref, tr.generate(args.samples, seed=1234, bn_inference=mode)),
                                 secs))
    if not args.no_torch:
        sample, secs = train_torch(x, args.steps, args.threads, args.seed)
        for mode, train_mode in (("eval()", False), ("train()", True)):
            rows.append(("PyTorch, same architecture and recipe", mode, score(net, ref, sample(train_mode)), secs))
    print(f"\n{'model':42s} {'BN stats':9s} {'FID':>7s} {'KID':>7s} {'cover':>6s} {'conf':>6s} {'KL':>6s}  missing")
    for name, mode, s, secs in rows:
        print(f"{name:42s} {mode:9s} {s['fid']:7.2f} {s['kid']:7.4f} {s['coverage']:6.3f} {s['confidence']:6.3f} "
              f"{s['kl_to_uniform']:6.3f}  {s['missing']}")
        print(json.dumps({"model": name, "bn": mode, "train_seconds": round(secs, 1), **s}), flush=True)


if __name__ == "__main__":
    main()
