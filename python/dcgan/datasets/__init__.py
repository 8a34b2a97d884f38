"""Dataset loaders that read the official on-disk formats, and image helpers.

Every loader returns plain NumPy arrays and needs only NumPy, Pillow (for the
image-folder loader and :func:`resize_images`) and the standard library (no
``dcgan._core``), so it can be used (and tested) on its own:

>>> from dcgan.datasets import load_mnist, load_cifar10
>>> x, y = load_mnist("/path/to/mnist", split="train")   # doctest: +SKIP
>>> x.shape, x.dtype, y.shape                             # doctest: +SKIP
((60000, 28, 28), dtype('uint8'), (60000,))
>>> x, y = load_cifar10("/path/to/cifar10")               # doctest: +SKIP
>>> x.shape                                               # doctest: +SKIP
(50000, 32, 32, 3)

=========================  =====================================  ===========================
loader                     reads                                  returns
=========================  =====================================  ===========================
:func:`load_mnist`         IDX files (gzip or raw)                uint8 (N, 28, 28), labels
:func:`load_fashion_mnist` IDX files (gzip or raw)                uint8 (N, 28, 28), labels
:func:`load_cifar10`       ``cifar-10-batches-py/`` (pickles) or  uint8 (N, 32, 32, 3) NHWC,
                           ``cifar-10-batches-bin/`` (binary)     labels
:func:`load_image_folder`  PNG / JPEG files under a folder        uint8 (N, S, S, 3), labels,
                           (e.g. CelebA's ``img_align_celeba/``)  class names
=========================  =====================================  ===========================

Where the data is looked for
----------------------------
``root`` may be the folder that holds a dataset's files or a folder that
contains the dataset's sub-folder (``mnist/``, ``fashion-mnist/``,
``cifar10/``, ...).  When ``root`` is ``None`` the loaders use
``$DCGAN_DATA/<subfolder>``, then any system-wide locations listed for that
dataset, then the download cache (``$DCGAN_CACHE/<subfolder>``, by default
``~/.cache/dcgan/<subfolder>``).

Downloads
---------
``download=True`` (MNIST, Fashion-MNIST, CIFAR-10) fetches the official
archives when the files are not found, checks their MD5 sums, and stores them
in ``root`` if given, else in ``$DCGAN_DATA/<subfolder>`` if ``DCGAN_DATA`` is
set, else in the cache folder above.  Without a network the error says which
files to fetch by hand and where to put them.

Safety
------
CIFAR-10's python batches are pickles.  They are read with a restricted
unpickler that can only rebuild NumPy arrays, dicts, lists, numbers and
strings; any other global (``os.system``, ``subprocess.Popen``, ...) is refused
before it is called (:class:`UnsafePickleError`).  Downloaded archives are
extracted member by member, regular files only, never outside the target.

Adding a loader
---------------
A loader is a function ``load_<name>(root=None, split="train", download=False)
-> (images, labels)``; register it in :data:`LOADERS` under the dataset's name
so that :func:`load` (and the command line) can find it.  :func:`resolve_dir`
does the folder search and gives a uniform "where to put the files" error.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "DATA_ENV",
    "CACHE_ENV",
    "LOADERS",
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "DownloadError",
    "UnsafePickleError",
    "cache_dir",
    "load",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "load_image_folder",
    "resize_images",
    "read_idx",
    "read_cifar_batch",
    "read_cifar_bin",
    "resolve_dir",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable naming the folder that holds one sub-folder per dataset.
DATA_ENV = "DCGAN_DATA"
#: Environment variable naming the download cache (default ``~/.cache/dcgan``).
CACHE_ENV = "DCGAN_CACHE"

_SPLITS = ("train", "test")

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


def _read_bytes(path: Path) -> Tuple[bytes, bool]:
    """``(content, was_gzip)``: the decompressed content of ``path``.

    Compression is detected from the content (gzip magic bytes), not the name.
    """
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head != _GZIP_MAGIC:
            return f.read(), False
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                return g.read(), True
        except (EOFError, OSError, zlib.error) as e:  # BadGzipFile is an OSError
            raise ValueError(
                f"{path}: corrupt or truncated gzip file ({e}); "
                "download it again or decompress it by hand to check it"
            ) from None


def read_idx(path: PathLike, expected_magic: Optional[int] = None) -> np.ndarray:
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
    data, compressed = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(
            f"{path}: not an IDX file (only {len(data)} bytes; expected at least a 4-byte header)"
        )
    magic = int.from_bytes(data[:4], "big")
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
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header: expected at least {header} bytes, got {len(data)}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing data"
        kind = " (decompressed)" if compressed else ""
        raise ValueError(
            f"{path}: IDX file {what}: header says shape {dims} of {dtype.name}, "
            f"so expected {expected} bytes{kind}, actual size {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    # A copy makes it writable (bytes are immutable) and native-endian.
    return arr.astype(dtype.newbyteorder("="), copy=True)


# ---------------------------------------------------------------------------
# Locating files
# ---------------------------------------------------------------------------


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def cache_dir() -> Path:
    """The download cache: ``$DCGAN_CACHE`` or ``~/.cache/dcgan``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dcgan"


