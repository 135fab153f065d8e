"""Many files as one raster: a side of an export given as a folder, a glob, a list file.

A tiled delivery (a DSM and an orthophoto in a hundred 1 km tiles each) is one raster
cut into files. :func:`open_source` takes what a user names for it and gives one raster
that GDAL reads window by window:

* one raster file (a VRT too) or a GDAL name (``/vsicurl/...``): itself;
* a folder: every raster file in it (by extension, :data:`RASTER_EXTENSIONS`), sorted;
* a glob (``"tiles/*.tif"``, quoted so that the shell leaves it alone): its matches, sorted;
* ``@list.txt``: the paths in the file, one a line (blank lines and ``#`` comments
  skipped), relative to the list's folder.

Several files become a mosaic: a VRT that geogan writes in memory (``/vsimem``) and GDAL
streams; no tile is ever read whole. The tiles must lie on one pixel grid: the same CRS,
pixel size, band count, data type and nodata, north-up, with origins a whole number of
pixels apart. Where no tile has data the mosaic is nodata: with the tiles' nodata value
when they have one, else through a mask band made of the tiles' own masks, so gaps between
tiles never count as valid pixels. Within a tile, the mosaic's pixels, nodata and mask are
the tile's own, so chips cut from a mosaic are byte for byte those cut from the uncut
raster.
"""

from __future__ import annotations

import glob
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasterio.enums import ColorInterp
from rasterio.io import MemoryFile

from geogan.errors import InputError, RasterNotFoundError
from geogan.raster.footprints import crs_label
from geogan.raster.io import gdal_name, open_raster

#: Extensions of the files a folder contributes to a mosaic (any case).
RASTER_EXTENSIONS = frozenset({".tif", ".tiff", ".vrt", ".img", ".jp2", ".png", ".jpg",
                               ".jpeg", ".mrf", ".nc", ".hgt", ".bil", ".dem", ".asc"})

_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
               "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
               "float32": "Float32", "float64": "Float64"}


class MosaicError(InputError):
    """The files named for one side cannot be one mosaic."""


@dataclass(frozen=True)
class Source:
    """What a user named for one side, and the raster to read it from.

    Attributes:
        spec: As given (a path, folder, glob or ``@list``).
        files: The raster files it names, in mosaic order (one for a plain raster).
        path: What ``rasterio.open`` reads: the file itself, or the mosaic's in-memory VRT.
        document: The mosaic's VRT document (for another process to read); None for one
            file.
    """

    spec: str
    files: tuple[str, ...]
    path: str
    document: str | None = None

    @property
    def is_mosaic(self) -> bool:
        """Whether several files make this raster."""
        return len(self.files) > 1


def source_files(spec: str | os.PathLike[str], base: Path | None = None) -> list[str]:
    """The raster files ``spec`` names (see the module docstring), in a stable order.

    Args:
        spec: A raster, folder, glob or ``@list`` file.
        base: The folder relative paths are taken from (a ``pairs.csv``'s); None for the
            working folder.

    Raises:
        RasterNotFoundError: The folder, list or glob names no raster, or the list file
            does not exist.
    """
    text = os.fspath(spec)
    if "://" in text or text.startswith("/vsi"):
        return [text]
    if text.startswith("@"):
        listing = _under(base, text[1:])
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise RasterNotFoundError(f"cannot read the list {listing} "
                                      f"({error.strerror or error}).") from None
        names = [line.strip() for line in lines if line.strip() and
                 not line.strip().startswith("#")]
        if not names:
            raise RasterNotFoundError(f"the list {listing} names no raster; give one path "
                                      "a line.")
        return [name if "://" in name or name.startswith("/vsi") else
                str(_under(listing.parent, name)) for name in names]
    path = _under(base, text)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in RASTER_EXTENSIONS)
        if not files:
            raise RasterNotFoundError(f"the folder {path} holds no raster file "
                                      f"({', '.join(sorted(RASTER_EXTENSIONS))}).")
        return files
    if glob.has_magic(text) and not path.exists():
        files = sorted(p for p in glob.glob(str(path)) if Path(p).is_file())
        if not files:
            raise RasterNotFoundError(f"no file matches {path}.")
        return files
    return [str(path)]


