"""The Python face of the C++ trainer: argument checks, array conversion, progress, callbacks.

Every training step runs in C++ with the GIL released; Python hands over the scaled dataset
once and then asks for chunks of steps, collecting the per-step statistics.
"""
from __future__ import annotations

import dataclasses

import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import checkpoint, distributed
from ._loader import load_core
from .callbacks import Callback, CallbackLike, _call  # noqa: F401 (Callback: dcgan.trainer.Callback)
from .config import BN_INFERENCE, Config

_core = load_core()

HISTORY_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
NETS = ("generator", "discriminator")


# --------------------------------------------------------------------------------------- inputs
def prepare_images(x: Any, image_shape: Sequence[int], data_range: Tuple[float, float],
                   input_range: Optional[Tuple[float, float]] = None, name: str = "x") -> np.ndarray:
    """Checks and converts images to float32 NCHW scaled to ``data_range``.

    Layouts: (N, H, W) for one channel, (N, C, H, W) or (N, H, W, C). ``x`` may be an array or
    a nested list.
    Scaling rule: uint8 is read as 0..255, and so is any other integer dtype (int64, int32, a
    nested list of Python ints, ...) whose values all lie in 0..255 (other values are refused,
    naming the range found; bool arrays are refused too). A float array is read as
    ``input_range`` when given; otherwise as [0, 1] if all values lie in [0, 1], as [-1, 1] if
    they lie in [-1, 1], as 0..255 if they lie in [0, 255], and rejected otherwise. The values
    are then mapped linearly onto ``data_range`` ([-1, 1] for tanh generators, [0, 1] for
    sigmoid ones).
    """
    src = data_source(x, image_shape, data_range, input_range, name)
    c, h, w = (int(v) for v in image_shape)
    stored = src.array if src.array is not None else np.load(src.path, mmap_mode="r")
    out = stored.astype(np.float32)  # a copy: the caller's array is never modified
    if src.layout == "nhwc":
        out = out.transpose(0, 3, 1, 2)
    if src.scale is not None:
        sub, mul, add = (np.float32(v) for v in src.scale)
        out = (out - sub) * mul + add
    return np.ascontiguousarray(out, dtype=np.float32).reshape(-1, c, h, w)


# Elements per chunk when a float dataset is scanned for its range (no full-size temporaries, so a
# memory-mapped or file dataset is read once, a chunk at a time).
_SCAN_CHUNK = 1 << 24


def _image_layout(shape: Tuple[int, ...], image_shape: Sequence[int], name: str) -> str:
    """'nchw' or 'nhwc' for stored images of ``shape`` (N first), or a ValueError that says what
    differs (the channel count, the image size) and how to fix it."""
    c, h, w = (int(v) for v in image_shape)
    if len(shape) == 3 and c == 1 and tuple(shape[1:]) == (h, w):
        return "nchw"
    if len(shape) == 4 and tuple(shape[1:]) == (c, h, w):
        return "nchw"
    if len(shape) == 4 and tuple(shape[1:]) == (h, w, c):
        return "nhwc"
    layouts = f"(N, {c}, {h}, {w}) or (N, {h}, {w}, {c})" + (f" or (N, {h}, {w})" if c == 1 else "")
    raise ValueError(f"{name} has shape {tuple(shape)}; expected {layouts} for image_shape "
                     f"{(c, h, w)}. {_layout_advice(tuple(int(v) for v in shape), (c, h, w))}")


def _layout_advice(shape: Tuple[int, ...], image_shape: Tuple[int, int, int]) -> str:
    """What differs between images stored as ``shape`` and ``image_shape``, and the fix."""
    c, h, w = image_shape
    generic = "Reshape or resize the images (dcgan.datasets.resize_images) or set Config.image_shape"
    # Read the shape as the layout it most likely is: (N, H, W), (N, C, H, W) or (N, H, W, C).
    if len(shape) == 3:
        dc, (dh, dw), layout = 1, shape[1:], "nhw"
    elif len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
        dc, (dh, dw), layout = shape[1], shape[2:], "nchw"
    elif len(shape) == 4 and shape[3] in (1, 3, 4):
        dc, (dh, dw), layout = shape[3], shape[1:3], "nhwc"
    elif len(shape) == 4 and shape[1] in (1, 3, 4):
        dc, (dh, dw), layout = shape[1], shape[2:], "nchw"
    else:
        return generic + "."
    if len(shape) == 3 and shape in ((c, h, w), (h, w, c)):
        return "It looks like a single image: add the batch axis (x[None])."
    out = []
    if dc != c:
        s = "s" if c != 1 else ""
        out.append(f"The channel count differs: the model expects {c} channel{s}, the data has {dc}.")
        axis = {"nhw": None, "nchw": 1, "nhwc": -1}[layout]
        if dc == 1 and c == 3:
            how = ("np.repeat(x[:, None], 3, axis=1) for grayscale (N, H, W) images" if axis is None else
                   f"np.repeat(x, 3, axis={axis}) to copy the gray channel")
            fix = f"convert the data to 3 channels (e.g. {how})"
        elif dc == 4 and c == 3 and layout == "nhwc":
            fix = "drop the alpha channel (x[..., :3])"
        elif dc == 4 and c == 3:
            fix = "drop the alpha channel (x[:, :3])"
        elif c == 1:
            how = {"nchw": "x.mean(axis=1)", "nhwc": "x.mean(axis=-1)"}.get(layout, "")
            fix = "convert the data to grayscale" + (f" (e.g. {how}, then cast back to the dtype)" if how else "")
        else:
            fix = f"convert the data to {c} channels"
        if dc in (1, 3):
            example = {(1, 28, 28): ", e.g. Config.mnist()", (3, 32, 32): ", e.g. Config.cifar10()",
                       (3, 64, 64): ", e.g. Config.dcgan64()"}.get((dc, dh, dw), "")
            fix += f", or pick a {dc}-channel config (image_shape=({dc}, {dh}, {dw}){example})"
        out.append(fix[0].upper() + fix[1:] + ".")
    if (dh, dw) != (h, w):
        out.append(f"The image size differs{' too' if dc != c else ''}: the data is {dh}x{dw}, the model "
                   f"expects {h}x{w}. Resize the images (dcgan.datasets.resize_images(x, ({h}, {w})) takes "
                   f"uint8 (N, H, W) or (N, H, W, C)) or set Config.image_shape.")
    if not out:  # channels and size agree: a layout the loader does not know, e.g. (N, H, C, W)
        return generic + "."
    return " ".join(out)


