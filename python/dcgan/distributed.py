"""Data-parallel training over MPI.

Launch ``N`` copies of a training script with MPICH's ``mpiexec`` (``pip install "dcgan[mpi]"``
puts it beside ``python``)::

    mpiexec -n 4 python train.py            # train.py: dcgan.Trainer(cfg).fit(x), unchanged
    python -m dcgan train --nproc 4 ...     # the CLI starts its ranks itself

Each rank runs the whole training step on its share of every global batch (``batch_size`` is per
rank): its slice of the epoch's seeded permutation and of the step's noise, so ``N`` ranks with
batch ``b`` see exactly what one process with batch ``N * b`` sees. D's and G's gradients are
averaged over the ranks (an MPI all-reduce) before Adam, so every rank holds the same parameters
after every step; with ``Config.sync_bn`` BatchNorm uses the statistics of the whole global
batch too. Logged losses are global means; rank 0 alone writes checkpoints and files.

Nothing here loads MPI until a run has several ranks (or :func:`init` is called): ``import
dcgan`` and one-process training never start or load MPI.

A rank that dies or raises ends the job: an uncaught exception on any rank calls ``MPI_Abort``
(every rank stops, the exception's message printed by its rank), ``mpiexec`` ends the job when a
rank is killed, and a rank that waits for others in a collective longer than
``DCGAN_COMM_TIMEOUT`` seconds (default 600) aborts the job with a message saying so.
"""
from __future__ import annotations

import atexit
import os
import pickle
import shutil
import socket
import subprocess
import sys
import traceback
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

__all__ = ["World", "world", "init", "launched_size", "is_main", "barrier", "broadcast_object",
           "allgather_object", "abort", "communicator", "default_threads", "mpiexec_path", "launch"]

# Environment variables process managers set for each rank: MPICH's Hydra and Slurm's PMI
# (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE), PMIx (PMIX_SIZE is not standard; Slurm sets
# SLURM_NTASKS only together with PMI_SIZE for MPI steps).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


@dataclass(frozen=True)
class World:
    """Where this process stands in the job: ``rank`` of ``size``, and ``local_rank`` of the
    ``local_size`` ranks on this machine. ``mpi``: whether MPI is initialised."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    mpi: bool = False


_world: Optional[World] = None
_mpi: Any = None


def comm_timeout() -> float:
    """Seconds a rank waits for the others in one collective before it aborts the job
    (``DCGAN_COMM_TIMEOUT``, default 600; 0 waits forever)."""
    raw = os.environ.get("DCGAN_COMM_TIMEOUT", "600")
    try:
        t = float(raw)
    except ValueError:
        raise ValueError(f"DCGAN_COMM_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if t < 0:
        raise ValueError(f"DCGAN_COMM_TIMEOUT must be >= 0 (0: no limit), got {raw!r}")
    return t


def launched_size() -> int:
    """How many ranks the process manager that started this process says the job has (1 when
    it was not started by mpiexec, srun or the like). Reads only the environment."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 1


def _load_mpi() -> Any:
    global _mpi
    if _mpi is None:
        try:
            from . import _mpi as mod  # type: ignore[attr-defined]
        except ImportError as e:
            why = str(e)
            if "No module named" in why or "cannot import name" in why:
                hint = ("this dcgan was built without MPI (no mpi.h at build time); reinstall it with "
                        "`pip install \"dcgan[mpi]\"` on Linux, where MPICH comes from PyPI")
            else:
                hint = ("the MPI library could not be loaded; install MPICH beside dcgan with "
                        "`pip install \"dcgan[mpi]\"`")
            raise RuntimeError(f"multi-process training needs MPI: {hint} ({why})") from e
        _mpi = mod
    return _mpi


def init() -> World:
    """Initialises MPI (once) and returns this process's :class:`World`. Called by
    :class:`dcgan.Trainer` when the process was launched with several ranks; call it yourself
    to use MPI in a one-rank job."""
    global _world
    if _world is not None and _world.mpi:
        return _world
    mpi = _load_mpi()
    rank, size = mpi.init()
    host = socket.gethostname()
    hosts = [b.decode() for b in mpi.allgather_bytes(host.encode(), comm_timeout())] if size > 1 else [host]
    same = [r for r, h in enumerate(hosts) if h == host]
    _world = World(rank=rank, size=size, local_rank=same.index(rank), local_size=len(same), mpi=True)
    atexit.register(_finalize)
    if size > 1:
        _install_excepthook()
    return _world


