"""Opening and validating rasters, and reading their pixels with validity masks.

Every command opens its rasters through :func:`open_raster`, so that a missing file,
a file GDAL cannot read, a raster without georeferencing or an unsupported data type
fail the same way everywhere, with a message that names the file and the fix.
"""

from __future__ import annotations

import math
import os
import shlex
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geogan.errors import (
    MissingCRSError,
    NotARasterError,
    RasterNotFoundError,
    UnreadableError,
    UnsupportedRasterError,
)

#: Data types geogan reads and writes. Complex types have no meaning for the GANs.
SUPPORTED_DTYPES = frozenset(
    {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"}
)

#: A palette raster, or a uint8 raster with at most this many distinct values (or colours)
#: in a sample of its pixels, is treated as categorical (nearest-neighbour resampling).
CATEGORICAL_MAX_VALUES = 32

#: Samples that decide :func:`is_categorical` for a continuous raster, as the first ones
#: of its decimated sample in row order.
_EARLY_SAMPLES = 4096

Dataset = DatasetReader | WarpedVRT


#: URL schemes and the GDAL virtual file systems that read them (rasterio maps them when
#: it opens a raster; a VRT's source names must be GDAL's own).
URL_SCHEMES = {"http": "/vsicurl/", "https": "/vsicurl/", "ftp": "/vsicurl/", "s3": "/vsis3/",
               "gs": "/vsigs/", "az": "/vsiaz/", "oss": "/vsioss/"}


def _is_local_path(path: str) -> bool:
    return "://" not in path and not path.startswith("/vsi")


def gdal_name(path: str) -> str:
    """The name GDAL itself opens for ``path``: a URL (``https://``, ``s3://``...) on its
    virtual file system (``/vsicurl/https://...``, ``/vsis3/bucket/key``); anything else
    as it is."""
    scheme, sep, rest = path.partition("://")
    prefix = URL_SCHEMES.get(scheme.lower()) if sep else None
    if prefix is None:
        return path
    return prefix + (path if prefix == "/vsicurl/" else rest)


def scene_stem(path: str) -> str:
    """A scene's name without folder, extension or a URL's query (``?signature=...``):
    what its output is named after."""
    if not _is_local_path(path):
        path = path.split("?", 1)[0]
    return Path(path).stem


@contextmanager
def open_raster(path: str | os.PathLike[str], *, georeferenced: bool = True) -> Iterator[Any]:
    """Open a raster for reading, with checks users can act on.

    Args:
        path: A file path or any GDAL-readable name (``/vsicurl/...``, ``s3://...``).
        georeferenced: Require a CRS and a geotransform.

    Yields:
        The open ``rasterio`` dataset.

    Raises:
        RasterNotFoundError: The path does not exist.
        NotARasterError: GDAL cannot open the file as a raster.
        MissingCRSError: ``georeferenced`` and the raster has no CRS or geotransform.
        UnsupportedRasterError: The data type is not supported or the raster is empty.
    """
    name = os.fspath(path)
    if _is_local_path(name) and not Path(name).exists():
        raise RasterNotFoundError(f"{name}: no such file.")
    if _is_local_path(name) and Path(name).is_dir():
        raise NotARasterError(f"{name} is a folder, not a raster file.")
    if _is_local_path(name) and not os.access(name, os.R_OK):
        raise UnreadableError(f"{name} cannot be read (permission denied); check its "
                              "permissions.")
    if _is_local_path(name) and Path(name).stat().st_size == 0:
        raise NotARasterError(f"{name} is not a raster: the file is empty (0 bytes); "
                              "write or copy it again.")
    try:
        with warnings.catch_warnings():
            # geogan says so itself, in one line, when georeferencing is required.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(name)
    except RasterioIOError as error:
        raise NotARasterError(
            f"{name} is not a raster GDAL can read ({gdal_reason(error, name)}); give a "
            "GeoTIFF or another raster format GDAL reads."
        ) from error
    with dataset:
        check_supported(dataset, name)
        if georeferenced:
            check_georeferenced(dataset, name)
        yield dataset


def gdal_reason(error: Exception, name: str) -> str:
    """GDAL's first line about ``error``, without the file name it repeats and the full
    stop, to go in brackets after geogan's own sentence."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    for quoted in (f"'{name}' ", f"{name}: ", f"{name} "):
        if reason.startswith(quoted):
            reason = reason[len(quoted):]
            break
    return reason.rstrip(". ") or type(error).__name__


def check_supported(dataset: Any, name: str) -> None:
    """Raise :class:`UnsupportedRasterError` for empty rasters and unsupported dtypes."""
    if dataset.count == 0 or dataset.width == 0 or dataset.height == 0:
        raise UnsupportedRasterError(
            f"{name} holds no pixels (size {dataset.width}×{dataset.height}, "
            f"{dataset.count} bands)."
        )
    dtypes = set(dataset.dtypes)
    unsupported = sorted(dtypes - SUPPORTED_DTYPES)
    if unsupported:
        raise UnsupportedRasterError(
            f"{name} has data type {', '.join(unsupported)}; geogan supports "
            f"{', '.join(sorted(SUPPORTED_DTYPES))}. Convert it first, e.g. with "
            "`rio convert --dtype float32`."
        )
    if len(dtypes) > 1:
        raise UnsupportedRasterError(
            f"{name} mixes data types across bands ({', '.join(sorted(dtypes))}); "
            "convert it to one type first."
        )


def select_bands_command(path: str, count: int) -> str:
    """A rasterio command that writes the first ``count`` bands of ``path`` to
    ``selected.tif``: what an error about band counts suggests, ready to paste."""
    return f"rio stack --bidx 1..{count} {shlex.quote(path)} selected.tif"


def check_georeferenced(dataset: Any, name: str) -> None:
    """Raise :class:`MissingCRSError` unless the raster has a CRS and a geotransform."""
    if dataset.crs is None:
        raise MissingCRSError(
            f"{name} has no coordinate reference system; assign one with "
            f"`rio edit-info --crs EPSG:<code> {name}` (or gdal_edit.py -a_srs)."
        )
    if dataset.transform == Affine.identity() and dataset.gcps[0]:
        raise MissingCRSError(
            f"{name} is georeferenced by ground control points only; warp it onto a grid "
            f"first (`gdalwarp {name} out.tif`)."
        )
    if dataset.transform == Affine.identity():
        raise MissingCRSError(f"{name} has no geotransform; it cannot be placed on a map.")
    if dataset.transform.b != 0 or dataset.transform.d != 0:
        raise UnsupportedRasterError(
            f"{name} has a rotated geotransform; warp it north-up first (`gdalwarp`)."
        )


def is_categorical(dataset: Any) -> bool:
    """Whether a raster holds classes or flat colours rather than continuous values.

    Palette rasters are categorical. A uint8 raster is too when a decimated sample of
    its pixels holds at most :data:`CATEGORICAL_MAX_VALUES` distinct values (or colours,
    for multi-band rasters): flat-colour maps must be resampled with nearest neighbour,
    since interpolation invents colours that belong to no class.
    """
    if dataset.count >= 1 and dataset.colorinterp[0] == ColorInterp.palette:
        return True
    if dataset.dtypes[0] != "uint8":
        return False
    scale = max(1, int(np.ceil(max(dataset.width, dataset.height) / 512)))
    shape = (dataset.count, max(1, dataset.height // scale), max(1, dataset.width // scale))
    # A continuous raster shows more values than that in its first few thousand samples:
    # reading only the sample rows that hold them spares reading the whole raster (for
    # an 8192² GeoTIFF, 0.1-0.5 s from the page cache and seconds from disk).
    rows = _nearest_rows(dataset.height, shape[1])[: -(-_EARLY_SAMPLES // shape[2])]
    nearest = rasterio.enums.Resampling.nearest
    head = np.concatenate([dataset.read(window=Window(0, int(row), dataset.width, 1),
                                        out_shape=(shape[0], 1, shape[2]), resampling=nearest)
                           for row in rows], axis=1)
    if np.unique(_colour_keys(head)[:_EARLY_SAMPLES]).size > CATEGORICAL_MAX_VALUES:
        return False
    sample = dataset.read(out_shape=shape, resampling=nearest)
    return bool(np.unique(_colour_keys(sample)).size <= CATEGORICAL_MAX_VALUES)


def _nearest_rows(height: int, rows: int) -> NDArray[np.int64]:
    """The raster rows that GDAL's nearest-neighbour read of ``height`` rows into ``rows``
    takes, in order (its pixel-centre rule, with its epsilon)."""
    centres = (np.arange(rows) + 0.5) * (height / rows) + 1e-10
    return np.minimum(centres.astype(np.int64), height - 1)


def _colour_keys(sample: np.ndarray) -> NDArray[np.int64]:
    """One integer per pixel of a (C, H, W) uint8 sample, equal where the colours are (up
    to 7 bands), in row order."""
    pixels = sample.reshape(sample.shape[0], -1).T  # (N, C)
    if pixels.shape[1] == 1:
        return pixels[:, 0].astype(np.int64)
    keys = np.zeros(pixels.shape[0], dtype=np.int64)
    for band in range(min(pixels.shape[1], 7)):
        keys = keys * 256 + pixels[:, band]
    return keys


def valid_mask(dataset: Any, window: Window, data: np.ndarray, *,
               any_band: bool = False) -> np.ndarray:
    """Boolean validity of each pixel of ``data``, read from ``dataset`` at ``window``.

    A band's value is missing when it equals the nodata value or is NaN or infinite.
    By default a pixel is valid when no band is missing (what a training chip needs);
    with ``any_band`` when at least one band is not missing, which is GDAL's own
    reading of a nodata value (its dataset mask) and what ``translate`` keeps as nodata.
    An internal mask or alpha band, where present, decides instead of the nodata value.
    Computing the nodata test from ``data`` avoids a second read for the common case.

    Args:
        dataset: The dataset ``data`` was read from.
        window: The window ``data`` covers.
        data: The pixels, shape (C, H, W).
        any_band: Valid where any band is present, rather than every band.

    Returns:
        A (H, W) boolean array, True where valid.
    """
    flags = dataset.mask_flag_enums
    masked = any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags)
    if not masked and not can_be_missing(data.dtype, dataset.nodata):
        return np.ones(data.shape[1:], dtype=bool)
    present = np.ones(data.shape, dtype=bool)
    if not masked and dataset.nodata is not None:
        nodata = dataset.nodata
        if np.isnan(nodata):
            present &= ~np.isnan(data)
        else:
            present &= data != np.asarray(nodata).astype(data.dtype)
    if data.dtype.kind == "f":
        present &= np.isfinite(data)
    valid = np.asarray(present.any(axis=0) if any_band else present.all(axis=0))
    if masked:
        valid &= dataset.dataset_mask(window=window) > 0
    return valid


def has_alpha_band(dataset: Any) -> bool:
    """Whether one of ``dataset``'s bands is an alpha band. A ``WarpedVRT`` carries it
    through the warp as its own (0 outside the source) and refuses to add another one
    (``add_alpha``)."""
    return ColorInterp.alpha in dataset.colorinterp


def warp_adds_alpha(dataset: Any) -> bool:
    """Whether a ``WarpedVRT`` of ``dataset`` needs ``add_alpha`` to tell the pixels it
    holds data for from the rest: only when it has neither a nodata value nor an alpha
    band of its own."""
    return dataset.nodata is None and not has_alpha_band(dataset)


def bands_to_read(dataset: Any, count: int) -> list[int] | None:
    """``dataset``'s 1-based bands when it has ``count`` of them, or all but its alpha
    band when that leaves ``count`` (the alpha band says where there is data, through
    the dataset's mask); None when neither has ``count`` bands."""
    bands = list(range(1, dataset.count + 1))
    if len(bands) != count:
        bands = [b for b in bands if dataset.colorinterp[b - 1] != ColorInterp.alpha]
    return bands if len(bands) == count else None


def grid_origin(dataset: Any) -> tuple[int, int] | None:
    """Global (row, column) of the raster's first pixel on its CRS's pixel grid.

    The pixel grid of a north-up raster is the lattice of its pixel size through the
    CRS's origin, shifted by the raster's own phase: pixel column ``c`` is global column
    ``floor(x / width + 1/4) + c`` where ``x`` is the raster's left edge (rows likewise,
    with the top edge and the pixel height). Rasters on the same pixel grid (origins a
    whole number of pixels apart) agree on every pixel's global index; the quarter keeps
    the rounding away from origins on whole and half pixels, the usual two phases.

    Returns:
        ``(row, column)``, or None for a raster without a CRS, a geotransform or north-up
        axes (rotated or sheared): it has no pixel grid to anchor to.
    """
    t: Affine = dataset.transform
    if dataset.crs is None or t.b != 0 or t.d != 0 or t == Affine.identity():
        return None
    return transform_origin(t)


def transform_origin(t: Affine) -> tuple[int, int]:
    """Global (row, column) of the first pixel of a north-up grid with transform ``t``
    (see :func:`grid_origin`)."""
    return math.floor(t.f / t.e + 0.25), math.floor(t.c / t.a + 0.25)


def same_grid(a: Any, b: Any) -> tuple[int, int] | None:
    """Pixel offset of ``b``'s grid relative to ``a``'s, when the two grids coincide.

    Returns ``(row_offset, col_offset)`` such that pixel ``(r, c)`` of ``a`` is pixel
    ``(r - row_offset, c - col_offset)`` of ``b``, or None when the CRS or pixel size
    differ or the origins are not a whole number of pixels apart (then ``b`` must be
    warped onto ``a``'s grid).
    """
    if a.crs != b.crs:
        return None
    ta: Affine = a.transform
    tb: Affine = b.transform
    if not np.allclose([ta.a, ta.e], [tb.a, tb.e], rtol=1e-9, atol=0.0):
        return None
    col = (tb.c - ta.c) / ta.a
    row = (tb.f - ta.f) / ta.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(row), round(col)


def chip_profile(dataset: Any, crs: Any) -> dict[str, Any]:
    """The GeoTIFF profile of chips cut from ``dataset`` onto a grid in ``crs``.

    Starts from the dataset's own profile (dtype, band count, nodata), so nothing is
    dropped by accident, and replaces only the CRS and the file layout; each chip adds
    its own width, height and transform.
    """
    profile: dict[str, Any] = dict(dataset.profile)
    for key in ("blockxsize", "blockysize", "tiled", "compress", "interleave", "photometric",
                "width", "height", "transform"):
        profile.pop(key, None)
    profile.update(driver="GTiff", crs=crs, interleave="pixel")
    rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    if dataset.count == 3 and dataset.dtypes[0] == "uint8" and tuple(dataset.colorinterp) == rgb:
        profile["photometric"] = "RGB"
    return profile


def sample_values(dataset: Any, bands: list[int], per_axis: int = 8,
                  side: int = 64) -> np.ndarray:
    """Valid pixels sampled evenly over a raster: up to ``per_axis`` × ``per_axis`` windows
    of at most ``side`` pixels, spread over its width and height (no more than fit side by
    side), read at full resolution (never from overviews, whose averages would narrow the
    values' spread).

    Args:
        dataset: The raster, open.
        bands: The 1-based bands to read.
        per_axis: Windows along each axis.
        side: Largest window side.

    Returns:
        (len(bands), N) values of the pixels valid in every band read, in the raster's
        data type.
    """
    height, width = min(side, dataset.height), min(side, dataset.width)
    # No more windows than fit side by side: a small raster is read once, whole.
    rows = np.linspace(0, dataset.height - height,
                       min(per_axis, -(-dataset.height // side))).round().astype(int)
    cols = np.linspace(0, dataset.width - width,
                       min(per_axis, -(-dataset.width // side))).round().astype(int)
    samples = []
    for row in rows:
        for col in cols:
            window = Window(int(col), int(row), width, height)
            data = dataset.read(bands, window=window)  # (C, h, w)
            samples.append(data[:, valid_mask(dataset, window, data)])  # (C, n)
    return np.concatenate(samples, axis=1)


def can_be_missing(dtype: Any, nodata: float | None) -> bool:
    """Whether values of ``dtype`` can be missing (:func:`missing`): with a nodata value,
    or as NaN and infinities of a float type. Most scenes are integers without nodata,
    and per-pixel tests of them can be skipped."""
    return nodata is not None or np.dtype(dtype).kind == "f"


def missing(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Which values are missing: equal to ``nodata`` (NaN allowed) or, in float arrays,
    NaN or infinite.

    A pixel is nodata when all its bands are missing; a missing value in a pixel that
    other bands keep valid is fed to the generator as the mid value 0, as in training.

    Args:
        values: Raster values, any shape.
        nodata: The raster's nodata value, or None.

    Returns:
        A boolean array of the same shape.
    """
    absent = np.zeros(values.shape, dtype=bool)
    if values.dtype.kind == "f":
        absent |= ~np.isfinite(values)
    if nodata is not None and not math.isnan(nodata):
        absent |= values == np.asarray(nodata).astype(values.dtype)
    return absent
