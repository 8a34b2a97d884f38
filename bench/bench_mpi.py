"""Data-parallel training on this machine, and what it would cost on many nodes.

    python bench/bench_mpi.py --presets mnist cifar10 --batch 64 --seconds 20

1. Throughput: images/s of one process with 2 threads against 2 MPI ranks with 1 thread each
   (the same global batch, and 2 ranks each with the full batch), rounds alternated.
2. Communication per step: the bytes each rank all-reduces in a training step (D's two gradient
   slots, G's gradient, the BN running statistics; with sync_bn the BN moments too), counted
   from the networks' sizes.
3. The all-reduce itself, timed on 2 ranks here for each message size (MPICH over shared
   memory), fitted to t(S) = alpha + S / beta.
4. A projection of the step time on N nodes (8 and 64) from a ring all-reduce,
   t = 2 (N - 1) alpha_net + 2 (N - 1) / N * S / beta_net, added to the measured compute time
   of one rank (no overlap of communication with backward: the core reduces after backward),
   for this machine's measured alpha and beta and for two stated networks.

Worker mode (--worker) is what mpiexec runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Networks for the projection: (name, one-way latency s, bandwidth bytes/s), stated, not measured.
NETWORKS = [("25 GbE (TCP)", 25e-6, 25e9 / 8 * 0.8), ("100 Gb/s InfiniBand", 2e-6, 100e9 / 8 * 0.9)]
ROOT = Path(__file__).resolve().parents[1]


def _cfg(preset: str, batch: int, threads: int, sync_bn: bool = False):
    import dcgan
    return dcgan.Config.preset(preset, batch_size=batch, threads=threads, seed=0, joint=False, n_critic=1,
                               g_steps=1, sync_bn=sync_bn)


def worker(args: argparse.Namespace) -> None:
    """One rank: time `seconds` of training, or the all-reduce; rank 0 prints JSON."""
    import dcgan
    from dcgan import distributed

    w = distributed.world()
    if args.worker == "train":
        cfg = _cfg(args.preset, args.batch, args.threads, args.sync_bn)
        tr = dcgan.Trainer(cfg)
        rng = np.random.default_rng(0)
        c, h, wd = cfg.image_shape
        x = rng.integers(0, 256, size=(args.batch * w.size * 16, h, wd, c), dtype=np.uint8)
        tr.fit(x, steps=5, progress=False)  # warm-up
        distributed.barrier()
        steps, t0 = 0, time.perf_counter()
        while True:
            tr.fit(x, steps=10, progress=False)
            steps += 10
            # Every rank stops together (rank 0's clock decides).
            if distributed.broadcast_object(time.perf_counter() - t0 >= args.seconds):
                break
        dt = time.perf_counter() - t0
        if w.rank == 0:
            print(json.dumps({"img_s": steps * args.batch * w.size / dt, "ms_step": dt / steps * 1e3}))
    else:  # allreduce: the trainer's communicator (all_reduce_mean on host floats), timed in C++
        mpi = distributed._load_mpi()
        out = {n: mpi.time_all_reduce(int(n), int(args.reps)) for n in args.sizes}
        if w.rank == 0:
            print(json.dumps(out))


def launch(nproc: int, threads: int, *extra: str) -> dict:
    from dcgan import distributed
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [distributed.mpiexec_path(), "-n", str(nproc), sys.executable, __file__, *extra]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def comm_per_step(preset: str, batch: int, sync_bn: bool) -> tuple:
    """(bytes, messages) each rank hands to collectives in one training step."""
    import dcgan
    tr = dcgan.Trainer(_cfg(preset, batch, 1))
    ng, nd = tr.num_params("generator"), tr.num_params("discriminator")
    bg, bd = tr.buffers("generator"), tr.buffers("discriminator")
    sg, sd = sum(v.size for v in bg.values()), sum(v.size for v in bd.values())
    floats = ng + 2 * nd + sg + sd  # G's gradient, D's real and fake gradients, BN running stats
    msgs = 5
    if sync_bn:
        # Per BN layer of C channels: 2C gathered per forward, 2C all-reduced per backward. A step
        # runs G forward and backward once, D forward and backward three times.
        floats += 2 * sg + 6 * sd
        lg = sum(1 for k in bg if k.endswith("running_mean"))
        ld = sum(1 for k in bd if k.endswith("running_mean"))
        msgs += 2 * lg + 6 * ld
    return 4 * floats, msgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["mnist", "cifar10"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", choices=["train", "allreduce"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="mnist", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--sync-bn", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=20, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    import dcgan
    isa = next((b.get("isa") for b in dcgan.backends() if b["name"] == "cpu"), None) or "?"
    print(f"# {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  cores={os.cpu_count()}  "
          f"cpu backend: {json.dumps([b for b in dcgan.backends() if b['name'] == 'cpu'])}", flush=True)
    b = args.batch
    rows = []
    for preset in args.presets:
        runs = {"1x2 threads, batch %d" % b: [], "2x1 thread, batch %d each" % (b // 2): [],
                "2x1 thread, batch %d each" % b: []}
        for _ in range(args.rounds):
            runs["1x2 threads, batch %d" % b].append(launch(1, 2, "--worker", "train", "--preset", preset,
                                                             "--batch", str(b), "--threads", "2",
                                                             "--seconds", str(args.seconds))["img_s"])
            runs["2x1 thread, batch %d each" % (b // 2)].append(
                launch(2, 1, "--worker", "train", "--preset", preset, "--batch", str(b // 2), "--threads", "1",
                       "--seconds", str(args.seconds))["img_s"])
            runs["2x1 thread, batch %d each" % b].append(
                launch(2, 1, "--worker", "train", "--preset", preset, "--batch", str(b), "--threads", "1",
                       "--seconds", str(args.seconds))["img_s"])
        med = {k: statistics.median(v) for k, v in runs.items()}
        base = med["1x2 threads, batch %d" % b]
        for k, v in med.items():
            rows.append((preset, k, v, v / base))
            print(f"{preset:8s} {k:28s} {v:8.1f} img/s  x{v / base:.2f}  (rounds: "
                  f"{', '.join(f'{r:.1f}' for r in runs[k])})", flush=True)

    # Communication per step, for every preset, and the all-reduce of that many bytes timed on
    # 2 ranks here (MPICH over shared memory).
    from dcgan.config import PRESETS
    all_presets = list(PRESETS)
    comm = {(p, sync): comm_per_step(p, b, sync) for p in all_presets for sync in (False, True)}
    sizes = sorted({s // 4 for s, _ in comm.values()} | {1024})
    ar = {int(k): v for k, v in launch(2, 1, "--worker", "allreduce", "--sizes", *map(str, sizes),
                                       "--reps", "10").items()}
    print(f"\nper step and rank (batch {b}): bytes to collectives, messages, and one all-reduce of that size on "
          f"2 ranks here (4 KiB: {ar[1024] * 1e6:.0f} us)")
    for (p, sync), (s, msgs) in comm.items():
        print(f"{p:14s} sync_bn={int(sync)} {s / 1e6:8.2f} MB {msgs:3d} msgs  all-reduce here "
              f"{ar[s // 4] * 1e3:7.2f} ms ({s / ar[s // 4] / 1e9:.2f} GB/s)", flush=True)

    print("\nprojection: one rank per node (2 threads, batch %d per rank, compute measured here), ring "
          "all-reduce t = msgs * 2(N-1) alpha + 2(N-1)/N * S / beta, no overlap" % b)
    for preset in args.presets:
        one = launch(1, 2, "--worker", "train", "--preset", preset, "--batch", str(b), "--threads", "2",
                     "--seconds", str(args.seconds))
        compute = one["ms_step"] / 1e3
        for sync in (False, True):
            s, msgs = comm[(preset, sync)]
            for net, a_net, b_net in NETWORKS:
                for n in (8, 64):
                    t = msgs * 2 * (n - 1) * a_net + 2 * (n - 1) / n * s / b_net
                    print(f"{preset:8s} sync_bn={int(sync)} {net:20s} N={n:3d}  compute {compute * 1e3:7.1f} ms  "
                          f"all-reduce {t * 1e3:7.2f} ms  step {(compute + t) * 1e3:7.1f} ms  comm share "
                          f"{t / (compute + t):5.1%}  speed-up {n * compute / (compute + t):5.1f}x", flush=True)
                # Where communication would dominate: the smallest N with all-reduce > compute.
                cross = next((n for n in range(2, 1 << 16)
                              if msgs * 2 * (n - 1) * a_net + 2 * (n - 1) / n * s / b_net > compute), None)
                print(f"{preset:8s} sync_bn={int(sync)} {net:20s} all-reduce exceeds compute from N = "
                      f"{cross if cross else 'never (bandwidth term saturates below compute)'}", flush=True)


if __name__ == "__main__":
    main()
