"""Pictures and logs of a training run: sample grids, loss curves, CSV history.

Needs only NumPy, Pillow and Matplotlib (no ``dcgan._core``).

* :func:`sample_grid` tiles generated images ``(n, C, H, W)`` into one uint8
  picture and optionally saves it as PNG.
* :func:`plot_losses` draws the per-step history of a :class:`dcgan.Trainer`
  (``trainer.history``) and returns a Matplotlib :class:`~matplotlib.figure.Figure`.
* :func:`save_history_csv` / :func:`load_history_csv` and
  :func:`save_history_json` / :func:`load_history_json` write and read that
  history; they live in :mod:`dcgan.history` (no Matplotlib) and are
  re-exported here.
* :func:`make_gif` turns the fixed-noise grids saved during training into an
  animated GIF.

All writers are atomic: they write a temporary file in the destination folder
and ``os.replace`` it over the target, so a reader (or a crash) never sees a
half-written file.
"""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._io import atomic_write
from .history import (HISTORY_COLUMNS, _history_dict, _num_steps, _steps, load_history_csv,  # noqa: F401
                      load_history_json, save_history_csv, save_history_json)

__all__ = ["sample_grid", "save_image", "plot_losses", "plot_metrics", "make_gif", "save_history_csv", "load_history_csv",
           "save_history_json", "load_history_json"]

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------


_atomic_write = atomic_write  # the one implementation, shared with checkpoints


# ---------------------------------------------------------------------------
# Sample grids
# ---------------------------------------------------------------------------


def _as_nchw(images: Any) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 2:  # one (H, W) image
        x = x[None, None]
    elif x.ndim == 3:  # (n, H, W)
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):  # (n, H, W, C)
            x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"images must have shape (n, C, H, W) or (n, H, W), got {x.shape}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape} (n, C, H, W)")
    if x.shape[0] == 0:
        raise ValueError("no images to tile (n = 0)")
    return x


def _to_uint8(x: np.ndarray, value_range: Tuple[float, float]) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (lo, hi) with hi > lo, got {value_range}")
    y = (np.asarray(x, dtype=np.float32) - lo) * np.float32(255.0 / (hi - lo))
    y = np.nan_to_num(y, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(y, 0.0, 255.0)).astype(np.uint8)


def sample_grid(
    images: Any,
    nrow: Optional[int] = None,
    path: Optional[PathLike] = None,
    value_range: Tuple[float, float] = (-1.0, 1.0),
    padding: int = 2,
    pad_value: int = 0,
) -> np.ndarray:
    """Tile images into one picture (and save it as PNG if ``path`` is given).

    Parameters
    ----------
    images:
        Array ``(n, C, H, W)`` with ``C`` = 1 or 3 (what ``Trainer.generate``
        returns). ``(n, H, W)`` (grey) and ``(n, H, W, C)`` are accepted too.
        Float images are mapped from ``value_range`` to 0..255 (values outside
        are clipped, NaN becomes 0); ``uint8`` images are used as they are.
    nrow:
        Images per row of the grid, as in ``torchvision.utils.make_grid``
        (default ``ceil(sqrt(n))``); the grid has ``ceil(n / nrow)`` rows and
        unused cells are left at ``pad_value``.
    path:
        If given, the grid is written there as PNG (atomically; parent folders
        are created).
    value_range:
        ``(lo, hi)`` of float images, e.g. ``cfg.data_range``; lo maps to 0 and
        hi to 255.
    padding:
        Pixels between images and around the border.
    pad_value:
        Grey level (0..255) of the padding.

    Returns
    -------
    numpy.ndarray
        ``uint8``, shape ``(rows*(H+padding)+padding, nrow*(W+padding)+padding)``
        for one channel, with a trailing ``3`` for RGB.
    """
    x = _as_nchw(images)
    n, c, h, w = x.shape
    if nrow is None:
        nrow = int(math.ceil(math.sqrt(n)))
    nrow = int(nrow)
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    padding = int(padding)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    ncol = min(nrow, n)
    nrows = int(math.ceil(n / ncol))
    x8 = _to_uint8(x, value_range)

    grid = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, c),
        np.uint8(pad_value),
        dtype=np.uint8,
    )
    for i in range(n):
        r, col = divmod(i, ncol)
        y0 = padding + r * (h + padding)
        x0 = padding + col * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = x8[i].transpose(1, 2, 0)
    if c == 1:
        grid = grid[:, :, 0]
    if path is not None:
        save_image(grid, path)
    return grid


