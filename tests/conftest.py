"""Shared test helpers: where the real data lives, and a guard against silent skips."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """$DCGAN_DATA, or ../shared/data beside the repository (as in CI)."""
    env = os.environ.get("DCGAN_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    d = data_root() / "mnist"
    if not (d / "train-images-idx3-ubyte.gz").exists():
        # Real-data tests are part of the contract: fail loudly instead of skipping.
        pytest.fail(f"real MNIST not found in {d}; set DCGAN_DATA to the folder holding mnist/")
    return d


# ----------------------------------------------------------------------------- backends
# Every test that takes the `device` fixture (directly, or through `core_on` below) runs once per
# backend built into this installation and usable here: a new backend inherits the layer, step and
# PyTorch-reference tests. Backends built but unusable (e.g. CUDA without a GPU) are reported as
# skipped with the reason the core gives.
def _backends():
    import dcgan

    return dcgan.backends()


def _device_params():
    out = []
    for b in _backends():
        marks = [] if b["available"] else [pytest.mark.skip(reason=f"{b['name']}: {b['unavailable_reason']}")]
        out.append(pytest.param(b["name"], marks=marks, id=b["name"]))
    return out


@pytest.fixture(params=_device_params())
def device(request) -> str:
    return request.param


class CoreOnDevice:
    """``dcgan._core`` with ``Network`` and ``Trainer`` created on one backend: tests written
    against ``core.Network(...)`` / ``core.Trainer(cfg)`` run unchanged on every backend."""

    def __init__(self) -> None:
        from dcgan import _core

        self._core = _core
        self.device = "cpu"

    def Network(self, *args, **kwargs):
        kwargs.setdefault("device", self.device)
        return self._core.Network(*args, **kwargs)

    def Trainer(self, cfg):
        return self._core.Trainer({**cfg, "device": self.device})

    def __getattr__(self, name):
        return getattr(self._core, name)


def bars(n: int, seed: int = 0, classes=(0, 1, 2, 3)):
    """A labelled toy dataset for classifier and evaluation tests: 28x28 uint8 images of four
    classes (a horizontal or vertical bar, in the top or bottom half, at a random place) on
    noise, and their labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 50, size=(n, 28, 28)).astype(np.uint8)
    y = rng.choice(np.asarray(classes), size=n)
    for i in range(n):
        r = rng.integers(2, 10) + (14 if y[i] >= 2 else 0)
        c = rng.integers(4, 20)
        if y[i] % 2 == 0:
            x[i, r:r + 3, c:c + 8] = 255
        else:
            x[i, r - 2:r + 4, c:c + 2] = 255
    return x, y