def scene_list(specs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The scenes a user names for a batch: each spec as it is, but ``@list.txt`` (the
    paths or URLs in the file, one a line, blank lines and ``#`` comments skipped,
    relative to the list's folder) and a quoted glob that names no file itself (its
    matches, sorted). Folders are not expanded: a scene is a raster.

    Raises:
        RasterNotFoundError: A list that cannot be read or names nothing, or a glob that
            matches nothing.
    """
    scenes: list[str] = []
    for spec in specs:
        text = os.fspath(spec)
        if text.startswith("@") or (glob.has_magic(text) and "://" not in text and
                                    not text.startswith("/vsi") and not Path(text).exists()):
            scenes += source_files(text)
        else:
            scenes.append(text)
    return scenes


def _under(base: Path | None, name: str) -> Path:
    path = Path(name).expanduser()
    return path if base is None or path.is_absolute() else base / path


@contextmanager
def open_source(spec: str | os.PathLike[str], base: Path | None = None,
                what: str = "INPUT") -> Iterator[Source]:
    """The one raster ``spec`` stands for, readable while the context is open.

    Args:
        spec: A raster, folder, glob or ``@list`` file.
        base: The folder relative paths are taken from; None for the working folder.
        what: How messages name this side (``INPUT``, ``ADDITIONAL``).

    Raises:
        RasterNotFoundError, NotARasterError, MissingCRSError, UnsupportedRasterError:
            A file cannot be used (the message names it).
        MosaicError: The files do not lie on one pixel grid, or differ in bands, data
            type or nodata.
    """
    files = source_files(spec, base)
    if len(files) == 1:
        yield Source(os.fspath(spec), tuple(files), files[0])
        return
    document = mosaic_vrt(files, what)
    with MemoryFile(document.encode(), ext=".vrt") as memory:
        yield Source(os.fspath(spec), tuple(files), memory.name, document)


@dataclass(frozen=True)
class Frame:
    """The grid of a mosaic: its first pixel's corner, pixel size and size in pixels."""

    left: float
    top: float
    size_x: float
    size_y: float
    width: int
    height: int

    def offset(self, tile: dict[str, Any]) -> tuple[int, int]:
        """(column, row) of a tile's first pixel in this frame."""
        transform = tile["transform"]
        return (round((transform.c - self.left) / self.size_x),
                round((transform.f - self.top) / self.size_y))


def mosaic_frame(tiles: list[dict[str, Any]]) -> Frame:
    """The smallest frame holding every tile (all on one pixel grid)."""
    first = tiles[0]
    size_x, size_y = first["transform"].a, first["transform"].e
    left = min(t["transform"].c for t in tiles)
    top = max(t["transform"].f for t in tiles) if size_y < 0 else min(
        t["transform"].f for t in tiles)
    frame = Frame(left, top, size_x, size_y, 0, 0)
    offsets = [frame.offset(t) for t in tiles]
    width = max(x + t["width"] for (x, _), t in zip(offsets, tiles, strict=True))
    height = max(y + t["height"] for (_, y), t in zip(offsets, tiles, strict=True))
    return Frame(left, top, size_x, size_y, width, height)


def mosaic_vrt(files: list[str], what: str = "INPUT") -> str:
    """The VRT XML of a mosaic of ``files`` (checked to lie on one pixel grid)."""
    tiles = [read_tile(path) for path in files]
    for tile in tiles[1:]:
        check_same_grid(tiles[0], tile, what)
    return vrt_document(tiles, mosaic_frame(tiles))


def vrt_document(tiles: list[dict[str, Any]], frame: Frame) -> str:
    """The VRT XML of ``tiles`` (read by :func:`read_tile`, on one pixel grid) placed in
    ``frame``; where tiles overlap, the later one's pixels are read."""
    first = tiles[0]
    left, top, size_x, size_y = frame.left, frame.top, frame.size_x, frame.size_y
    offsets = [frame.offset(t) for t in tiles]
    width, height = frame.width, frame.height

    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = first["crs"].to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (left, size_x, 0.0, top, 0.0, size_y))
    if first["tags"]:
        metadata = ET.SubElement(root, "Metadata")
        for key, value in first["tags"].items():
            ET.SubElement(metadata, "MDI", key=key).text = value
    nodata = first["nodata"]
    for band in range(1, first["count"] + 1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[first["dtype"]],
                                band=str(band))
        if first["descriptions"][band - 1]:
            ET.SubElement(element, "Description").text = first["descriptions"][band - 1]
        if nodata is not None:
            ET.SubElement(element, "NoDataValue").text = "nan" if math.isnan(nodata) else \
                repr(float(nodata))
        ET.SubElement(element, "ColorInterp").text = first["colorinterp"][band - 1]
        if band == 1 and first["colormap"] is not None:
            table = ET.SubElement(element, "ColorTable")
            for index in range(max(first["colormap"]) + 1):
                c1, c2, c3, c4 = first["colormap"].get(index, (0, 0, 0, 0))
                ET.SubElement(table, "Entry", c1=str(c1), c2=str(c2), c3=str(c3), c4=str(c4))
        for tile, offset in zip(tiles, offsets, strict=True):
            _add_source(element, tile, offset, str(band), nodata)
    if nodata is None:  # gaps between tiles are masked, not zeros taken for data
        mask = ET.SubElement(ET.SubElement(root, "MaskBand"), "VRTRasterBand", dataType="Byte")
        for tile, offset in zip(tiles, offsets, strict=True):
            _add_source(mask, tile, offset, "mask,1", None)
    return ET.tostring(root, encoding="unicode")


