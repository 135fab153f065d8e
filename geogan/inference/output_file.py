"""The GeoTIFF ``translate`` writes: its profile, nodata and mask, band names, provenance
tags, the check that every block reached the disk, and the Cloud Optimised copy.

The profile starts from the scene's grid (CRS, transform, width, height) with the model's
bands and dtype; :func:`open_output` opens it for writing and, once closed, reads back
the block layout of what GDAL wrote (it reports some write failures only on its error
stream).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Interleaving, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from geogan.errors import OutputError
from geogan.inference.options import TranslateOptions
from geogan.inference.pipeline import OutputBands
from geogan.inference.translator import Translator
from geogan.nn.model_file import MODEL_FORMAT, MODEL_VERSION
from geogan.version import __version__

logger = logging.getLogger(__name__)

#: Most GDAL block cache while translating, unless GDAL_CACHEMAX is set (GDAL's own
#: default is 5 % of the RAM, which its blocks fill on a scene that large).
GDAL_CACHE_BYTES = 256 * 2**20

#: Least GDAL block cache while translating.
GDAL_CACHE_MIN_BYTES = 32 * 2**20

#: Output tags (default metadata domain) that say where the raster came from.
TAG_PREFIX = "GEOGAN_"


def gdal_env(cache_bytes: int = GDAL_CACHE_BYTES) -> dict[str, Any]:
    """GDAL settings while translating: internal masks, and a block cache of
    ``cache_bytes`` unless ``GDAL_CACHEMAX`` is set."""
    env: dict[str, Any] = {"GDAL_TIFF_INTERNAL_MASK": True}
    if "GDAL_CACHEMAX" not in os.environ:
        env["GDAL_CACHEMAX"] = cache_bytes
    return env


def block_cache_bytes(dataset: Any, profile: Mapping[str, Any]) -> int:
    """The GDAL block cache one translation needs: two block rows of the scene (a strip
    of windows reads across two) and two of the output (one being written while the one
    before is compressed), between :data:`GDAL_CACHE_MIN_BYTES` and
    :data:`GDAL_CACHE_BYTES`. It grows with the width, never with the height; more would
    only hold blocks that are not read again, which is where the memory of wide scenes
    went."""
    scene_row = (dataset.width * dataset.count * np.dtype(dataset.dtypes[0]).itemsize
                 * dataset.block_shapes[0][0])
    output_row = (profile["width"] * profile["count"] * np.dtype(profile["dtype"]).itemsize
                  * int(profile.get("blockysize", 256)))
    return int(min(GDAL_CACHE_BYTES, max(GDAL_CACHE_MIN_BYTES, 2 * (scene_row + output_row))))


@contextlib.contextmanager
def open_output(path: Path, output: Path, profile: Mapping[str, Any]) -> Iterator[Any]:
    """``path`` opened for writing with ``profile``; closed at the end of the block, and
    checked (:func:`check_blocks_written`) when the block ran without error.

    Args:
        path: The file to write (a temporary name of ``output``).
        output: The output's real name, for messages.
        profile: The output's profile.

    Raises:
        OutputError: If the file cannot be opened, or came out truncated.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            out = rasterio.open(path, "w", **profile)
    except RasterioError as error:
        raise OutputError(f"cannot write {output}: {error}") from None
    try:
        yield out
    finally:
        with gdal_messages() as messages:  # the last blocks are written here
            out.close()
    check_blocks_written(path, output, messages)


def output_bands(dataset: Any, translator: Translator, settings: TranslateOptions) -> OutputBands:
    """How invalid input pixels are marked in the output, and whether it has a spread band.

    The target domain's nodata value when it had one; else NaN for float outputs and
    a dataset mask for integer outputs, but only when the scene can hold invalid pixels
    at all (a nodata value, a mask or alpha band, or a float type that may hold NaN).
    """
    flags = dataset.mask_flag_enums
    may_be_invalid = (dataset.nodata is not None or dataset.dtypes[0].startswith("float")
                      or any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags))
    uncertainty = settings.samples >= 2
    nodata = translator.output_nodata
    if nodata is not None:
        return OutputBands(nodata, mask=False, uncertainty=uncertainty)
    if not may_be_invalid:
        return OutputBands(None, mask=False, uncertainty=uncertainty)
    if np.dtype(translator.output_dtype).kind == "f":
        return OutputBands(math.nan, mask=False, uncertainty=uncertainty)
    return OutputBands(None, mask=True, uncertainty=uncertainty)


