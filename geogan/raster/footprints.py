"""Footprints of rasters and areas of interest as shapely polygons on a common CRS.

Chips are only cut where both rasters (and the area of interest, when given) have
data, so the exporter needs the intersection of several outlines that may each be
in a different CRS. Outlines are densified before reprojection, so that the curved
edges of a reprojected rectangle are followed, not cut short.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from geogan.errors import AOIError, FootprintError

#: Points per footprint edge when it is reprojected.
DENSIFY_POINTS = 64


def raster_footprint(dataset: Any, crs: CRS | None = None) -> BaseGeometry:
    """The rectangle a raster covers, in ``crs`` (default: the raster's own CRS)."""
    outline = box(*dataset.bounds)
    if crs is None or CRS.from_user_input(crs) == dataset.crs:
        return outline
    return reproject_geometry(outline, dataset.crs, crs)


def reproject_geometry(geometry: BaseGeometry, src_crs: Any, dst_crs: Any) -> BaseGeometry:
    """Reproject a polygon, densifying its edges first so that curvature is kept.

    Where some outline points have no place in ``dst_crs`` (a global raster seen from a
    geostationary satellite, say), returns the convex hull of the part that has: the
    outline's points and a grid of points inside it that do transform.

    Raises:
        FootprintError: No part of the geometry can be placed in ``dst_crs``.
    """
    if CRS.from_user_input(src_crs) == CRS.from_user_input(dst_crs):
        return geometry
    minx, miny, maxx, maxy = geometry.bounds
    step = max(maxx - minx, maxy - miny) / DENSIFY_POINTS
    dense = shapely.segmentize(geometry, step) if step > 0 else geometry
    outline = shapely.get_coordinates(dense)
    xs, ys, ok = _transform_finite(src_crs, dst_crs, outline[:, 0], outline[:, 1])
    if ok.all():
        projected = shapely.set_coordinates(dense, np.column_stack([xs, ys]))
        return projected if projected.is_valid else shapely.make_valid(projected)
    gx, gy = np.meshgrid(np.linspace(minx, maxx, DENSIFY_POINTS + 1),
                         np.linspace(miny, maxy, DENSIFY_POINTS + 1))
    inside = shapely.contains_xy(geometry, gx.ravel(), gy.ravel())
    px = np.concatenate([outline[:, 0], gx.ravel()[inside]])
    py = np.concatenate([outline[:, 1], gy.ravel()[inside]])
    xs, ys, ok = _transform_finite(src_crs, dst_crs, px, py)
    if ok.sum() < 3:
        raise FootprintError(
            f"no part of {describe_bounds(geometry)} in {crs_label(src_crs)} can be placed "
            f"in {crs_label(dst_crs)}."
        )
    return shapely.MultiPoint(np.column_stack([xs[ok], ys[ok]])).convex_hull


def _transform_finite(src_crs: Any, dst_crs: Any, xs: np.ndarray,
                      ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transform points; those with no place in ``dst_crs`` come back flagged, not raised."""
    try:
        tx, ty = (np.asarray(v, dtype=np.float64) for v in transform_points(src_crs, dst_crs,
                                                                             xs, ys))
    except (CRSError, RasterioError, CPLE_BaseError):
        # GDAL gives up on the whole batch when one point fails: go point by point.
        tx, ty = np.full(len(xs), np.nan), np.full(len(xs), np.nan)
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            try:
                (tx[i],), (ty[i],) = transform_points(src_crs, dst_crs, [x], [y])
            except (CRSError, RasterioError, CPLE_BaseError):
                continue
    return tx, ty, np.isfinite(tx) & np.isfinite(ty)


def crs_label(crs: Any) -> str:
    """``EPSG:<code>`` for messages, or "a custom CRS" when it has no code."""
    epsg = CRS.from_user_input(crs).to_epsg()
    return f"EPSG:{epsg}" if epsg else "a custom CRS"


def lonlat_bounds(dataset: Any) -> str:
    """A raster's extent in longitude/latitude for messages, or in its own CRS if it
    has no place on the globe."""
    try:
        west, south, east, north = transform_bounds(dataset.crs, "EPSG:4326", *dataset.bounds,
                                                    densify_pts=21)
        if all(math.isfinite(v) for v in (west, south, east, north)):
            return f"lon {west:.4f}…{east:.4f}, lat {south:.4f}…{north:.4f}"
    except (CRSError, RasterioError, CPLE_BaseError):
        pass
    return f"{describe_bounds(box(*dataset.bounds))} in {crs_label(dataset.crs)}"


def describe_bounds(geometry: BaseGeometry) -> str:
    """Bounds as ``(minx, miny, maxx, maxy)`` rounded for messages."""
    return "(" + ", ".join(f"{v:.10g}" for v in geometry.bounds) + ")"


def _geojson_crs(document: dict[str, Any]) -> CRS:
    """The CRS a GeoJSON document declares (legacy ``crs`` member), else WGS 84."""
    member = document.get("crs")
    if not member:
        return CRS.from_epsg(4326)
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not name:
        raise AOIError("the AOI's `crs` member has no `properties.name`.")
    try:
        return CRS.from_user_input(name)
    except CRSError as error:
        raise AOIError(f"the AOI declares a CRS GDAL does not know: {name}.") from error


def load_aoi(path: str | os.PathLike[str], crs: Any) -> BaseGeometry:
    """Read the polygons of a GeoJSON file as one geometry in ``crs``.

    Accepts a FeatureCollection, a Feature or a bare geometry; the CRS is the one the
    file declares (the legacy ``crs`` member GDAL and QGIS write) or WGS 84 per RFC 7946.

    Raises:
        AOIError: The file is missing, is not GeoJSON, or holds no polygon.
    """
    name = os.fspath(path)
    try:
        document = json.loads(Path(name).read_text())
    except FileNotFoundError as error:
        raise AOIError(f"AOI file {name}: no such file.") from error
    except (OSError, ValueError) as error:
        raise AOIError(f"AOI file {name} is not readable GeoJSON ({error}).") from error
    if not isinstance(document, dict):
        raise AOIError(f"AOI file {name} is not a GeoJSON object.")
    kind = document.get("type")
    if kind == "FeatureCollection":
        geometries = [f.get("geometry") for f in document.get("features", [])]
    elif kind == "Feature":
        geometries = [document.get("geometry")]
    else:
        geometries = [document]
    polygons = []
    for item in geometries:
        if not item:
            continue
        try:
            geometry = shape(item)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise AOIError(f"AOI file {name} holds an invalid geometry ({error}).") from error
        if geometry.geom_type in ("Polygon", "MultiPolygon") and not geometry.is_empty:
            polygons.append(geometry if geometry.is_valid else shapely.make_valid(geometry))
    if not polygons:
        raise AOIError(f"AOI file {name} holds no polygon.")
    return reproject_geometry(shapely.union_all(polygons), _geojson_crs(document), crs)
