"""What a chip folder says of its chips: ``geogan-chips.json`` and ``index.geojson``.

:mod:`geogan.chips.export` cuts the chips of each pair's plans and hands the results
here, with the statistics pooled over every chip cut (see :mod:`geogan.chips.layout` for
the folder format).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box, mapping

from geogan.chips.layout import CHIPS_FORMAT, CHIPS_FORMAT_VERSION
from geogan.chips.options import ExportOptions
from geogan.chips.pairs import PairSpec
from geogan.chips.plan import Layer, Plan
from geogan.errors import NoChipsError
from geogan.grids.split import VAL
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.raster.footprints import reproject_geometry
from geogan.version import __version__

#: How the index names the CRS of pairs in several CRSs: WGS 84 (GeoJSON's own).
INDEX_CRS_SEVERAL = CRS.from_epsg(4326)


@dataclass
class Chip:
    """A chip (or chip pair) that was written, with what the index records of it."""

    row: int
    col: int
    name: str
    window: Window
    bounds: tuple[float, float, float, float]
    valid_fraction: float
    shift: tuple[float, float, float] | None = None  # (dx, dy, peak)
    split: str = "train"


@dataclass
class PlanResult:
    """What the export of one plan wrote and skipped."""

    chips: list[Chip]
    skipped_invalid: int
    skipped_shift: int
    dropped_split: int = 0
    block_chips: int = 0


@dataclass
class PlannedPair:
    """One pair of an export: its plans (one paired, or one per raster when unpaired),
    the resampling chosen for it, and, once cut, the results and how it was split."""

    spec: PairSpec
    plans: list[Plan]
    resampling: str
    reason: str
    results: list[PlanResult] = field(default_factory=list)
    split: str = "blocks"  # blocks, whole-train, whole-val, held-out, train (--val-pairs)

    @property
    def chips(self) -> int:
        return sum(len(r.chips) for r in self.results)


def crs_json(crs: Any) -> dict[str, Any]:
    return {"epsg": crs.to_epsg(), "wkt": crs.to_wkt()}


def no_chips_message(results: list[PlanResult], options: ExportOptions) -> str:
    invalid = sum(r.skipped_invalid for r in results)
    shifted = sum(r.skipped_shift for r in results)
    parts = []
    if invalid:
        parts.append(f"{invalid} had less than {options.min_valid:.0%} valid pixels (--min-valid)")
    if shifted:
        parts.append(
            f"{shifted} were misregistered by more than {options.max_shift} px (--max-shift)"
        )
    return "no chip passed the filters: " + "; ".join(parts) + "."


def _source(layer: Layer) -> str:
    path = layer.files[0]
    return str(Path(path).absolute()) if "://" not in path and not path.startswith(
        "/vsi") else path


def _domain_metadata(layer: Layer, accumulator: StatisticsAccumulator) -> dict[str, Any]:
    try:
        statistics = [s.to_dict() for s in accumulator.result()]
    except NoChipsError:
        statistics = []
    nodata = layer.nodata
    domain: dict[str, Any] = {
        "role": "input" if layer.role == "a" else "additional",
        "folder": layer.folder,
        "source": _source(layer),
        "bands": layer.count,
        "dtype": layer.dtype,
        "nodata": None if nodata is None or math.isnan(nodata) else nodata,
        "nodata_is_nan": nodata is not None and math.isnan(nodata),
        "band_descriptions": list(layer.descriptions),
        "source_crs": crs_json(layer.source_crs),
        "source_transform": list(layer.source_transform)[:6],
        "source_size": list(layer.source_size),
        "statistics": statistics,
    }
    if len(layer.files) > 1:
        domain["tiles"] = [str(Path(f).absolute()) for f in layer.files]
    return domain


def _grid(plan: Plan, result: PlanResult, options: ExportOptions) -> dict[str, Any]:
    return {
        "crs": crs_json(plan.crs),
        "transform": list(plan.transform)[:6],
        "size": list(plan.size),
        "split_block_pixels": result.block_chips * options.step,
    }


def metadata(pairs: list[PlannedPair], accumulators: dict[str, StatisticsAccumulator],
             options: ExportOptions, pairs_file: Path | None,
             skipped: list[dict[str, Any]]) -> dict[str, Any]:
    """``geogan-chips.json``: settings, sources, pooled statistics, counts, and with
    ``--pairs`` every pair's grid, chips and split."""
    first = pairs[0]
    domains = {layer.role: _domain_metadata(layer, accumulators[layer.role])
               for plan in first.plans for layer in plan.layers}
    results = [r for p in pairs for r in p.results]
    chips = [c for r in results for c in r.chips]
    shifts = [c.shift for c in chips if c.shift is not None]
    document: dict[str, Any] = {
        "format": CHIPS_FORMAT,
        "version": CHIPS_FORMAT_VERSION,
        "created_by": f"geogan {__version__}",
        "mode": "unpaired" if options.unpaired else "paired",
        "tile_size": options.tile_size,
        "stride": options.step,
        "min_valid": options.min_valid,
        "val_fraction": options.val_fraction,
        "seed": options.seed,
        "max_shift": options.max_shift,
        "aoi": None if options.aoi is None else str(Path(options.aoi).absolute()),
        "resampling": None if options.unpaired else first.resampling,
        "resampling_reason": None if options.unpaired else first.reason,
    }
    if pairs_file is None:
        document["grids"] = {
            (plan.layers[0].role if options.unpaired else "ab"): _grid(plan, result, options)
            for plan, result in zip(first.plans, first.results, strict=True)}
    else:
        document["pairs_file"] = str(pairs_file.absolute())
        document["val_pairs"] = options.val_pairs
        document["pairs"] = [_pair_metadata(p, options) for p in pairs]
        document["skipped_pairs"] = skipped
    document["domains"] = domains
    document["counts"] = {
        "candidates": sum(len(plan.grid) for p in pairs for plan in p.plans),
        "train": sum(1 for c in chips if c.split != VAL),
        "val": sum(1 for c in chips if c.split == VAL),
        "skipped_invalid": sum(r.skipped_invalid for r in results),
        "skipped_shift": sum(r.skipped_shift for r in results),
        "dropped_split": sum(r.dropped_split for r in results),
    }
    if pairs_file is not None:
        document["counts"].update(pairs=len(pairs), skipped_pairs=len(skipped))
    if shifts:
        magnitudes = np.hypot([s[0] for s in shifts], [s[1] for s in shifts])
        document["registration"] = {
            "median_dx": float(np.median([s[0] for s in shifts])),
            "median_dy": float(np.median([s[1] for s in shifts])),
            "p95_magnitude": float(np.percentile(magnitudes, 95)),
        }
    return document


