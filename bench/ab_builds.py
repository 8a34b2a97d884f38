"""Before/after: the training step of two builds of dcgan, interleaved, on one machine.

    python bench/ab_builds.py --old /path/to/old/site-packages --presets mlp,mnist --pairs 6
    python bench/ab_builds.py --old OLD --presets cifar10 --precision bf16   # both builds in bf16

Each pair times the old build, then the installed one (or --new PATH), each in its own
subprocess for --seconds with bench_train.time_dcgan, so that a noisy machine (CPU steal,
frequency changes) slows both sides of a pair alike. Prints every pair, the median img/s of
each side and the median of the per-pair ratios new / old. --uint8 feeds the new build uint8
NHWC images (its fit path since issue 7); the old build always gets float32 NCHW.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def trial(pythonpath: str, preset: str, batch: int, threads: int, seconds: float, uint8: bool,
          precision: str = "fp32") -> float:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_train as b; "
            f"print(b.time_dcgan({preset!r}, {batch}, {threads}, {seconds}, {uint8}, {precision!r})[0])")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd="/")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="a folder holding the old build's dcgan package")
    ap.add_argument("--new", default="", help="a folder holding the new build (default: the installed one)")
    ap.add_argument("--presets", default="mlp,mnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--uint8", action="store_true")
    ap.add_argument("--precision", default="fp32", help="Config.precision of both builds (fp32 or bf16)")
    a = ap.parse_args()
    for preset in a.presets.split(","):
        old, new = [], []
        for i in range(a.pairs):
            old.append(trial(a.old, preset, a.batch, a.threads, a.seconds, False, a.precision))
            new.append(trial(a.new, preset, a.batch, a.threads, a.seconds, a.uint8, a.precision))
            print(f"# pair {i}: {preset} old {old[-1]:.1f} img/s, new {new[-1]:.1f} img/s, "
                  f"ratio {new[-1] / old[-1]:.3f}", flush=True)
        ratios = [n / o for n, o in zip(new, old)]
        print(json.dumps(dict(preset=preset, precision=a.precision, batch=a.batch, threads=a.threads, new_data="uint8" if a.uint8 else "float32",
                              old_img_s=round(statistics.median(old), 1), new_img_s=round(statistics.median(new), 1),
                              median_ratio=round(statistics.median(ratios), 3),
                              min_ratio=round(min(ratios), 3), max_ratio=round(max(ratios), 3))), flush=True)


if __name__ == "__main__":
    main()
