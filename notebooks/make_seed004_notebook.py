"""Writes notebooks/seed004_comparison.ipynb (without outputs); run it with run_notebook.py.

    python3 notebooks/make_seed004_notebook.py
    python3 notebooks/run_notebook.py --in-place notebooks/seed004_comparison.ipynb   # the real run
    DCGAN_NOTEBOOK_QUICK=1 python3 notebooks/run_notebook.py notebooks/seed004_comparison.ipynb --out /tmp/nb
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

CELLS = [
    ("md", r"""
# Seed 004: the DCGAN beside the basic GAN on MNIST

Seed 004 ("DCGAN-Tensorflow: for more stable training") trains two models on MNIST and shows
their samples side by side: the DCGAN paper's 64×64 network (REFERENCE §5, preset `dcgan64`)
and a basic fully connected GAN (REFERENCE §1, preset `mlp`). It concludes that the DCGAN
gives cleaner images, and that its architecture guidelines (strided convolutions instead of
pooling, BatchNorm, ReLU in G and LeakyReLU in D, no hidden dense layers) keep the training
of the larger model stable.

This notebook repeats that comparison with both models trained by the C++ core:

| | `mlp` (§1) | `dcgan64` (§5), grayscale |
|---|---|---|
| data | MNIST 28×28, scaled to [-1, 1] | MNIST resized to 64×64 (as in the seed), [-1, 1] |
| G | z(100) ~ U(-1, 1) → Dense 128 → LReLU → Dense 784 → tanh | z(100) ~ N(0, 1) → Dense 4·4·1024 → ReLU → 4 × ConvT 5×5 s2 (BN, ReLU) → tanh |
| D | Dense 128 → LReLU → Dense 1 | 4 × Conv 5×5 s2 (BN from the 2nd, LReLU 0.2) → Dense 1 |
| loss | BCE, real labels 0.9 | BCE: D maximises log D(x) + log(1 − D(G(z))), G maximises log D(G(z)) |
| optimiser | Adam 1e-3, β1 0.9; batch 100 | Adam 2e-4, β1 0.5; batch 64; truncated-normal init (std 0.02) |

The basic GAN runs its full recipe (100 epochs of 600 steps, about a second each). The DCGAN
costs some 4000 times more per image (a forward pass through G and D is about 0.8 billion
multiply-adds per image against 0.2 million), so on a CPU it sees only a part of what the
seed trained on: a 10 000-image subset of MNIST, 500 steps of 64 (about 3 passes over it).
Enough to show the difference in sample quality, not a converged model.

Runtime of the real run on 2 CPU cores: about 15 minutes (almost all of it the DCGAN).
`DCGAN_NOTEBOOK_QUICK=1` runs a few steps of each only (used by CI). Set `DCGAN_DATA` to the
folder holding `mnist/` (defaults to `../../shared/data` from this folder).
"""),
    ("code", r"""
import os, time
import numpy as np
import matplotlib.pyplot as plt
import dcgan
from dcgan.datasets import load_mnist, resize_images
from dcgan.plot import sample_grid, plot_losses

os.environ.setdefault('DCGAN_DATA', os.path.abspath('../../shared/data'))
QUICK = os.environ.get('DCGAN_NOTEBOOK_QUICK') == '1'

if QUICK:  # a few steps of each model: checks that the notebook runs
    MLP_STEPS = 300
    DC_IMAGES, DC_STEPS, DC_BATCH = 512, 6, 16
else:      # the real run (about 15 minutes on 2 cores)
    MLP_STEPS = None   # the seed's 100 epochs
    DC_IMAGES, DC_STEPS, DC_BATCH = 10_000, 500, 64
SNAPSHOTS = 4          # sample grids kept during training, from the same latent vectors
SAMPLE_SEED = 2024

x, labels = load_mnist(split='train')
x64 = resize_images(x[:DC_IMAGES], 64)  # bilinear, as the seed's 64x64 MNIST
print('MNIST', x.shape, x.dtype, '| resized for the DCGAN', x64.shape)
"""),
    ("md", r"""
## The two models

Both are presets: `Config.mlp()` is §1 as is; `Config.dcgan64(image_shape=(1, 64, 64))` is §5
with one channel. The DCGAN has about 200 times as many parameters.
"""),
    ("code", r"""
cfg_mlp = dcgan.Config.mlp(seed=0)
cfg_dc = dcgan.Config.dcgan64(image_shape=(1, 64, 64), batch_size=DC_BATCH, seed=0)
mlp, dc = dcgan.Trainer(cfg_mlp), dcgan.Trainer(cfg_dc)
for name, tr in (('mlp', mlp), ('dcgan64', dc)):
    print(f"{name:8s} G {tr.num_params('generator'):>11,}  D {tr.num_params('discriminator'):>10,} parameters")
print()
print(dc.summary())
"""),
    ("md", r"""
## Training

