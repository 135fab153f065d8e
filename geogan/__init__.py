"""geogan: translate georeferenced rasters between domains with Pix2Pix and CycleGAN.

The library never prints and never exits: it returns results and raises the typed
errors of :mod:`geogan.errors`. The ``geogan`` command (``geogan.cli``) is a thin layer
over it, and so is the arcgis.learn-style API (:mod:`geogan.api.learn`: ``prepare_data``,
``Pix2Pix``, ``CycleGAN``, ``load_model``). Importing ``geogan`` imports neither torch nor
matplotlib, so that ``export-chips`` and ``sample-data`` start fast and run where torch is
absent.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers only: importing them at run time would load torch
    from geogan.api.learn import ChipData, CycleGAN, Pix2Pix, load_model, prepare_data
    from geogan.evaluation.rasters import evaluate_rasters
    from geogan.inference.scene import translate_batch, translate_raster
    from geogan.inference.translator import Translator

try:
    __version__ = version("geogan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["ChipData", "CycleGAN", "Pix2Pix", "Translator", "__version__", "evaluate_rasters",
           "load_model", "prepare_data", "translate_batch", "translate_raster"]

_LAZY = {"load_model": "geogan.api.learn", "prepare_data": "geogan.api.learn", "Pix2Pix": "geogan.api.learn",
         "CycleGAN": "geogan.api.learn", "ChipData": "geogan.api.learn",
         "Translator": "geogan.inference.translator",
         "translate_raster": "geogan.inference.scene", "translate_batch": "geogan.inference.scene",
         "evaluate_rasters": "geogan.evaluation.rasters"}


def __getattr__(name: str) -> Any:
    """Import the torch-backed API on first use, so ``import geogan`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geogan' has no attribute {name!r}")