def output_profile(dataset: Any, translator: Translator, settings: TranslateOptions,
             bands_out: OutputBands) -> dict[str, Any]:
    """The output's profile: the scene's grid, the model's bands, a tiled compressed
    GeoTIFF; ``--co`` options win."""
    dtype = translator.output_dtype
    count = translator.out_bands + int(bands_out.uncertainty)
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": dataset.width, "height": dataset.height,
        "count": count, "dtype": dtype, "crs": dataset.crs, "transform": dataset.transform,
        "nodata": bands_out.nodata, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "predictor": 3 if np.dtype(dtype).kind == "f" else 2,
        "interleave": "pixel", "bigtiff": "if_safer",
    }
    if not settings.cog:  # with --cog, --co is for the COG driver (see write_cog)
        profile.update({k.lower(): v for k, v in settings.creation_options.items()})
    if str(profile["compress"]).lower() == "deflate":
        # Level 1 compresses a 2048 x 256 RGB block row in 6 ms instead of 33 ms at GDAL's
        # default 6, for files about 15 % larger: it keeps the writer off the generator's
        # cores. --co ZLEVEL=6 (or COMPRESS=ZSTD) chooses otherwise.
        profile.setdefault("zlevel", 1)
    if count == 3 and dtype == "uint8" and profile.get("compress") != "jpeg":
        profile.setdefault("photometric", "rgb")
    return profile


def describe(out: Any, translator: Translator, settings: TranslateOptions, source: str,
             extra: Mapping[str, str]) -> None:
    """Band names and provenance tags; ``extra`` tags (``LATTICE``, ...) are added as
    they are, after the prefix."""
    names = list(translator.output_descriptions)
    if settings.samples >= 2:
        names.append(f"uncertainty: per-pixel standard deviation of {settings.samples} samples")
    for band, name in enumerate(names, start=1):
        if name:
            out.set_band_description(band, name)
    model = translator.model
    tags = {
        "GENERATED": "yes: translated by a generative model (geogan), not measured",
        "MODEL": os.path.basename(model.path or "") or "unknown",
        "MODEL_SHA256": model.sha256 or "unknown",
        "MODEL_FORMAT": f"{MODEL_FORMAT} {MODEL_VERSION}",
        "MODEL_KIND": translator.architecture.kind,
        "VERSION": __version__,
        "SOURCE": os.path.basename(source),
        "TILE_SIZE": str(translator.tile_size),  # with OPTIONS: the windows (seam score)
        "OPTIONS": json.dumps(settings.record(translator), sort_keys=True),
        **extra,
    }
    palette = translator.palette
    if palette and translator.output in ("palette", "shaded"):
        # evaluate --palette auto reads the classes from here (shaded pixels snap to them).
        tags["PALETTE"] = json.dumps({k: [int(v) for v in c] for k, c in palette.items()})
    if palette and translator.output == "classes":
        tags["CLASSES"] = json.dumps(list(palette))
        if all(len(c) in (1, 3) and all(0 <= v <= 255 for v in c) for c in palette.values()):
            out.write_colormap(1, {i: (*_rgb(c), 255) for i, c in enumerate(palette.values())})
    out.update_tags(TIFFTAG_SOFTWARE=f"geogan {__version__}",
                    **{TAG_PREFIX + key: value for key, value in tags.items()})


def _rgb(colour: tuple[float, ...]) -> tuple[int, int, int]:
    """An RGB triple of a palette colour (grey for one band)."""
    r, g, b = (colour * 3)[:3] if len(colour) == 1 else colour[:3]
    return int(r), int(g), int(b)


@contextlib.contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """Collect what GDAL's libtiff prints on the process's stderr (file descriptor 2)
    while the block runs: it reports failed writes there, not to the caller. The lines
    are in the yielded list once the block has run; :func:`check_blocks_written` puts
    the first in its error, and they are logged as warnings when nothing failed."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def check_blocks_written(path: Path, output: Path, messages: Sequence[str] = ()) -> None:
    """Raise :class:`OutputError` unless every block of the GeoTIFF ``path`` lies inside
    the file.

    GDAL reports some write failures (disk full, a file-size limit) only on its error
    stream while it closes a file, not to the caller, and leaves a truncated file; so the
    layout of what was written is read back before the file may replace ``output``.
    This reads the TIFF directory, not the pixels.
    """
    reason = f": {messages[0]}" if messages else " (disk full or a file-size limit?)"
    size = path.stat().st_size
    try:
        with rasterio.open(path) as written:
            bands = [1] if written.interleaving != Interleaving.band else written.indexes
            for band in bands:
                for (row, col), _ in written.block_windows(band):
                    offset = written.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
                    length = written.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
                    if int(offset or 0) + int(length or 0) > size:
                        raise OutputError(f"cannot write {output}: the file came out "
                                          f"truncated{reason}")
    except RasterioError:
        raise OutputError(f"cannot write {output}: the file came out unreadable"
                          f"{reason}") from None
    for message in messages:  # nothing failed: pass them on, as GDAL's other messages
        logger.warning("GDAL: %s", message)


def write_cog(source: Path, target: Path, settings: TranslateOptions) -> None:
    """Copy the finished GeoTIFF into a Cloud Optimised GeoTIFF with overviews."""
    options: dict[str, Any] = {"compress": "deflate", "predictor": "yes", "bigtiff": "if_safer",
                               "overview_resampling": "average"}
    options.update({k.lower(): v for k, v in settings.creation_options.items()})
    rasterio.shutil.copy(source, target, driver="COG", **options)
