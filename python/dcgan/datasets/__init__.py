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

Where the code is
-----------------
=====================  ==========================================================
module                 holds
=====================  ==========================================================
:mod:`.idx`            :func:`read_idx`, :func:`load_mnist`, :func:`load_fashion_mnist`
:mod:`.cifar`          the restricted unpickler, :func:`read_cifar_batch`,
                       :func:`read_cifar_bin`, :func:`load_cifar10`
:mod:`.folder`         :func:`load_image_folder`, :func:`resize_images`
:mod:`.download`       :class:`Remote`, :data:`REMOTES`, :func:`download_file`,
                       checksums, safe extraction, :class:`DownloadError`
:mod:`._paths`         ``DCGAN_DATA`` / ``DCGAN_CACHE``, :func:`cache_dir`,
                       :func:`resolve_dir`
this file              :data:`LOADERS` and :func:`load`, :func:`search_dirs` and
                       :func:`download_dir` (for "looked in ..." messages), and every
                       public name above
=====================  ==========================================================

Module-level settings are read where they are defined, so patch them there:
``dcgan.datasets.download._fetch`` (the only function that opens a URL),
``dcgan.datasets.idx.FASHION_MNIST_SYSTEM_DIRS``.  :data:`REMOTES` is one dict
shared by all modules, so changing its items works through any of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import idx as _idx
from ._paths import CACHE_ENV, DATA_ENV, PathLike, _default_dirs, _download_dir, cache_dir, resolve_dir
from .cifar import CIFAR10_CLASSES, UnsafePickleError, load_cifar10, read_cifar_batch, read_cifar_bin
from .download import DOWNLOAD_TIMEOUT, REMOTES, DownloadError, Remote, download_file, file_digest
from .folder import IMAGE_EXTENSIONS, UnreadableImageError, load_image_folder, resize_images
from .idx import (FASHION_MNIST_CLASSES, FASHION_MNIST_SYSTEM_DIRS, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
                  load_fashion_mnist, load_mnist, read_idx)

__all__ = [
    "DATA_ENV",
    "CACHE_ENV",
    "LOADERS",
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "DownloadError",
    "UnreadableImageError",
    "UnsafePickleError",
    "cache_dir",
    "download_dir",
    "search_dirs",
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


#: Dataset name -> its sub-folder under ``$DCGAN_DATA`` and the download cache.
SUBDIRS: Dict[str, str] = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar10"}


def search_dirs(name: str) -> List[Path]:
    """The folders :func:`load` looks in, in order, for ``name`` when no ``root`` is given.

    ``$DCGAN_DATA/<subfolder>`` and ``$DCGAN_DATA`` (when set), system-wide folders
    (Fashion-MNIST's Debian package), then the download cache ``cache_dir()/<subfolder>``.
    For messages such as "looked in ..."; nothing is created.
    """
    key = _canonical(name)
    if key not in SUBDIRS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(SUBDIRS))}")
    if key == "cifar10":  # as cifar._find_cifar searches
        env = os.environ.get(DATA_ENV)
        out: List[Path] = []
        if env:
            e = Path(env).expanduser()
            out += [e / "cifar10", e / "cifar10-subset", e]
        return out + [cache_dir() / "cifar10"]
    system = [d for d in _idx.FASHION_MNIST_SYSTEM_DIRS if Path(d).is_dir()] if key == "fashion-mnist" else []
    return _default_dirs(SUBDIRS[key], system)


def download_dir(name: str, root: Optional[PathLike] = None) -> Path:
    """Where ``load(name, root, download=True)`` puts the files it downloads: ``root`` if given,
    else ``$DCGAN_DATA/<subfolder>`` if ``DCGAN_DATA`` is set, else ``cache_dir()/<subfolder>``."""
    key = _canonical(name)
    if key not in SUBDIRS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(SUBDIRS))}")
    return _download_dir(root, SUBDIRS[key])