def save_image(image: np.ndarray, path: PathLike) -> Path:
    """Write a ``uint8`` ``(H, W)`` or ``(H, W, 3)`` array as an image (atomically).

    The format follows the file name's suffix (PNG when there is none).
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), None)
    if fmt is None:
        fmt = path.suffix[1:].upper() if path.suffix else "PNG"
    return _atomic_write(path, lambda f: img.save(f, format=fmt))


# ---------------------------------------------------------------------------
# Smoothing (for the loss curves)
# ---------------------------------------------------------------------------


def _smooth(y: np.ndarray, smooth: Union[float, int, None]) -> Optional[np.ndarray]:
    """EMA (0 <= smooth < 1, bias-corrected like TensorBoard) or trailing moving
    average over ``smooth`` steps (int >= 1; 0 means none). NaNs are skipped."""
    if isinstance(smooth, bool):
        raise ValueError("smooth must be a float in [0, 1) or an int window, not a bool")
    if smooth is None:
        return None
    y = np.asarray(y, dtype=np.float64)
    if isinstance(smooth, (int, np.integer)):
        k = int(smooth)
        if k < 0:
            raise ValueError(f"smooth as a window must be >= 1 (0: no smoothing), got {k}")
        if k <= 1 or y.size == 0:
            return y.copy()
        ok = np.isfinite(y)
        c = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
        m = np.concatenate([[0], np.cumsum(ok)])
        idx = np.arange(1, y.size + 1)
        lo = np.maximum(idx - k, 0)
        cnt = m[idx] - m[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, (c[idx] - c[lo]) / np.maximum(cnt, 1), np.nan)
    a = float(smooth)
    if not 0.0 <= a < 1.0:
        raise ValueError(f"smooth must be in [0, 1) (EMA weight) or an int window >= 1, got {smooth}")
    if a == 0.0:
        return y.copy()
    out = np.empty_like(y)
    s, wsum = 0.0, 0.0
    for i, v in enumerate(y.tolist()):
        if v == v and abs(v) != math.inf:  # finite
            s = a * s + (1.0 - a) * v
            wsum = a * wsum + (1.0 - a)
        out[i] = s / wsum if wsum > 0 else math.nan
    return out


# ---------------------------------------------------------------------------
# Loss curves
# ---------------------------------------------------------------------------


def _display_figure_class():
    """``DisplayFigure``: a Figure that shows itself in Jupyter without pyplot.

    Created on first use so that importing this module does not import
    Matplotlib; ``dcgan.plot.DisplayFigure`` resolves to it (pickling works).
    """
    cls = globals().get("_DisplayFigure")
    if cls is None:
        from matplotlib.figure import Figure

        class DisplayFigure(Figure):
            """A Matplotlib Figure with a ``_repr_png_`` for Jupyter.

            Where the inline backend has registered its own display hook for
            figures, that hook is used instead; either way it shows once.
            """

            def _repr_png_(self) -> bytes:
                buf = io.BytesIO()
                self.savefig(buf, format="png", bbox_inches="tight")
                return buf.getvalue()

        DisplayFigure.__module__ = __name__
        DisplayFigure.__qualname__ = "DisplayFigure"
        globals()["_DisplayFigure"] = cls = DisplayFigure
    return cls


def __getattr__(name: str) -> Any:
    if name == "DisplayFigure":
        return _display_figure_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _interactive_pyplot() -> bool:
    """True when pyplot is in use with an interactive backend (Jupyter inline, a GUI)."""
    if "matplotlib.pyplot" not in sys.modules:
        return False
    try:
        import matplotlib

        try:  # Matplotlib >= 3.9
            from matplotlib.backends import BackendFilter, backend_registry

            batch = backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)
        except ImportError:  # pragma: no cover - older Matplotlib
            from matplotlib import rcsetup

            batch = rcsetup.non_interactive_bk
        backend = str(matplotlib.get_backend()).lower()
        return backend not in {b.lower() for b in batch}
    except Exception:  # pragma: no cover - fall back to a standalone figure
        return False


def _new_figure(figsize: Tuple[float, float]):
    """A new figure, drawn with Agg when saved.

    * pyplot in use with an interactive backend (Jupyter's inline backend, a GUI
      session): the figure is made through pyplot, so ``plt.show()`` and the
      inline backend's automatic display work as for any other figure.
    * otherwise (scripts, the CLI, no display): a standalone Figure on an Agg
      canvas, unknown to pyplot: no GUI or display needed, no "too many open
      figures" when called every epoch, freed when dropped. Returned from a
      Jupyter cell it still renders once, through ``_repr_png_``.
    """
    cls = _display_figure_class()
    kw: Dict[str, Any] = {"figsize": figsize}
    if _mpl_has_layout():
        kw["layout"] = "constrained"
    if _interactive_pyplot():
        import matplotlib.pyplot as plt

        return plt.figure(FigureClass=cls, **kw)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = cls(**kw)
    FigureCanvasAgg(fig)
    return fig


def _mpl_has_layout() -> bool:
    import matplotlib

    try:
        major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    except ValueError:  # pragma: no cover
        return False
    return (major, minor) >= (3, 6)


def _epoch_starts(h: Mapping[str, Sequence], steps: np.ndarray) -> List[float]:
    ep = h.get("epoch")
    if ep is None or len(ep) < 2:
        return []
    ep = np.asarray(ep)
    change = np.nonzero(ep[1:] != ep[:-1])[0] + 1
    if len(change) > 60:  # too many lines to be useful
        return []
    return [float(steps[i]) for i in change]


def plot_losses(
    history: Any,
    path: Optional[PathLike] = None,
    smooth: Union[float, int, None] = 0.9,
    title: Optional[str] = None,
    figsize: Tuple[float, float] = (11.0, 4.0),
    dpi: int = 100,
):
    """Plot a training history: losses, and the discriminator's outputs.

    Parameters
    ----------
    history:
        ``trainer.history`` (or the trainer itself): a dict of per-step lists
        with keys ``d_loss``, ``g_loss``, ``d_real`` (mean D(x)),
        ``d_fake`` (mean D(G(z))) and optionally ``epoch`` / ``step``.
        Missing keys are left out of the plot.
    path:
        If given, the figure is saved there (format from the suffix, PNG by
        default; written atomically).
    smooth:
        A float in ``(0, 1)``: weight of an exponential moving average
        (bias-corrected, like TensorBoard's slider); an int ``k >= 2``: moving
        average over the last ``k`` steps; ``None``, ``0`` or ``1``: raw curves
        only. Raw values are drawn faint behind the smoothed curve.
    title:
        Optional figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: D and G losses; D(x) and D(G(z)). Where pyplot is in use
        with an interactive backend (Jupyter inline, a GUI) the figure belongs
        to pyplot and shows as usual (``plt.show()``, or at the end of a
        notebook cell). Otherwise (scripts, no display) it is a standalone
        Agg figure unknown to pyplot: save it with ``fig.savefig`` or
        ``path=``; returned from a Jupyter cell it still renders once. Epoch boundaries are marked
        with faint vertical lines when ``history["epoch"]`` is present.
    """
    h = _history_dict(history)
    n = _num_steps(h)
    steps = _steps(h, n)
    fig = _new_figure(figsize)
    ax_loss, ax_d = fig.subplots(1, 2)

    def draw(ax, key: str, label: str, color: str) -> bool:
        if h.get(key) is None or len(h[key]) == 0:
            return False
        y = np.asarray(h[key], dtype=np.float64)
        ys = _smooth(y, smooth)
        if ys is None or not isinstance(smooth, bool) and smooth in (0, 1):
            ax.plot(steps, y, color=color, lw=1.0, label=label)
        else:
            ax.plot(steps, y, color=color, lw=0.6, alpha=0.25)
            ax.plot(steps, ys, color=color, lw=1.5, label=label)
        return True

    any_loss = draw(ax_loss, "d_loss", "D loss", "C0")
    any_loss |= draw(ax_loss, "g_loss", "G loss", "C1")
    any_d = draw(ax_d, "d_real", "D(x)", "C2")
    any_d |= draw(ax_d, "d_fake", "D(G(z))", "C3")

    ax_loss.set_title("losses")
    ax_d.set_title("discriminator outputs")
    for ax, drawn in ((ax_loss, any_loss), (ax_d, any_d)):
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        for s in _epoch_starts(h, steps):
            ax.axvline(s, color="0.5", lw=0.5, alpha=0.4)
        if drawn:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
    # Probabilities: fix the axis to [0, 1] and mark the equilibrium 0.5.
    dvals = [np.asarray(h[k], dtype=np.float64) for k in ("d_real", "d_fake") if h.get(k) is not None and len(h[k])]
    if dvals:
        allv = np.concatenate(dvals)
        allv = allv[np.isfinite(allv)]
        if allv.size and allv.min() >= 0.0 and allv.max() <= 1.0:
            ax_d.set_ylim(-0.02, 1.02)
            ax_d.axhline(0.5, color="0.5", lw=0.8, ls="--", alpha=0.6)
    if title:
        fig.suptitle(title)
    if path is not None:
        _save_figure(fig, path, dpi=dpi)
    return fig


def plot_metrics(
    eval_history: Any,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    figsize: Tuple[float, float] = (11.0, 4.0),
    dpi: int = 100,
):
    """Plot sample-quality evaluations (``trainer.eval_history``, or the trainer itself) against
    the training step: FID and KID (x1000) in one panel, precision/recall/density/coverage and
    the classes' KL divergence from uniform in the other. Missing metrics are left out; the
    best FID is marked. Returns the figure (as :func:`plot_losses`), saved to ``path`` if given.
    """
    h = getattr(eval_history, "eval_history", eval_history)
    if not isinstance(h, Mapping):
        raise TypeError(f"eval_history must be a dict of lists (trainer.eval_history), got {type(h).__name__}")
    steps = np.asarray(h.get("step") or [], dtype=np.float64)
    fig = _new_figure(figsize)
    ax_fid, ax_cov = fig.subplots(1, 2)

    def series(key: str, scale: float = 1.0) -> Optional[np.ndarray]:
        v = h.get(key)
        if v is None or len(v) == 0 or len(v) != len(steps):
            return None
        return np.asarray(v, dtype=np.float64) * scale

    drawn = [False, False]
    fid = series("fid")
    if fid is not None:
        ax_fid.plot(steps, fid, "o-", color="C0", lw=1.5, ms=3, label="FID")
        best = int(np.nanargmin(fid))
        ax_fid.plot(steps[best], fid[best], "*", color="C3", ms=12, label=f"best FID {fid[best]:.2f}")
        drawn[0] = True
    kid = series("kid", 1000.0)
    if kid is not None:
        ax = ax_fid.twinx() if fid is not None else ax_fid
        ax.plot(steps, kid, "s--", color="C1", lw=1.0, ms=3, label="KID x 1000")
        ax.set_ylabel("KID x 1000")
        if ax is not ax_fid:
            ax.legend(loc="upper center", fontsize="small")
        drawn[0] = True
    for key, color in (("precision", "C2"), ("recall", "C4"), ("density", "C5"), ("coverage", "C6"),
                       ("kl_to_uniform", "C7")):
        y = series(key)
        if y is not None:
            ax_cov.plot(steps, y, "o-", color=color, lw=1.2, ms=3, label=key.replace("_", " "))
            drawn[1] = True
    ax_fid.set_title("FID and KID (lower is better)")
    ax_cov.set_title("fidelity, diversity and class balance")
    for ax, d in ((ax_fid, drawn[0]), (ax_cov, drawn[1])):
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if d:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
    if title:
        fig.suptitle(title)
    if path is not None:
        _save_figure(fig, path, dpi=dpi)
    return fig


def _save_figure(fig, path: PathLike, dpi: int = 100) -> Path:
    path = Path(path)
    fmt = path.suffix[1:].lower() if path.suffix else "png"
    return _atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))


# ---------------------------------------------------------------------------
# GIF
# ---------------------------------------------------------------------------


def _frame_image(frame: Any, value_range: Tuple[float, float], i: int):
    from PIL import Image

    if isinstance(frame, (str, os.PathLike)):
        with Image.open(frame) as im:
            im.load()
            return im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
    x = np.asarray(frame)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):  # (C, H, W)
        x = x.transpose(1, 2, 0)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[:, :, 0]
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] != 3):
        raise ValueError(f"frame {i}: expected an image (H, W) or (H, W, 3), got shape {x.shape}")
    return Image.fromarray(np.ascontiguousarray(_to_uint8(x, value_range)))


def make_gif(
    frames: Sequence[Any],
    path: PathLike,
    fps: float = 4.0,
    loop: int = 0,
    hold_last: float = 1.0,
    value_range: Tuple[float, float] = (-1.0, 1.0),
) -> Path:
    """Write an animated GIF, e.g. of the fixed-noise sample grids over training.

    Parameters
    ----------
    frames:
        Images in order: file paths (PNG, as written by
        :class:`dcgan.callbacks.SampleGrid` or the command line) and/or arrays
        ``(H, W)``, ``(H, W, 3)`` or ``(C, H, W)`` (``uint8``, or floats in
        ``value_range`` as from :func:`sample_grid`'s inputs). All frames must
        have the same size.
    path:
        Where to write the GIF (atomically; parent folders are created).
    fps:
        Frames per second.
    loop:
        Times to repeat (0: forever).
    hold_last:
        Extra seconds the last frame stays on screen before the loop restarts.
    value_range:
        ``(lo, hi)`` of float frames.

    Returns the path written.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("make_gif needs at least one frame")
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= 100):
        raise ValueError(f"fps must be a number in (0, 100], got {fps!r}")
    if hold_last < 0:
        raise ValueError(f"hold_last must be >= 0 seconds, got {hold_last!r}")
    images = [_frame_image(f, value_range, i) for i, f in enumerate(frames)]
    size = images[0].size
    for i, im in enumerate(images):
        if im.size != size:
            raise ValueError(f"frame {i} is {im.size[0]}x{im.size[1]} but frame 0 is {size[0]}x{size[1]}; "
                             "all frames must have the same size")
    if any(im.mode != "L" for im in images):
        images = [im.convert("RGB") for im in images]
    ms = max(int(round(1000.0 / fps)), 20)  # browsers treat < 20 ms as 100 ms
    durations = [ms] * len(images)
    durations[-1] += int(round(1000.0 * hold_last))
    first, rest = images[0], images[1:]

    def write(f) -> None:
        kw: Dict[str, Any] = {"format": "GIF", "save_all": True, "append_images": rest,
                              "duration": durations if len(images) > 1 else durations[0], "loop": int(loop)}
        first.save(f, **kw)

    return _atomic_write(path, write)
