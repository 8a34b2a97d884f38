"""Writes mnist_dcgan.ipynb, cifar10_dcgan.ipynb and losses.ipynb (without outputs) from the cell
sources below, so the notebooks are reviewed and edited as Python:

    python notebooks/build_notebooks.py                      # rewrite the three notebooks
    python notebooks/run_notebook.py --in-place notebooks/mnist_dcgan.ipynb   # then run one for real (outputs saved)

Every notebook reads ``DCGAN_NOTEBOOK_QUICK=1`` (tiny settings, for CI: tests/test_notebooks.py)
and writes its files under ``$DCGAN_NOTEBOOK_OUT`` (default ``runs/`` beside the notebook, which
git ignores).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent

SETUP = """\
import os, sys, time
from pathlib import Path
import numpy as np
import matplotlib.pyplot as plt
import dcgan
from dcgan.plot import sample_grid, plot_losses, make_gif

os.environ.setdefault('DCGAN_DATA', os.path.abspath('../../shared/data'))
QUICK = os.environ.get('DCGAN_NOTEBOOK_QUICK') == '1'   # tiny settings (CI)
OUT = Path(os.environ.get('DCGAN_NOTEBOOK_OUT', 'runs')) / '{name}'
OUT.mkdir(parents=True, exist_ok=True)
THREADS = 0   # 0 = every core (or OMP_NUM_THREADS)

def show(image, title=None, size=5):
    plt.figure(figsize=(size, size))
    plt.imshow(image, cmap='gray' if image.ndim == 2 else None, vmin=0, vmax=255)
    plt.axis('off')
    if title:
        plt.title(title)
    plt.show()

def read_png(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im)

print('dcgan', dcgan.__version__, '| oneDNN', dcgan.onednn_version, '| quick mode' if QUICK else '')"""

Cell = Tuple[str, str]  # ("md" | "code", source)


# ============================================================================ mnist_dcgan
MNIST: List[Cell] = [
    ("md", """\
# A DCGAN on MNIST: callbacks, checkpoints, exact resume, a GIF of training

The `mnist` preset (REFERENCE §2, the TensorFlow-tutorial DCGAN) trained on the real MNIST digits, with
the training tools of `dcgan.callbacks`:

* `SampleGrid` saves a grid from **fixed noise** every N steps, so the pictures show the generator's progress;
* `ModelCheckpoint` saves the full training state (both networks, Adam moments, BatchNorm statistics, step,
  epoch, data cursor, history), atomically;
* `HistoryLogger` keeps `losses.csv` / `losses.json` up to date.

A checkpoint resumes **exactly**: the run continues with the same losses as if it had never stopped.

Real run: the 60 000 training digits, batch 64, 2 epochs (1 874 steps), about 5 minutes on 2 cores.
`DCGAN_NOTEBOOK_QUICK=1` (CI) uses 512 digits and narrow networks. Files go to `runs/mnist_dcgan/`."""),
    ("code", SETUP.replace("{name}", "mnist_dcgan")),
    ("code", """\
from dcgan.datasets import load_mnist

x, labels = load_mnist(split='train')   # uint8 (60000, 28, 28), from $DCGAN_DATA/mnist
if QUICK:
    x, labels = x[:512], labels[:512]
print(x.shape, x.dtype, 'digits per class:', np.bincount(labels))
show(sample_grid(x[:64], nrow=8), 'real MNIST digits', size=4)"""),
    ("md", """\
## Configuration

`Config.mnist(...)` is the preset; keyword arguments override fields. Batch 64 gives 937 steps per epoch."""),
    ("code", """\
SMALL = dict(g_width=16, d_width=16) if QUICK else {}
cfg = dcgan.Config.mnist(batch_size=64, epochs=2, seed=0, threads=THREADS, **SMALL)
trainer = dcgan.Trainer(cfg)
print(trainer.summary())
steps_per_epoch = len(x) // cfg.batch_size
print(f'{steps_per_epoch} steps per epoch')"""),
    ("md", """\
## First epoch, with callbacks

Callbacks follow the Keras pattern: `on_step(trainer, step, stats)` and `on_epoch_end(trainer, epoch)`.
The sample grids all use the same 64 latent vectors (`seed=1234`)."""),
    ("code", """\