Each model trains in a few chunks; after each chunk it draws 64 samples from the same latent
vectors (`generate(64, seed=...)`), so the grids show how the same points of the latent space
change.
"""),
    ("code", r"""
def train(tr, data, total_steps):
    snaps = [(0, tr.generate(64, seed=SAMPLE_SEED))]
    bounds = np.linspace(0, total_steps, SNAPSHOTS + 1).astype(int)
    t0 = time.time()
    for a, b in zip(bounds[:-1], bounds[1:]):
        tr.fit(data, steps=int(b - a), progress=False)
        snaps.append((int(b), tr.generate(64, seed=SAMPLE_SEED)))
        print(f'  step {b:>6}: d_loss {np.mean(tr.history["d_loss"][-100:]):.3f}  '
              f'g_loss {np.mean(tr.history["g_loss"][-100:]):.3f}  ({time.time() - t0:.0f} s)')
    return snaps, time.time() - t0

mlp_total = MLP_STEPS or cfg_mlp.epochs * (len(x) // cfg_mlp.batch_size)
print(f'mlp: {mlp_total} steps of {cfg_mlp.batch_size}')
mlp_snaps, mlp_time = train(mlp, x, mlp_total)
print(f'dcgan64: {DC_STEPS} steps of {DC_BATCH}')
dc_snaps, dc_time = train(dc, x64, DC_STEPS)
"""),
    ("md", r"""
## Samples during training
"""),
    ("code", r"""
for name, tr, snaps in (('mlp (§1)', mlp, mlp_snaps), ('dcgan64 (§5)', dc, dc_snaps)):
    fig, axes = plt.subplots(1, len(snaps), figsize=(3.2 * len(snaps), 3.4))
    for ax, (step, imgs) in zip(axes, snaps):
        ax.imshow(sample_grid(imgs[:16], nrow=4, value_range=tr.cfg.data_range), cmap='gray')
        ax.set_title(f'step {step}'); ax.axis('off')
    fig.suptitle(name); plt.show()
"""),
    ("md", r"""
## Side by side: the final samples

As in the seed: the same 64 latent vectors through each trained generator.
"""),
    ("code", r"""
fig, axes = plt.subplots(1, 2, figsize=(13, 6.8))
for ax, (name, tr, snaps) in zip(axes, (('basic GAN (mlp)', mlp, mlp_snaps), ('DCGAN (dcgan64)', dc, dc_snaps))):
    ax.imshow(sample_grid(snaps[-1][1], nrow=8, value_range=tr.cfg.data_range), cmap='gray')
    ax.set_title(f'{name}, step {snaps[-1][0]}'); ax.axis('off')
plt.show()
"""),
    ("md", r"""
## Loss curves

D's loss and G's loss, and D's mean output on real images, D(x), and on generated ones,
D(G(z)). An untrained D says 1/2 to everything (D loss 2 ln 2 ≈ 1.39); the basic GAN's real
labels are 0.9, so its D(x) stays below 0.9.
"""),
    ("code", r"""
plot_losses(mlp.history, title='mlp (§1)'); plt.show()
plot_losses(dc.history, title='dcgan64 (§5), MNIST at 64×64'); plt.show()
"""),
    ("md", r"""
## In numbers

Images per second are the training throughput of this machine. "ink" compares the fraction of
dark background and the mean digit of 1000 samples with the data's: MNIST is ~80% background
with the ink in the middle; an untrained generator gives grey noise.
"""),
    ("code", r"""
def describe(name, tr, data, seconds):
    h = {k: np.asarray(v) for k, v in tr.history.items()}
    steps = len(h['d_loss'])
    late = slice(steps // 2, None)
    s = tr.generate(1000, seed=7)
    d = dcgan.prepare_images(data[:1000], tr.cfg.image_shape, tr.cfg.data_range)
    corr = np.corrcoef(s.mean(0).ravel(), d.mean(0).ravel())[0, 1]
    return {'model': name, 'G params': f"{tr.num_params('generator'):,}",
            'D params': f"{tr.num_params('discriminator'):,}", 'steps': steps,
            'images seen': steps * tr.cfg.batch_size, 'seconds': round(seconds),
            'images/s': round(steps * tr.cfg.batch_size / max(seconds, 1e-9)),
            'D(x) late': round(float(h['d_real'][late].mean()), 3),
            'D(G(z)) late': round(float(h['d_fake'][late].mean()), 3),
            'background (data)': f"{(s < -0.8).mean():.2f} ({(d < -0.8).mean():.2f})",
            'mean-digit corr.': round(float(corr), 3)}

rows = [describe('mlp', mlp, x, mlp_time), describe('dcgan64', dc, x64, dc_time)]
for k in rows[0]:
    print(f'{k:>18}  {str(rows[0][k]):>14}  {str(rows[1][k]):>14}')
"""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in CELLS:
        src = src.strip("\n")
        nb.cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    return nb


def main() -> None:
    out = HERE / "seed004_comparison.ipynb"
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
