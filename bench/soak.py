"""Soak: a long run with the resident set size sampled, to show that nothing grows per step.

    python bench/soak.py --steps 10000 --preset mnist --width 16 --batch 32
    python bench/soak.py --steps 10000 --preset mnist --batch 64 --precision bf16

Trains `steps` steps in chunks of `--every` (each a fit() call, as a notebook or the command line
would make them, with a save and a 64-sample generate() every `--save-every` steps), samples
RSS (/proc/self/statm) after each chunk and prints the samples, the growth from the end of
warm-up (the first chunks, and the first save, whose generate() compiles G at batch 64) to the
end, the growth per 1,000 steps, and the growth summed over the chunks that contain no save
(training alone). A leak of even a few bytes per step shows up as a steady slope.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--preset", default="mnist")
    ap.add_argument("--width", type=int, default=None, help="g_width = d_width (default: the preset's)")
    ap.add_argument("--precision", default="fp32", help="Config.precision: fp32 or bf16")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--every", type=int, default=250, help="steps per fit() call (one RSS sample each)")
    ap.add_argument("--save-every", type=int, default=2500)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import dcgan

    widths = {} if a.width is None else dict(g_width=a.width, d_width=a.width)
    cfg = dcgan.Config.preset(a.preset, batch_size=a.batch, seed=0, threads=a.threads, precision=a.precision,
                              **widths)
    tr = dcgan.Trainer(cfg)
    c, h, w = cfg.image_shape
    x = np.random.default_rng(0).integers(0, 256, (4096, h, w, c), dtype=np.uint8)
    samples = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        done = 0
        while done < a.steps:
            k = min(a.every, a.steps - done)
            tr.fit(x, steps=k, progress=False)
            done += k
            if done % a.save_every == 0:
                tr.save(os.path.join(tmp, "soak"))
                tr.generate(64, seed=1)
            samples.append((done, round(rss_mb(), 2)))
    el = time.perf_counter() - t0
    # Warm-up ends after the allocator's and primitives' first steps and, when there are saves,
    # after the first save: its generate() compiles G once more at the sampling batch size.
    first_save = next((i for i, (st, _) in enumerate(samples) if st % a.save_every == 0), None)
    warm_i = max(min(3, len(samples) - 1), first_save if first_save is not None and first_save < len(samples) - 1 else 0)
    warm = samples[warm_i]
    end = samples[-1]
    per_k = (end[1] - warm[1]) / max(end[0] - warm[0], 1) * 1000
    # Growth over training chunks alone: the sample-to-sample steps that contain no save.
    train_only = sum(b[1] - a_[1] for a_, b in zip(samples[warm_i:], samples[warm_i + 1:])
                     if b[0] % a.save_every != 0)
    rec = dict(date=str(datetime.date.today()), preset=a.preset, width=a.width, precision=a.precision,
               batch=a.batch, steps=a.steps,
               seconds=round(el, 1), rss_start_mb=samples[0][1], rss_after_warmup_mb=warm[1], rss_end_mb=end[1],
               warmup_until_step=warm[0], growth_mb=round(end[1] - warm[1], 2),
               growth_mb_per_1000_steps=round(per_k, 3), growth_mb_in_training_chunks=round(train_only, 2),
               finite=bool(np.isfinite(np.asarray(tr.history["d_loss"])).all()),
               cpu=platform.processor() or platform.machine(),
               isa=next(b["detail"] for b in dcgan.backends() if b["name"] == "cpu"), threads=a.threads)
    print("rss samples (step, MB):", samples)
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