def _check_dtype(dtype: np.dtype, name: str) -> None:
    """Images are uint8 or floating point, or another integer dtype (converted to uint8 once its
    values are checked to lie in 0..255)."""
    accepted = "uint8 or floating point (or any integer dtype holding 0..255 pixel values)"
    if dtype == np.bool_:
        raise TypeError(f"{name} is a boolean array; images must be {accepted}: for a 0/1 mask pass "
                        f"x.astype(np.uint8) * 255 or x.astype(np.float32)")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must be {accepted} images, got dtype {dtype}")


def _integers_to_uint8(x: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous uint8 copy of an integer array whose values all lie in 0..255."""
    mn, mx = int(x.min()), int(x.max())
    if mn < 0 or mx > 255:
        raise ValueError(f"{name} holds integers in [{mn}, {mx}]; integer images must hold 0..255 pixel "
                         f"values (or pass floats with input_range=(low, high))")
    return x.astype(np.uint8, order="C")


def _scan_range(chunks: Iterable[np.ndarray], shape: Tuple[int, ...], name: str) -> Tuple[float, float]:
    """(min, max) over float chunks of an array of ``shape``; ValueError at the first NaN or Inf."""
    mn, mx, seen = np.inf, -np.inf, 0
    for ch in chunks:
        flat = ch.reshape(-1)
        finite = np.isfinite(flat)
        if not finite.all():
            at = np.unravel_index(seen + int(np.argmin(finite)), shape)
            raise ValueError(f"{name} contains NaN or Inf (first at index {tuple(int(i) for i in at)})")
        mn, mx = min(mn, float(flat.min())), max(mx, float(flat.max()))
        seen += flat.size
    return mn, mx


def _source_range(dtype: np.dtype, scan: Callable[[], Tuple[float, float]],
                  input_range: Optional[Tuple[float, float]], name: str) -> Tuple[float, float]:
    """The range stored values are read in (see :func:`prepare_images`)."""
    if dtype == np.uint8:
        return (0.0, 255.0)
    mn, mx = scan()
    if input_range is not None:
        src = (float(input_range[0]), float(input_range[1]))
        if not src[1] > src[0]:
            raise ValueError(f"input_range must be (low, high) with high > low, got {input_range}")
        if mn < src[0] or mx > src[1]:
            raise ValueError(f"{name} has values in [{mn:g}, {mx:g}], outside the declared "
                             f"input_range {src}")
        return src
    if mn >= 0.0 and mx <= 1.0:
        return (0.0, 1.0)
    if mn >= -1.0 and mx <= 1.0:
        return (-1.0, 1.0)
    if mn >= 0.0 and mx <= 255.0:
        return (0.0, 255.0)
    raise ValueError(f"{name} has values in [{mn:g}, {mx:g}]; expected [0, 1], [-1, 1] or "
                     f"[0, 255] (or pass input_range=(low, high))")


def _affine(src: Tuple[float, float], data_range: Tuple[float, float]) -> Optional[Tuple[float, float, float]]:
    """(sub, mul, add) with value = (x - sub) * mul + add mapping ``src`` onto ``data_range``,
    or None when they are the same range. The core applies it per batch in float32, as
    :func:`prepare_images` does on the whole array."""
    lo, hi = data_range
    if src == (lo, hi):
        return None
    return (src[0], float(np.float32((hi - lo) / (src[1] - src[0]))), lo)


class DataSource:
    """Training images as the core will hold them: an array (in memory or memory-mapped, never
    converted as a whole) or a ``.npy`` file read per batch."""

    def __init__(self, n: int, layout: str, dtype: np.dtype, scale: Optional[Tuple[float, float, float]],
                 array: Optional[np.ndarray] = None, path: Optional[str] = None, offset: int = 0) -> None:
        self.n, self.layout, self.dtype, self.scale = n, layout, np.dtype(dtype), scale
        self.array, self.path, self.offset = array, path, offset

    def attach(self, core: Any) -> None:
        if self.array is not None:
            core.set_data(self.array, self.layout, self.scale)
        else:
            core.set_data_file(self.path, self.offset, self.n, self.dtype.name, self.layout, self.scale)


def data_source(x: Any, image_shape: Sequence[int], data_range: Tuple[float, float],
                input_range: Optional[Tuple[float, float]] = None, name: str = "x") -> DataSource:
    """Checks training images and describes how the core reads them, without copying them.

    ``x``: a NumPy array (or ``np.memmap``) in one of :func:`prepare_images`' layouts, or the
    path of a ``.npy`` file holding one (read a batch at a time: the file may be larger than
    memory). uint8 and float32 arrays are held as given, NCHW or NHWC; the core gathers,
    converts and scales each batch. Other float dtypes are converted to float32 once, other
    integer dtypes (and nested lists of ints) to uint8 once after checking that their values
    lie in 0..255, and a non-contiguous array is made contiguous once. A ``.npy`` file read per
    batch must hold uint8 or little-endian float32.
    """
    if isinstance(x, (str, os.PathLike)):
        return _npy_source(Path(x), image_shape, data_range, input_range)
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array or the path of a .npy file, got {type(x).__name__}")
    _check_dtype(x.dtype, name)
    c, h, w = (int(v) for v in image_shape)
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); expected images of shape (N, {c}, {h}, {w})")
    layout = _image_layout(x.shape, image_shape, name)
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
        x = _integers_to_uint8(x, name)
    elif x.dtype != np.uint8 and x.dtype != np.float32:
        x = x.astype(np.float32)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    flat, shape = x.reshape(-1), x.shape
    scan = lambda: _scan_range((flat[i:i + _SCAN_CHUNK] for i in range(0, flat.size, _SCAN_CHUNK)), shape, name)
    src = _source_range(x.dtype, scan, input_range, name)
    if x.ndim == 3:
        x = x.reshape(x.shape[0], 1, h, w)
    return DataSource(x.shape[0], layout, x.dtype, _affine(src, data_range), array=x)


def _npy_source(path: Path, image_shape: Sequence[int], data_range: Tuple[float, float],
                input_range: Optional[Tuple[float, float]]) -> DataSource:
    name = str(path)
    if path.suffix != ".npy":
        raise ValueError(f"{name}: training data on disk must be a .npy file (np.save), got {path.suffix or 'no suffix'!r}")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except FileNotFoundError:
        raise FileNotFoundError(f"no data file at {name}") from None
    except (ValueError, OSError, SyntaxError) as e:
        raise ValueError(f"{name} is not a readable .npy file: {e}") from e
    _check_dtype(dtype, name)
    if np.issubdtype(dtype, np.integer) and dtype != np.uint8:
        raise TypeError(f"{name} holds {dtype} images; a .npy file read per batch must hold uint8 or floating "
                        f"point (little-endian float32) images. Convert it once (np.save(path, "
                        f"np.load(path).astype(np.uint8)) once its values are checked to lie in 0..255), or pass "
                        f"np.load(path) (an integer array in memory is converted to uint8)")
    if dtype not in (np.dtype(np.uint8), np.dtype("<f4")):
        raise TypeError(f"{name} holds {dtype} images; a .npy read per batch must be uint8 or "
                        f"little-endian float32 (convert it once with np.save)")
    if fortran:
        raise ValueError(f"{name} is stored in Fortran order; save a C-ordered array (np.ascontiguousarray)")
    if int(np.prod(shape)) == 0:
        raise ValueError(f"{name} holds no images (shape {shape})")
    layout = _image_layout(shape, image_shape, name)
    n, per = int(shape[0]), int(np.prod(shape[1:]))
    need = offset + n * per * dtype.itemsize
    if path.stat().st_size < need:
        raise ValueError(f"{name} is truncated: {path.stat().st_size} bytes, its header promises {need}")

    def scan() -> Tuple[float, float]:
        def chunks():
            with open(path, "rb") as f:
                f.seek(offset)
                left = n * per
                while left:
                    k = min(left, _SCAN_CHUNK)
                    yield np.fromfile(f, dtype=dtype, count=k)
                    left -= k
        return _scan_range(chunks(), tuple(shape), name)

    src = _source_range(dtype, scan, input_range, name)
    return DataSource(n, layout, dtype, _affine(src, data_range), path=str(path), offset=offset)


# --------------------------------------------------------------------------------------- callbacks
# Callback, CallbackLike and _call live in dcgan/callbacks.py.


class _StopOnInterrupt:
    """While active (main thread only), SIGINT sets ``requested`` instead of raising.

    The core runs steps with the GIL released; Python sees the signal when the current chunk
    returns, so training always stops on a step boundary with every buffer consistent.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> "_StopOnInterrupt":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            def handler(signum: int, frame: Any) -> None:
                if self.requested:  # a second Ctrl-C: the user really wants out
                    raise KeyboardInterrupt
                self.requested = True
            try:
                self._old = signal.signal(signal.SIGINT, handler)
            except ValueError:  # pragma: no cover - e.g. embedded interpreters
                self._old = None
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# --------------------------------------------------------------------------------------- trainer
class Summary(str):
    """The text of :meth:`Trainer.summary`: a ``str`` (print it, search it, write it to a file)
    that displays as the multi-line table: its ``repr`` is the table, IPython pretty-prints it
    as is, and Jupyter renders it as preformatted HTML."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str.__str__(self))

    def _repr_html_(self) -> str:
        import html
        return f"<pre>{html.escape(str.__str__(self))}</pre>"


class Trainer:
    """Trains a GAN described by a :class:`Config`; every step runs in the C++ core.

    >>> cfg = dcgan.Config.mnist(batch_size=64)
    >>> tr = dcgan.Trainer(cfg)
    >>> tr.fit(images, epochs=5)          # uint8 (N, 28, 28) straight from the loader
    >>> tr.history["g_loss"][-1], tr.generate(16).shape
    """

    def __init__(self, cfg: Config) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"Trainer needs a dcgan.Config, got {type(cfg).__name__}")
        cfg.validate()
        self.cfg = cfg
        # Launched as several MPI ranks (and distributed="auto"): one data-parallel job.
        self._world = distributed.world() if cfg.distributed == "auto" else distributed.World()
        core_cfg = cfg.core_config()
        comm = None
        if self._world.size > 1:
            if cfg.threads == 0 and "OMP_NUM_THREADS" not in os.environ:
                core_cfg["threads"] = distributed.default_threads()  # ranks share the machine's cores
            if cfg.device == "cuda":
                core_cfg["device_index"] = self._world.local_rank  # one GPU per rank on a machine
            comm = distributed.communicator(cfg.device, core_cfg.get("device_index", -1))
        self._core = _core.Trainer(core_cfg, comm)
        self._core.set_use_recording(cfg.cuda_graph)
        self.history: Dict[str, List[float]] = {k: [] for k in HISTORY_KEYS + ("epoch",)}
        # Sample-quality evaluations (callbacks.Evaluate): one list per metric, one entry per
        # evaluation, with the step and epoch it was taken at.
        self.eval_history: Dict[str, List[Any]] = {}
        self.stop_training = False  # set by a callback to end fit() after the current step
        self._data: Optional[DataSource] = None
        # Held while the core trains a chunk and its history is recorded, and while save()
        # takes its snapshot: a checkpoint written from another thread is one step boundary.
        self._lock = threading.RLock()
        self._diverged_at: Optional[int] = None  # the first step whose statistics were not finite

    # ---------------------------------------------------------------- properties
    @property
    def rank(self) -> int:
        """This process's rank in a data-parallel run (0 alone)."""
        return self._world.rank

    @property
    def world_size(self) -> int:
        """How many ranks train together (1 alone); ``batch_size`` is per rank."""
        return self._world.size

    @property
    def graph_status(self) -> str:
        """How fit() runs a step: ``"recorded"`` once it replays a CUDA graph, ``"eager"``
        before that (or with ``cuda_graph=False``), or why the backend cannot record the step
        (the CPU backend runs every operation as it is issued)."""
        return self._core.recording_status

    @property
    def step_count(self) -> int:
        """Training steps done so far."""
        return int(self._core.get_train_state()["step"])

    @property
    def epoch(self) -> int:
        """0-based index of the epoch the data cursor is in (the last step's epoch)."""
        st = self._core.get_train_state()
        return int(st["epoch"])

    # ---------------------------------------------------------------- training
    def fit(self, x: Any, epochs: Optional[int] = None, steps: Optional[int] = None,
            callbacks: Optional[Iterable[CallbackLike]] = None, progress: bool = True,
            input_range: Optional[Tuple[float, float]] = None) -> Dict[str, List[float]]:
        """Trains on images ``x`` for ``epochs`` epochs (default ``cfg.epochs``) or ``steps`` steps.

        ``x``: uint8 or float images shaped (N, H, W), (N, C, H, W) or (N, H, W, C), as an array,
        an ``np.memmap``, or the path of a ``.npy`` file (read a batch at a time, so it may be
        larger than memory); see :func:`prepare_images` for the scaling rule. Other integer
        arrays (int64, int32, nested lists of ints) holding 0..255 are converted to uint8 once.
        The data is held as given (uint8 stays uint8, a uint8 or float32 memmap is not copied);
        each batch is gathered, converted and scaled by the backend.
        Each epoch visits a fresh seeded shuffle of the data in batches of ``cfg.batch_size``
        (the last incomplete batch is dropped).
        Ctrl-C stops at a step boundary; the trainer stays consistent and ``fit`` can be called
        again to continue. Returns :attr:`history`.
        """
        if epochs is not None and steps is not None:
            raise ValueError("give epochs or steps, not both")
        self._check_not_diverged()
        for name, v in (("epochs", epochs), ("steps", steps)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        src = data_source(x, self.cfg.image_shape, self.cfg.data_range, input_range)
        n, bs = src.n, self.cfg.batch_size
        multi = self._world.size > 1
        global_bs = bs * self._world.size
        if multi:
            # Every rank draws its slice of one permutation of the same n images: they must agree.
            seen = distributed.allgather_object((n, str(getattr(src, "dtype", "")), steps, epochs))
            if len(set(seen)) > 1:
                raise ValueError("the ranks were given different data or lengths (images, dtype, steps, "
                                 f"epochs per rank: {seen}); every rank must call fit with the same dataset")
        if n < global_bs:
            raise ValueError(f"x has {n} images, fewer than one batch (batch_size={bs}"
                             + (f" per rank x {self._world.size} ranks" if multi else "")
                             + "); give more data or a smaller batch_size")
        src.attach(self._core)
        self._data = src  # the core reads this memory during run()
        spe = self._core.steps_per_epoch()
        total = int(steps) if steps is not None else spe * int(epochs if epochs is not None else self.cfg.epochs)
        cbs = list(callbacks or [])
        bar = self._progress_bar(total) if progress and self._world.rank == 0 else None
        check_every = self.cfg.check_replicas_every if multi else 0
        self.stop_training = False
        done = 0
        # Chunks end at epoch boundaries and last about `chunk_seconds`, so the progress bar
        # moves and Ctrl-C is answered quickly even for the heavy presets.
        chunk_seconds, per_step = 0.5, None
        with _StopOnInterrupt() as interrupt:
            try:
                while True:
                    go = done < total and not self.stop_training and not interrupt.requested
                    if not multi and not go:
                        break
                    st = self._core.get_train_state()
                    epoch = int(st["epoch"]) + (1 if int(st["cursor"]) + global_bs > n else 0)
                    left_in_epoch = self._core.steps_left_in_epoch()
                    want = 1 if per_step is None else max(1, int(chunk_seconds / max(per_step, 1e-6)))
                    k = min(want, total - done, left_in_epoch)
                    for e in [getattr(cb, "every_steps", None) for cb in cbs] + [check_every]:
                        if e:  # end chunks where a callback acts "every N steps"
                            k = min(k, e - self.step_count % e)
                    if multi:  # rank 0 decides the chunk (its timing) and when to stop
                        k = distributed.broadcast_object(k if go else 0)
                        if k == 0:
                            break
                    t0 = time.perf_counter()
                    with self._lock:
                        stats = self._core.run(k)
                        dt = time.perf_counter() - t0
                        per_step = dt / k
                        first = self.step_count - k
                        # History first, in one go: it always matches the steps the core has done.
                        for j, key in enumerate(HISTORY_KEYS):
                            self.history[key].extend(stats[:, j].tolist())
                        self.history["epoch"].extend([epoch] * k)
                    done += k
                    self._check_finite(stats, first, state=True)
                    if check_every and self.step_count % check_every == 0:
                        bad = self._core.replica_mismatch()
                        if bad:
                            raise RuntimeError(f"data-parallel replicas diverged by step {self.step_count}: {bad}")
                    if bar is not None:
                        bar.update(k)
                        bar.set_postfix(epoch=epoch, d_loss=f"{stats[-1, 0]:.3f}", g_loss=f"{stats[-1, 1]:.3f}",
                                        img_s=f"{k * bs / max(dt, 1e-9):.0f}", refresh=False)
                    if cbs:
                        for i in range(k):
                            s = {key: float(stats[i, j]) for j, key in enumerate(HISTORY_KEYS)}
                            for cb in cbs:
                                _call(cb, "on_step", self, first + i, s)
                        if k == left_in_epoch:
                            for cb in cbs:
                                _call(cb, "on_epoch_end", self, epoch)
            except KeyboardInterrupt:
                # Raised outside the core (e.g. in a callback, or off the main thread): the
                # core only ever stops between steps, so its state is consistent.
                interrupt.requested = True
            finally:
                if bar is not None:
                    bar.close()
        if interrupt.requested:
            print(f"\ninterrupted at step {self.step_count}; the trainer is intact: call fit() again "
                  f"to continue, or save() it", file=sys.stderr)
        return self.history

    def step(self, batch: Any) -> Dict[str, float]:
        """One training step on a batch already scaled to ``cfg.data_range``.

        ``batch``: float32 (batch_size, C, H, W), C-contiguous. Returns the step's statistics and
        appends them to :attr:`history`.
        """
        c, h, w = self.cfg.image_shape
        want = (self.cfg.batch_size, c, h, w)
        if not isinstance(batch, np.ndarray):
            raise TypeError(f"batch must be a NumPy array, got {type(batch).__name__}")
        if batch.dtype != np.float32:
            raise TypeError(f"batch must be float32, got {batch.dtype} (scale and convert it first, "
                            f"see dcgan.prepare_images)")
        if batch.shape != want:
            raise ValueError(f"batch has shape {batch.shape}; expected {want}")
        if not np.isfinite(batch).all():
            raise ValueError("batch contains NaN or Inf")
        lo, hi = self.cfg.data_range
        if batch.min() < lo - 1e-6 or batch.max() > hi + 1e-6:
            raise ValueError(f"batch values lie in [{batch.min():g}, {batch.max():g}], outside the "
                             f"data range [{lo:g}, {hi:g}] of this generator")
        self._check_not_diverged()
        with self._lock:
            r = self._core.step(np.ascontiguousarray(batch))
            stats = dict(zip(HISTORY_KEYS, (float(v) for v in r)))
            for k, v in stats.items():
                self.history[k].append(v)
            self.history["epoch"].append(self.epoch)
        self._check_finite(np.asarray([r], dtype=np.float64), self.step_count - 1, state=True)
        return stats

    # ---------------------------------------------------------------- divergence
    def _check_finite(self, stats: np.ndarray, first_step: int, state: bool = False) -> None:
        """Stops training at the first step whose losses are not finite, or after a chunk that
        left NaN or Inf in a network's parameters, Adam moments or BN statistics (checked on
        the backend): the trainer is marked diverged, and save() refuses it."""
        bad = ~np.isfinite(stats).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            self._diverged_at = first_step + i + 1
            what = "the losses became non-finite: " + ", ".join(
                f"{k}={stats[i, j]:g}" for j, k in enumerate(HISTORY_KEYS))
        else:
            where = self._core.non_finite_state() if state else ""
            if not where:
                return
            self._diverged_at = first_step + len(stats)
            what = f"the {where} hold NaN or Inf (the losses were still finite)"
        c = self.cfg
        raise FloatingPointError(
            f"training diverged at step {self._diverged_at}: {what}. Likely cause: a learning rate too high for "
            f"this model (lr_g={c.effective_lr_g:g}, lr_d={c.effective_lr_d:g}) or an unstable loss setting. The "
            f"trainer is marked diverged: fit() and save() refuse it, so no checkpoint is overwritten; load the last "
            f"good checkpoint (Trainer.load) to continue from there")

    def _check_not_diverged(self) -> None:
        if self._diverged_at is not None:
            raise FloatingPointError(f"this trainer diverged at step {self._diverged_at} (non-finite losses); "
                                     f"load the last good checkpoint with Trainer.load to continue")

    # ---------------------------------------------------------------- inference
    def generate(self, n: int, seed: Optional[int] = None, bn_inference: Optional[str] = None) -> np.ndarray:
        """``n`` samples (float32, (n, C, H, W), in ``cfg.data_range``) from G.

        The same ``seed`` gives the same latent vectors (sample i does not depend on n);
        ``seed=None`` draws fresh ones. BatchNorm uses ``bn_inference`` (default
        ``cfg.bn_inference``): ``"precise"`` statistics recomputed for the current weights (cached
        until they change), the ``"running"`` averages, or each ``"batch"``'s own statistics.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        mode = self.cfg.bn_inference if bn_inference is None else bn_inference
        if mode not in BN_INFERENCE:
            raise ValueError(f"unknown bn_inference {mode!r}; expected one of {', '.join(BN_INFERENCE)}")
        with self._lock:
            if mode == self.cfg.bn_inference:
                return self._core.generate(int(n), int(seed))
            self._core.set_bn_inference(mode)
            try:
                return self._core.generate(int(n), int(seed))
            finally:
                self._core.set_bn_inference(self.cfg.bn_inference)

    def bn_statistics(self, kind: str = "precise") -> "OrderedDict[str, np.ndarray]":
        """G's BatchNorm statistics by PyTorch name (``"3.running_mean"``, ``"3.running_var"``):
        the ``"precise"`` ones generate() uses by default (computed now if the weights changed
        since), or the ``"running"`` averages training keeps."""
        if kind == "running":
            return self.buffers("generator")
        if kind != "precise":
            raise ValueError(f"kind must be 'precise' or 'running', got {kind!r}")
        with self._lock:
            return OrderedDict(self._core.precise_bn_state().items())

    def discriminate(self, x: Any, input_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """D's probability that each image is real (inference mode), float32 (N,).

        ``x`` as :meth:`fit` takes it (uint8, other integers in 0..255, or floats; see
        :func:`prepare_images`)."""
        data = prepare_images(x, self.cfg.image_shape, self.cfg.data_range, input_range)
        logits = self._core.discriminate(data)
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)

    # ---------------------------------------------------------------- parameters
    def weights(self, net: str = "generator") -> "OrderedDict[str, np.ndarray]":
        """Trainable parameters of ``"generator"`` or ``"discriminator"`` as NumPy copies,
        named like ``nn.Sequential`` (``"0.weight"``, ``"1.bias"``) in PyTorch layouts."""
        return OrderedDict(self._core.get_params(self._net(net)).items())

    def set_weights(self, net: str, values: Dict[str, np.ndarray]) -> None:
        """Overwrites parameters (and BN running statistics, ``"i.running_mean"``) by name."""
        self._core.set_params(self._net(net), dict(values))

    def buffers(self, net: str = "generator") -> "OrderedDict[str, np.ndarray]":
        """Non-trainable state: BatchNorm running means and variances."""
        return OrderedDict(self._core.get_state(self._net(net)).items())

    def num_params(self, net: str = "generator") -> int:
        return int(self._core.n_params(self._net(net)))

    def step_flops(self) -> Dict[str, float]:
        """Floating-point operations of one training step on this process, by pass.

        Counted from the layer plan as the step runs it: the forward passes of both networks,
        the input gradients each backward pass computes (none below a network's first layer
        with parameters unless the caller needs them) and the weight gradients (none for D in
        the G step). Only convolutions, transposed convolutions and dense layers count, at 2
        FLOPs per multiply-add, and only kernel taps over real pixels (those over zero padding are
        not work on the data). BatchNorm, activations, dropout, losses and Adam are memory-bound
        and under 1% of the total. Keys: ``forward``, ``backward_data``,
        ``backward_weights``, ``total``. Divide ``total`` by the seconds per step for FLOP/s.
        """
        return {k: float(v) for k, v in self._core.step_flops().items()}

    def summary(self) -> "Summary":
        """A Keras-like table of both networks' layers, shapes and parameter counts.

        Returns a :class:`Summary`: a ``str`` holding the table, so ``print(tr.summary())``
        prints it and ``"conv2d" in tr.summary()`` works, whose ``repr`` is the table itself, so
        a bare ``tr.summary()`` at the Python prompt or as the last line of a Jupyter cell shows
        the multi-line table (preformatted HTML in Jupyter) instead of an escaped one-line string.
        """
        lines = []
        for net in NETS:
            lines.append(f"{net}  ({self.num_params(net):,} trainable parameters)")
            for d in self._core.describe(net):
                lines.append(f"  {d['index']:>3}  {d['type']:<17} {str(d['in_shape']):>16} -> "
                             f"{str(d['out_shape']):<16} {d['params']:>10,}")
        return Summary("\n".join(lines))

    def __repr__(self) -> str:
        return (f"Trainer(preset={self.cfg.preset_name!r}, arch={self.cfg.arch!r}, step={self.step_count}, "
                f"G={self.num_params('generator'):,} params, D={self.num_params('discriminator'):,} params)")

    # ---------------------------------------------------------------- history export
    def history_to_csv(self, path: Any) -> Any:
        """Writes the per-step history as CSV (step, epoch, d_loss, g_loss, d_real, d_fake)."""
        from .history import save_history_csv
        return save_history_csv(self.history, path)

    def history_to_json(self, path: Any) -> Any:
        """Writes the per-step history as a JSON object of lists (atomic write)."""
        from .history import save_history_json
        return save_history_json(self.history, path)

    # ---------------------------------------------------------------- checkpoints
    def save(self, path: "checkpoint.PathLike") -> "checkpoint.Path":
        """Writes the full training state (both networks, Adam moments, BN statistics, step,
        epoch and data cursor, config, history) atomically; see :mod:`dcgan.checkpoint`.
        In a data-parallel run rank 0 writes (every rank holds the same state); the others
        write nothing and return the path."""
        if self._world.rank != 0:
            return Path(path)
        arrays: Dict[str, np.ndarray] = {}
        with self._lock:  # one snapshot, at a step boundary, even while fit() runs in another thread
            for net in NETS:
                for k, v in self._core.get_params(net).items():
                    arrays[f"{net}/{k}"] = v
                for k, v in self._core.get_state(net).items():
                    arrays[f"{net}/{k}"] = v
                for k, v in self._core.get_adam(net).items():
                    arrays[f"{net}.adam/{k}"] = v
            meta = self._meta("full")
        self._refuse_non_finite(path, arrays)
        return checkpoint.write(path, meta, arrays)

    def save_generator(self, path: "checkpoint.PathLike") -> "checkpoint.Path":
        """Writes the generator alone (parameters, BN statistics, config): enough to sample.
        Rank 0 writes in a data-parallel run."""
        if self._world.rank != 0:
            return Path(path)
        with self._lock:
            arrays = {f"generator/{k}": v for k, v in self._core.get_params("generator").items()}
            arrays.update({f"generator/{k}": v for k, v in self._core.get_state("generator").items()})
            meta = self._meta("generator")
        self._refuse_non_finite(path, arrays)
        return checkpoint.write(path, meta, arrays)

    def _refuse_non_finite(self, path: Any, arrays: Dict[str, np.ndarray]) -> None:
        """A checkpoint never holds NaN or Inf: it would replace a good file with one that
        cannot be resumed."""
        if self._diverged_at is not None:
            raise ValueError(f"refusing to save to {path}: this trainer diverged at step {self._diverged_at}; "
                             f"the file there (if any) is left as it was")
        for k, v in arrays.items():
            if v.size and not np.isfinite(v).all():
                raise ValueError(f"refusing to save to {path}: {k} holds NaN or Inf (training diverged); "
                                 f"the file there (if any) is left as it was")

    @classmethod
    def load(cls, path: "checkpoint.PathLike", cfg: Optional[Config] = None,
             device: Optional[str] = None) -> "Trainer":
        """A trainer restored from :meth:`save`; ``fit`` then continues exactly where the
        saved run stood (same losses as an uninterrupted run on the same backend and threads).

        ``cfg`` (optional) must describe the same networks; it may change e.g. ``threads``.
        ``device`` (optional) resumes on another backend than the one that saved: checkpoints
        hold plain float32 arrays, so a run saved on ``"cuda"`` resumes on ``"cpu"`` and back.
        """
        meta, arrays = checkpoint.read(path)
        if meta["kind"] != "full":
            raise ValueError(f"{path} holds only a generator; load it with dcgan.Generator.load")
        tr = cls(_config_for_load(path, meta, cfg, device))
        tr._restore_nets(arrays, NETS, path)
        for net in NETS:
            adam = checkpoint.split(arrays, f"{net}.adam")
            if set(adam) != {"m", "v"}:
                raise ValueError(f"{path}: the {net}'s Adam state is missing or damaged")
            try:
                tr._core.set_adam(net, adam["m"], adam["v"])
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path} does not match this configuration: {net} Adam state: {e}") from e
        tr._core.set_train_state(meta.get("train_state", {}))
        for k, v in (meta.get("history") or {}).items():
            if k in tr.history:
                tr.history[k] = list(v)
        tr.eval_history = {k: list(v) for k, v in (meta.get("eval_history") or {}).items()}
        return tr

    def _restore_nets(self, arrays: Dict[str, np.ndarray], nets: Sequence[str], path: Any) -> None:
        for net in nets:
            values = checkpoint.split(arrays, net)
            try:
                self._core.set_params(net, values, strict=True)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path} does not match this configuration ({net}): {e}") from e

    def _meta(self, kind: str) -> Dict[str, Any]:
        from . import __version__
        return {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "kind": kind,
                "config": self.cfg.to_dict(), "train_state": dict(self._core.get_train_state()),
                "history": {k: list(v) for k, v in self.history.items()} if kind == "full" else {},
                "eval_history": {k: list(v) for k, v in self.eval_history.items()} if kind == "full" else {},
                "dcgan_version": __version__}

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _net(net: str) -> str:
        if net not in NETS:
            raise ValueError(f"net must be 'generator' or 'discriminator', got {net!r}")
        return net

    @staticmethod
    def _progress_bar(total: int):
        try:
            import importlib.util
            if importlib.util.find_spec("ipywidgets") is not None:
                from tqdm.auto import tqdm  # a widget bar in notebooks
            else:
                from tqdm import tqdm  # text bar (tqdm.auto would only warn, then do this)
        except ImportError:  # pragma: no cover
            return None
        return tqdm(total=total, unit="step", leave=True, dynamic_ncols=True)


def _config_for_load(path: Any, meta: Dict[str, Any], cfg: Optional[Config], device: Optional[str]) -> Config:
    """The config a checkpoint resumes with: ``cfg`` or the saved one, on ``device`` if given.
    A saved device that this machine cannot use is an error that says how to move the run."""
    out = cfg if cfg is not None else Config.from_dict(meta["config"])
    if device is not None:
        out = dataclasses.replace(out, device=device)
    elif cfg is None:
        info = {b["name"]: b for b in _core.backends()}.get(out.device)
        if info is None or not info["available"]:
            why = info["unavailable_reason"] if info else "not built into this dcgan"
            raise ValueError(f"{path} was saved on device {out.device!r}, which cannot be used here ({why}); "
                             f"pass device='cpu' (or another of dcgan.backends()) to resume it there")
    return out


class Generator:
    """A trained generator for sampling, loaded from a full or generator-only checkpoint.

    >>> g = dcgan.Generator.load("run/checkpoint.npz")
    >>> images = g.generate(64, seed=0)      # same samples as Trainer.generate(64, seed=0)
    """

    def __init__(self, cfg: Config) -> None:
        self._trainer = Trainer(cfg)  # its discriminator is built but never used
        self.cfg = cfg

    @classmethod
    def load(cls, path: "checkpoint.PathLike", device: Optional[str] = None) -> "Generator":
        """The generator of a full or generator-only checkpoint, on ``device`` (default: the
        one it was saved from)."""
        meta, arrays = checkpoint.read(path)
        g = cls(_config_for_load(path, meta, None, device))
        g._trainer._restore_nets(arrays, ("generator",), path)
        return g

    def generate(self, n: int, seed: Optional[int] = None, bn_inference: Optional[str] = None) -> np.ndarray:
        """``n`` samples, float32 (n, C, H, W) in ``cfg.data_range``; BatchNorm statistics as
        :meth:`Trainer.generate` (precise ones by default, computed once after loading)."""
        return self._trainer.generate(n, seed, bn_inference)

    def weights(self) -> "OrderedDict[str, np.ndarray]":
        return self._trainer.weights("generator")
