"""One Trainer used from two Python threads (fit in the background, sampling in the foreground)
works: the core serialises the calls, and training gives the same losses as undisturbed."""
from __future__ import annotations

import threading

import numpy as np

import dcgan


def small_cfg():
    return dcgan.Config.mnist(batch_size=8, g_width=4, d_width=4, z_dim=8, seed=5)


def test_fit_in_a_thread_while_sampling():
    x = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
    ref = dcgan.Trainer(small_cfg())
    ref.fit(x, steps=40, progress=False)

    tr = dcgan.Trainer(small_cfg())
    errors = []

    def train():
        try:
            tr.fit(x, steps=40, progress=False)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=train)
    t.start()
    samples = []
    while t.is_alive() or not samples:
        # n == batch_size: generate runs on the training network itself, so without the
        # core's lock it would overwrite activations mid-step.
        samples.append(tr.generate(8, seed=1))
        tr.weights("discriminator")
    t.join()
    assert not errors
    assert tr.step_count == 40
    assert all(s.shape == (8, 1, 28, 28) and np.isfinite(s).all() for s in samples)
    # Sampling in inference mode does not disturb training.
    assert tr.history["d_loss"] == ref.history["d_loss"]
