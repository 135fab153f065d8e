"""The chip-folder format: one definition shared by the exporter and the readers.

``geogan export-chips`` (:mod:`geogan.chips.export`) writes it; the training reader
(:mod:`geogan.training.chip_folder`) and the Python API read it. A folder holds:

* paired chips: ``images/`` (input domain) and ``images2/`` (target domain), the same file
  name for the same footprint; unpaired chips: ``train_a/`` and ``train_b/`` (ArcGIS and
  the reference CycleGAN code also use ``trainA/`` and ``trainB/``);
* :data:`METADATA_NAME`: format and version, mode, tile size, stride, per-domain sources,
  CRS, band count, dtype, nodata and band statistics;
* :data:`INDEX_NAME`: one GeoJSON feature per chip (id, split, footprint, window, valid
  fraction).

ArcGIS-exported folders have the sub-folders without the two files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CHIPS_FORMAT = "geogan-chips"
CHIPS_FORMAT_VERSION = 1
METADATA_NAME = "geogan-chips.json"
INDEX_NAME = "index.geojson"
PAIRED_FOLDERS = ("images", "images2")
UNPAIRED_FOLDERS = ("train_a", "train_b")

#: Unpaired folder names besides :data:`UNPAIRED_FOLDERS`.
UNPAIRED_ALIASES = (UNPAIRED_FOLDERS, ("trainA", "trainB"))

#: File extensions read as chips (any case); everything else (``.aux.xml``, world
#: files, ``map.txt``, ``stats.txt``) is ignored.
CHIP_EXTENSIONS = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".mrf"})


def source_raster(root: Path, domain: str) -> Path | None:
    """The raster a geogan chip folder's ``domain`` (``a`` or ``b``) was cut from, as its
    metadata records; None when the folder has no readable metadata."""
    try:
        metadata = json.loads((root / METADATA_NAME).read_text(encoding="utf-8"))
        return Path(metadata["domains"][domain]["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_output(spec: str | os.PathLike[str]) -> Path:
    """The chip folder an export writes when none is given: ``<stem>-chips`` in the
    working folder, after the INPUT raster (or the folder, glob folder, ``@list`` file or
    ``pairs.csv`` that stands for it), as ``translate`` names its output after the scene.
    """
    text = os.fspath(spec).rstrip("/\\")
    if text.startswith("@"):
        text = text[1:]
    path = Path(text)
    while any(ch in path.name for ch in "*?[") and path.parent != path:
        path = path.parent  # a glob: named after the folder it searches
    stem = path.stem if path.suffix and not path.is_dir() else path.name
    return Path(f"{stem or 'mosaic'}-chips")
