"""Training-step throughput of dcgan beside the PyTorch anchor, in one run, against the CPU's peak.

    python bench/bench_train.py --presets mnist,cifar10,dcgan64 --batch 64 --threads 2
    python bench/bench_train.py --presets mnist --precision fp32,bf16      # bf16 beside fp32
    python bench/bench_train.py --presets dcgan64 --fuse all,none --no-anchor  # one fusion A/B
    python bench/bench_train.py --presets dcgan64 --bwdw auto,native --no-anchor # GEMM weights A/B
    python bench/bench_train.py --presets mnist --rss                       # peak RSS of both

For each preset it alternates rounds of (each dcgan variant, the anchor) on the same machine and
thread count and prints images/s, the median of the rounds, and the ratio dcgan / PyTorch. The
anchor is ../shared/anchors/torch_dcgan.py (run as a subprocess; it needs torch installed).

It also prints what the hardware allows:
- the FLOPs of one training step, from ``Trainer.step_flops()`` (the plan's conv/convT/dense
  multiply-adds over real pixels, x2, for every forward, backward-data and backward-weights pass
  the step runs);
- the CPU's fp32 peak, measured once at the start by ``dcgan._core.cpu_peak``: each thread's
  clock (a chain of dependent adds) and FMA throughput in the vector width of the ISA oneDNN
  dispatches to, summed over the threads;
- achieved GFLOP/s (step FLOPs x steps/s) and its fraction of that peak. bf16 rows are divided
  by the same fp32 peak (so they can exceed 100%).

Variants of dcgan: ``--precision fp32,bf16`` (bf16 is skipped, with the reason, where the CPU
cannot), ``--fuse all,none,act,bn_relu`` (the DCGAN_CPU_FUSE setting of the compiled networks,
so each fusion can be measured alone against ``none`` in one run), ``--bwdw auto,native`` (the
DCGAN_CPU_BWDW setting: backward-weights as matrix products where the rule picks them, or
oneDNN's direct kernels everywhere). "vs first" is each variant's speed over the first one's.

``--rss`` also runs each side in a fresh process for ``--rss-steps`` steps and prints its peak
resident set (VmHWM), and that of a process that only imported the library, so the
training's own share can be read off.

With --markdown it prints table rows for bench/RESULTS.md, with the ISA and oneDNN version.
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
from typing import Dict, List, Optional, Tuple

import numpy as np

# The environment as the user gave it, for the anchor's subprocess (importing dcgan sets
# GOMP_SPINCOUNT for its own OpenMP runtime; the anchor runs with the defaults).
ENV_AT_START = dict(os.environ)
ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "anchors" / "torch_dcgan.py"
# dcgan preset -> the anchor's name for the same architecture
# (mnist_seed000 has no anchor counterpart: it is timed alone.)
ANCHOR_ARCH = {"mnist": "mnist", "mlp": "mlp", "cifar10": "cifar10", "dcgan64": "dcgan64k5"}


def bench_config(preset: str, batch: int, threads: int, precision: str = "fp32"):
    import dcgan

    # The anchor's loop exactly: one D step on real and on fake, then one G step through the
    # updated D (so cifar10's joint update, which does less work, is switched off here).
    return dcgan.Config.preset(preset, batch_size=batch, threads=threads, seed=0, joint=False,
                               n_critic=1, g_steps=1, precision=precision)


def bench_data(cfg, batch: int, uint8: bool) -> Tuple[np.ndarray, dict]:
    rng = np.random.default_rng(0)
    lo, hi = cfg.data_range
    if uint8:  # what a loader returns: uint8 NHWC, converted and scaled per batch by the core
        c, h, w = cfg.image_shape
        return rng.integers(0, 256, size=(batch * 16, h, w, c), dtype=np.uint8), {}
    # Like the anchor: uniform random images in the data range (speed does not depend on them).
    x = rng.uniform(lo, hi, size=(batch * 16,) + tuple(cfg.image_shape)).astype(np.float32)
    return x, dict(input_range=(lo, hi))


def time_dcgan(preset: str, batch: int, threads: int, seconds: float, uint8: bool = False,
               precision: str = "fp32", fuse: Optional[str] = None,
               bwdw: Optional[str] = None) -> Tuple[float, float]:
    """(images/s, FLOPs per step) of dcgan with the given precision, fusion and backward-weights
    settings (DCGAN_CPU_FUSE, DCGAN_CPU_BWDW: None leaves the environment's)."""
    import dcgan

    settings = {"DCGAN_CPU_FUSE": fuse, "DCGAN_CPU_BWDW": bwdw}
    old = {k: os.environ.get(k) for k in settings}
    for k, v in settings.items():  # read when the networks are compiled (the first fit)
        if v is not None:
            os.environ[k] = v
    try:
        cfg = bench_config(preset, batch, threads, precision)
        tr = dcgan.Trainer(cfg)
        x, rng_arg = bench_data(cfg, batch, uint8)
        tr.fit(x, steps=5, progress=False, **rng_arg)  # warm-up: primitive creation
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tr.fit(x, steps=10, progress=False, **rng_arg)
        steps += 10
    return steps * batch / (time.perf_counter() - t0), tr.step_flops()["total"]


def time_anchor(arch: str, batch: int, threads: int, seconds: float) -> float:
    cmd = [sys.executable, str(ANCHOR), "--device", "cpu", "--threads", str(threads), "--archs", arch,
           "--batches", str(batch), "--seconds", str(seconds)]
    env = dict(ENV_AT_START, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    if "error" in rec:
        raise RuntimeError(f"anchor failed: {rec['error']}")
    return float(rec["img_per_s"])


# ----------------------------------------------------------------------------- peak memory
# VmHWM of /proc/self/status: the peak RSS of this process's own address space (ru_maxrss would
# start at the parent's RSS: Linux copies it across fork and exec).
_HWM = "int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"

_RSS_DCGAN = """
import sys, numpy as np
sys.path.insert(0, {bench!r})
import dcgan
from bench_train import bench_config, bench_data
if {train}:
    cfg = bench_config({preset!r}, {batch}, {threads}, {precision!r})
    tr = dcgan.Trainer(cfg)
    x, kw = bench_data(cfg, {batch}, False)
    tr.fit(x, steps={steps}, progress=False, **kw)
print({hwm})
"""

_RSS_ANCHOR = """
import runpy, sys
sys.argv = [{anchor!r}, "--device", "cpu", "--threads", "{threads}", "--archs", {arch!r},
            "--batches", "{batch}", "--seconds", "{seconds}"]
if {train}:
    runpy.run_path({anchor!r}, run_name="__main__")
else:
    import torch
print({hwm}, file=sys.stderr)
"""


def peak_rss_mb(preset: str, batch: int, threads: int, steps: int, precision: str,
                side: str, train: bool) -> float:
    """Peak RSS (MB) of a fresh process that trains `steps` steps (or only imports, train=False)."""
    env = dict(ENV_AT_START, OMP_NUM_THREADS=str(threads))
    if side == "dcgan":
        code = _RSS_DCGAN.format(bench=str(ROOT / "bench"), train=train, preset=preset, batch=batch,
                                 threads=threads, precision=precision, steps=steps, hwm=_HWM)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=env).stdout
    else:
        # The anchor times for --seconds: long enough for at least `steps` steps.
        code = _RSS_ANCHOR.format(anchor=str(ANCHOR), threads=threads, arch=ANCHOR_ARCH[preset],
                                  batch=batch, seconds=1.0, train=train, hwm=_HWM)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=env).stderr
    return int(out.strip().splitlines()[-1]) / 1024.0  # VmHWM is in kB