def world() -> World:
    """This process's :class:`World`: MPI's when it is initialised or the process was launched
    with several ranks (then MPI is initialised here), else one rank alone (MPI untouched)."""
    if _world is not None:
        return _world
    if launched_size() > 1:
        return init()
    return World()


def is_main() -> bool:
    """True on rank 0 (and in a one-process run): the rank that prints and writes files."""
    return world().rank == 0


def _finalize() -> None:
    if _mpi is not None:
        try:
            _mpi.finalize()
        except Exception:  # pragma: no cover - at exit, nothing left to tell
            pass


def _install_excepthook() -> None:
    previous = sys.excepthook

    def hook(tp, value, tb):  # an uncaught exception on one rank ends every rank
        rank = _world.rank if _world else "?"
        msg = "".join(traceback.format_exception(tp, value, tb))
        sys.stderr.write(f"dcgan: rank {rank} failed; stopping every rank of the job.\n{msg}")
        sys.stderr.flush()
        if tp is KeyboardInterrupt:
            previous(tp, value, tb)
        abort(1)

    sys.excepthook = hook


def abort(code: int = 1) -> None:
    """Ends every rank of the job (``MPI_Abort``); in a one-process run, this process."""
    if _mpi is not None and _world is not None and _world.mpi:
        sys.stdout.flush()
        sys.stderr.flush()
        _mpi.abort(int(code))
    os._exit(int(code))


def barrier() -> None:
    """Waits until every rank gets here (no-op in a one-process run)."""
    if world().size > 1:
        _mpi.barrier(comm_timeout())


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """``root``'s ``obj`` (pickled) on every rank."""
    if world().size == 1:
        return obj
    data = pickle.dumps(obj) if world().rank == root else b""
    return pickle.loads(_mpi.bcast_bytes(data, root, comm_timeout()))


def allgather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order."""
    if world().size == 1:
        return [obj]
    return [pickle.loads(b) for b in _mpi.allgather_bytes(pickle.dumps(obj), comm_timeout())]


def communicator(device: str = "cpu", device_index: int = -1) -> Any:
    """A new communicator for a trainer on backend ``device`` (an opaque capsule the core takes
    over), or None in a one-process run: NCCL for ``"cuda"`` where this build has it (its
    unique id made by rank 0 and sent to every rank over MPI), else MPI on host buffers (the
    core stages device buffers through the host)."""
    w = world()
    if w.size == 1:
        return None
    if device == "cuda":
        from ._loader import load_core
        core = load_core()
        if getattr(core, "has_nccl", False):
            uid = core.nccl_unique_id() if w.rank == 0 else b""
            uid = _mpi.bcast_bytes(uid, 0, comm_timeout())
            return core.nccl_communicator(uid, w.rank, w.size, device_index)
    return _mpi.communicator(comm_timeout())


def default_threads() -> int:
    """Threads per rank that fill this machine's cores without oversubscribing them: the cores
    this process may use divided by the ranks on this machine (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, world().local_size))


def mpiexec_path() -> str:
    """The ``mpiexec`` of the MPI dcgan runs on: the one beside this Python (MPICH from PyPI puts
    it in the environment's bin folder), else the first on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec")
    if found:
        return found
    raise RuntimeError("--nproc needs MPICH's mpiexec, which is not installed: pip install \"dcgan[mpi]\"")


def launch(nproc: int, args: Sequence[str], module: str = "dcgan") -> int:
    """Runs ``python -m <module> <args>`` as ``nproc`` ranks on this machine under mpiexec;
    returns the job's exit status. Each rank gets ``OMP_NUM_THREADS`` = cores / nproc unless
    it is set."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc!r}")
    _load_mpi()  # a clear message now, not one per rank later
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover
            cores = os.cpu_count() or 1
        env["OMP_NUM_THREADS"] = str(max(1, cores // nproc))
    cmd = [mpiexec_path(), "-n", str(nproc), sys.executable, "-m", module, *args]
    return subprocess.call(cmd, env=env)
