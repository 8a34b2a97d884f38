"""IDX files (the format of MNIST, Fashion-MNIST, EMNIST, ...), MNIST and Fashion-MNIST.

:func:`read_idx` reads one IDX file, gzip-compressed or raw; :func:`load_mnist`
and :func:`load_fashion_mnist` find (or download) a split's image and label
files and check them against each other.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np

from ._paths import PathLike, _check_split, _download_dir, resolve_dir
from .download import REMOTES, DownloadError, download_file

# ---------------------------------------------------------------------------
# IDX format (MNIST, Fashion-MNIST, EMNIST, ...)
# http://yann.lecun.com/exdb/mnist/ : a big-endian header
#   [0, 0, type code, ndim] [dim_0] ... [dim_{ndim-1}]   (each dim: uint32)
# followed by prod(dims) items of the given type, also big-endian.
# ---------------------------------------------------------------------------

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
IDX_IMAGES_MAGIC = 0x0803  # 2051
#: Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
IDX_LABELS_MAGIC = 0x0801  # 2049

_GZIP_MAGIC = b"\x1f\x8b"


#: Largest IDX payload read (bytes, after decompression): MNIST-style sets are far smaller; a
#: header that declares more is refused before anything is decompressed.
MAX_IDX_BYTES = 4 << 30


def _open_stream(path: Path):
    """``(stream, was_gzip)``; compression is detected from the content (gzip magic bytes), not
    the name."""
    f = open(path, "rb")
    head = f.read(2)
    f.seek(0)
    if head != _GZIP_MAGIC:
        return f, False
    return gzip.GzipFile(fileobj=f, mode="rb"), True


def _read_exactly(stream, n: int, path: Path, compressed: bool) -> bytes:
    try:
        data = stream.read(n)
    except (EOFError, OSError, zlib.error) as e:  # BadGzipFile is an OSError
        if compressed:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({e}); "
                             "download it again or decompress it by hand to check it") from None
        raise
    return data


def read_idx(path: PathLike, expected_magic: Optional[int] = None, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a NumPy array.

    Parameters
    ----------
    path:
        The file, e.g. ``train-images-idx3-ubyte.gz`` or
        ``train-images-idx3-ubyte``. Compression is recognised from the
        content, not from the file name.
    expected_magic:
        If given, the file's magic number must equal it (2051 for MNIST
        images, 2049 for MNIST labels).
    max_bytes:
        Refuse a file whose header declares more data than this (default 4 GiB): the header
        is read first and the payload streamed, so a small compressed file that would expand
        without bound costs no more than its declared size.

    Returns
    -------
    numpy.ndarray
        A writable, C-contiguous array of shape ``dims`` as stored in the
        header, in native byte order (``uint8`` for MNIST-style files).

    Raises
    ------
    ValueError
        Bad magic number, unknown type code, or a size that does not match the
        header (the message names the file and gives expected vs. actual size).
    """
    path = Path(path)
    stream, compressed = _open_stream(path)
    with stream:
        head = _read_exactly(stream, 4, path, compressed)
        if len(head) < 4:
            raise ValueError(
                f"{path}: not an IDX file (only {len(head)} bytes; expected at least a 4-byte header)"
            )
        magic = int.from_bytes(head, "big")
        if expected_magic is not None and magic != expected_magic:
            raise ValueError(
                f"{path}: bad magic number {magic} (0x{magic:08x}); expected {expected_magic} "
                f"(0x{expected_magic:08x}). Is this the right file, and is it uncompressed or gzip?"
            )
        zero, type_code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
        if zero != 0 or type_code not in _IDX_TYPES or ndim == 0:
            raise ValueError(
                f"{path}: not an IDX file (magic number {magic} = 0x{magic:08x}: "
                "expected 0x0000TTNN with a known type code TT and NN >= 1 dimensions)"
            )
        dtype = _IDX_TYPES[type_code]
        header = 4 + 4 * ndim
        rest = _read_exactly(stream, 4 * ndim, path, compressed)
        if len(rest) < 4 * ndim:
            raise ValueError(
                f"{path}: truncated IDX header: expected at least {header} bytes, got {4 + len(rest)}"
            )
        dims = tuple(int.from_bytes(rest[4 * i : 4 * i + 4], "big") for i in range(ndim))
        payload = dtype.itemsize
        for d in dims:  # Python integers: no overflow
            payload *= d
        if payload > max_bytes:
            raise ValueError(
                f"{path}: the IDX header declares shape {dims} of {dtype.name} = {payload} bytes, more than "
                f"the {max_bytes} bytes this reader accepts (pass max_bytes= to read_idx for a larger file)"
            )
        expected = header + payload
        if not compressed:
            actual = path.stat().st_size
            if actual != expected:
                what = "truncated" if actual < expected else "has trailing data"
                raise ValueError(
                    f"{path}: IDX file {what}: header says shape {dims} of {dtype.name}, "
                    f"so expected {expected} bytes, actual size {actual} bytes"
                )
        data = _read_exactly(stream, payload, path, compressed)
        extra = _read_exactly(stream, 1, path, compressed) if len(data) == payload else b""
        if len(data) != payload or extra:
            what = "truncated" if len(data) < payload else "has trailing data"
            actual = f"{header + len(data)} bytes" if len(data) < payload else f"at least {expected + 1} bytes"
            raise ValueError(
                f"{path}: IDX file {what}: header says shape {dims} of {dtype.name}, "
                f"so expected {expected} bytes (decompressed), actual size {actual}"
            )
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    # A copy makes it writable (bytes are immutable) and native-endian.
    return arr.astype(dtype.newbyteorder("="), copy=True)