# ----------------------------------------------------------------------------- main
def machine_line(dcgan) -> Tuple[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception:
        pass
    isa = next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu")
    return cpu, isa


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="mnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--precision", default="fp32", help="comma list of fp32, bf16")
    ap.add_argument("--fuse", default=None,
                    help="comma list of DCGAN_CPU_FUSE settings to time side by side (all, none, act, bn_relu)")
    ap.add_argument("--bwdw", default=None,
                    help="comma list of DCGAN_CPU_BWDW settings to time side by side (auto, gemm, native)")
    ap.add_argument("--no-anchor", action="store_true", help="time dcgan only")
    ap.add_argument("--rss", action="store_true", help="also measure peak RSS of each side in fresh processes")
    ap.add_argument("--rss-steps", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--uint8", action="store_true",
                    help="feed dcgan uint8 NHWC images (converted per batch) instead of float32 NCHW")
    a = ap.parse_args()
    # Each side runs its own OpenMP pool; pin both to the same thread count.
    os.environ["OMP_NUM_THREADS"] = str(a.threads)

    import dcgan
    from dcgan import _core

    try:
        import torch  # noqa: F401
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
        if not a.no_anchor:
            sys.exit("torch is not installed: pip install torch==2.13.0 (or pass --no-anchor)")

    cpu, isa = machine_line(dcgan)
    peak = _core.cpu_peak(a.threads, 1.0)
    print(f"# CPU: {cpu}, {os.cpu_count()} cores; oneDNN {dcgan.onednn_version} dispatches to {isa}", flush=True)
    if peak["gflops"] > 0:
        print(f"# fp32 peak (measured): {peak['gflops']:.1f} GFLOP/s = {peak['threads']} threads x "
              f"{peak['ghz']:.2f} GHz x {peak['flops_per_cycle']:.1f} FLOP/cycle ({peak['vector_bits']}-bit FMA)",
              flush=True)

    Variant = Tuple[str, Optional[str], Optional[str]]  # precision, fuse, bwdw
    variants: List[Variant] = []
    for prec in a.precision.split(","):
        for fuse in (a.fuse.split(",") if a.fuse else [None]):
            for bwdw in (a.bwdw.split(",") if a.bwdw else [None]):
                variants.append((prec, fuse, bwdw))

    def label(v: Variant) -> str:
        return v[0] + (f" fuse={v[1]}" if v[1] is not None else "") + (f" bwdw={v[2]}" if v[2] is not None else "")

    rows = []
    for preset in a.presets.split(","):
        ours: Dict[Variant, List[float]] = {v: [] for v in variants}
        flops: Dict[Variant, float] = {}
        skipped: Dict[Variant, str] = {}
        theirs: List[float] = []
        for r in range(a.rounds):
            parts = []
            for v in variants:
                if v in skipped:
                    continue
                try:
                    ips, fl = time_dcgan(preset, a.batch, a.threads, a.seconds, a.uint8, *v)
                except ValueError as e:  # e.g. bf16 on a CPU without AVX512-BF16
                    skipped[v] = str(e)
                    print(f"# {preset} {label(v)}: skipped: {e}", flush=True)
                    continue
                ours[v].append(ips)
                flops[v] = fl
                parts.append(f"dcgan {label(v)} {ips:.1f} img/s")
            if not a.no_anchor and preset in ANCHOR_ARCH:
                theirs.append(time_anchor(ANCHOR_ARCH[preset], a.batch, a.threads, a.seconds))
                parts.append(f"pytorch {theirs[-1]:.1f} img/s")
            print(f"# round {r}: {preset} " + ", ".join(parts), flush=True)

        mt = statistics.median(theirs) if theirs else None
        base = None  # the first variant timed: the reference of the others' "vs first" ratio
        for v in variants:
            if not ours[v]:
                continue
            mo = statistics.median(ours[v])
            gflops = flops[v] / a.batch * mo / 1e9
            rec = dict(preset=preset, precision=v[0], fuse=v[1], bwdw=v[2], batch=a.batch, threads=a.threads,
                       data="uint8" if a.uint8 else "float32", dcgan_img_s=round(mo, 1),
                       gflop_per_step=round(flops[v] / 1e9, 3), gflop_s=round(gflops, 1),
                       fp32_peak_gflop_s=round(peak["gflops"], 1),
                       fraction_of_fp32_peak=round(gflops / peak["gflops"], 3) if peak["gflops"] else None,
                       isa=isa)
            if mt:
                rec.update(pytorch_img_s=round(mt, 1), ratio=round(mo / mt, 3))
            if base is None:
                base = mo
            elif base:
                rec["vs_first_variant"] = round(mo / base, 3)
            print(json.dumps(rec), flush=True)
            rows.append(rec)

        if a.rss:
            prec = variants[0][0]
            rss = dict(dcgan=peak_rss_mb(preset, a.batch, a.threads, a.rss_steps, prec, "dcgan", True),
                       dcgan_import=peak_rss_mb(preset, a.batch, a.threads, 0, prec, "dcgan", False))
            if not a.no_anchor and preset in ANCHOR_ARCH:
                rss.update(pytorch=peak_rss_mb(preset, a.batch, a.threads, 0, prec, "torch", True),
                           pytorch_import=peak_rss_mb(preset, a.batch, a.threads, 0, prec, "torch", False))
            rec = dict(preset=preset, precision=prec, batch=a.batch, threads=a.threads,
                       **{f"peak_rss_mb_{k}": round(v, 1) for k, v in rss.items()})
            print(json.dumps(rec), flush=True)
            rows.append(rec)

    if a.markdown:
        versions = f"dcgan {dcgan.__version__}, oneDNN {dcgan.onednn_version}, torch {torch_version}"
        print(f"\n{datetime.date.today()}, {cpu}, {os.cpu_count()} cores, ISA {isa}, {versions}, "
              f"{a.threads} threads, batch {a.batch}, fp32 peak {peak['gflops']:.0f} GFLOP/s (measured)\n")
        print("| preset | precision | fuse | bwdw | dcgan img/s | PyTorch img/s | ratio | vs first | GFLOP/step | GFLOP/s | of fp32 peak | ISA |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if "dcgan_img_s" not in r:
                continue
            frac = f"{100 * r['fraction_of_fp32_peak']:.0f}%" if r["fraction_of_fp32_peak"] is not None else "-"
            print(f"| {r['preset']}{' (uint8)' if a.uint8 else ''} | {r['precision']} | {r['fuse'] or 'all'} | "
                  f"{r['bwdw'] or 'auto'} | {r['dcgan_img_s']} | {r.get('pytorch_img_s', '-')} | {r.get('ratio', '-')} | "
                  f"{r.get('vs_first_variant', '-')} | "
                  f"{r['gflop_per_step']} | {r['gflop_s']} | {frac} | {r['isa']} |")
        rss_rows = [r for r in rows if "peak_rss_mb_dcgan" in r]
        if rss_rows:
            print("\n| preset | dcgan peak RSS MB (import only) | PyTorch peak RSS MB (import only) |")
            print("|---|---|---|")
            for r in rss_rows:
                print(f"| {r['preset']} | {r['peak_rss_mb_dcgan']} ({r['peak_rss_mb_dcgan_import']}) | "
                      f"{r.get('peak_rss_mb_pytorch', '-')} ({r.get('peak_rss_mb_pytorch_import', '-')}) |")


if __name__ == "__main__":
    main()
