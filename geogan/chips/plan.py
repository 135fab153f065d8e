"""Planning an export: the chip grid over the rasters' common footprint (clipped by the
AOI), and each raster as a :class:`Layer` read on that grid (warped onto it when the grids
differ). :mod:`geogan.chips.export` cuts and writes the chips of a :class:`Plan`.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import WindowError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from geogan.chips.layout import (
    PAIRED_FOLDERS,
)
from geogan.chips.options import ExportOptions
from geogan.errors import (
    NoChipsError,
    NoOverlapError,
)
from geogan.grids.chip_grid import ChipGrid, chip_grid, pixel_region
from geogan.raster.footprints import (
    crs_label,
    describe_bounds,
    load_aoi,
    lonlat_bounds,
    raster_footprint,
)
from geogan.raster.io import chip_profile, is_categorical, same_grid, valid_mask, warp_adds_alpha
from geogan.raster.mosaic import Source


@dataclass
class Layer:
    """One raster as chips are read from it on the chip grid."""

    role: str  # "a" (input domain) or "b" (target domain)
    folder: str
    path: str  # what readers open: the raster, or a mosaic's in-memory VRT
    source: Any  # the source dataset opened by the caller (profile, descriptions, colours)
    grid_crs: Any  # the CRS of the chip grid
    warp: dict[str, Any] | None = None  # WarpedVRT arguments onto the grid, when grids differ
    offset: tuple[int, int] = (0, 0)  # (rows, cols) of the grid's origin in the source's pixels
    files: tuple[str, ...] = ()  # the raster files it is made of; () = (path,)
    vrt: str | None = None  # a mosaic's VRT document (``path`` is its in-memory copy)

    def __post_init__(self) -> None:
        # What chip writers and the metadata need of the source, read once here: worker
        # threads must not touch the caller's dataset handle, which is closed after planning.
        source = self.source
        self.files = self.files or (self.path,)
        self.profile = chip_profile(source, self.grid_crs)
        self.count: int = source.count
        self.dtype: str = source.dtypes[0]
        self.nodata: float | None = source.nodata
        self.descriptions = source.descriptions
        palette = source.count == 1 and source.colorinterp[0].name == "palette"
        self.colormap = source.colormap(1) if palette else None
        self.source_crs = source.crs
        self.source_transform = source.transform
        self.source_size = (source.width, source.height)

    @property
    def alpha_band(self) -> bool:
        """Whether the warp adds an alpha band that says where the source had data."""
        return self.warp is not None and bool(self.warp.get("add_alpha"))

    def __getstate__(self) -> dict[str, Any]:
        # What a worker process needs: all but the caller's dataset handle.
        return {**self.__dict__, "source": None}

    def open_reader(self, stack: ExitStack, path: str | None = None) -> Any:
        """A dataset of the caller's own to read windows from (GDAL handles are not
        shared between threads): of ``path`` (the mosaic's VRT copied into another
        process's memory), or by default of :attr:`path`."""
        dataset = stack.enter_context(rasterio.open(path or self.path))
        if self.warp is None:
            return dataset
        return stack.enter_context(WarpedVRT(dataset, **self.warp))

    def read(self, reader: Any, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (C, H, W) and validity (H, W) of one chip window of the grid."""
        shifted = Window(
            window.col_off - self.offset[1], window.row_off - self.offset[0],
            window.width, window.height,
        )
        try:
            inside = shifted.intersection(Window(0, 0, reader.width, reader.height))
        except WindowError:  # wholly outside: nothing valid
            shape = (self.count, int(window.height), int(window.width))
            return np.zeros(shape, self.dtype), np.zeros(shape[1:], dtype=bool)
        pixels = reader.read(window=inside)
        if self.alpha_band:
            part, part_valid = pixels[: self.count], pixels[self.count] > 127
            if part.dtype.kind == "f":
                part_valid &= np.isfinite(part).all(axis=0)
        else:
            part, part_valid = pixels, valid_mask(reader, inside, pixels)
        if inside == shifted:  # the usual case: no padding, no copy
            return part, part_valid
        # Partly outside the raster (only on grids offset by rounding): pad as invalid.
        data = np.zeros((self.count, int(window.height), int(window.width)), self.dtype)
        valid = np.zeros(data.shape[1:], dtype=bool)
        top, left = int(inside.row_off - shifted.row_off), int(inside.col_off - shifted.col_off)
        rows = slice(top, top + int(inside.height))
        cols = slice(left, left + int(inside.width))
        data[:, rows, cols] = part
        valid[rows, cols] = part_valid
        return data, valid


@dataclass
class Plan:
    """One chip grid and the layers read on it (two when paired, one per domain otherwise)."""

    grid: ChipGrid
    grid_source: Any  # the dataset whose grid the chips follow (planning only)
    region: BaseGeometry  # where chips may have valid pixels, in the grid's CRS
    layers: list[Layer]
    chip_prefix: str = ""  # what its chips' names start with (the pair's, with --pairs)

    def __post_init__(self) -> None:
        # The grid, kept after the dataset is closed.
        self.transform: Affine = self.grid_source.transform
        # ``region``'s tests, prepared once: many times faster for each chip, same answers.
        self.region_test: Any = prep(self.region)
        self.crs: Any = self.grid_source.crs
        self.size: tuple[int, int] = (self.grid_source.width, self.grid_source.height)


def plan_paired(a: Any, b: Any, a_source: Source, b_source: Source, options: ExportOptions,
                resampling: Resampling) -> Plan:
    footprint_a = raster_footprint(a)
    footprint_b = raster_footprint(b, a.crs)
    region = footprint_a.intersection(footprint_b)
    if region.is_empty or region.area == 0:
        raise NoOverlapError(
            f"{_label(a_source)} ({lonlat_bounds(a)}) and {_label(b_source)} "
            f"({lonlat_bounds(b)}) do not "
            "overlap; check that both rasters show the same place and that their CRS is right."
        )
    region = _clip_to_aoi(region, options, a.crs)
    grid = chip_grid(pixel_region(a, region.bounds), options.tile_size, options.step)
    if len(grid) == 0:
        raise NoChipsError(_too_small_message(region, a, options))
    offset = same_grid(a, b)
    if offset is not None:
        layer_b = Layer("b", PAIRED_FOLDERS[1], b_source.path, b, a.crs, offset=offset,
                        files=b_source.files, vrt=b_source.document)
    else:
        warp = dict(crs=a.crs, transform=a.transform, width=a.width, height=a.height,
                    resampling=resampling, add_alpha=warp_adds_alpha(b))
        layer_b = Layer("b", PAIRED_FOLDERS[1], b_source.path, b, a.crs, warp=warp,
                        files=b_source.files, vrt=b_source.document)
    layer_a = Layer("a", PAIRED_FOLDERS[0], a_source.path, a, a.crs, files=a_source.files,
                    vrt=a_source.document)
    return Plan(grid, a, region, [layer_a, layer_b])


def plan_single(dataset: Any, source: Source, role: str, folder: str,
                options: ExportOptions) -> Plan:
    region = _clip_to_aoi(raster_footprint(dataset), options, dataset.crs)
    grid = chip_grid(pixel_region(dataset, region.bounds), options.tile_size, options.step)
    if len(grid) == 0:
        raise NoChipsError(_too_small_message(region, dataset, options, _label(source)))
    return Plan(grid, dataset, region,
                [Layer(role, folder, source.path, dataset, dataset.crs, files=source.files,
                       vrt=source.document)])


def _label(source: Source) -> str:
    more = len(source.files) - 1
    return source.files[0] + (f" (and {more} more tiles)" if more else "")


def _clip_to_aoi(region: BaseGeometry, options: ExportOptions, crs: Any) -> BaseGeometry:
    if options.aoi is None:
        return region
    aoi = load_aoi(options.aoi, crs)
    clipped = region.intersection(aoi)
    if clipped.is_empty or clipped.area == 0:
        raise NoOverlapError(
            f"the AOI {os.fspath(options.aoi)} covers {describe_bounds(aoi)} but the rasters' "
            f"common footprint is {describe_bounds(region)} in {crs_label(crs)}: "
            "they do not overlap."
        )
    return clipped


def choose_resampling(dataset: Any, requested: str | None) -> tuple[Resampling, str]:
    if requested is not None:
        return Resampling[requested], "requested"
    if is_categorical(dataset):
        return Resampling.nearest, "categorical (palette or few distinct values)"
    return Resampling.bilinear, "continuous values"


def _too_small_message(region: BaseGeometry, dataset: Any, options: ExportOptions,
                       path: str | None = None) -> str:
    where = pixel_region(dataset, region.bounds)
    what = f"{path}'s area" if path else "the rasters' common area"
    if options.aoi is not None:
        what += " inside the AOI"
    return (
        f"{what} is {int(where.width)}×{int(where.height)} pixels, smaller than one "
        f"{options.tile_size}-pixel tile; use a smaller --tile-size."
    )
