"""Where a dataset's files are looked for, and where downloads go.

Shared by every loader: the ``$DCGAN_DATA`` / ``$DCGAN_CACHE`` conventions,
:func:`cache_dir`, and :func:`resolve_dir`, the folder search with its uniform
"put these files there" error. No network, no file formats here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable naming the folder that holds one sub-folder per dataset.
DATA_ENV = "DCGAN_DATA"
#: Environment variable naming the download cache (default ``~/.cache/dcgan``).
CACHE_ENV = "DCGAN_CACHE"

_SPLITS = ("train", "test")


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
