"""Checkpoint files: the full training state in one ``.npz`` that executes nothing on load.

Layout (format version 1), every entry a plain NumPy array (``np.load(..., allow_pickle=False)``):

- ``meta.json``: uint8 bytes of a UTF-8 JSON object ``{"format": "dcgan-checkpoint",
  "version": 1, "kind": "full" | "generator", "config": Config.to_dict(), "train_state":
  {"step", "adam_t_d", "adam_t_g", "epoch", "cursor"}, "history": {...}, "dcgan_version"}``
- ``generator/<name>``, ``discriminator/<name>``: parameters by PyTorch-style name
  (``0.weight``), and BN running statistics (``1.running_mean``, ``1.running_var``)
- ``generator.adam/m``, ``generator.adam/v`` (and the discriminator's): Adam moments over the
  flat parameter vector (parameters in layer order, each in its PyTorch layout)

A "generator" checkpoint holds only ``meta.json`` and the ``generator/`` entries.
RNG state needs no entry: noise, dropout masks and the data order are functions of
(seed, step, epoch), all in ``meta.json``. Files are written to a temporary file in the same
folder and renamed over the target, so a crash mid-save leaves the previous file intact.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from ._io import atomic_write

FORMAT = "dcgan-checkpoint"
VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]


def npz_path(path: PathLike) -> Path:
    """The file a checkpoint named ``path`` lives in: ``path`` itself when it ends in ``.npz``,
    else ``path`` + ``.npz`` (``"run"`` -> ``run.npz``, ``"run.v2"`` -> ``run.v2.npz``)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def write(path: PathLike, meta: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> Path:
    """Atomically writes ``arrays`` and ``meta`` to :func:`npz_path` of ``path``; returns it."""
    path = npz_path(path)
    entries = dict(arrays)
    entries["meta.json"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **entries))
    return path


def read(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Reads a checkpoint written to ``path`` (with or without ``.npz``, as :func:`write` was
    given it); raises ValueError for anything that is not an intact one."""
    path = Path(path)
    if not path.is_file() and npz_path(path).is_file():
        path = npz_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}" + ("" if path.suffix == ".npz" else f" or {npz_path(path)}"))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{path} is not a readable dcgan checkpoint (damaged or another format): {e}") from e
    if "meta.json" not in arrays:
        raise ValueError(f"{path} is not a dcgan checkpoint: it has no meta.json entry")
    try:
        meta = json.loads(arrays.pop("meta.json").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: meta.json is damaged: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a dcgan checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint format version {meta.get('version')!r}; this dcgan reads version {VERSION}")
    for k in ("config", "kind"):
        if k not in meta:
            raise ValueError(f"{path}: meta.json lacks '{k}'")
    return meta, arrays


def split(arrays: Dict[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    """The entries under ``prefix/``, with the prefix removed."""
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
