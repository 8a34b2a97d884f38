"""Executes notebooks in place (outputs saved), e.g. to refresh the committed outputs:

    python notebooks/run_notebook.py notebooks/quickstart.ipynb

Set DCGAN_NOTEBOOK_QUICK=1 for the small settings CI uses (then the notebook is written to
--out instead, so the committed outputs of the real run stay untouched).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def run(path: Path, out: Path, timeout: int) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, out)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, help="folder for the executed copies (default: in place)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    a = ap.parse_args()
    for p in a.notebooks:
        dst = (a.out / p.name) if a.out else p
        if a.out:
            a.out.mkdir(parents=True, exist_ok=True)
        print(f"{p}: ran in {run(p, dst, a.timeout):.0f} s -> {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
