"""Backward-weights of every convolution of the presets: oneDNN's direct kernel against the
matrix-product path (cpp/src/cpu/gemm_weights.cpp), layer by layer, in one run.

    python bench/bench_bwd_weights.py --presets mnist,cifar10,dcgan64 --threads 2

For each Conv2d / ConvTranspose2d of each preset's G and D at --batch, and each precision the
CPU has, it compiles the layer alone (``dcgan._core.Network``) once with DCGAN_CPU_BWDW=native
and once with =gemm, then alternates timed backward passes that compute only the weight
gradient (``need_d_input=False`` on a one-layer network) and prints the medians, the ratio
native/gemm (> 1: the matrix products are faster) and what the automatic rule picks.
Layers with fewer than 16 channels on either matrix side are never eligible and are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def layer_cases(preset: str, batch: int):
    import dcgan

    cfg = dcgan.Config.preset(preset, batch_size=batch)
    trainer = dcgan.Trainer(cfg)
    for net, specs in zip(("generator", "discriminator"), cfg.layers()):
        for row, spec in zip(trainer._core.describe(net), specs):
            if row["type"] in ("conv2d", "conv_transpose2d"):
                yield net, row, dict(spec)


def ms_per_call(call, reps):
    """Runs `call` once (warm-up) and returns a timer: each call of it runs `call` `reps` times
    and returns the mean milliseconds per call."""
    call()

    def run():
        t0 = time.perf_counter()
        for _ in range(reps):
            call()
        return (time.perf_counter() - t0) / reps * 1e3

    return run


PASSES = ("forward", "backward", "weights")


def pass_timers(spec, in_shape, batch, threads, env, mode, report, reps):
    """Compiles the layer `spec` alone with the environment variable `env` set to `mode`.
    Returns the path the network's `report` method (e.g. "cpu_conv_algorithms") gives for it and
    a timer (ms_per_call) per pass of PASSES: the forward, the backward (input and weight
    gradients) and the backward with the weight gradient only."""
    from dcgan import _core

    os.environ[env] = mode
    try:
        net = _core.Network([spec], list(in_shape), batch, seed=0, threads=threads)
        path = getattr(net, report)()[0]
    finally:
        os.environ.pop(env, None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(in_shape)).astype(np.float32)
    dy = rng.standard_normal(net.forward(x).shape).astype(np.float32)
    calls = {"forward": lambda: net.forward(x), "backward": lambda: net.backward(dy, need_d_input=True),
             "weights": lambda: net.backward(dy, need_d_input=False)}
    return path, {p: ms_per_call(calls[p], reps) for p in PASSES}


def alternate(timers: dict, rounds: int) -> dict:
    """`timers`: {side: {pass: timer}}. Runs every side's timers in turn, pass by pass, for
    `rounds` rounds; returns the median milliseconds per (side, pass)."""
    t = {(side, p): [] for side, ts in timers.items() for p in ts}
    for _ in range(rounds):
        for p in next(iter(timers.values())):
            for side, ts in timers.items():
                t[(side, p)].append(ts[p]())
    return {k: statistics.median(v) for k, v in t.items()}


def layer_record(preset: str, net: str, row: dict, spec: dict) -> dict:
    """The leading fields of a per-layer benchmark's JSON line."""
    return dict(preset=preset, net=net[0].upper(), layer=row["index"], type=row["type"],
                shape=f"{tuple(row['in_shape'])}->{tuple(row['out_shape'])} k{spec.get('kernel')} "
                      f"s{spec.get('stride', 1)}")


def time_backward(spec, in_shape, batch, threads, precision, mode, reps):
    from dcgan import _core

    os.environ["DCGAN_CPU_BWDW"] = mode
    try:
        net = _core.Network([spec], list(in_shape), batch, seed=0, threads=threads, precision=precision)
    finally:
        os.environ.pop("DCGAN_CPU_BWDW", None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(in_shape)).astype(np.float32)
    y = net.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return ms_per_call(lambda: net.backward(dy, need_d_input=False), reps)


def auto_pick(spec, in_shape, precision) -> str:
    """What the automatic rule (gemm_weights.cpp, for this CPU's ISA) picks for the layer."""
    from dcgan import _core

    saved = os.environ.pop("DCGAN_CPU_BWDW", None)
    try:
        return _core.Network([spec], list(in_shape), 1, precision=precision).cpu_backward_weights()[0]
    finally:
        if saved is not None:
            os.environ["DCGAN_CPU_BWDW"] = saved


def layer_bench_setup(doc: str, rounds: int):
    """The per-layer benchmarks' command line (--presets, --batch, --threads, --precision,
    --rounds, --markdown), parsed; OMP_NUM_THREADS set; the header line printed. Returns the
    arguments and the precisions to run (default: fp32, and bf16 where the CPU has it)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="mnist,cifar10,dcgan64")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default=None, help="comma list (default: fp32, and bf16 where the CPU has it)")
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import dcgan

    isa = next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu")
    precisions = a.precision.split(",") if a.precision else (
        ["fp32", "bf16"] if isa.startswith(("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx")) else ["fp32"])
    print(f"# oneDNN {dcgan.onednn_version}, ISA {isa}, {a.threads} threads, batch {a.batch}", flush=True)
    return a, precisions


def main() -> None:
    a, precisions = layer_bench_setup(__doc__, 5)
    rows = []
    for preset in a.presets.split(","):
        for net, row, spec in layer_cases(preset, a.batch):
            ic, oc = row["in_shape"][0], row["out_shape"][0]
            if min(oc, ic) < 16:
                continue
            for prec in precisions:
                # A single layer's backward computes no input gradient: only the weights'.
                runs = {m: time_backward(spec, row["in_shape"], a.batch, a.threads, prec, m, 3)
                        for m in ("native", "gemm")}
                t = {m: [] for m in runs}
                for _ in range(a.rounds):
                    for m, run in runs.items():
                        t[m].append(run())
                med = {m: statistics.median(v) for m, v in t.items()}
                auto = auto_pick(spec, row["in_shape"], prec)
                rec = dict(preset=preset, net=net[0].upper(), layer=row["index"], type=row["type"],
                           shape=f"{tuple(row['in_shape'])}->{tuple(row['out_shape'])} k{spec.get('kernel')}",
                           precision=prec, native_ms=round(med["native"], 2), gemm_ms=round(med["gemm"], 2),
                           native_over_gemm=round(med["native"] / med["gemm"], 2), auto=auto)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    if a.markdown:
        print("\n| preset | layer | shape | precision | native ms | gemm ms | native/gemm | auto picks |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['preset']} | {r['net']}{r['layer']} {r['type']} | {r['shape']} | {r['precision']} | "
                  f"{r['native_ms']} | {r['gemm_ms']} | {r['native_over_gemm']} | {r['auto']} |")


if __name__ == "__main__":
    main()
