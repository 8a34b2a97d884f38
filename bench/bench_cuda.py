"""Milliseconds per training step on one GPU: dcgan's CUDA backend beside PyTorch, in one run.

    python bench/bench_cuda.py                      # mnist b64, cifar10 b64, dcgan64 (5x5) b128
    python bench/bench_cuda.py --presets mnist --batch 64 --tf32 off,on --markdown

For each preset and TF32 setting it times, in alternating rounds on the same GPU:
- dcgan: Trainer.fit on the CUDA backend (the step replayed as one CUDA graph);
- PyTorch eager: the anchor's architecture (../shared/anchors/torch_dcgan.py, imported, not
  copied) in the anchor's loop: one D step on real and fake, one G step through the new D;
- PyTorch graph: the same loop captured once with torch.cuda.graph (capturable Adam, noise drawn
  inside the graph) and replayed.
It prints the median ms/step of each, and the ratios PyTorch / dcgan (above 1: dcgan faster).
Issue 8's targets on one H100, TF32 off: mnist b64 <= 0.7 ms, cifar10 b64 <= 1.6 ms, dcgan64
5x5 b128 <= 4.4 ms. Needs a CUDA build of dcgan (pip install ".[cuda]" -C
cmake.define.DCGAN_CUDA=ON), a GPU, and a CUDA build of torch.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "anchors" / "torch_dcgan.py"
ANCHOR_ARCH = {"mnist": "mnist", "mlp": "mlp", "cifar10": "cifar10", "dcgan64": "dcgan64k5"}
DEFAULT_BATCH = {"mnist": 64, "cifar10": 64, "dcgan64": 128, "mlp": 64}
TARGET_MS = {("mnist", 64): 0.7, ("cifar10", 64): 1.6, ("dcgan64", 128): 4.4}


def time_dcgan(preset: str, batch: int, tf32: bool, steps: int) -> tuple:
    import dcgan

    # The anchor's loop: one D step on real and on fake, then one G step through the updated D.
    cfg = dcgan.Config.preset(preset, batch_size=batch, seed=0, joint=False, n_critic=1, g_steps=1,
                              device="cuda", tf32=tf32)
    tr = dcgan.Trainer(cfg)
    c, h, w = cfg.image_shape
    x = np.random.default_rng(0).integers(0, 256, size=(batch * 32, h, w, c), dtype=np.uint8)
    tr.fit(x, steps=20, progress=False)  # warm-up: algorithm choice, the graph's recording
    t0 = time.perf_counter()
    tr.fit(x, steps=steps, progress=False)  # returns after the statistics came back: synchronised
    ms = 1000 * (time.perf_counter() - t0) / steps
    return ms, tr.graph_status


def load_anchor():
    spec = importlib.util.spec_from_file_location("torch_dcgan_anchor", ANCHOR)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def time_torch(arch: str, batch: int, tf32: bool, graph: bool, steps: int) -> float:
    import torch
    import torch.nn as nn

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    G, D, nz, shape = load_anchor().ARCHS[arch]()
    G, D = G.cuda(), D.cuda()
    oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), capturable=graph)
    oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), capturable=graph)
    real = torch.rand(batch, *shape, device="cuda") * 2 - 1
    ones = torch.ones(batch, 1, device="cuda")
    zeros = torch.zeros(batch, 1, device="cuda")
    z = torch.empty(batch, nz, device="cuda")
    bce = nn.BCEWithLogitsLoss()

    def step():
        z.normal_()
        fake = G(z)
        oD.zero_grad(set_to_none=False)
        ld = bce(D(real).view(-1, 1), ones) + bce(D(fake.detach()).view(-1, 1), zeros)
        ld.backward()
        oD.step()
        oG.zero_grad(set_to_none=False)
        lg = bce(D(fake).view(-1, 1), ones)
        lg.backward()
        oG.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as graph capture wants
        for _ in range(5):
            step()
    torch.cuda.current_stream().wait_stream(side)
    run = step
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        run = g.replay
    for _ in range(5):
        run()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        run()
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="mnist,cifar10,dcgan64")
    ap.add_argument("--batch", type=int, default=0, help="0: the issue's batch per preset (64, 64, 128)")
    ap.add_argument("--tf32", default="off,on", help="off, on or off,on")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    import dcgan

    if not dcgan.cuda_available():
        why = next((b["unavailable_reason"] for b in dcgan.backends() if b["name"] == "cuda"),
                   "this dcgan was built without the CUDA backend")
        sys.exit(f"no CUDA device for dcgan: {why}")
    import torch

    if not torch.cuda.is_available():
        sys.exit("torch has no CUDA device here (a CUDA build of torch is needed for the comparison)")
    gpu = torch.cuda.get_device_name(0)
    lib = next(b["library"] for b in dcgan.backends() if b["name"] == "cuda")
    for preset in a.presets.split(","):
        batch = a.batch or DEFAULT_BATCH[preset]
        for tf in a.tf32.split(","):
            tf32 = tf == "on"
            ours, eager, graph, status = [], [], [], ""
            for r in range(a.rounds):
                ms, status = time_dcgan(preset, batch, tf32, a.steps)
                ours.append(ms)
                eager.append(time_torch(ANCHOR_ARCH[preset], batch, tf32, False, a.steps))
                graph.append(time_torch(ANCHOR_ARCH[preset], batch, tf32, True, a.steps))
                print(f"# round {r}: {preset} b{batch} tf32 {tf}: dcgan {ours[-1]:.3f} ms, torch eager "
                      f"{eager[-1]:.3f} ms, torch graph {graph[-1]:.3f} ms", flush=True)
            mo, me, mg = (statistics.median(v) for v in (ours, eager, graph))
            rec = dict(preset=preset, batch=batch, tf32=tf32, dcgan_ms=round(mo, 3), graph_status=status,
                       torch_eager_ms=round(me, 3), torch_graph_ms=round(mg, 3),
                       eager_over_dcgan=round(me / mo, 2), graph_over_dcgan=round(mg / mo, 2),
                       target_ms=TARGET_MS.get((preset, batch)) if not tf32 else None, gpu=gpu)
            print(json.dumps(rec), flush=True)
            if a.markdown:
                print(f"| {datetime.date.today()} | {preset} | {batch} | {tf} | {mo:.3f} | {me:.3f} | {mg:.3f} | "
                      f"{me / mo:.2f} | {mg / mo:.2f} | {gpu} | dcgan {dcgan.__version__} ({lib}), "
                      f"torch {torch.__version__} |")


if __name__ == "__main__":
    main()
