"""geogan: translate georeferenced rasters between domains with Pix2Pix and CycleGAN.

The library never prints and never exits: it returns results and raises the typed
errors of :mod:`geogan.errors`. The ``geogan`` command (``geogan.cli``) is a thin layer
over it. Importing ``geogan`` does not import torch, so that ``export-chips`` and
``sample-data`` start fast and run where torch is absent.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geogan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
