"""geogan: translate georeferenced rasters between domains with Pix2Pix and CycleGAN.

The library never prints and never exits: it returns results and raises the typed
errors of :mod:`geogan.errors`. The ``geogan`` command (``geogan.cli``) is a thin layer
over it. Importing ``geogan`` does not import torch, so that ``export-chips`` and
``sample-data`` start fast and run where torch is absent.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers only: importing them at run time would load torch
    from geogan.translate import translate_batch, translate_raster
    from geogan.translator import Translator, load_model

try:
    __version__ = version("geogan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Translator", "__version__", "load_model", "translate_batch", "translate_raster"]

_LAZY = {"load_model": "geogan.translator", "Translator": "geogan.translator",
         "translate_raster": "geogan.translate", "translate_batch": "geogan.translate"}


def __getattr__(name: str) -> Any:
    """Import the torch-backed API on first use, so ``import geogan`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geogan' has no attribute {name!r}")
