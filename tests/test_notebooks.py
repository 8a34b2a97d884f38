"""Every notebook in notebooks/ runs top to bottom in quick mode (DCGAN_NOTEBOOK_QUICK=1).

Each is executed with nbclient in a fresh kernel whose working folder is a temporary one (the
notebooks write their files under runs/ there), reading real data from $DCGAN_DATA (or
../shared/data, as tests/conftest.py finds it). The executed copies are written next to it, for
inspection when a cell fails.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, data_root

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds a cell may run in quick mode before the test fails.
CELL_TIMEOUT = 300


def test_notebooks_found():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "mnist_dcgan.ipynb", "cifar10_dcgan.ipynb", "losses.ipynb"} <= names, names


@pytest.mark.slow  # a kernel and a short training run each: pytest -m slow (CI runs it)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    data = data_root()
    if not (data / "mnist").is_dir():
        pytest.fail(f"real data not found in {data}; set DCGAN_DATA to the folder holding mnist/")
    import dcgan

    # The kernel is a child process: it gets the environment of this one.
    pkg_parent = str(Path(dcgan.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([pkg_parent] + [p for p in sys.path if p]))
    monkeypatch.setenv("DCGAN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("DCGAN_DATA", str(data.resolve()))
    monkeypatch.setenv("DCGAN_NOTEBOOK_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.time()
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / path.name)
    elapsed = time.time() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    # every code cell ran
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code" and c.source.strip())
    print(f"{path.name}: {elapsed:.1f} s in quick mode")
