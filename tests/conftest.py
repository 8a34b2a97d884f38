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