from dcgan.callbacks import SampleGrid, ModelCheckpoint, HistoryLogger

SAMPLE_EVERY = 4 if QUICK else 100
grids = SampleGrid(OUT / 'samples', every_steps=SAMPLE_EVERY, n=64, seed=1234)
ckpts = ModelCheckpoint(OUT / 'checkpoints' / 'epoch_{epoch:03d}.npz', every_epoch=True, keep_last=2)
log = HistoryLogger(csv_path=OUT / 'losses.csv', json_path=OUT / 'losses.json')

t0 = time.time()
trainer.fit(x, epochs=1, callbacks=[grids, ckpts, log])
print(f'{trainer.step_count} steps in {time.time() - t0:.0f} s')
print('grids:', [p.name for p in grids.files[-3:]], '| checkpoints:', [p.name for p in ckpts.files])"""),
    ("code", """\
show(read_png(grids.files[-1]), f'after one epoch ({grids.files[-1].name})')"""),
    ("md", """\
## Exact resume

`Trainer.load` rebuilds a trainer from the checkpoint written at the end of epoch 0. Both the original
trainer and the restored one now take the same 20 steps: the losses and the samples are identical, bit for
bit. (Nothing random is lost: the noise, the dropout masks and the data order are functions of the seed,
the step and the epoch, all of which the checkpoint holds.)"""),
    ("code", """\
restored = dcgan.Trainer.load(ckpts.last)
print(restored)
n = 3 if QUICK else 20
trainer.fit(x, steps=n, progress=False)
restored.fit(x, steps=n, progress=False)
same_losses = all(trainer.history[k][-n:] == restored.history[k][-n:] for k in ('d_loss', 'g_loss', 'd_real', 'd_fake'))
same_samples = np.array_equal(trainer.generate(16, seed=0), restored.generate(16, seed=0))
print('identical losses:', same_losses, '| identical samples:', same_samples)
del trainer"""),
    ("md", """\
## The rest of the run

The restored trainer carries on to the end of epoch 1 with the same callbacks (the grid callback keeps its
fixed noise and its list of files)."""),
    ("code", """\
t0 = time.time()
restored.fit(x, steps=cfg.epochs * steps_per_epoch - restored.step_count, callbacks=[grids, ckpts, log])
print(f'now at step {restored.step_count} ({time.time() - t0:.0f} s)')
fig = plot_losses(restored.history, title='mnist preset, batch 64')
plt.show()"""),
    ("md", """\
D's loss starts near 2 ln 2 ≈ 1.39 (it cannot tell real from fake) and G's near ln 2 ≈ 0.69; in a healthy
run both then hover around their starting values while D(x) stays a little above D(G(z)). See
`losses.ipynb` for what failing runs look like.

## Progress of the fixed-noise grids, and a GIF

`make_gif` turns the saved grids into an animation (written to `runs/mnist_dcgan/progress.gif`); a few of the
frames are shown here."""),
    ("code", """\
gif = make_gif(grids.files, OUT / 'progress.gif', fps=4)
print(f'{gif}: {len(grids.files)} frames, {gif.stat().st_size / 1e3:.0f} kB')
picks = np.unique(np.linspace(0, len(grids.files) - 1, 5).round().astype(int))
fig, axes = plt.subplots(1, len(picks), figsize=(3.2 * len(picks), 3.4))
for ax, i in zip(np.atleast_1d(axes), picks):
    ax.imshow(read_png(grids.files[i]), cmap='gray', vmin=0, vmax=255)
    ax.set_title(grids.files[i].stem.replace('samples_', ''))
    ax.axis('off')
plt.show()"""),
    ("md", """\
## A generator-only file for sampling

`save_generator` keeps only what sampling needs (no discriminator, no Adam moments);
`dcgan.Generator.load` reads it (or a full checkpoint)."""),
    ("code", """\
gen_path = restored.save_generator(OUT / 'generator.npz')
g = dcgan.Generator.load(gen_path)
print(f'{gen_path.name}: {gen_path.stat().st_size / 1e6:.2f} MB; full checkpoint: {ckpts.last.stat().st_size / 1e6:.2f} MB')
show(sample_grid(g.generate(64, seed=7), nrow=8), 'new samples from generator.npz', size=4)"""),
    ("md", """\
## The same from the command line