def _default_dirs(subdir: str, system_dirs: Iterable[PathLike] = ()) -> List[Path]:
    """Where a dataset is looked for when no root is given."""
    out: List[Path] = []
    env = os.environ.get(DATA_ENV)
    if env:
        out += [Path(env).expanduser() / subdir, Path(env).expanduser()]
    out += [Path(d) for d in system_dirs]
    out.append(cache_dir() / subdir)
    return out


def _download_dir(root: Optional[PathLike], subdir: str) -> Path:
    """Where ``download=True`` puts a dataset's files."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser() / subdir
    return cache_dir() / subdir


def resolve_dir(
    root: Optional[PathLike],
    subdir: str,
    required: Sequence[Sequence[str]],
    *,
    dataset: str,
    system_dirs: Iterable[PathLike] = (),
    hint: str = "",
) -> Tuple[Path, List[Path]]:
    """Find the folder that holds a dataset and the files in it.

    Candidate folders, in order: ``root`` and ``root/subdir`` when ``root`` is
    given; otherwise ``$DCGAN_DATA/subdir`` (and ``$DCGAN_DATA`` itself), then
    ``system_dirs``, then the download cache ``cache_dir()/subdir``.
    ``required`` lists, for each needed file, the accepted names (first
    existing one wins).

    Returns ``(folder, [file for each entry of required])``.

    Raises ``FileNotFoundError`` explaining which files to put where (plus
    ``hint``, e.g. "or pass download=True").
    """
    candidates: List[Path] = []
    if root is not None:
        root = Path(root).expanduser()
        candidates += [root, root / subdir]
    else:
        candidates += _default_dirs(subdir, system_dirs)

    for folder in candidates:
        if not folder.is_dir():
            continue
        found = []
        for names in required:
            hit = next((folder / n for n in names if (folder / n).is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return folder, found

    wanted = ", ".join(names[0] for names in required)
    if root is None and not os.environ.get(DATA_ENV):
        where = (
            f"no data folder given: pass root=<folder> or set the environment variable "
            f"{DATA_ENV} to a folder that contains '{subdir}/'"
        )
        if candidates:
            where += " (also looked in " + ", ".join(str(c) for c in candidates) + ")"
    else:
        where = "looked in " + ", ".join(str(c) for c in candidates)
    # Say what is missing in the first candidate folder that exists, if any.
    missing = ""
    for folder in candidates:
        if folder.is_dir():
            absent = [names[0] for names in required if not any((folder / n).is_file() for n in names)]
            missing = f"; {folder} lacks {', '.join(absent)}"
            break
    raise FileNotFoundError(
        f"{dataset} files not found: {where}{missing}. "
        f"Put {wanted} (gzip or uncompressed) in <folder>/{subdir}/ or in <folder> itself"
        + (f"; {hint}" if hint else "") + "."
    )


# ---------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------


class DownloadError(OSError):
    """A dataset could not be downloaded (no network, bad checksum, ...).

    The message says which files to fetch by hand and where to put them.
    """


@dataclass(frozen=True)
class Remote:
    """One file to download: its name, checksum(s) and mirror URLs (tried in order)."""

    filename: str
    md5: Optional[str]
    urls: Tuple[str, ...]
    sha256: Optional[str] = None


def _mirrors(bases: Sequence[str], filename: str) -> Tuple[str, ...]:
    return tuple(b + filename for b in bases)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

#: Dataset name -> the official files ``download=True`` fetches (upstream MD5 sums).
REMOTES: Dict[str, List[Remote]] = {
    "mnist": [
        Remote(n, m, _mirrors(_MNIST_MIRRORS, n))
        for n, m in (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        )
    ],
    "fashion-mnist": [
        Remote(n, m, _mirrors(_FASHION_MIRRORS, n))
        for n, m in (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        )
    ],
    # The python version (pickles); it unpacks to cifar-10-batches-py/.
    "cifar10": [
        Remote("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
               _mirrors(_CIFAR_MIRRORS, "cifar-10-python.tar.gz")),
    ],
    # The binary version, for reference (load_cifar10(download=True) fetches the python one).
    "cifar10-bin": [
        Remote("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
               _mirrors(_CIFAR_MIRRORS, "cifar-10-binary.tar.gz")),
    ],
}

#: Seconds before a stalled download is abandoned.
DOWNLOAD_TIMEOUT = 60.0


def _fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Copy ``url`` (http, https or file) into the file ``dest``.

    Raises ``OSError`` (``urllib.error.URLError`` included) when it cannot.
    Tests replace this function; nothing else in the module opens URLs.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "dcgan-datasets"})
    with urllib.request.urlopen(req, timeout=timeout) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f, length=1 << 20)


def file_digest(path: PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file's content (read in 1 MiB pieces)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checksum_problem(path: Path, remote: Remote) -> Optional[str]:
    """None if ``path`` matches the remote's checksums, else a description."""
    for algo, want in (("md5", remote.md5), ("sha256", remote.sha256)):
        if want:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                return f"{algo} mismatch: expected {want}, got {got}"
    return None


