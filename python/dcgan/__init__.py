"""dcgan: GANs and DCGANs trained end to end by a C++ core (oneDNN on the CPU).

>>> import dcgan
>>> cfg = dcgan.Config.mnist(batch_size=64)
>>> trainer = dcgan.Trainer(cfg)
>>> trainer.fit(images, epochs=5)
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

from .config import Config
from .trainer import Generator, Trainer, prepare_images, _core
from . import callbacks
from .callbacks import Callback, EarlyStop, Evaluate, HistoryLogger, ModelCheckpoint, SampleGrid

__version__ = "0.1.0"


def backends() -> List[Dict[str, Any]]:
    """The backends built into this installation, one dict each: ``name`` (what
    ``Config.device`` takes), ``library`` (e.g. ``"oneDNN 3.2.0"``), ``detail`` (for the CPU, the
    instruction set oneDNN dispatches to, e.g. ``"avx512_core_bf16"``), ``available`` and, when
    not, ``unavailable_reason``."""
    return [dict(b) for b in _core.backends()]


def cuda_available() -> bool:
    """True when this installation has the CUDA backend (built with ``DCGAN_CUDA=ON``) and a
    usable NVIDIA GPU; ``dcgan.backends()`` says why not otherwise."""
    return any(b["name"] == "cuda" and b["available"] for b in backends())


onednn_version = next(b["library"].split()[-1] for b in backends() if b["name"] == "cpu")

__all__ = ["backends", "cuda_available", "Config", "Trainer", "Generator", "Callback", "SampleGrid", "ModelCheckpoint", "HistoryLogger",
           "EarlyStop", "Evaluate", "FeatureNet", "prepare_images", "callbacks", "datasets", "plot", "metrics",
           "features", "__version__"]


def __getattr__(name: str) -> Any:
    # datasets and plot load lazily: plot pulls in matplotlib.
    if name in ("datasets", "plot", "metrics", "features"):
        return importlib.import_module(f".{name}", __name__)
    if name == "FeatureNet":
        return importlib.import_module(".features", __name__).FeatureNet
    raise AttributeError(f"module 'dcgan' has no attribute {name!r}")
