"""The presets' Winograd layers: oneDNN's direct kernels against cpp/src/cpu/winograd.cpp,
layer by layer and pass by pass, in one run.

    python bench/bench_winograd.py --presets cifar10,dcgan64 --threads 2

For each Conv2d / ConvTranspose2d of each preset at --batch that the Winograd engine can take
(``Network.cpu_conv_algorithms()`` under DCGAN_CPU_WINO=all; fp32 only), it compiles the layer
alone (``dcgan._core.Network``) once with DCGAN_CPU_WINO=native and once with =all, then
alternates timed passes: the forward, the backward (input and weight gradients) and the
backward with the weight gradient only. Prints the medians, the ratios native/Winograd (> 1:
Winograd is faster) and what the automatic rule (DCGAN_CPU_WINO unset, this CPU) picks. The
weights do not change between passes, so the forward's weight transform (once per Adam step
in training) is not in these times.
"""
from __future__ import annotations

import json

from bench_bwd_weights import PASSES, alternate, layer_bench_setup, layer_cases, layer_record, pass_timers


def timers(spec, in_shape, batch, threads, mode, reps):
    return pass_timers(spec, in_shape, batch, threads, "DCGAN_CPU_WINO", mode, "cpu_conv_algorithms", reps)


def main() -> None:
    a, _ = layer_bench_setup(__doc__, 3)
    from dcgan import _core
    rows = []
    for preset in a.presets.split(","):
        for net, row, spec in layer_cases(preset, a.batch):
            algo, wino = timers(spec, row["in_shape"], a.batch, a.threads, "all", 3)
            if algo != "winograd":
                continue
            rule = _core.Network([spec], list(row["in_shape"]), 1).cpu_conv_algorithms()[0]
            _, native = timers(spec, row["in_shape"], a.batch, a.threads, "native", 3)
            med = alternate({"native": native, "winograd": wino}, a.rounds)
            rec = layer_record(preset, net, row, spec)
            rec["rule"] = rule
            for p in PASSES:
                n, w = med[("native", p)], med[("winograd", p)]
                rec[f"{p}_native_ms"], rec[f"{p}_winograd_ms"] = round(n, 2), round(w, 2)
                rec[f"{p}_ratio"] = round(n / w, 2)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    if a.markdown:
        print("\n| preset | layer | shape | rule | forward native/Winograd | backward | weights only |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['preset']} | {r['net']}{r['layer']} {r['type']} | {r['shape']} | {r['rule']} | "
                  + " | ".join(f"{r[p + '_native_ms']} / {r[p + '_winograd_ms']} = {r[p + '_ratio']}"
                               for p in PASSES) + " |")


if __name__ == "__main__":
    main()
