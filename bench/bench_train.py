"""Training-step throughput of dcgan beside the PyTorch anchor, in one run.

    python bench/bench_train.py --presets mnist --batch 64 --threads 2

For each preset it alternates rounds of (dcgan, anchor) on the same machine and thread count,
and prints images/s of both, the median of the rounds, and the ratio dcgan / PyTorch. The
anchor is ../shared/anchors/torch_dcgan.py (run as a subprocess; it needs torch installed).
With --markdown it prints a table row for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# The environment as the user gave it, for the anchor's subprocess (importing dcgan sets
# GOMP_SPINCOUNT for its own OpenMP runtime; the anchor runs with the defaults).
ENV_AT_START = dict(os.environ)
ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "anchors" / "torch_dcgan.py"
# dcgan preset -> the anchor's name for the same architecture
# (mnist_seed000 has no anchor counterpart: it is timed alone.)
ANCHOR_ARCH = {"mnist": "mnist", "mlp": "mlp", "cifar10": "cifar10", "dcgan64": "dcgan64k5"}


def time_dcgan(preset: str, batch: int, threads: int, seconds: float, uint8: bool = False) -> float:
    import dcgan

    # The anchor's loop exactly: one D step on real and on fake, then one G step through the
    # updated D (so cifar10's joint update, which does less work, is switched off here).
    cfg = dcgan.Config.preset(preset, batch_size=batch, threads=threads, seed=0, joint=False,
                              n_critic=1, g_steps=1)
    tr = dcgan.Trainer(cfg)
    rng = np.random.default_rng(0)
    lo, hi = cfg.data_range
    # Like the anchor: uniform random images in the data range (speed does not depend on them).
    x = rng.uniform(lo, hi, size=(batch * 16,) + tuple(cfg.image_shape)).astype(np.float32)
    rng_arg = dict(input_range=(lo, hi))
    if uint8:  # what a loader returns: uint8 NHWC, converted and scaled per batch by the core
        c, h, w = cfg.image_shape
        x, rng_arg = rng.integers(0, 256, size=(batch * 16, h, w, c), dtype=np.uint8), {}
    tr.fit(x, steps=5, progress=False, **rng_arg)  # warm-up: primitive creation
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tr.fit(x, steps=10, progress=False, **rng_arg)
        steps += 10
    return steps * batch / (time.perf_counter() - t0)


def time_anchor(arch: str, batch: int, threads: int, seconds: float) -> float:
    cmd = [sys.executable, str(ANCHOR), "--device", "cpu", "--threads", str(threads), "--archs", arch,
           "--batches", str(batch), "--seconds", str(seconds)]
    env = dict(ENV_AT_START, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    if "error" in rec:
        raise RuntimeError(f"anchor failed: {rec['error']}")
    return float(rec["img_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="mnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-anchor", action="store_true", help="time dcgan only")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--uint8", action="store_true",
                    help="feed dcgan uint8 NHWC images (converted per batch) instead of float32 NCHW")
    a = ap.parse_args()
    # Each side runs its own OpenMP pool; pin both to the same thread count.
    os.environ["OMP_NUM_THREADS"] = str(a.threads)

    import dcgan

    try:
        import torch  # noqa: F401
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
        if not a.no_anchor:
            sys.exit("torch is not installed: pip install torch==2.13.0 (or pass --no-anchor)")

    for preset in a.presets.split(","):
        ours, theirs = [], []
        for r in range(a.rounds):
            ours.append(time_dcgan(preset, a.batch, a.threads, a.seconds, a.uint8))
            if not a.no_anchor and preset in ANCHOR_ARCH:
                theirs.append(time_anchor(ANCHOR_ARCH[preset], a.batch, a.threads, a.seconds))
            print(f"# round {r}: {preset} dcgan {ours[-1]:.1f} img/s"
                  + (f", pytorch {theirs[-1]:.1f} img/s" if theirs else ""), flush=True)
        mo = statistics.median(ours)
        rec = dict(preset=preset, batch=a.batch, threads=a.threads, data="uint8" if a.uint8 else "float32",
                   dcgan_img_s=round(mo, 1))
        if theirs:
            mt = statistics.median(theirs)
            rec.update(pytorch_img_s=round(mt, 1), ratio=round(mo / mt, 3))
        print(json.dumps(rec), flush=True)
        if a.markdown:
            cpu = platform.processor() or platform.machine()
            try:
                cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
            except Exception:
                pass
            isa = (next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu")
                   if hasattr(dcgan, "backends") else "ISA not reported (dcgan < issue 7)")
            print(f"| {datetime.date.today()} | {preset}{' (uint8)' if a.uint8 else ''} | {a.batch} | {a.threads} | {mo:.1f} | "
                  f"{rec.get('pytorch_img_s', '-')} | {rec.get('ratio', '-')} | {cpu}, {os.cpu_count()} cores, {isa} | "
                  f"dcgan {dcgan.__version__} (oneDNN {dcgan.onednn_version}), torch {torch_version} |")


if __name__ == "__main__":
    main()