```
python -m dcgan train --preset mnist --data ../../shared/data/mnist --epochs 2 --batch-size 64 \\
    --sample-every 100 --checkpoint-every 500 --out runs/mnist
python -m dcgan resume --checkpoint runs/mnist/checkpoint.npz --data ../../shared/data/mnist --epochs 4 --out runs/mnist
python -m dcgan sample --checkpoint runs/mnist/checkpoint.npz -n 64 --out grid.png
```
`train` writes `samples_epoch_*.png`, `samples_step_*.png`, `checkpoints/step_*.npz`, `checkpoint.npz`,
`losses.csv`, `losses.png` and `config.json`; `resume --epochs N` continues until the run has N epochs in all."""),
]


# ============================================================================ cifar10_dcgan
CIFAR: List[Cell] = [
    ("md", """\
# A DCGAN on CIFAR-10

The `cifar10` preset (the 32×32×3 Keras DCGAN of rojagtap/DCGAN and its article: G and D updated from one
shared forward pass) on real CIFAR-10 images. This machine has the first 761 images of each official batch
(`cifar10-subset`, 3 805 training images); `load_cifar10` reads the official python batches — or the binary
ones — wherever they are, and uses the full dataset when `$DCGAN_DATA/cifar10/` holds it.

Real run: the 3 805 subset images, batch 64, 12 epochs (708 steps), about 10 minutes on 2 cores. **This is
not enough for this recipe, and the run shows it**: within about 50 steps D wins (D(x) near 0.9, D(G(z))
near 0.1, G's loss climbing), and the samples settle into a few colour templates with a regular checkerboard
texture (the stride-2 transposed convolutions' signature early in training), not objects. It is the recipe and
the amount of data, not the engine: PyTorch running the same layers, initial weights, loss, Adam(1e-4) and
batch on the same images (`bench/compare_recipe_torch.py`) follows the same path, D(x) 0.82 / D(G(z)) 0.18
over steps 25–49 and 0.95 / 0.04 over steps 100–124 (dcgan: 0.83 / 0.17 and 0.95 / 0.04). The source trains
100–400 epochs on all 50 000 images at batch 256. The last section shows what keeps D in check on this
subset. `DCGAN_NOTEBOOK_QUICK=1` (CI) uses 256 images and narrow networks."""),
    ("code", SETUP.replace("{name}", "cifar10_dcgan")),
    ("code", """\
from dcgan.datasets import load_cifar10, CIFAR10_CLASSES

x, y = load_cifar10(split='train')   # uint8 (N, 32, 32, 3), NHWC, RGB
print('found', x.shape, 'images per class:', np.bincount(y))
N_IMAGES = 256 if QUICK else 3805
x, y = x[:N_IMAGES], y[:N_IMAGES]
rows = np.concatenate([x[y == c][:8] for c in range(10)])
show(sample_grid(rows, nrow=8), 'one row per class: ' + ', '.join(CIFAR10_CLASSES), size=4)"""),
    ("md", """\
## Configuration

The preset's optimiser (Adam, lr 1e-4, betas 0.9/0.999, eps 1e-7) and layers; batch 64 instead of 256
because the subset is small (59 steps per epoch)."""),
    ("code", """\
SMALL = dict(g_width=8, d_width=8) if QUICK else {}
EPOCHS = 1 if QUICK else 12
cfg = dcgan.Config.cifar10(batch_size=32 if QUICK else 64, epochs=EPOCHS, seed=0, threads=THREADS, **SMALL)
trainer = dcgan.Trainer(cfg)
print(trainer.summary())"""),
    ("md", """\
## Train

A grid every epoch from fixed noise, the history after every epoch (`HistoryLogger` writes `losses.png`; it
draws nothing into the notebook), and one checkpoint file overwritten every epoch (each write is atomic:
stopping the kernel never leaves a broken file)."""),
    ("code", """\
from dcgan.callbacks import SampleGrid, ModelCheckpoint, HistoryLogger

grids = SampleGrid(OUT / 'samples', n=64, seed=99)   # every epoch
log = HistoryLogger(csv_path=OUT / 'losses.csv', plot_path=OUT / 'losses.png')
ckpt = ModelCheckpoint(OUT / 'checkpoint.npz')
t0 = time.time()
trainer.fit(x, callbacks=[grids, log, ckpt])
print(f'{trainer.step_count} steps in {time.time() - t0:.0f} s')"""),
    ("code", """\
picks = np.unique(np.linspace(0, len(grids.files) - 1, 4).round().astype(int))
fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 4.2))
for ax, i in zip(np.atleast_1d(axes), picks):
    ax.imshow(read_png(grids.files[i]))
    ax.set_title(grids.files[i].stem.replace('samples_', ''))
    ax.axis('off')
