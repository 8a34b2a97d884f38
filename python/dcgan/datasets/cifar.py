"""CIFAR-10: the python (pickle) and binary batches, read safely, and :func:`load_cifar10`.

The python batches are pickles. They are read with a restricted unpickler
(:class:`_CifarUnpickler`) that can only rebuild NumPy arrays, dicts, lists,
numbers and strings; any other global is refused before it is called
(:class:`UnsafePickleError`).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ._paths import DATA_ENV, PathLike, _check_split, _download_dir, cache_dir
from .download import REMOTES, DownloadError, _safe_extract, download_file

# ---------------------------------------------------------------------------
# CIFAR-10
# https://www.cs.toronto.edu/~kriz/cifar.html
#   python version: cifar-10-batches-py/data_batch_1..5, test_batch: pickled dicts
#     {b'batch_label', b'labels': [N ints], b'data': uint8 array (N, 3072), b'filenames'}
#   binary version: cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin:
#     N records of 1 label byte + 3072 pixel bytes
#   pixels: 1024 red, 1024 green, 1024 blue, each a 32x32 image in row-major order.
# ---------------------------------------------------------------------------

#: CIFAR-10 class names, indexed by label.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS
_CIFAR_PY = "cifar-10-batches-py"
_CIFAR_BIN = "cifar-10-batches-bin"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that a CIFAR batch never needs (it was not called)."""


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to str -> bytes with latin-1/utf-8 (how Python 3
    pickles ``bytes`` at protocol 2)."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError("refusing _codecs.encode other than str -> bytes (latin-1/utf-8)")
    return obj.encode(encoding, errors)


# NumPy's pickles name these; only the exact constructions CIFAR batches use are admitted.
_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1", "|u1", "<i4", "<i8", "<f4", "<f8"}


