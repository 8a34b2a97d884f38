"""The presets' 4x4-small-side layers: oneDNN's direct kernels against one matrix product per
kernel tap (cpp/src/cpu/tap_conv.cpp), layer by layer and pass by pass, in one run.

    python bench/bench_tap_conv.py --presets dcgan64 --threads 2

For each Conv2d / ConvTranspose2d of each preset at --batch that DCGAN_CPU_TAPS=all takes
(``Network.cpu_tap_passes()``; fp32 only), it compiles the layer alone (``dcgan._core.Network``)
once with DCGAN_CPU_TAPS=native and once with =all, then alternates timed passes: the forward
and the backward-data (the backward with the input gradient, less the backward with the weight
gradient only, timed beside it). Prints the medians and the ratios native/taps (> 1: the
per-tap products are faster); the rule in tap_conv.cpp (use_tap_conv) follows these ratios.
"""
from __future__ import annotations

import json

from bench_bwd_weights import alternate, layer_bench_setup, layer_cases, layer_record, pass_timers


def timers(spec, in_shape, batch, threads, mode, reps):
    return pass_timers(spec, in_shape, batch, threads, "DCGAN_CPU_TAPS", mode, "cpu_tap_passes", reps)


def main() -> None:
    a, _ = layer_bench_setup(__doc__, 5)
    rows = []
    for preset in a.presets.split(","):
        for net, row, spec in layer_cases(preset, a.batch):
            paths, taps = timers(spec, row["in_shape"], a.batch, a.threads, "all", 2)
            if paths == "native":
                continue
            _, native = timers(spec, row["in_shape"], a.batch, a.threads, "native", 2)
            med = alternate({"native": native, "taps": taps}, a.rounds)
            rec = layer_record(preset, net, row, spec)
            for m in ("native", "taps"):
                med[(m, "backward_data")] = med[(m, "backward")] - med[(m, "weights")]
            for p in ("forward", "backward_data"):
                n, w = med[("native", p)], med[("taps", p)]
                rec[f"{p}_native_ms"], rec[f"{p}_taps_ms"] = round(n, 2), round(w, 2)
                rec[f"{p}_ratio"] = round(n / w, 2)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    if a.markdown:
        print("\n| preset | layer | shape | forward native/taps | backward-data native/taps |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['preset']} | {r['net']}{r['layer']} {r['type']} | {r['shape']} | "
                  + " | ".join(f"{r[p + '_native_ms']} / {r[p + '_taps_ms']} = {r[p + '_ratio']}"
                               for p in ("forward", "backward_data")) + " |")


if __name__ == "__main__":
    main()