plt.show()
make_gif(grids.files, OUT / 'progress.gif', fps=3)
fig = plot_losses(trainer.history, title='cifar10 preset')
plt.show()"""),
    ("md", """\
## Does it copy the training set?

With only a few thousand training images a GAN could memorise them. For a few samples, the nearest training
image in pixel space (top: samples, bottom: their nearest neighbours): similar colours, different images."""),
    ("code", """\
samples = trainer.generate(8, seed=5)                          # float32 (8, 3, 32, 32) in [-1, 1]
s = ((samples.transpose(0, 2, 3, 1) + 1) * 127.5).reshape(8, -1)
t = x.reshape(len(x), -1).astype(np.float32)
d2 = (s ** 2).sum(1)[:, None] + (t ** 2).sum(1)[None] - 2 * s @ t.T
nearest = d2.argmin(1)
pair = np.concatenate([np.clip(s, 0, 255).round().astype(np.uint8).reshape(8, 32, 32, 3), x[nearest]])
show(sample_grid(pair, nrow=8), 'samples (top) and nearest training images (bottom)', size=6)
print('nearest classes:', [CIFAR10_CLASSES[c] for c in y[nearest]])"""),
    ("md", """\
## Sampling from the saved file, and 64×64 inputs

`Generator.load` reads the checkpoint written by the callback. For the 64×64 `dcgan64` preset the same images
are resized with `dcgan.datasets.resize_images` (Pillow, bilinear with area averaging when shrinking); the
command line does this by itself (`python -m dcgan train --preset dcgan64 --data ...`)."""),
    ("code", """\
g = dcgan.Generator.load(ckpt.last)
show(sample_grid(g.generate(64, seed=2024), nrow=8), 'new samples from checkpoint.npz', size=5)

from dcgan.datasets import resize_images
x64 = resize_images(x[:8], 64)
print(x[:8].shape, '->', x64.shape, x64.dtype)
show(sample_grid(x64, nrow=8), '32x32 images resized to 64x64 for dcgan64', size=8)"""),
    ("md", """## Keeping D in check on a small subset

The history above is the "D overpowers G" row of the table in `losses.ipynb`. Measured with
`bench/compare_recipe_torch.py` over 300 steps on the same 3 805 images (batch 64; 2-core AVX-512 VM):

| setting | D(x), D(G(z)) over steps 100–149 | over steps 250–299 |
|---|---|---|
| the preset: Adam(1e-4), no smoothing | 0.93, 0.05 (PyTorch: 0.95, 0.04) | 0.91, 0.12 (PyTorch: 0.94, 0.05) |
| `label_smoothing=0.2, lr=2e-4, beta1=0.5` | 0.54, 0.26 | 0.58, 0.22 |
| `label_smoothing=0.1, lr_g=4e-4, lr_d=1e-4` | 0.65, 0.16 | 0.75, 0.11 |

One-sided label smoothing with the DCGAN paper's Adam(2e-4, β1 0.5) keeps the game balanced; after 300 steps
its samples are still a handful of templates, so on this subset they need many more steps, and on the full
50 000 images the preset's own recipe is the one the source trains:
`dcgan.Config.cifar10(label_smoothing=0.2, lr=2e-4, beta1=0.5)`."""),
]


# ============================================================================ losses
LOSSES: List[Cell] = [
    ("md", """\
# Reading a GAN's loss curves: healthy, collapsed, overpowered

A GAN's losses do not go down like a classifier's: the two networks play against each other, and a good run
looks *flat*. This notebook trains three short runs on MNIST and reads their histories:

1. **healthy**: the `mnist` preset, started from the command line, which writes `losses.csv` and
   `checkpoint.npz`; we read the history back from both;
2. **mode collapse**: the same model with G's learning rate raised 100× (`lr_g=2e-2`);
3. **D overpowers G**: G's learning rate cut to almost nothing (`lr_g=1e-6`), with `EarlyStop` watching.