class _NdarrayRef:
    """Stands in for ``numpy.ndarray`` in a pickle: only ``_reconstruct`` may take it; calling
    it (``ndarray(shape, dtype, buffer, offset, strides)``) is refused."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError("refusing to call numpy.ndarray(...) directly (it can view arbitrary memory "
                                "or expand a few bytes into gigabytes); CIFAR batches never do")


_NDARRAY = _NdarrayRef()


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    try:
        from numpy._core import multiarray as ma, numeric as nm  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray as ma, numeric as nm  # type: ignore[no-redef]

    def reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
        # An empty array that BUILD then fills through ndarray.__setstate__, which checks the
        # buffer's size against the shape and dtype.
        if cls is not _NDARRAY or tuple(shape) != (0,) or typecode not in (b"b", "b"):
            raise UnsafePickleError("refusing numpy _reconstruct with other arguments than (ndarray, (0,), 'b')")
        return ma._reconstruct(np.ndarray, (0,), b"b")

    def dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
        if isinstance(obj, bytes):  # Python 2 pickles read with encoding="bytes"
            obj = obj.decode("latin1")
        if not isinstance(obj, str) or obj not in _DTYPES:
            raise UnsafePickleError(f"refusing numpy dtype {obj!r} (only plain numeric dtypes)")
        return np.dtype(obj, align=bool(align), copy=bool(copy))

    def frombuffer(buf: Any, dt: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray)) or not isinstance(dt, np.dtype) or dt.hasobject:
            raise UnsafePickleError("refusing numpy _frombuffer other than bytes with a numeric dtype")
        shape = tuple(shape)
        count = 1
        for d in shape:
            if not isinstance(d, int) or d < 0:
                raise UnsafePickleError(f"refusing numpy _frombuffer with shape {shape!r}")
            count *= d
        if count * dt.itemsize != len(buf):
            raise ValueError(f"numpy _frombuffer: {len(buf)} bytes do not hold shape {shape} of {dt}")
        return nm._frombuffer(buf, dt, shape, order)

    out: Dict[Tuple[str, str], Any] = {}
    for pkg in ("numpy.core", "numpy._core"):
        out[(f"{pkg}.multiarray", "_reconstruct")] = reconstruct
        if hasattr(nm, "_frombuffer"):
            out[(f"{pkg}.numeric", "_frombuffer")] = frombuffer
    out[("numpy", "ndarray")] = _NDARRAY
    out[("numpy", "dtype")] = dtype
    return out


#: Largest python CIFAR batch read (an official one is 31 MB), and the deepest nesting of
#: containers admitted (an official one nests 3 deep): both checked before unpickling.
MAX_BATCH_BYTES = 256 << 20
MAX_PICKLE_DEPTH = 32
# Largest memo index a pickle may store to: CPython's unpickler grows its memo table to the index
# (8 bytes a slot, zero-filled), so a 6-byte LONG_BINPUT could ask for gigabytes (found by
# fuzzing). A CIFAR-10 batch uses a handful.
MAX_MEMO_INDEX = 1 << 16
# Opcodes that change an object already on the stack (the object keeps its depth unless what
# is added is deeper); every other opcode that pops builds a new object one level deeper.
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "BUILD", "ADDITEMS"}


def _check_pickle_shape(data: bytes, path: Path) -> None:
    """Walks the opcodes (pickletools.genops: iterative, executes nothing) tracking each stack
    item's nesting depth, so a file nested thousands deep is refused before the unpickler (whose
    C code recurses on it) sees it."""
    stack: List[Any] = []  # depth per item; None for a mark
    memo: Dict[Any, int] = {}
    try:
        for op, arg, _pos in pickletools.genops(data):
            before, after = op.stack_before, op.stack_after
            popped: List[int] = []
            if before and before[-1] is pickletools.stackslice:
                while stack and stack[-1] is not None:
                    popped.append(stack.pop())
                if not stack:
                    raise ValueError("mark missing")
                stack.pop()  # the mark
                n_fixed = len(before) - 2
            else:
                n_fixed = len(before)
            for _ in range(n_fixed):
                if not stack or stack[-1] is None:
                    raise ValueError(f"{op.name} on an empty stack")
                popped.append(stack.pop())
            if op.name in _IN_PLACE:
                container = popped[-1]
                items = popped[:-1]
                depth = max([container] + [d + 1 for d in items])
            else:
                depth = 1 + max(popped) if popped else 0
            if depth > MAX_PICKLE_DEPTH:
                raise UnsafePickleError(f"the pickle nests containers more than {MAX_PICKLE_DEPTH} deep "
                                        f"(a CIFAR-10 batch nests 3)")
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = arg if op.name != "MEMOIZE" else len(memo)
                if not isinstance(index, int) or index > MAX_MEMO_INDEX:
                    raise UnsafePickleError(f"the pickle stores to memo slot {index!r}; a CIFAR-10 batch uses "
                                            f"a few (the unpickler would allocate a table that large)")
                if stack and stack[-1] is not None:
                    memo[arg if op.name != "MEMOIZE" else len(memo)] = stack[-1]
            if op.name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg, 0))
                continue
            for x in after:
                stack.append(None if x is pickletools.markobject else depth)
    except UnsafePickleError:
        raise
    except ValueError as e:
        raise ValueError(f"corrupt pickle: {e}") from None


def _sized(cls: type) -> Any:
    """``bytes``/``bytearray`` as a pickle may call them, except with a size: ``bytes(n)``
    allocates n zero bytes, so a 30-byte file could ask for gigabytes (found by fuzzing)."""

    def make(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise UnsafePickleError(f"refusing {cls.__name__}({args[0]!r}) in a pickle: a CIFAR-10 batch never "
                                    f"allocates zero-filled buffers, and it could ask for any amount of memory")
        return cls(*args)

    return make


class _CifarUnpickler(pickle.Unpickler):
    """Rebuilds only what CIFAR batches hold: dicts, lists, str/bytes, numbers and
    NumPy arrays. ``find_class`` refuses every other global, so nothing else can be
    imported or called (``os.system``, ``eval``, ``subprocess.Popen``, ...)."""

    _allowed: Optional[Dict[Tuple[str, str], Any]] = None

    def find_class(self, module: str, name: str) -> Any:
        allowed = type(self)._allowed
        if allowed is None:
            allowed = _numpy_globals()
            allowed.update({
                ("_codecs", "encode"): _codecs_encode,
                ("builtins", "bytes"): _sized(bytes), ("__builtin__", "bytes"): _sized(bytes),
                ("builtins", "bytearray"): _sized(bytearray), ("__builtin__", "bytearray"): _sized(bytearray),
            })
            type(self)._allowed = allowed
        fn = allowed.get((module, name))
        if fn is None:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}': a CIFAR-10 batch holds only NumPy "
                "arrays, lists, dicts, numbers and strings, so this file is not one (it may "
                "try to run code)"
            )
        return fn


def _key(k: Any) -> Any:
    return k.decode("latin1") if isinstance(k, bytes) else k


def read_cifar_batch(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read one python-version CIFAR-10 batch (e.g. ``data_batch_1``) safely.

    Returns ``(images uint8 (N, 32, 32, 3), labels uint8 (N,))``.
    Raises :class:`UnsafePickleError` for a pickle that asks for anything but
    NumPy's array rebuilding, and ``ValueError`` for a truncated, corrupt or
    mislabelled batch (the message names the file).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BATCH_BYTES:
            raise ValueError(f"{path}: {size} bytes, more than a CIFAR-10 batch can be ({MAX_BATCH_BYTES})")
        data = path.read_bytes()
        _check_pickle_shape(data, path)
        obj = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError, UnicodeDecodeError,
            # NumPy's dtype.__setstate__ fails with SystemError on some malformed states (a
            # field-name list where None belongs: found by fuzzing); RuntimeError for the like.
            SystemError, RuntimeError) as e:
        raise ValueError(
            f"{path}: not a readable CIFAR-10 python batch (truncated or corrupt pickle: "
            f"{type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch: the pickle holds a {type(obj).__name__}, "
                         "expected a dict with b'data' and b'labels'")
    d = {_key(k): v for k, v in obj.items()}
    if "data" not in d or "labels" not in d:
        extra = " (a CIFAR-100 file? it has fine_labels)" if "fine_labels" in d else ""
        raise ValueError(f"{path}: not a CIFAR-10 batch: keys {sorted(map(str, d))}, expected "
                         f"b'data' and b'labels'{extra}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' is a {desc}; expected a uint8 array (N, {_CIFAR_PIXELS})")
    raw = d["labels"]
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"{path}: b'labels' is a {raw.dtype} array of shape {raw.shape}; expected N ints")
        labels_list = raw.tolist()
    elif isinstance(raw, (list, tuple)):
        labels_list = list(raw)
    else:
        raise ValueError(f"{path}: b'labels' is a {type(raw).__name__}; expected a list of N ints 0..9")
    for i, v in enumerate(labels_list):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 9:
            raise ValueError(f"{path}: label {v!r} at index {i} is not an int in 0..9")
    if len(labels_list) != data.shape[0]:
        raise ValueError(f"{path}: count mismatch: {data.shape[0]} images in b'data' but "
                         f"{len(labels_list)} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels_list, dtype=np.uint8)


def read_cifar_bin(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read one binary-version CIFAR-10 batch (e.g. ``data_batch_1.bin``).

    Returns ``(images uint8 (N, 32, 32, 3), labels uint8 (N,))``; ``ValueError``
    when the size is not a whole number of 3073-byte records or a label is not 0..9.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) == 0 or len(raw) % _CIFAR_RECORD:
        hint = " (CIFAR-100's binary records have 2 label bytes: 3074)" if len(raw) % 3074 == 0 and raw else ""
        raise ValueError(
            f"{path}: truncated or not a CIFAR-10 binary batch: {len(raw)} bytes is not a whole "
            f"number of {_CIFAR_RECORD}-byte records (1 label byte + {_CIFAR_PIXELS} pixel bytes){hint}"
        )
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0].copy()
    if labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise ValueError(f"{path}: label {int(labels[i])} of record {i} is out of range 0..9 "
                         "(is this CIFAR-10's binary version?)")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _cifar_files(split: str, fmt: str) -> List[str]:
    if fmt == "py":
        return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]


def _find_cifar(root: Optional[PathLike], split: str) -> Tuple[str, List[Path]]:
    if root is not None:
        r = Path(root).expanduser()
        bases = [r, r / "cifar10", r / "cifar10-subset"]
    else:
        env = os.environ.get(DATA_ENV)
        bases = []
        if env:
            e = Path(env).expanduser()
            bases += [e / "cifar10", e / "cifar10-subset", e]
        bases.append(cache_dir() / "cifar10")
    looked: List[Path] = []
    partial: List[str] = []
    for base in bases:
        for fmt, folder in (("py", base / _CIFAR_PY), ("bin", base / _CIFAR_BIN), ("py", base), ("bin", base)):
            if folder not in looked:
                looked.append(folder)
            if not folder.is_dir():
                continue
            names = _cifar_files(split, fmt)
            present = [n for n in names if (folder / n).is_file()]
            if len(present) == len(names):
                return fmt, [folder / n for n in names]
            if present:
                partial.append(f"{folder} has {', '.join(present)} but lacks "
                               f"{', '.join(n for n in names if n not in present)}")
    names_py = ", ".join(_cifar_files(split, "py"))
    if root is None and not os.environ.get(DATA_ENV):
        where = (f"no data folder given: pass root=<folder> or set {DATA_ENV} to a folder that "
                 f"contains cifar10/{_CIFAR_PY}/ (also looked in {bases[-1]})")
    else:
        where = ("looked in " + ", ".join(str(p) for p in bases)
                 + f" and their {_CIFAR_PY}/ and {_CIFAR_BIN}/ sub-folders")
    more = ("; " + "; ".join(partial)) if partial else ""
    raise FileNotFoundError(
        f"CIFAR-10 ({split} split) files not found: {where}{more}. Put the official python "
        f"batches ({names_py}) in <folder>/{_CIFAR_PY}/ (unpack cifar-10-python.tar.gz in "
        f"<folder>), or the binary ones (.bin) in <folder>/{_CIFAR_BIN}/; or pass download=True."
    )


def _download_cifar10(root: Optional[PathLike]) -> None:
    folder = _download_dir(root, "cifar10")
    (remote,) = REMOTES["cifar10"]
    try:
        archive = download_file(remote, folder)
    except DownloadError as e:
        raise DownloadError(f"CIFAR-10: {e}, then unpack it there (tar xzf {remote.filename}) so that "
                            f"{folder / 'cifar-10-batches-py'} exists") from None
    _safe_extract(archive, folder, "cifar-10-batches-py")
    archive.unlink()


def load_cifar10(
    root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> Tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from the official python (pickle) or binary batches.

    Parameters
    ----------
    root:
        The folder holding ``cifar-10-batches-py/`` (or ``cifar-10-batches-bin/``),
        that folder itself, or a folder containing ``cifar10/`` or
        ``cifar10-subset/`` with it. Default: ``$DCGAN_DATA/cifar10``, then
        ``$DCGAN_DATA/cifar10-subset``, then the download cache. The python
        version is preferred when both are present.
    split:
        ``"train"`` (``data_batch_1`` .. ``data_batch_5``, 50000 images) or
        ``"test"`` (``test_batch``, 10000 images).
    download:
        When no batches are found, fetch ``cifar-10-python.tar.gz`` (170 MB,
        MD5-checked) and unpack its ``cifar-10-batches-py/``.

    Returns
    -------
    images : numpy.ndarray
        ``uint8``, shape ``(N, 32, 32, 3)`` (NHWC, RGB).
    labels : numpy.ndarray
        ``uint8``, shape ``(N,)``, classes ``0..9`` (see :data:`CIFAR10_CLASSES`).

    Raises
    ------
    FileNotFoundError
        Batches not found (the message says which files to put where).
    UnsafePickleError
        A pickle that asks for anything but NumPy arrays (nothing in it is run).
    ValueError
        Bad ``split``; a truncated, corrupt or mislabelled batch.
    DownloadError
        ``download=True`` and the download failed.
    """
    _check_split(split)
    try:
        fmt, files = _find_cifar(root, split)
    except FileNotFoundError:
        if not download:
            raise
        _download_cifar10(root)
        fmt, files = _find_cifar(root, split)
    read = read_cifar_batch if fmt == "py" else read_cifar_bin
    parts = [read(f) for f in files]
    if len(parts) == 1:
        return parts[0]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
