"""Is it the recipe, the data or the engine? One preset trained by dcgan and by PyTorch side by side.

    python bench/compare_recipe_torch.py --preset cifar10 --batch 64 --steps 708 [--set k=v ...]

Both start from the same weights (dcgan's initialisation, copied into PyTorch), run the same
architecture (the preset's layer list, interpreted with torch.nn.functional: "same" padding as
TensorFlow pads, BatchNorm, dropout), the same loss, optimiser, joint/separate update and batch,
on the same real images (CIFAR-10 subset or MNIST from $DCGAN_DATA) in float32 on the CPU. They
differ in the random numbers (noise, dropout masks, shuffling), so they are compared as
trajectories: mean D(x), D(G(z)) and losses over windows of steps, and the pixel statistics of
the final samples. Needs torch.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _t_forward():
    """tests/make_fixtures.py's functional forward of a layer list (TensorFlow "same" padding,
    BatchNorm with running statistics, dropout)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from make_fixtures import t_forward

    return t_forward


def windows(h, every):
    n = len(h["d_loss"])
    rows = []
    for a in range(0, n, every):
        sl = slice(a, min(n, a + every))
        rows.append((a, *(float(np.mean(h[k][sl])) for k in ("d_loss", "g_loss", "d_real", "d_fake"))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cifar10")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=708)
    ap.add_argument("--images", type=int, default=3805)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="K=V", help="Config overrides (JSON values)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--grid", default=None, metavar="PNG", help="write dcgan's 64 samples there")
    a = ap.parse_args()

    import json

    import dcgan
    from dcgan.datasets import load_cifar10, load_mnist, resize_images

    over = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    cfg = dcgan.Config.preset(a.preset, batch_size=a.batch, seed=a.seed, threads=a.threads, **over)
    c, hgt, wid = cfg.image_shape
    if c == 3:
        x, _ = load_cifar10(split="train")
    else:
        x, _ = load_mnist(split="train")
    x = x[: a.images]
    if x.shape[1] != hgt:
        x = resize_images(x, hgt)
    data = dcgan.prepare_images(x, cfg.image_shape, cfg.data_range)  # float32 NCHW

    tr = dcgan.Trainer(cfg)
    g0 = {k: v.copy() for k, v in tr.weights("generator").items()}
    d0 = {k: v.copy() for k, v in tr.weights("discriminator").items()}
    t0 = time.perf_counter()
    tr.fit(x, steps=a.steps, progress=False)
    t_ours = time.perf_counter() - t0
    ours = {k: np.asarray(v) for k, v in tr.history.items()}
    s_ours = tr.generate(512, seed=1)
    if a.grid:
        from dcgan.plot import sample_grid
        sample_grid(s_ours[:64], nrow=8, path=a.grid, value_range=tuple(cfg.data_range))
    print(f"dcgan: {a.steps} steps in {t_ours:.0f} s", flush=True)

    rows_t, s_t = None, None
    if not a.skip_torch:
        import torch
        import torch.nn.functional as F

        t_forward = _t_forward()
        torch.manual_seed(a.seed)
        torch.set_num_threads(a.threads)
        G, D = cfg.layers()
        tg = {k: torch.tensor(v, requires_grad=True) for k, v in g0.items()}
        td = {k: torch.tensor(v, requires_grad=True) for k, v in d0.items()}

        def bn_state(layers, p):
            return {i: (torch.zeros(p[f"{i}.weight"].shape[0]), torch.ones(p[f"{i}.weight"].shape[0]))
                    for i, L in enumerate(layers) if L["type"] == "batchnorm"}

        gs, ds = bn_state(G, g0), bn_state(D, d0)
        opt_g = torch.optim.Adam(list(tg.values()), lr=cfg.effective_lr_g,
                                 betas=tuple(cfg.betas_g or (cfg.beta1, cfg.beta2)), eps=cfg.adam_eps)
        opt_d = torch.optim.Adam(list(td.values()), lr=cfg.effective_lr_d,
                                 betas=tuple(cfg.betas_d or (cfg.beta1, cfg.beta2)), eps=cfg.adam_eps)
        assert cfg.loss == "bce" and cfg.n_critic == 1 and cfg.g_steps == 1, "bce, n_critic 1, g_steps 1 only"
        target = 1.0 - cfg.label_smoothing
        bce = lambda lg, t: F.binary_cross_entropy_with_logits(lg, torch.full_like(lg, t))  # noqa: E731
        X = torch.tensor(data)
        n, b = len(X), a.batch
        hist = {k: [] for k in ("d_loss", "g_loss", "d_real", "d_fake")}
        perm, pos = torch.randperm(n), 0
        t0 = time.perf_counter()
        for _ in range(a.steps):
            if pos + b > n:
                perm, pos = torch.randperm(n), 0
            real = X[perm[pos:pos + b]]
            pos += b
            z = torch.randn(b, cfg.z_dim) if cfg.noise == "normal" else torch.rand(b, cfg.z_dim) * 2 - 1
            fake = t_forward(G, tg, z, True, gs)
            out_r = t_forward(D, td, real, True, ds).reshape(-1)
            out_f = t_forward(D, td, fake if cfg.joint else fake.detach(), True, ds).reshape(-1)
            l_d = bce(out_r, target) + bce(out_f, 0.0)
            opt_d.zero_grad()
            if cfg.joint:
                l_g = bce(out_f, 1.0)
                gd = torch.autograd.grad(l_d, list(td.values()), retain_graph=True)
                gg = torch.autograd.grad(l_g, list(tg.values()))
                for p_, g_ in zip(td.values(), gd):
                    p_.grad = g_
                for p_, g_ in zip(tg.values(), gg):
                    p_.grad = g_
                opt_d.step()
                opt_g.step()
            else:
                l_d.backward()
                opt_d.step()
                opt_g.zero_grad()
                l_g = bce(t_forward(D, td, fake, True, ds).reshape(-1), 1.0)
                l_g.backward()
                opt_g.step()
            hist["d_loss"].append(l_d.item())
            hist["g_loss"].append(l_g.item())
            hist["d_real"].append(torch.sigmoid(out_r).mean().item())
            hist["d_fake"].append(torch.sigmoid(out_f).mean().item())
        print(f"torch: {a.steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
        rows_t = windows(hist, a.every)
        with torch.no_grad():
            s_t = t_forward(G, tg, torch.randn(512, cfg.z_dim), True, gs).numpy()

    print(f"\n{a.preset} batch {a.batch}, {a.images} images, {a.steps} steps, overrides {over or 'none'}")
    print("steps      | dcgan: d_loss g_loss  D(x)  D(G(z)) | torch: d_loss g_loss  D(x)  D(G(z))")
    for i, r in enumerate(windows(ours, a.every)):
        line = f"{r[0]:4d}-{r[0] + a.every - 1:<5d} |       {r[1]:.3f}  {r[2]:.3f}  {r[3]:.3f}  {r[4]:.3f}"
        if rows_t:
            q = rows_t[i]
            line += f"   |        {q[1]:.3f}  {q[2]:.3f}  {q[3]:.3f}  {q[4]:.3f}"
        print(line)
    for name, s in (("dcgan", s_ours), ("torch (train-mode BN)", s_t)):
        if s is not None:
            print(f"{name:22s} samples: mean {s.mean():+.3f}  std {s.std():.3f}  per-pixel spread across "
                  f"samples {s.std(axis=0).mean():.3f}; data: mean {data.mean():+.3f} std {data.std():.3f} "
                  f"spread {data.std(axis=0).mean():.3f}")


if __name__ == "__main__":
    main()
