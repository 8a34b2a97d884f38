"""Downloads: the official files (:data:`REMOTES`), mirrors, checksums, safe extraction.

:func:`download_file` fetches one :class:`Remote` into a folder, trying each
mirror in turn and checking its MD5/SHA-256; :func:`_safe_extract` unpacks a
tar archive member by member, regular files only, never outside the target.
:func:`_fetch` is the only function in :mod:`dcgan.datasets` that opens a URL
(tests replace it: ``monkeypatch.setattr(dcgan.datasets.download, "_fetch", ...)``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

from ._paths import PathLike


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
    Tests replace this function; nothing else in :mod:`dcgan.datasets` opens URLs.
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