def download_file(remote: Remote, folder: PathLike, *, quiet: bool = False) -> Path:
    """Download one file into ``folder`` (kept if already there with the right checksum).

    Every mirror is tried in turn; a file whose checksum does not match is
    deleted and counts as a failure. Raises :class:`DownloadError` naming the
    URLs tried, what went wrong with each, and where to put the file by hand.
    """
    folder = Path(folder)
    dest = folder / remote.filename
    if dest.is_file() and _checksum_problem(dest, remote) is None:
        return dest
    problems: List[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the download folder {folder}: {e}") from e
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if not quiet:
                print(f"downloading {url} -> {dest}", flush=True)
            try:
                _fetch(url, tmp)
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts, bad URL
                reason = getattr(e, "reason", None) or e
                problems.append(f"{url}: {reason}")
                continue
            bad = _checksum_problem(tmp, remote)
            if bad:
                problems.append(f"{url}: downloaded file rejected, {bad}")
                continue
            os.replace(tmp, dest)
            return dest
        finally:
            if tmp.exists():
                tmp.unlink()
    sums = ", ".join(f"{a} {v}" for a, v in (("md5", remote.md5), ("sha256", remote.sha256)) if v)
    raise DownloadError(
        f"could not download {remote.filename}: " + "; ".join(problems)
        + f". Without a network, fetch {remote.urls[0]} ({sums}) on another machine and put "
        f"{remote.filename} in {folder}"
    )


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


def _safe_extract(archive: Path, dest: Path, top: str) -> List[Path]:
    """Extract the regular files under ``top/`` of a tar archive into ``dest``.

    Anything else (links, devices, absolute paths, ``..``) is skipped, so a
    hostile archive cannot write outside ``dest``.
    """
    written: List[Path] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                p = PurePosixPath(m.name)
                if not m.isfile() or p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != top:
                    continue
                target = dest.joinpath(*p.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:  # pragma: no cover - isfile() members always have data
                    continue
                with src, open(target, "wb") as f:
                    shutil.copyfileobj(src, f)
                written.append(target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DownloadError(f"{archive}: cannot extract ({e}); delete it and download again") from e
    if not written:
        raise DownloadError(f"{archive}: no files under {top}/ in this archive")
    return written


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
        the module's "Downloads" section for where they go.

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


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    try:
        from numpy._core import multiarray as ma, numeric as nm  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray as ma, numeric as nm  # type: ignore[no-redef]
    out: Dict[Tuple[str, str], Any] = {}
    for pkg in ("numpy.core", "numpy._core"):
        out[(f"{pkg}.multiarray", "_reconstruct")] = ma._reconstruct
        if hasattr(nm, "_frombuffer"):
            out[(f"{pkg}.numeric", "_frombuffer")] = nm._frombuffer
    out[("numpy", "ndarray")] = np.ndarray
    out[("numpy", "dtype")] = np.dtype
    return out


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
                ("builtins", "bytes"): bytes, ("__builtin__", "bytes"): bytes,
                ("builtins", "bytearray"): bytearray, ("__builtin__", "bytearray"): bytearray,
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
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError, UnicodeDecodeError) as e:
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


# ---------------------------------------------------------------------------
# Resizing, image folders (CelebA and the like)
# ---------------------------------------------------------------------------

_RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _resample(name: str) -> Any:
    from PIL import Image

    key = str(name).lower()
    if key not in _RESAMPLE:
        raise ValueError(f"resample must be one of {', '.join(_RESAMPLE)}, got {name!r}")
    enum = getattr(Image, "Resampling", Image)
    return getattr(enum, key.upper())


def _size_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            h, w = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def resize_images(
    images: np.ndarray, size: Union[int, Sequence[int]], resample: str = "bilinear"
) -> np.ndarray:
    """Resize a batch of uint8 images with Pillow.

    Parameters
    ----------
    images:
        ``uint8`` ``(N, H, W)`` (grey) or ``(N, H, W, C)`` (channels last, any C,
        e.g. from :func:`load_cifar10`).
    size:
        ``s`` for ``s x s``, or ``(height, width)``.
    resample:
        ``"bilinear"`` (default), ``"bicubic"``, ``"lanczos"``, ``"box"``,
        ``"hamming"`` or ``"nearest"``. Pillow's filters widen with the scale
        when shrinking, so downscaling averages over the covered area (no aliasing).

    Returns
    -------
    numpy.ndarray
        ``uint8`` ``(N, h, w)`` or ``(N, h, w, C)``, same layout as the input.
    """
    from PIL import Image

    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    h, w = _size_hw(size)
    filt = _resample(resample)
    out_shape = (x.shape[0], h, w) + x.shape[3:]
    if x.shape[1:3] == (h, w):
        return np.array(x, copy=True)
    out = np.empty(out_shape, dtype=np.uint8)
    rgb = x.ndim == 4 and x.shape[3] == 3
    for i in range(x.shape[0]):
        if x.ndim == 3:
            out[i] = np.asarray(Image.fromarray(x[i]).resize((w, h), filt))
        elif rgb:
            out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(x[i]), "RGB").resize((w, h), filt))
        else:
            for c in range(x.shape[3]):
                out[i, :, :, c] = np.asarray(
                    Image.fromarray(np.ascontiguousarray(x[i, :, :, c])).resize((w, h), filt))
    return out