def _pair_metadata(pair: PlannedPair, options: ExportOptions) -> dict[str, Any]:
    chips = [c for r in pair.results for c in r.chips]
    return {
        "pair": pair.spec.number,
        "row": pair.spec.row,
        "input": pair.spec.input,
        "additional": pair.spec.additional,
        "sources": {layer.role: [str(Path(f).absolute()) for f in layer.files]
                    for plan in pair.plans for layer in plan.layers},
        "grids": {(plan.layers[0].role if options.unpaired else "ab"): _grid(plan, r, options)
                  for plan, r in zip(pair.plans, pair.results, strict=True)},
        "resampling": None if options.unpaired else pair.resampling,
        "split": pair.split,
        "train": sum(1 for c in chips if c.split != VAL),
        "val": sum(1 for c in chips if c.split == VAL),
    }


def index(pairs: list[PlannedPair]) -> dict[str, Any]:
    """index.geojson: one feature per chip (per chip pair when paired), in the grids'
    CRS when the pairs share one, else in WGS 84."""
    features: list[dict[str, Any]] = []
    several = len({plan.crs.to_wkt() for p in pairs for plan in p.plans}) > 1
    crs = INDEX_CRS_SEVERAL if several else pairs[0].plans[0].crs
    for pair in pairs:
        for plan, result in zip(pair.plans, pair.results, strict=True):
            domain = plan.layers[0].role if len(plan.layers) == 1 else "ab"
            same_crs = CRS.from_user_input(plan.crs) == CRS.from_user_input(crs)
            for chip in result.chips:
                stem = Path(chip.name).stem
                properties: dict[str, Any] = {
                    "id": stem if domain == "ab" else f"{domain}/{stem}",
                    "file": chip.name,
                    "domain": domain,
                    "split": chip.split,
                    "window": [int(chip.window.col_off), int(chip.window.row_off),
                               int(chip.window.width), int(chip.window.height)],
                    "valid_fraction": round(chip.valid_fraction, 6),
                }
                if pair.spec.number:
                    properties["pair"] = pair.spec.number
                if chip.shift is not None:
                    properties.update(shift_x=round(chip.shift[0], 3),
                                      shift_y=round(chip.shift[1], 3),
                                      shift_peak=round(chip.shift[2], 4))
                geometry = (box_geometry(chip.bounds) if same_crs else
                            mapping(reproject_geometry(box(*chip.bounds), plan.crs, crs)))
                features.append({"type": "Feature", "geometry": geometry,
                                 "properties": properties})
    document: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    epsg = crs.to_epsg()
    if epsg and not several:
        document["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    return document


def box_geometry(bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    """GeoJSON of a chip's rectangle, exactly as ``mapping(box(*bounds))`` (the same
    ring, in shapely's order), without shapely's 80 µs a chip: the index of thousands of
    chips is written by this process alone, after the workers are done."""
    minx, miny, maxx, maxy = bounds
    ring = ((maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny), (maxx, miny))
    return {"type": "Polygon", "coordinates": (ring,)}
