"""Atomic file writes: a crash mid-write never destroys the previous file."""
from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def _remove_stale_temps(path: Path) -> None:
    """Temp files of earlier saves to ``path`` whose writer process is gone (killed mid-save):
    named ``.<name>.<pid>.<random>.tmp``; another live process's save is left alone."""
    pattern = re.compile(r"^\." + re.escape(path.name) + r"\.(\d+)\.[^.]+\.tmp$")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for e in entries:
        m = pattern.match(e.name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue  # this process's own save in another thread
        try:
            os.kill(pid, 0)
            continue  # alive: its save is in progress
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        try:
            os.unlink(e.path)
        except OSError:
            pass


def atomic_write(path: PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Calls ``write(f)`` on a temp file next to ``path``, fsyncs it, then renames it onto ``path``.
    Temp files left by earlier saves to the same path that were killed are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; give it the usual permissions of a new file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