#: File suffixes :func:`load_image_folder` reads (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _list_images(root: Path) -> List[Path]:
    files: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in IMAGE_EXTENSIONS:
                files.append(Path(dirpath) / fn)
    return sorted(files, key=lambda p: p.relative_to(root).parts)


def _read_image(path: Path, size: int, mode: str, filt: Any) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB" if mode == "RGB" else "L", (size, size))  # decode at a reduced scale
        im.load()
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")
            if im.mode == "RGBA":  # transparent areas become white, not black
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
        im = im.convert(mode)
        if (w, h) != (s, s):
            im = im.crop((left, top, left + s, top + s))
        im = im.resize((size, size), filt)
        return np.asarray(im, dtype=np.uint8)


def load_image_folder(
    root: PathLike,
    size: int = 64,
    *,
    channels: int = 3,
    split: Optional[str] = None,
    skip_bad: bool = False,
    limit: Optional[int] = None,
    resample: str = "bilinear",
) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Load every PNG and JPEG under a folder (recursively), centre-cropped and resized.

    Works for CelebA (``root`` holding ``img_align_celeba/*.jpg``) and for
    ImageNet-style class folders (``root/<class>/*.png``).

    Parameters
    ----------
    root:
        The folder to read. Files and folders whose names start with ``.`` are
        ignored; files are read in sorted path order (deterministic).
    size:
        Output side length: each image is cropped to its central square and
        resized to ``size x size``.
    channels:
        3 (default): RGB output; grey images are converted to RGB (and
        transparent pixels to white). 1: greyscale output (ITU-R 601 luma).
    split:
        If given (e.g. ``"train"``), read ``root/split`` instead of ``root``.
    skip_bad:
        A file that cannot be decoded raises ``ValueError`` naming it (default);
        with ``skip_bad=True`` it is skipped with a warning instead.
    limit:
        Read at most this many files (the first ones in sorted order).
    resample:
        Pillow filter name, as in :func:`resize_images`.

    Returns
    -------
    images : numpy.ndarray
        ``uint8`` ``(N, size, size, 3)``, or ``(N, size, size)`` for ``channels=1``.
    labels : numpy.ndarray
        ``int64`` ``(N,)``: index into ``class_names`` of the image's class.
    class_names : list of str
        Sorted names of ``root``'s immediate sub-folders that hold images (the
        class of an image is the first folder below ``root`` on its path, so
        ``root/cats/a/1.png`` is a "cats"); ``"."`` stands for images lying
        directly in ``root``. A CelebA folder gives one class,
        ``["img_align_celeba"]``.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder or holds no PNG/JPEG file.
    ValueError
        A corrupt or truncated image (unless ``skip_bad``), bad arguments.
    """
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int (images are made square), got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    folder = Path(root).expanduser()
    if split is not None:
        folder = folder / split
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = _list_images(folder)
    if not files:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}; for CelebA, point "
            "root at the folder that holds img_align_celeba/"
        )
    if limit is not None:
        files = files[: int(limit)]
    mode = "RGB" if channels == 3 else "L"
    filt = _resample(resample)
    images: List[np.ndarray] = []
    classes: List[str] = []
    skipped = 0
    for p in files:
        try:
            img = _read_image(p, int(size), mode, filt)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, zlib.error) as e:
            msg = f"{p}: cannot read image ({type(e).__name__}: {e})"
            if not skip_bad:
                raise ValueError(msg + "; pass skip_bad=True to skip unreadable files") from None
            warnings.warn("skipping " + msg, stacklevel=2)
            skipped += 1
            continue
        rel = p.relative_to(folder).parts
        classes.append(rel[0] if len(rel) > 1 else ".")
        images.append(img)
    if not images:
        raise ValueError(f"none of the {len(files)} image files under {folder} could be read")
    if skipped:
        warnings.warn(f"skipped {skipped} unreadable image file(s) under {folder}", stacklevel=2)
    class_names = sorted(set(classes))
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[c] for c in classes], dtype=np.int64)
    return np.stack(images), labels, class_names


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

Loader = Callable[..., Tuple[np.ndarray, np.ndarray]]

#: Dataset name -> loader ``f(root=None, split="train", download=False) -> (images, labels)``.
LOADERS: Dict[str, Loader] = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}

_ALIASES = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist"}


def _canonical(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    return _ALIASES.get(key, key)


def load(
    name: str, root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> Tuple[np.ndarray, np.ndarray]:
    """Load the dataset registered as ``name`` in :data:`LOADERS`.

    ``"fashion_mnist"`` and ``"fashion-mnist"`` are the same name, as are
    ``"cifar10"`` and ``"cifar-10"``.
    """
    key = _canonical(name)
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    kwargs = {"download": True} if download else {}  # loaders registered without download work too
    return LOADERS[key](root=root, split=split, **kwargs)
