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
import numbers
import os
import re
import struct
import tokenize
import zipfile
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from ._io import atomic_write

FORMAT = "dcgan-checkpoint"
VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]
KINDS = ("full", "generator")
# What zipfile and np.load raise on a damaged archive (found by fuzzing: a mutated version
# field gives NotImplementedError, a mutated header struct.error).
# tokenize.TokenError and SyntaxError: NumPy parses a .npy header as Python source (a header cut
# short inside a bracket raises TokenError; found by fuzzing).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError, IndexError,
               NotImplementedError, RuntimeError, OverflowError, UnicodeDecodeError, struct.error, MemoryError,
               tokenize.TokenError, SyntaxError)
NETS = ("generator", "discriminator")
#: Largest counter a checkpoint may hold (the core's limit: far beyond any run, and safe from
#: overflow in everything derived from it).
MAX_COUNTER = 1 << 48
TRAIN_STATE_FIELDS = ("step", "adam_t_d", "adam_t_g", "epoch", "cursor")
HISTORY_FIELDS = ("d_loss", "g_loss", "d_real", "d_fake", "epoch")
MAX_META_BYTES = 64 << 20
# Entry names: meta.json, "<net>/<layer>.<param>" and "<net>.adam/m|v" (np.savez adds ".npy").
_ENTRY = re.compile(r"^(meta\.json|(generator|discriminator)/\d+\.(weight|bias|running_mean|running_var)"
                    r"|(generator|discriminator)\.adam/[mv])\.npy$")


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
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except _ZIP_ERRORS as e:
        raise ValueError(f"{path} is not a readable dcgan checkpoint (damaged or another format): {e}") from e
    for k, a in arrays.items():  # np.load hands back raw bytes for an entry that is not .npy
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{path}: entry {k!r} is not a NumPy array (damaged or another format)")
    if "meta.json" not in arrays:
        raise ValueError(f"{path} is not a dcgan checkpoint: it has no meta.json entry")
    try:
        meta = json.loads(arrays.pop("meta.json").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: meta.json is damaged: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a dcgan checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint format version {meta.get('version')!r}; this dcgan reads version {VERSION}")
    for k in ("config", "kind"):
        if k not in meta:
            raise ValueError(f"{path}: meta.json lacks '{k}'")
    _check_meta(path, meta)
    _check_arrays(path, arrays)
    return meta, arrays


def _check_members(path: Path) -> None:
    """Before anything is read: only the entries a checkpoint has, each stored (not compressed)
    and together no larger than the file, so reading costs no more than the file's size."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except _ZIP_ERRORS as e:
        raise ValueError(f"{path} is not a readable dcgan checkpoint (damaged or another format): {e}") from e
    size = path.stat().st_size
    if not any(info.filename == "meta.json.npy" for info in infos):
        raise ValueError(f"{path} is not a dcgan checkpoint: it has no meta.json entry")
    total = 0
    for info in infos:
        if not _ENTRY.match(info.filename):
            raise ValueError(f"{path}: unexpected entry {info.filename!r} (a dcgan checkpoint holds meta.json, "
                             f"network parameters and Adam moments only)")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
            raise ValueError(f"{path}: entry {info.filename!r} declares {info.file_size} bytes "
                             f"(compression {info.compress_type}) in a file of {size} bytes; dcgan writes "
                             f"stored entries only")
        if info.filename == "meta.json.npy" and info.file_size > MAX_META_BYTES:
            raise ValueError(f"{path}: meta.json declares {info.file_size} bytes, more than {MAX_META_BYTES}")
        total += info.file_size
    if total > size:
        raise ValueError(f"{path}: its entries declare {total} bytes in a file of {size} bytes (damaged)")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_meta(path: Path, meta: Dict[str, Any]) -> None:
    """Every header field the loader uses, by type and range, each error naming the field."""
    if meta["kind"] not in KINDS:
        raise ValueError(f"{path}: meta.json 'kind' is {meta['kind']!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(meta["config"], dict):
        raise ValueError(f"{path}: meta.json 'config' must be an object, got {type(meta['config']).__name__}")
    ts = meta.get("train_state", {})
    if not isinstance(ts, dict):
        raise ValueError(f"{path}: meta.json 'train_state' must be an object, got {type(ts).__name__}")
    for k, v in ts.items():
        if k not in TRAIN_STATE_FIELDS:
            raise ValueError(f"{path}: meta.json 'train_state' has an unknown field {k!r}")
        if not _is_int(v) or not 0 <= v <= MAX_COUNTER:
            raise ValueError(f"{path}: meta.json 'train_state.{k}' = {v!r}; expected an integer in [0, 2^48]")
    hist = meta.get("history", {})
    if not isinstance(hist, dict):
        raise ValueError(f"{path}: meta.json 'history' must be an object, got {type(hist).__name__}")
    lengths = set()
    for k, v in hist.items():
        if k not in HISTORY_FIELDS:
            raise ValueError(f"{path}: meta.json 'history' has an unknown series {k!r}")
        if not isinstance(v, list) or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v):
            raise ValueError(f"{path}: meta.json 'history.{k}' must be a list of numbers")
        lengths.add(len(v))
    if len(lengths) > 1:
        raise ValueError(f"{path}: meta.json 'history' series differ in length ({sorted(lengths)})")
    ev = meta.get("eval_history", {})
    if not isinstance(ev, dict):
        raise ValueError(f"{path}: meta.json 'eval_history' must be an object, got {type(ev).__name__}")
    ev_lengths = set()
    for k, v in ev.items():
        if not isinstance(k, str) or not isinstance(v, list):
            raise ValueError(f"{path}: meta.json 'eval_history.{k}' must be a list")
        ev_lengths.add(len(v))
    if len(ev_lengths) > 1:
        raise ValueError(f"{path}: meta.json 'eval_history' series differ in length ({sorted(ev_lengths)})")
    if hist and meta["kind"] == "full" and lengths and lengths.pop() != ts.get("step", 0):
        raise ValueError(f"{path}: meta.json 'history' has {len(next(iter(hist.values())))} steps but "
                         f"'train_state.step' is {ts.get('step', 0)}")


def _check_arrays(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Nothing poisoned: float32, finite, and non-negative where only that makes sense (BatchNorm
    running variances, Adam's second moments)."""
    for k, a in arrays.items():
        if a.dtype != np.float32:
            raise ValueError(f"{path}: {k} is {a.dtype}, expected float32")
        if a.size and not np.isfinite(a).all():
            raise ValueError(f"{path}: {k} holds NaN or Inf")
        if (k.endswith(".running_var") or k.endswith(".adam/v")) and a.size and a.min() < 0:
            raise ValueError(f"{path}: {k} has negative values ({a.min():g}); it must be >= 0")


def split(arrays: Dict[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    """The entries under ``prefix/``, with the prefix removed."""
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