Real run: three runs of 400 steps (batch 64, networks of width 32), about 3 minutes on 2 cores.
`DCGAN_NOTEBOOK_QUICK=1` (CI) takes a few steps with tiny networks; its curves mean nothing."""),
    ("code", SETUP.replace("{name}", "losses")),
    ("md", """\
## 1. A healthy run, from the command line

`--config` takes a JSON (or TOML) file of `Config` fields on top of a preset."""),
    ("code", """\
import json, subprocess
from dcgan.plot import load_history_csv

WIDTH = 8 if QUICK else 32
STEPS = 12 if QUICK else 400
BATCH = 64
(OUT / 'healthy.json').write_text(json.dumps(
    {'preset': 'mnist', 'batch_size': BATCH, 'g_width': WIDTH, 'd_width': WIDTH, 'seed': 0, 'threads': THREADS}))
mnist_dir = Path(os.environ['DCGAN_DATA']) / 'mnist'
cmd = [sys.executable, '-m', 'dcgan', 'train', '--config', str(OUT / 'healthy.json'), '--data', str(mnist_dir),
       '--max-images', str(STEPS * BATCH), '--epochs', '1', '--no-progress', '--out', str(OUT / 'healthy')]
print(' '.join(cmd[1:]))
t0 = time.time()
r = subprocess.run(cmd, capture_output=True, text=True)
print(r.stdout[-600:], r.stderr[-600:], f'exit {r.returncode}, {time.time() - t0:.0f} s', sep='\\n')
assert r.returncode == 0
print(sorted(p.name for p in (OUT / 'healthy').iterdir()))"""),
    ("md", """\
The history comes back from the CSV (one row per step) or from the checkpoint, which holds it too:"""),
    ("code", """\
h_csv = load_history_csv(OUT / 'healthy' / 'losses.csv')
healthy = dcgan.Trainer.load(OUT / 'healthy' / 'checkpoint.npz')
h = healthy.history
print({k: len(v) for k, v in h_csv.items()})
print('CSV and checkpoint agree:', np.allclose(h_csv['d_loss'], h['d_loss']) and h_csv['epoch'] == h['epoch'])
fig = plot_losses(h, title='healthy')
plt.show()"""),
    ("md", """\
**What healthy looks like.** With the non-saturating BCE losses used here:

