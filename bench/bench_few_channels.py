"""The few-channel passes of the presets' image layers: oneDNN's own kernel against the matrix
product and gather of cpp/src/cpu/thin_conv.cpp, layer by layer, in one run.

    python bench/bench_few_channels.py --presets mnist,cifar10,dcgan64 --threads 2

The pass is a ConvTranspose2d's forward into at most 4 channels (G's last layer) or a Conv2d's
backward-data into at most 4 channels (D's first layer, whose input gradient the G step needs).
For each such layer of each preset at --batch, and each precision the CPU has, it compiles the
layer alone (``dcgan._core.Network``) once with DCGAN_CPU_THIN=native and once with =auto, then
alternates timed passes and prints the medians and the ratio native/matmul (> 1: the matrix
product is faster). A Conv2d is timed on a backward that computes both its input and its
weight gradients, and beside it the same backward without the input gradient, so the
backward-data's own share is the difference.
"""
from __future__ import annotations

import json
import os
import statistics

import numpy as np

from bench_bwd_weights import layer_bench_setup, layer_cases, ms_per_call


def timer(spec, in_shape, batch, threads, precision, mode, reps, need_d_input=True):
    from dcgan import _core

    os.environ["DCGAN_CPU_THIN"] = mode
    try:
        net = _core.Network([spec], list(in_shape), batch, seed=0, threads=threads, precision=precision)
    finally:
        os.environ.pop("DCGAN_CPU_THIN", None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(in_shape)).astype(np.float32)
    y = net.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    forward = spec["type"] == "conv_transpose2d"

    def once():
        if forward:
            net.forward(x)
        else:
            net.backward(dy, need_d_input=need_d_input)

    return ms_per_call(once, reps)


def main() -> None:
    a, precisions = layer_bench_setup(__doc__, 7)
    rows = []
    for preset in a.presets.split(","):
        for net, row, spec in layer_cases(preset, a.batch):
            ic, oc = row["in_shape"][0], row["out_shape"][0]
            conv = row["type"] == "conv2d"
            few, many = (ic, oc) if conv else (oc, ic)
            if few > 4 or many < 16:
                continue
            for prec in precisions:
                runs = {m: timer(spec, row["in_shape"], a.batch, a.threads, prec, m, 5) for m in ("native", "auto")}
                if conv:  # the same backward without the input gradient: the backward-data's share
                    runs["weights only"] = timer(spec, row["in_shape"], a.batch, a.threads, prec, "native", 5, False)
                t = {m: [] for m in runs}
                for _ in range(a.rounds):
                    for m, run in runs.items():
                        t[m].append(run())
                med = {m: statistics.median(v) for m, v in t.items()}
                base = med.get("weights only", 0.0)
                native, matmul = med["native"] - base, med["auto"] - base
                rec = dict(preset=preset, net=net[0].upper(), layer=row["index"], type=row["type"],
                           shape=f"{tuple(row['in_shape'])}->{tuple(row['out_shape'])} k{spec.get('kernel')}",
                           pass_="backward-data" if conv else "forward", precision=prec,
                           native_ms=round(native, 2), matmul_ms=round(matmul, 2),
                           native_over_matmul=round(native / matmul, 2) if matmul > 0 else None)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    if a.markdown:
        print("\n| preset | layer | shape | pass | precision | native ms | matmul ms | native/matmul |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['preset']} | {r['net']}{r['layer']} {r['type']} | {r['shape']} | {r['pass_']} | "
                  f"{r['precision']} | {r['native_ms']} | {r['matmul_ms']} | {r['native_over_matmul']} |")


if __name__ == "__main__":
    main()
