"""Imports the compiled core, making sure libdnnl.so.3 can be found.

The extension's rpath points at ``<prefix>/lib`` where the ``onednn-cpu-gomp`` wheel puts
libdnnl; for installs where that relation does not hold (``pip install --target``, unusual
prefixes) the library is located through the wheel's file list and loaded first.
"""
from __future__ import annotations

import ctypes
import importlib
import os

# libgomp spins 300k iterations at every barrier before sleeping. On a machine whose cores are
# shared (a notebook beside other work), two spinning teams slow each other several-fold; a
# short spin costs nothing measurable on an idle machine (bench/RESULTS.md). Read by libgomp
# when it loads, so it is set before the core is imported; a value the user set wins.
SPINCOUNT_DEFAULTED = "GOMP_SPINCOUNT" not in os.environ
os.environ.setdefault("GOMP_SPINCOUNT", "2000")


def _preload_dnnl() -> bool:
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover
        return False
    for dist_name in ("onednn-cpu-gomp", "onednn"):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            if f.name == "libdnnl.so.3":
                ctypes.CDLL(str(dist.locate_file(f)), mode=ctypes.RTLD_GLOBAL)
                return True
    return False


def load_core():
    try:
        return importlib.import_module("dcgan._core")
    except ImportError as e:
        if "libdnnl" not in str(e) or not _preload_dnnl():
            raise
        return importlib.import_module("dcgan._core")
