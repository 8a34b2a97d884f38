"""Executes notebooks and saves them with their outputs.

    python notebooks/run_notebook.py notebooks/quickstart.ipynb --out /tmp/nb      # copies in /tmp/nb
    python notebooks/run_notebook.py notebooks/quickstart.ipynb --in-place         # refresh the committed outputs

The input notebook is never written over unless --in-place says so: without it, --out (a folder
for the executed copies) is required, and an --out that would write a copy over its input is
refused. DCGAN_NOTEBOOK_QUICK=1 (the small settings CI uses) cannot be combined with --in-place,
so quick-mode outputs never replace the committed outputs of the real run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

QUICK_ENV = "DCGAN_NOTEBOOK_QUICK"


def run(path: Path, out: Path, timeout: int) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, out)
    return time.time() - t0


def _quick() -> bool:
    return os.environ.get(QUICK_ENV, "").strip() not in ("", "0")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description="Execute notebooks and save them with their outputs (never over the input unless "
        "--in-place).")
    ap.add_argument("notebooks", nargs="+", type=Path)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="folder for the executed copies (must not be the notebooks' own "
                       "folder)")
    where.add_argument("--in-place", action="store_true",
                       help=f"write the outputs into the input notebooks themselves (refused with {QUICK_ENV}=1)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    a = ap.parse_args(argv)
    if a.in_place and _quick():
        ap.error(f"--in-place with {QUICK_ENV}=1 would replace the committed outputs with quick-mode ones; "
                 "use --out DIR for a quick run")
    for p in a.notebooks:
        if not p.is_file():
            ap.error(f"{p} is not a file")
    jobs: List[tuple] = []
    for p in a.notebooks:
        dst = p if a.in_place else a.out / p.name
        if not a.in_place and _same_file(p, dst):
            ap.error(f"--out {a.out} would write over {p}; give another folder (or --in-place to update it)")
        jobs.append((p, dst))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
    for p, dst in jobs:
        print(f"{p}: ran in {run(p, dst, a.timeout):.0f} s -> {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
