"""PNG previews a person opens: training grids (input | output | target) and scene quick-looks.

Rasters hold any number of bands of any type; a screen shows three 8-bit channels.
:func:`to_display_rgb` and :func:`normalized_to_display` make that step with one band
rule for every caller:

* 1 band: grey (the band in all three channels);
* 2 bands: band 1 in grey. Two bands are most often dual-polarisation SAR (VV, VH), and
  a colour composite of two bands (such as ``(b1, b2, b1)``) paints hues that mean
  nothing unless one knows what the bands are; grey of the first band is never
  misleading. Pass ``array[[1]]`` to look at the second band instead;
* 3 bands or more: the first three as red, green and blue (a 4-band RGB-NIR image shows
  as true colour).

Pixels that are NaN, or marked invalid by a ``mask``, are shown black
(:data:`INVALID_COLOUR`), so nodata never passes for data.

:func:`grid` lays panels out, :func:`downsample_for_preview` shrinks a whole scene to a
size worth looking at, and :func:`write_png` writes the result atomically, without a
georeferencing warning or an ``.aux.xml`` sidecar. The module needs numpy and rasterio
only (no torch).
"""

from __future__ import annotations

import math
import os
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from geogan.errors import OutputError

__all__ = [
    "INVALID_COLOUR",
    "STRETCH_PERCENTILES",
    "downsample_for_preview",
    "grid",
    "normalized_to_display",
    "to_display_rgb",
    "write_png",
]

INVALID_COLOUR = (0, 0, 0)
"""RGB of pixels that are NaN or masked invalid: black."""

STRETCH_PERCENTILES = (2.0, 98.0)
"""Percentiles of each band's finite values that map to 0 and 255 when no limits are given."""

Limits = float | Sequence[float] | None
"""One value for every band, one per band, or ``None`` for the percentile default."""


def _display_bands(array: NDArray[Any]) -> NDArray[Any]:
    """The bands shown, after the module's band rule: (1, H, W) or (3, H, W), a view."""
    if array.ndim != 3 or array.shape[0] == 0:
        raise ValueError(f"expected a (C, H, W) array with C >= 1; got shape {array.shape}")
    return array[:3] if array.shape[0] >= 3 else array[:1]


def _limits(value: Limits, bands: int, shown: int, name: str) -> NDArray[np.float64] | None:
    """``low`` or ``high`` as one float64 per shown band (None stays None).

    A sequence may give one value per input band or one per shown band: the shown bands
    are always the first ones, so value ``i`` belongs to band ``i`` either way.
    """
    if value is None:
        return None
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return np.full(shown, values[0])
    if values.size not in (bands, shown):
        raise ValueError(
            f"{name} has {values.size} values; give one value, or one per band ({bands})"
        )
    return values[:shown]


def _check_mask(mask: NDArray[Any] | None, shape: tuple[int, ...]) -> NDArray[np.bool_] | None:
    """``mask`` as an (H, W) bool array (True = valid), or None."""
    if mask is None:
        return None
    valid = np.asarray(mask).astype(bool, copy=False)
    if valid.shape != shape:
        raise ValueError(f"mask must be (H, W) = {shape}; got {valid.shape}")
    return valid


def _replicate_and_mask(
    shown: NDArray[np.uint8], valid: NDArray[np.bool_] | None
) -> NDArray[np.uint8]:
    """(1 or 3, H, W) uint8 -> (3, H, W) uint8, invalid pixels in :data:`INVALID_COLOUR`."""
    rgb = np.repeat(shown, 3, axis=0) if shown.shape[0] == 1 else shown.copy()  # (3, H, W)
    if valid is not None:
        rgb[:, ~valid] = np.asarray(INVALID_COLOUR, dtype=np.uint8)[:, None]
    return rgb


