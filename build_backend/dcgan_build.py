"""PEP 517 backend: scikit-build-core, plus the CUDA libraries as build requirements when the
CUDA backend is built (``-C cmake.define.DCGAN_CUDA=ON`` or ``DCGAN_CUDA=1`` in the
environment). cuDNN and cuBLAS come from PyPI wheels (they ship headers and versioned ``.so``
files under ``site-packages/nvidia/...``), found by CMakeLists.txt the way oneDNN is."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from scikit_build_core import build as _skb
from scikit_build_core.build import *  # noqa: F401,F403 (every hook scikit-build-core has)

CUDA_BUILD_REQUIRES = ["nvidia-cudnn-cu13>=9.1", "nvidia-cublas>=13", "nvidia-cuda-runtime>=13",
                       "nvidia-nccl-cu13>=2.19"]
_TRUE = {"1", "on", "true", "yes"}


def cuda_requested(config_settings: Optional[Dict[str, Any]]) -> bool:
    if os.environ.get("DCGAN_CUDA", "").strip().lower() in _TRUE:
        return True
    for key, value in (config_settings or {}).items():
        if key.replace("-", "_").endswith("cmake.define.DCGAN_CUDA") and str(value).strip().lower() in _TRUE:
            return True
    return False


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    req = list(_skb.get_requires_for_build_wheel(config_settings))
    return req + CUDA_BUILD_REQUIRES if cuda_requested(config_settings) else req


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    req = list(_skb.get_requires_for_build_editable(config_settings))
    return req + CUDA_BUILD_REQUIRES if cuda_requested(config_settings) else req