# ---------------------------------------------------------------------------
# Finding (and downloading) a split's two files
# ---------------------------------------------------------------------------


def _download_idx(name: str, dataset: str, root: Optional[PathLike], subdir: str, split: str) -> None:
    prefix = "train" if split == "train" else "t10k"
    folder = _download_dir(root, subdir)
    for remote in REMOTES[name]:
        if remote.filename.startswith(prefix + "-"):
            try:
                download_file(remote, folder)
            except DownloadError as e:
                raise DownloadError(
                    f"{dataset} ({split} split): {e} (the {split} split needs "
                    f"{prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz there)"
                ) from None


def _idx_names(prefix: str, kind: str, ndim: int) -> List[str]:
    """Accepted file names, e.g. train-images-idx3-ubyte(.gz), train-images.idx3-ubyte(.gz)."""
    bases = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [b + ext for b in bases for ext in (".gz", "")]


def _load_idx_pair(
    root: Optional[PathLike],
    split: str,
    *,
    subdir: str,
    dataset: str,
    system_dirs: Iterable[PathLike] = (),
    num_classes: int = 10,
    download: bool = False,
    remote_name: Optional[str] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    _check_split(split)
    prefix = "train" if split == "train" else "t10k"
    required = [_idx_names(prefix, "images", 3), _idx_names(prefix, "labels", 1)]

    def find() -> Tuple[Path, Path]:
        _, (i, l) = resolve_dir(
            root, subdir, required, dataset=f"{dataset} ({split} split)", system_dirs=system_dirs,
            hint="or pass download=True to fetch them" if remote_name and not download else "",
        )
        return i, l

    try:
        img_path, lbl_path = find()
    except FileNotFoundError:
        if not download or remote_name is None:
            raise
        _download_idx(remote_name, dataset, root, subdir, split)
        img_path, lbl_path = find()
    images = read_idx(img_path, expected_magic=IDX_IMAGES_MAGIC)
    labels = read_idx(lbl_path, expected_magic=IDX_LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{img_path}: expected 28x28 images, header says {images.shape[1:]}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{dataset} {split}: image/label count mismatch: {img_path.name} has "
            f"{images.shape[0]} images but {lbl_path.name} has {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(
            f"{lbl_path}: label {int(labels.max())} out of range 0..{num_classes - 1}"
        )
    return images, labels


# ---------------------------------------------------------------------------
# MNIST and Fashion-MNIST
# ---------------------------------------------------------------------------


def load_mnist(
    root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> Tuple[np.ndarray, np.ndarray]:
    """Load MNIST from the official IDX files.

    Parameters
    ----------
    root:
        Folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (each may
        also be uncompressed, and ``train-images.idx3-ubyte`` style names are
        accepted), or a folder containing ``mnist/`` with them.
        Default: ``$DCGAN_DATA/mnist``, then the download cache.
    split:
        ``"train"`` (60000 images) or ``"test"`` (10000 images).
    download:
        Fetch the split's two files (MD5-checked) when they are not found; see
        :mod:`dcgan.datasets`' "Downloads" section for where they go.

    Returns
    -------
    images : numpy.ndarray
        ``uint8``, shape ``(N, 28, 28)``, row-major, 0 = background, 255 = ink.
    labels : numpy.ndarray
        ``uint8``, shape ``(N,)``, digit classes ``0..9``.

    Raises
    ------
    FileNotFoundError
        The files are not found (the message says which files to put where).
    DownloadError
        ``download=True`` and the download failed (no network, bad checksum).
    ValueError
        Bad ``split``, or a corrupt file (bad magic number, wrong size, image and
        label counts differ).
    """
    return _load_idx_pair(root, split, subdir="mnist", dataset="MNIST", download=download,
                          remote_name="mnist")


#: System-wide Fashion-MNIST folder (Debian package ``dataset-fashion-mnist``).
FASHION_MNIST_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

#: Class names of Fashion-MNIST, indexed by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def load_fashion_mnist(
    root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> Tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST from its IDX files (same format and names as MNIST).

    Parameters
    ----------
    root:
        Folder holding the four IDX files, or a folder containing
        ``fashion-mnist/``. Default: ``$DCGAN_DATA/fashion-mnist``, then
        ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``),
        then the download cache.
    split:
        ``"train"`` (60000 images) or ``"test"`` (10000 images).
    download:
        Fetch the split's two upstream files (MD5-checked) when they are not found.

    Returns
    -------
    images : numpy.ndarray
        ``uint8``, shape ``(N, 28, 28)``.
    labels : numpy.ndarray
        ``uint8``, shape ``(N,)``, classes ``0..9`` (see :data:`FASHION_MNIST_CLASSES`).

    Raises
    ------
    FileNotFoundError, DownloadError, ValueError
        As for :func:`load_mnist`.
    """
    system_dirs = [d for d in FASHION_MNIST_SYSTEM_DIRS if Path(d).is_dir()]
    return _load_idx_pair(
        root, split, subdir="fashion-mnist", dataset="Fashion-MNIST", system_dirs=system_dirs,
        download=download, remote_name="fashion-mnist",
    )