def read_tile(path: str) -> dict[str, Any]:
    """What a mosaic needs of one tile (opened and checked like any input raster).

    Raises:
        RasterNotFoundError, NotARasterError, MissingCRSError, UnsupportedRasterError:
            The file cannot be used.
    """
    with open_raster(path) as dataset:
        colormap = None
        if dataset.count == 1 and dataset.colorinterp[0] == ColorInterp.palette:
            colormap = dataset.colormap(1)
        return {
            "path": str(Path(path).absolute()) if "://" not in path and
            not path.startswith("/vsi") else gdal_name(path),
            "name": path, "crs": dataset.crs, "transform": dataset.transform,
            "width": dataset.width, "height": dataset.height, "count": dataset.count,
            "dtype": dataset.dtypes[0], "nodata": dataset.nodata,
            "descriptions": list(dataset.descriptions), "tags": dataset.tags(),
            "colorinterp": [ci.name.capitalize() for ci in dataset.colorinterp],
            "colormap": colormap, "block": dataset.block_shapes[0],
        }


def check_same_grid(first: dict[str, Any], tile: dict[str, Any], what: str) -> None:
    """Refuse a tile that is not on the first tile's pixel grid, in one line.

    Raises:
        MosaicError: If the CRS, pixel size, grid phase, band count, data type or
            nodata differ.
    """
    hint = ("the tiles of one side must share a CRS and pixel size; give scenes in "
            "different CRSs or resolutions as separate pairs (--pairs pairs.csv)")
    a, b = first["transform"], tile["transform"]
    if tile["crs"] != first["crs"]:
        raise MosaicError(f"the tiles of {what} are not in one CRS: {first['name']} is in "
                          f"{crs_label(first['crs'])} and {tile['name']} in "
                          f"{crs_label(tile['crs'])}; {hint}.")
    if not math.isclose(a.a, b.a, rel_tol=1e-9) or not math.isclose(a.e, b.e, rel_tol=1e-9):
        raise MosaicError(f"the tiles of {what} differ in pixel size: {first['name']} has "
                          f"{abs(a.a):g} × {abs(a.e):g} and {tile['name']} "
                          f"{abs(b.a):g} × {abs(b.e):g}; {hint}.")
    col, row = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        raise MosaicError(f"the tiles of {what} are not on one pixel grid: {tile['name']} "
                          f"is {col:.3f}, {row:.3f} pixels from {first['name']}; resample them "
                          f"onto one grid, or {hint}.")
    for key, label in (("count", "band count"), ("dtype", "data type"), ("nodata", "nodata")):
        mine, theirs = first[key], tile[key]
        same = mine == theirs or (isinstance(mine, float) and isinstance(theirs, float)
                                  and math.isnan(mine) and math.isnan(theirs))
        if not same:
            raise MosaicError(f"the tiles of {what} differ in {label}: {first['name']} has "
                              f"{mine} and {tile['name']} {theirs}; give tiles of one kind.")


def _add_source(band: ET.Element, tile: dict[str, Any], offset: tuple[int, int],
                source_band: str, nodata: float | None) -> None:
    """One tile's pixels (or its mask) in place in a VRT band."""
    kind = "ComplexSource" if nodata is not None else "SimpleSource"
    source = ET.SubElement(band, kind)
    ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = tile["path"]
    ET.SubElement(source, "SourceBand").text = source_band
    block_y, block_x = tile["block"]
    ET.SubElement(source, "SourceProperties", RasterXSize=str(tile["width"]),
                  RasterYSize=str(tile["height"]),
                  DataType="Byte" if source_band.startswith("mask") else
                  _GDAL_TYPES[tile["dtype"]],
                  BlockXSize=str(block_x), BlockYSize=str(block_y))
    width, height = str(tile["width"]), str(tile["height"])
    ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=width, ySize=height)
    ET.SubElement(source, "DstRect", xOff=str(offset[0]), yOff=str(offset[1]), xSize=width,
                  ySize=height)
    if nodata is not None:
        ET.SubElement(source, "NODATA").text = "nan" if math.isnan(nodata) else \
            repr(float(nodata))