* D's loss starts at 2 ln 2 ≈ 1.39 (D outputs 0.5 for everything) and stays in the range ~0.9–1.4;
* G's loss starts at ln 2 ≈ 0.69 and wanders around ~0.7–1.5, with no steady trend;
* D(x) (D's mean output on real images) sits a little above 0.5, D(G(z)) a little below: D is slightly ahead,
  so it still gives G a useful gradient;
* the curves are noisy but *stationary*. A loss that goes down and stays down is a warning sign, not success.

## 2. Mode collapse: G's learning rate 100× too high"""),
    ("code", """\
from dcgan.callbacks import EarlyStop

x, _ = dcgan.datasets.load_mnist(split='train')
x = x[:STEPS * BATCH]

def run(**overrides):
    cfg = dcgan.Config.mnist(batch_size=BATCH, g_width=WIDTH, d_width=WIDTH, seed=0, threads=THREADS, **overrides)
    tr = dcgan.Trainer(cfg)
    stop = EarlyStop(monitor='d_loss', below=0.05, patience=50)
    tr.fit(x, steps=STEPS, callbacks=[stop], progress=False)
    return tr, stop

collapsed, _ = run(lr_g=2e-2)
fig = plot_losses(collapsed.history, title='lr_g = 2e-2 (G 100x too fast)')
plt.show()"""),
    ("md", """\
The curves look *better* than the healthy ones: D's loss sits at 2 ln 2, D(x) = D(G(z)) = 0.5, almost no
noise. But D is not fooled by good images — G moves so fast that D cannot follow it, and G has found one
output that works for every z. Only the samples show it:"""),
    ("code", """\
def diversity(images):
    # mean distance between pairs of images, relative to that of real digits (1 = as varied as MNIST)
    def pairwise(a):
        f = a.reshape(len(a), -1).astype(np.float64)
        sq = (f ** 2).sum(1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * f @ f.T, 0))
        return d[np.triu_indices(len(f), 1)].mean()
    real = x[:64].astype(np.float32) / 127.5 - 1
    return pairwise(images) / pairwise(real)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
for ax, (name, tr) in zip(axes, [('healthy', healthy), ('lr_g = 2e-2', collapsed)]):
    s = tr.generate(36, seed=1)
    ax.imshow(sample_grid(s, nrow=6), cmap='gray', vmin=0, vmax=255)
    ax.set_title(f'{name}: diversity {diversity(s):.2f}')
    ax.axis('off')
plt.show()"""),
    ("md", """\
## 3. D overpowers G

With `lr_g=1e-6` G barely moves, so D learns to separate real from fake perfectly: D's loss falls towards 0,
D(x) → 1, D(G(z)) → 0, and G's loss climbs (log D(G(z)) → −∞). Once D is that sure, G's gradient
vanishes and the run cannot recover. `EarlyStop(monitor='d_loss', below=0.05, patience=50)` ends such a run
by itself (it also stops at the first NaN)."""),
    ("code", """\
overpowered, stop = run(lr_g=1e-6)
print('stopped early:', stop.reason or 'no', f'| {overpowered.step_count} of {STEPS} steps')
fig = plot_losses(overpowered.history, title='lr_g = 1e-6 (D wins)')
plt.show()
show(sample_grid(overpowered.generate(36, seed=1), nrow=6), 'its samples: still noise', size=3.5)"""),
    ("md", """\
## The three side by side

Means over the last quarter of each run:"""),
    ("code", """\
runs = {'healthy': healthy, 'mode collapse (lr_g 2e-2)': collapsed, 'D wins (lr_g 1e-6)': overpowered}
print(f"{'run':<28}{'D loss':>8}{'G loss':>8}{'D(x)':>7}{'D(G(z))':>9}{'G loss sd':>11}{'diversity':>11}")
for name, tr in runs.items():
    hh = {k: np.asarray(v) for k, v in tr.history.items()}
    tail = slice(3 * len(hh['d_loss']) // 4, None)
    m = {k: hh[k][tail].mean() for k in ('d_loss', 'g_loss', 'd_real', 'd_fake')}
    print(f"{name:<28}{m['d_loss']:8.3f}{m['g_loss']:8.3f}{m['d_real']:7.3f}{m['d_fake']:9.3f}"
          f"{hh['g_loss'][tail].std():11.3f}{diversity(tr.generate(64, seed=1)):11.2f}")

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), sharey=True)
for ax, (name, tr) in zip(axes, runs.items()):
    ax.plot(tr.history['d_real'], lw=0.8, label='D(x)')
    ax.plot(tr.history['d_fake'], lw=0.8, label='D(G(z))')
    ax.axhline(0.5, color='0.5', ls='--', lw=0.8)
    ax.set_title(name)
    ax.set_xlabel('step')
axes[0].legend()
plt.show()"""),
    ("md", """\
**Reading the signs**

| symptom in the history | likely cause | what to try |
|---|---|---|
| D loss → 0, D(x) → 1, D(G(z)) → 0, G loss climbing | D overpowers G | lower `lr_d` / raise `lr_g`, `label_smoothing=0.1`, fewer D steps |
| everything pinned at 0.5 / 2 ln 2 / ln 2, little noise | D cannot follow G (or learns nothing) | look at the samples; lower `lr_g` |
| G loss oscillating wildly, samples all alike | mode collapse | lower `lr_g`, `beta1=0.5`, a bigger batch |
| NaN | divergence | lower learning rates; `EarlyStop` stops the run |

Losses only tell part of the story: always look at the fixed-noise grids (`SampleGrid`) as well."""),
]


def build(cells: List[Cell]):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for kind, src in cells:
        nb.cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    for i, c in enumerate(nb.cells):  # stable ids: rebuilding gives the same file
        c["id"] = f"cell-{i:02d}"
    return nb


NOTEBOOKS = {"mnist_dcgan.ipynb": MNIST, "cifar10_dcgan.ipynb": CIFAR, "losses.ipynb": LOSSES}


def main() -> None:
    import nbformat

    names = sys.argv[1:] or list(NOTEBOOKS)
    for name in names:
        nb = build(NOTEBOOKS[name])
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
