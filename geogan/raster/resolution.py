"""Pixel sizes: a raster's, in its CRS's unit, and grids at another pixel size.

``train`` records the pixel size of its chips and ``translate`` compares a scene's with
it (:mod:`geogan.inference.scene_checks`), and with ``--resample`` reads the scene on a
grid at the model's pixel size (:func:`resampled_grid`). Pixel sizes are plain dicts here
(``x``, ``y``, ``unit``, ``metres`` per unit or None for degrees, ``crs``), what
:class:`geogan.nn.data_profile.PixelSize` reads; this layer has no torch.
"""

from __future__ import annotations

import math
from typing import Any

from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform as transform_points

from geogan.raster.footprints import crs_label

#: How ``translate --resample`` may warp a scene to the model's pixel size (GDAL's names);
#: image outputs go back the same way, class and palette outputs by nearest neighbour.
RESAMPLINGS = ("bilinear", "cubic", "cubic_spline", "lanczos", "average", "nearest")

#: The default way to read a scene *down* to coarser pixels: each model pixel the mean of
#: the scene pixels it covers, as ``gdalwarp -r average`` (bilinear would sample a few).
READ_DOWN = "average"

#: The default way to read a scene *up* to finer pixels: Lanczos keeps the edges a model
#: draws from sharper than bilinear, which softens them into what a model takes for
#: smooth ground (water). On the real aerial → map pairs made 1.5 × and 2 × coarser, read
#: up to the model's pixels, it gave 0–0.06 more mIoU, 0.003–0.036 more δ5, 0.04–0.9 dB
#: more PSNR and 0.006–0.042 more SSIM than bilinear (two models; ``benchmarks/README.md``,
#: stop 71).
READ_UP = "lanczos"

#: The default way to bring image and shaded outputs back onto the scene's grid.
BACK = "bilinear"

#: Metres per degree of latitude (the mean over the WGS 84 ellipsoid).
METRES_PER_DEGREE = 111_320.0


def default_resampling(ratio: float) -> str:
    """How a scene whose pixels are ``ratio`` times the model's is read onto the model's
    grid when no method is given: :data:`READ_DOWN` for a finer scene (ratio below 1),
    else :data:`READ_UP`."""
    return READ_DOWN if ratio < 1 else READ_UP


def pixel_size(dataset: Any) -> dict[str, Any] | None:
    """The pixel width and height of a north-up raster in its CRS's unit.

    Returns:
        ``{"x", "y", "unit", "metres", "crs"}``, or None for a raster without a CRS or
        a geotransform, or a rotated one.
    """
    t: Affine = dataset.transform
    if dataset.crs is None or t.b != 0 or t.d != 0 or t == Affine.identity():
        return None
    unit, metres = crs_unit(dataset.crs)
    return {"x": abs(t.a), "y": abs(t.e), "unit": unit, "metres": metres,
            "crs": crs_label(dataset.crs)}


def crs_unit(crs: Any) -> tuple[str, float | None]:
    """The CRS's unit and metres per unit; ``("degree", None)`` for geographic CRSs."""
    try:
        name, factor = crs.linear_units_factor
        return str(name), float(factor)
    except CRSError:
        return "degree", None


def centre_latitude(dataset: Any) -> float | None:
    """Latitude of the raster's centre, or None where it has no place on the globe."""
    left, bottom, right, top = dataset.bounds
    try:
        _, ys = transform_points(dataset.crs, "EPSG:4326", [(left + right) / 2],
                                 [(bottom + top) / 2])
    except (CRSError, RasterioError, CPLE_BaseError):
        return None
    latitude = float(ys[0])
    return latitude if math.isfinite(latitude) and abs(latitude) <= 90 else None


def in_metres(size: dict[str, Any], latitude: float | None) -> tuple[float, float] | None:
    """A pixel size in metres: linear units by their factor, degrees at ``latitude``
    (None when that is unknown)."""
    if size["metres"] is not None:
        return size["x"] * size["metres"], size["y"] * size["metres"]
    if latitude is None:
        return None
    return (size["x"] * METRES_PER_DEGREE * math.cos(math.radians(latitude)),
            size["y"] * METRES_PER_DEGREE)


def resampled_grid(dataset: Any, x: float, y: float) -> tuple[Affine, int, int]:
    """A north-up grid in the raster's CRS with ``x`` × ``y`` pixels (CRS units) over its
    whole extent, its edges on multiples of the pixel size (GDAL's "target-aligned
    pixels"), so that a crop of the raster gets a crop of the same grid.

    Returns:
        ``(transform, width, height)``.
    """
    left, bottom, right, top = dataset.bounds
    x0 = math.floor(left / x + 1e-9) * x
    y0 = math.ceil(top / y - 1e-9) * y
    width = max(1, math.ceil((right - x0) / x - 1e-9))
    height = max(1, math.ceil((y0 - bottom) / y - 1e-9))
    return Affine(x, 0.0, x0, 0.0, -y, y0), width, height