def to_display_rgb(
    array: NDArray[Any],
    low: Limits = None,
    high: Limits = None,
    *,
    mask: NDArray[Any] | None = None,
) -> NDArray[np.uint8]:
    """An array of any band count and type as an 8-bit RGB image for the screen.

    Bands are chosen by the module's band rule (1 band and 2 bands: grey of band 1;
    3 or more: the first three). Each shown band is stretched linearly so that ``low``
    maps to 0 and ``high`` to 255, then clipped and rounded. A limit left ``None`` is the
    2nd (``low``) or 98th (``high``) percentile of the band's finite, valid values, which
    keeps a few extreme pixels (clouds, radar corner reflectors) from greying out the
    rest. ``uint8`` input with neither limit given is shown as it is, unstretched: it is
    already display-ready, and stretching would change its colours. ``high`` below
    ``low`` inverts the band; a band with ``low == high`` (a constant band) is shown
    black, with any values above it white. NaN pixels, pixels where ``mask`` is false
    and bands without a single finite value are black; ``+inf`` and ``-inf`` clip to
    255 and 0.

    Args:
        array: (C, H, W), any numeric dtype.
        low: Value shown as 0: a scalar for every band, or one per band (per input band
            or per shown band; band ``i`` gets value ``i``). ``None`` for the percentile.
        high: Value shown as 255, like ``low``.
        mask: Optional (H, W) bool, True where a pixel is valid. Invalid pixels are left
            out of the percentiles and shown in :data:`INVALID_COLOUR`.

    Returns:
        (3, H, W) uint8.

    Raises:
        ValueError: If ``array`` is not (C, H, W), or ``low``, ``high`` or ``mask`` do not
            match it.
    """
    array = np.asarray(array)
    shown = _display_bands(array)  # (1 or 3, H, W)
    count, height, width = shown.shape
    valid = _check_mask(mask, (height, width))
    lows = _limits(low, array.shape[0], count, "low")
    highs = _limits(high, array.shape[0], count, "high")
    if shown.dtype == np.uint8 and lows is None and highs is None:
        return _replicate_and_mask(shown, valid)

    out = np.zeros((count, height, width), dtype=np.uint8)
    for band in range(count):
        values = shown[band].astype(np.float64, copy=False)  # (H, W)
        p_low = p_high = math.nan
        if lows is None or highs is None:
            usable = np.isfinite(values) if valid is None else np.isfinite(values) & valid
            if not usable.any():
                continue  # nothing to stretch by: the band stays black
            p_low, p_high = np.percentile(values[usable], STRETCH_PERCENTILES)
        lo = float(p_low if lows is None else lows[band])
        hi = float(p_high if highs is None else highs[band])
        with np.errstate(invalid="ignore"):  # NaN and inf arithmetic is expected here
            if hi != lo:
                scaled = np.clip((values - lo) * (255.0 / (hi - lo)), 0.0, 255.0)
            else:
                scaled = np.where(values > lo, 255.0, 0.0)
        out[band] = np.rint(np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
    return _replicate_and_mask(out, valid)


def normalized_to_display(
    array: NDArray[Any], mask: NDArray[Any] | None = None
) -> NDArray[np.uint8]:
    """An image in the model's normalised space [-1, 1] as 8-bit RGB.

    A fixed linear map, ``(x + 1) / 2 * 255`` clipped and rounded, so -1 shows as 0 and
    1 as 255 in every panel: input, output and target of a training preview keep their
    brightness relations, which a per-panel percentile stretch would hide. Band rule,
    NaN and ``mask`` handling are those of :func:`to_display_rgb`; invalid pixels are
    black (:data:`INVALID_COLOUR`).

    Args:
        array: (C, H, W) float, values in [-1, 1] (values outside are clipped).
        mask: Optional (H, W) bool, True where a pixel is valid.

    Returns:
        (3, H, W) uint8.

    Raises:
        ValueError: If ``array`` is not (C, H, W) or ``mask`` does not match it.
    """
    return to_display_rgb(array, low=-1.0, high=1.0, mask=mask)


def grid(
    rows: Sequence[Sequence[NDArray[np.uint8]]], gutter: int = 4, background: int = 255
) -> NDArray[np.uint8]:
    """Panels laid out in rows and columns, as one image.

    Column ``j`` is as wide as its widest panel and row ``i`` as tall as its tallest, so
    panels line up in columns even when rows hold different sizes or counts of panels.
    Each panel sits at the top left of its cell; the rest of the cell and the gutters
    between cells (none around the outside) are filled with ``background``.

    Args:
        rows: Rows of (3, H, W) uint8 panels; panels may differ in size.
        gutter: Pixels between neighbouring cells, across and down.
        background: Grey level (0-255) of gutters and padding.

    Returns:
        (3, H', W') uint8.

    Raises:
        ValueError: If there are no panels, a row is empty, a panel is not (3, H, W)
            uint8, or ``gutter`` or ``background`` is out of range.
    """
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError("grid needs at least one panel in every row")
    if gutter < 0:
        raise ValueError(f"gutter must be >= 0; got {gutter}")
    if not 0 <= background <= 255:
        raise ValueError(f"background must be a grey level in 0..255; got {background}")
    for row in rows:
        for panel in row:
            if panel.ndim != 3 or panel.shape[0] != 3 or panel.dtype != np.uint8:
                raise ValueError(
                    f"panels must be (3, H, W) uint8; got {panel.shape} {panel.dtype}"
                )
    columns = max(len(row) for row in rows)
    widths = [max(row[j].shape[2] for row in rows if j < len(row)) for j in range(columns)]
    heights = [max(panel.shape[1] for panel in row) for row in rows]
    lefts = np.concatenate([[0], np.cumsum(np.add(widths, gutter))])
    tops = np.concatenate([[0], np.cumsum(np.add(heights, gutter))])
    canvas = np.full((3, int(tops[-1]) - gutter, int(lefts[-1]) - gutter), background,
                     dtype=np.uint8)  # (3, H', W')
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            _, h, w = panel.shape
            canvas[:, tops[i]:tops[i] + h, lefts[j]:lefts[j] + w] = panel
    return canvas


def downsample_for_preview(array: NDArray[Any], max_side: int) -> NDArray[Any]:
    """Every k-th row and column, so the longest side is at most ``max_side``.

    ``k`` is the smallest integer step that fits, ``ceil(max(H, W) / max_side)``; an
    array that already fits is returned as it is. Striding (not block averaging) keeps
    the dtype, keeps nodata values and NaN exact (an average would blend them into
    their neighbours), costs nothing (the result is a view), and applies unchanged to a
    validity mask of the same grid. The price is some aliasing of fine detail, which a
    quick-look can afford.

    Args:
        array: (..., H, W): a (C, H, W) raster or an (H, W) mask.
        max_side: Largest height or width wanted, at least 1.

    Returns:
        (..., ceil(H / k), ceil(W / k)), a strided view of ``array``.

    Raises:
        ValueError: If ``max_side`` < 1 or ``array`` has fewer than 2 dimensions.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1; got {max_side}")
    if array.ndim < 2:
        raise ValueError(f"expected an (..., H, W) array; got shape {array.shape}")
    step = max(1, math.ceil(max(array.shape[-2:]) / max_side))
    return array[..., ::step, ::step]


def _encode_png(rgb: NDArray[np.uint8]) -> bytes:
    """The PNG file of ``rgb`` (3, H, W), encoded by GDAL in memory.

    PAM is off so that GDAL keeps no ``.aux.xml`` beside the dataset, and the warning that
    a PNG has no georeferencing (it never has; that is expected) is silenced.
    """
    _, height, width = rgb.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), MemoryFile() as memory:
            with memory.open(driver="PNG", width=width, height=height, count=3,
                             dtype="uint8") as dst:
                dst.write(rgb)
            return bytes(memory.read())


def write_png(path: str | os.PathLike[str], rgb: NDArray[np.uint8]) -> None:
    """Write a (3, H, W) uint8 image as a PNG file, atomically.

    The PNG is encoded in memory with rasterio's PNG driver, written to a hidden
    temporary file in the same folder and renamed over ``path``, so a crash leaves
    either the old file or the new one, never half a PNG. No ``.aux.xml`` sidecar is
    written and no georeferencing warning is shown. An existing file is replaced.

    Args:
        path: The PNG to write; its folder must exist.
        rgb: (3, H, W) uint8, as :func:`to_display_rgb` or :func:`grid` return.

    Raises:
        ValueError: If ``rgb`` is not (3, H, W) uint8.
        OutputError: If the folder is missing or not writable, or writing fails.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected a (3, H, W) uint8 image; got {rgb.shape} {rgb.dtype}")
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {folder} is not writable.")
    try:
        data = _encode_png(np.ascontiguousarray(rgb))
    except RasterioError as error:
        raise OutputError(f"cannot encode the PNG {path}: {error}") from error
    temporary = folder / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}.") from error
    finally:
        temporary.unlink(missing_ok=True)
