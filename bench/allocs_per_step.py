"""Heap allocations inside training steps: calls and bytes per step, counted by a preloaded
malloc wrapper (bench/alloc_count.c, compiled here with gcc).

    python bench/allocs_per_step.py --presets mnist,cifar10 --precision fp32,bf16

For each preset it builds a Trainer with the benchmark's data (bench_train.bench_config), runs
warm-up steps through the core (``_core.Trainer.run``: no Python between steps), then counts
the allocations of --steps more steps and prints them per step. Tensors are allocated when a
network is compiled; what remains per step is bookkeeping (oneDNN's argument maps, the core's
per-call maps), in calls of a few hundred bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import ctypes, json, sys
sys.path.insert(0, {here!r})
import numpy as np
import dcgan
from bench_train import bench_config, bench_data
stats = ctypes.CDLL(None).dcgan_alloc_stats
def read():
    out = (ctypes.c_ulong * 2)()
    stats(out)
    return out[0], out[1]
cfg = bench_config({preset!r}, {batch}, {threads}, {precision!r})
tr = dcgan.Trainer(cfg)
x, kw = bench_data(cfg, {batch}, False)
tr.fit(x, steps=3, progress=False, **kw)    # compiles the networks, stages the data
core = tr._core
core.run(5)                                  # warm-up through the core alone
c0, b0 = read()
core.run({steps})
c1, b1 = read()
print(json.dumps(dict(calls_per_step=(c1 - c0) / {steps}, bytes_per_step=(b1 - b0) / {steps})))
"""


def build_shim(out_dir: str) -> str:
    so = os.path.join(out_dir, "alloc_count.so")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", so, str(HERE / "alloc_count.c")], check=True)
    return so


def measure(so: str, preset: str, batch: int, threads: int, precision: str, steps: int) -> dict:
    code = CHILD.format(here=str(HERE), preset=preset, batch=batch, threads=threads, precision=precision,
                        steps=steps)
    env = dict(os.environ, LD_PRELOAD=so, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="mnist")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        so = build_shim(d)
        for preset in a.presets.split(","):
            for prec in a.precision.split(","):
                rec = dict(preset=preset, precision=prec, batch=a.batch, threads=a.threads,
                           **measure(so, preset, a.batch, a.threads, prec, a.steps))
                print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
