"""The per-step training history as files: CSV and JSON, written atomically and read back.

A history is what :attr:`dcgan.Trainer.history` holds: a dict of per-step
lists (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, ``epoch``, optionally
``step``). The writers also accept the trainer itself.

* :func:`save_history_csv` / :func:`load_history_csv`: columns
  ``step,epoch,d_loss,g_loss,d_real,d_fake``, floats with 9 significant digits.
* :func:`save_history_json` / :func:`load_history_json`: one list per column,
  NaN as ``null``.

Needs only NumPy and the standard library (no Matplotlib, no ``dcgan._core``);
:mod:`dcgan.plot` re-exports these functions and draws the history with
:func:`dcgan.plot.plot_losses`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ._io import atomic_write

__all__ = ["HISTORY_COLUMNS", "save_history_csv", "load_history_csv", "save_history_json", "load_history_json"]

PathLike = Union[str, "os.PathLike[str]"]

#: Column order of :func:`save_history_csv`.
HISTORY_COLUMNS = ("step", "epoch", "d_loss", "g_loss", "d_real", "d_fake")


# ---------------------------------------------------------------------------
# History helpers
# ---------------------------------------------------------------------------


def _history_dict(history: Any) -> Mapping[str, Sequence]:
    """Accept a history mapping or anything with a ``.history`` mapping (a Trainer)."""
    if not isinstance(history, Mapping) and hasattr(history, "history"):
        history = history.history
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a dict of per-step lists, got {type(history).__name__}")
    return history


def _num_steps(h: Mapping[str, Sequence]) -> int:
    lengths = {k: len(h[k]) for k in HISTORY_COLUMNS if k in h and h[k] is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history lists have different lengths: {lengths}")
    return next(iter(lengths.values()), 0)


def _steps(h: Mapping[str, Sequence], n: int) -> np.ndarray:
    """Step numbers: ``history["step"]`` if present, else 0, 1, ..., n-1."""
    if h.get("step") is not None:
        return np.asarray(h["step"])
    return np.arange(n)


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return format(float(v), ".9g")  # round-trips float32


def save_history_csv(history: Any, path: PathLike) -> Path:
    """Write a training history as CSV (atomically).

    Columns: ``step,epoch,d_loss,g_loss,d_real,d_fake``, one row per step.
    ``step`` is ``history["step"]`` if present, else the 0-based row index;
    columns missing from ``history`` are left empty. Floats are written with 9
    significant digits (exact for float32).

    Returns the path written.
    """
    h = _history_dict(history)
    n = _num_steps(h)
    steps = _steps(h, n)
    cols: Dict[str, Optional[Sequence]] = {k: h.get(k) for k in HISTORY_COLUMNS}
    cols["step"] = steps

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HISTORY_COLUMNS)
    for i in range(n):
        row = []
        for k in HISTORY_COLUMNS:
            col = cols[k]
            if col is None:
                row.append("")
            elif k in ("step", "epoch"):
                row.append(str(int(col[i])))
            else:
                row.append(_fmt(col[i]))
        w.writerow(row)
    data = buf.getvalue().encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def load_history_csv(path: PathLike) -> Dict[str, List]:
    """Read a CSV written by :func:`save_history_csv` back into a history dict.

    ``step`` and ``epoch`` come back as ints, the others as floats; columns that
    are empty throughout are left out.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out: Dict[str, List] = {}
    fields = rows[0].keys() if rows else HISTORY_COLUMNS
    for k in fields:
        vals = [r[k] for r in rows]
        if rows and all(v == "" for v in vals):
            continue
        conv = int if k in ("step", "epoch") else float
        out[k] = [conv(v) if v != "" else math.nan for v in vals]
    return out


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def save_history_json(history: Any, path: PathLike) -> Path:
    """Write a training history as JSON (atomically).

    One object with a list per column (``step``, ``epoch``, ``d_loss``,
    ``g_loss``, ``d_real``, ``d_fake``, plus any other per-step list in the
    history); NaN and infinities are written as ``null`` (JSON has no NaN).
    ``step`` is ``history["step"]`` if present, else ``0 .. n-1``.
    """
    import json

    h = _history_dict(history)
    n = _num_steps(h)
    out: Dict[str, List] = {"step": [int(v) for v in _steps(h, n)]}
    for k, col in h.items():
        if k == "step" or col is None:
            continue
        try:
            vals = list(col)
        except TypeError:
            continue
        if len(vals) != n:
            continue
        if k == "epoch":
            out[k] = [int(v) for v in vals]
        else:
            out[k] = [float(v) if v is not None and math.isfinite(float(v)) else None for v in vals]
    data = (json.dumps(out, allow_nan=False) + "\n").encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def load_history_json(path: PathLike) -> Dict[str, List]:
    """Read a JSON history (from :func:`save_history_json`); ``null`` comes back as NaN."""
    import json

    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    if isinstance(obj, dict) and isinstance(obj.get("history"), dict):
        obj = obj["history"]  # a file that wraps the history, e.g. {"history": {...}, ...}
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object of per-step lists")
    out: Dict[str, List] = {}
    for k, vals in obj.items():
        if not isinstance(vals, list):
            continue
        if k in ("step", "epoch"):
            out[k] = [int(v) for v in vals]
        else:
            out[k] = [math.nan if v is None else float(v) for v in vals]
    return out
