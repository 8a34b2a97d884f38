"""The mnist preset trained on real MNIST for a few hundred steps learns, in ways that can fail."""
from __future__ import annotations

import numpy as np
import pytest

import dcgan
from dcgan.datasets import load_mnist

pytestmark = pytest.mark.slow  # real-data training: pytest -m slow (CI runs it)

STEPS = 300


@pytest.fixture(scope="module")
def trained(mnist_dir):
    x, _ = load_mnist(mnist_dir, split="train")
    x = x[:20000]
    cfg = dcgan.Config.mnist(batch_size=64, seed=0, threads=2)
    tr = dcgan.Trainer(cfg)
    before = tr.generate(256, seed=123)
    tr.fit(x, steps=STEPS, progress=False)
    after = tr.generate(256, seed=123)
    data = dcgan.prepare_images(x[:2000], cfg.image_shape, cfg.data_range)
    return tr, before, after, data


def test_losses_finite_and_recorded(trained):
    tr, *_ = trained
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        v = np.asarray(tr.history[k])
        assert v.shape == (STEPS,), k
        assert np.isfinite(v).all(), k
    # An untrained D says ~0.5 to everything: BCE(real)+BCE(fake) = 2 ln 2.
    assert abs(tr.history["d_loss"][0] - 2 * np.log(2)) < 0.15
    assert abs(tr.history["g_loss"][0] - np.log(2)) < 0.15


def test_losses_move_like_gan_training(trained):
    tr, *_ = trained
    h = {k: np.asarray(v) for k, v in tr.history.items()}
    # D learns to tell real from fake: D(x) above D(G(z)) on average after the start (a
    # 0.03-0.05 gap with this recipe: dropout keeps D weak, as in the TF tutorial)...
    late = slice(STEPS // 2, None)
    assert h["d_real"][late].mean() > h["d_fake"][late].mean() + 0.01
    # ...and its loss stays below the chance level 2 ln 2 it started at.
    assert h["d_loss"][late].mean() < 2 * np.log(2) - 0.01
    # G keeps being pushed: its loss is not stuck at the initial value.
    assert np.std(h["g_loss"][late]) > 1e-3
    assert h["epoch"][-1] == (STEPS - 1) // (20000 // 64)


def test_samples_move_from_noise_toward_data(trained):
    tr, before, after, data = trained
    assert after.shape == (256, 1, 28, 28) and after.dtype == np.float32
    assert after.min() >= -1 and after.max() <= 1

    def background(a):  # MNIST is mostly black background: -1 after scaling
        return float((a < -0.8).mean())

    def mean_image_corr(a):
        return float(np.corrcoef(a.mean(0).ravel(), data.mean(0).ravel())[0, 1])

    # Untrained G gives grey noise; trained G gives mostly-background images with ink in the
    # middle, like the data.
    assert background(before) < 0.2
    assert background(after) > 0.5, background(after)
    assert abs(after.mean() - data.mean()) < 0.5 * abs(before.mean() - data.mean())
    assert mean_image_corr(after) > 0.6, mean_image_corr(after)
    assert mean_image_corr(after) > mean_image_corr(before) + 0.3
    # Not collapsed to a single image.
    assert after.std(axis=0).mean() > 0.1
