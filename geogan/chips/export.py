"""``export-chips``: cut a raster pair into georeferenced training chips.

The two rasters are ArcGIS Pro's "Input Raster" and "Additional Input Raster". For
paired data (Pix2Pix) the additional raster is brought onto the input raster's grid
(a warped VRT when the grids differ) and chips are cut where both have data; each chip
pair is two GeoTIFFs of the same name in ``images/`` and ``images2/``. For unpaired
data (CycleGAN) each raster is chipped on its own into ``train_a/`` and ``train_b/``.

The folder is built under a hidden staging name beside the output (``.NAME.partial``) and
renamed into place only when complete, so a failure or an interruption never leaves a
folder whose metadata lists chips that are not there: the metadata is written last. Each
chip is written whole under a temporary name and renamed, so a chip file in the stage is
always complete. An interrupted export keeps its stage, with a record of the settings it
was started with (``.geogan-export.json``); ``resume=True`` continues it with the same
settings: chips already written are not written again, and the statistics, split, metadata
and index are made over all chips, exactly as in an uninterrupted export. Rasters are
read window by window: memory depends on the tile size, not on the rasters' size.

The plan (grid and layers) is :mod:`geogan.chips.plan`, the resume record
:mod:`geogan.chips.resume`, the stage folder :mod:`geogan.staging`, and the folder format
:mod:`geogan.chips.layout`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box, mapping

from geogan import staging
from geogan.chips.layout import (
    CHIPS_FORMAT,
    CHIPS_FORMAT_VERSION,
    INDEX_NAME,
    METADATA_NAME,
    UNPAIRED_FOLDERS,
)
from geogan.chips.options import ExportOptions, ExportReport
from geogan.chips.plan import Layer, Plan, choose_resampling, plan_paired, plan_single
from geogan.chips.registration import estimate_shift
from geogan.chips.resume import SETTINGS_NAME, check_resumable, export_settings
from geogan.errors import (
    ExportInterrupted,
    GeoganError,
    InputError,
    NoChipsError,
)
from geogan.grids.split import DROPPED, VAL, split_chips
from geogan.progress import Counter
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.raster.footprints import (
    reproject_geometry,
)
from geogan.raster.io import open_raster
from geogan.version import __version__

#: Chips are registered on 2 × 2 block means: 4 × less work, about 0.2 px precision.
REGISTRATION_SCALE = 2

#: Progress callback: (windows done, windows in all).
ProgressCallback = Callable[[int, int], None]


class _ThreadReaders:
    """Each worker thread's own open datasets for a list of layers, closed together."""

    def __init__(self, layers: list[Layer]) -> None:
        self._layers = layers
        self._local = threading.local()
        self._stacks: list[ExitStack] = []
        self._lock = threading.Lock()

    def get(self) -> list[Any]:
        """This thread's readers, one per layer, opened on first use."""
        readers: list[Any] | None = getattr(self._local, "readers", None)
        if readers is None:
            stack = ExitStack()
            with self._lock:
                self._stacks.append(stack)
            readers = [layer.open_reader(stack) for layer in self._layers]
            self._local.readers = readers
        return readers

    def close(self) -> None:
        """Close every thread's datasets."""
        for stack in self._stacks:
            stack.close()


@dataclass
class _Chip:
    """A chip (or chip pair) that was written, with what the index records of it."""

    row: int
    col: int
    name: str
    window: Window
    bounds: tuple[float, float, float, float]
    valid_fraction: float
    shift: tuple[float, float, float] | None = None  # (dx, dy, peak)
    split: str = "train"


def export_chips(
    input_path: str | os.PathLike[str],
    additional_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Cut a pair of rasters into georeferenced chips with metadata.

    Args:
        input_path: The input-domain raster (the chips' grid in paired mode).
        additional_path: The target-domain raster (any CRS and resolution).
        out_dir: The chip folder to create.
        options: How to cut; defaults to :class:`ExportOptions()`.
        progress: Called with (windows done, windows in all) as work advances.

    Returns:
        Counts of what was written and skipped.

    Raises:
        RasterNotFoundError, NotARasterError, MissingCRSError, UnsupportedRasterError:
            An input raster cannot be used.
        AOIError: The AOI file cannot be used.
        NoOverlapError: The footprints (and AOI) do not intersect.
        NoChipsError: No chip passes the filters.
        OutputExistsError: ``out_dir`` exists, is not empty, and ``overwrite`` is False.
        OutputError: ``out_dir`` cannot be written (the stage folder is kept: rerun with
            ``resume=True`` once the cause is fixed; it is removed after an input error,
            which a rerun would meet again, or an unexpected exception).
        InputError: ``resume`` is True but there is no interrupted export to resume, or it
            was started with other inputs or settings.
        ExportInterrupted: On Ctrl-C (KeyboardInterrupt); the stage folder is kept.
    """
    options = options or ExportOptions()
    options.check()
    out = Path(out_dir)
    staging.check_folder_output(out, options.overwrite)
    settings = export_settings(input_path, additional_path, options)
    stage = staging.stage_path(out)
    if options.resume:
        check_resumable(stage, settings)
    started = time.perf_counter()
    with ExitStack() as stack:
        a = stack.enter_context(open_raster(input_path))
        b = stack.enter_context(open_raster(additional_path))
        resampling, reason = choose_resampling(b, options.resampling)
        if options.unpaired:
            plans = [
                plan_single(a, os.fspath(input_path), "a", UNPAIRED_FOLDERS[0], options),
                plan_single(b, os.fspath(additional_path), "b", UNPAIRED_FOLDERS[1], options),
            ]
        else:
            plans = [plan_paired(a, b, os.fspath(input_path), os.fspath(additional_path),
                                  options, resampling)]
        if options.resume:
            staging.remove_partial_files(stage)
        else:
            staging.make_stage(stage, SETTINGS_NAME, json.dumps(settings, indent=2))
        try:
            advance = Counter(sum(len(p.grid) for p in plans), progress)
            results = [_export_plan(plan, stage, options, advance) for plan in plans]
            if sum(len(r.chips) for r in results) == 0:
                raise NoChipsError(_no_chips_message(results, options))
            metadata = _metadata(plans, results, options, resampling.name, reason)
            # The manifest last: it never lists a chip that is not there.
            staging.write_text(stage / INDEX_NAME, json.dumps(_index(plans, results), indent=1))
            staging.write_text(stage / METADATA_NAME, json.dumps(metadata, indent=2))
            (stage / SETTINGS_NAME).unlink()
            staging.publish(stage, out)
        except InputError:  # the same inputs would fail the same way: nothing to resume
            shutil.rmtree(stage, ignore_errors=True)
            raise
        except KeyboardInterrupt:
            raise ExportInterrupted(
                f"export interrupted; the chips written so far are kept in {stage}: run the "
                "same command with --resume to continue (without it, the export starts over)"
            ) from None
        except GeoganError as error:  # e.g. a full disk: resumable once fixed
            raise type(error)(
                f"{error}; the chips written so far are kept in {stage}: run the same "
                "command with --resume to continue"
            ) from None
        except BaseException:  # a bug: nothing is kept that might not be trusted
            shutil.rmtree(stage, ignore_errors=True)
            raise
    counts = metadata["counts"]
    return ExportReport(
        out_dir=out,
        mode="unpaired" if options.unpaired else "paired",
        candidates=counts["candidates"],
        train=counts["train"],
        val=counts["val"],
        skipped_invalid=counts["skipped_invalid"],
        skipped_shift=counts["skipped_shift"],
        dropped_split=counts["dropped_split"],
        resampling=resampling.name,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- export loop


@dataclass
class _PlanResult:
    chips: list[_Chip]
    statistics: list[StatisticsAccumulator]
    skipped_invalid: int
    skipped_shift: int
    dropped_split: int
    block_chips: int


def _export_plan(plan: Plan, stage: Path, options: ExportOptions,
                 advance: Callable[[], None]) -> _PlanResult:
    """Export every window of a plan's grid: workers read, filter and write chips while
    this thread gathers statistics, in grid order (so results do not depend on timing)."""
    for layer in plan.layers:
        (stage / layer.folder).mkdir(exist_ok=options.resume)
    accumulators = [
        StatisticsAccumulator(layer.count, layer.dtype, seed=options.seed)
        for layer in plan.layers
    ]
    chips: list[_Chip] = []
    skipped_invalid = skipped_shift = 0

    def gather(outcome: _Outcome) -> None:
        nonlocal skipped_invalid, skipped_shift
        advance()
        if outcome.chip is None:
            skipped_invalid += outcome.skipped == "invalid"
            skipped_shift += outcome.skipped == "shift"
            return
        chips.append(outcome.chip)
        for data, accumulator in zip(outcome.pixels, accumulators, strict=True):
            accumulator.update(data, outcome.valid)

    readers = _ThreadReaders(plan.layers)
    workers = options.workers or min(8, os.cpu_count() or 1)
    pending: deque[Future[_Outcome]] = deque()
    try:
        with ThreadPoolExecutor(workers) as pool:
            try:
                for index, (i, j, window) in enumerate(plan.grid):
                    pending.append(pool.submit(_export_window, plan, stage, options, readers,
                                               index, i, j, window))
                    if len(pending) >= 2 * workers:
                        gather(pending.popleft().result())
                while pending:
                    gather(pending.popleft().result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        readers.close()
    positions = [(c.row, c.col) for c in chips]
    split = split_chips(plan.grid, positions, options.val_fraction, options.seed)
    kept = []
    for chip in chips:
        chip.split = split.labels[(chip.row, chip.col)]
        if chip.split == DROPPED:
            for layer in plan.layers:
                (stage / layer.folder / chip.name).unlink()
        else:
            kept.append(chip)
    return _PlanResult(kept, accumulators, skipped_invalid, skipped_shift,
                       len(chips) - len(kept), split.block_chips)


@dataclass
class _Outcome:
    """What a worker did with one window: a chip and its pixels, or why it was skipped."""

    chip: _Chip | None
    skipped: str | None = None  # "invalid" or "shift"
    pixels: list[np.ndarray] = field(default_factory=list)  # one (C, H, W) array per layer
    valid: np.ndarray | None = None


def _export_window(plan: Plan, stage: Path, options: ExportOptions, readers: _ThreadReaders,
                   index: int, i: int, j: int, window: Window) -> _Outcome:
    """Read, filter and write one chip window (in a worker thread, whose GDAL
    configuration is its own: rasterio environments are per thread)."""
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        return _export_window_in_env(plan, stage, options, readers, index, i, j, window)


def _export_window_in_env(plan: Plan, stage: Path, options: ExportOptions,
                          readers: _ThreadReaders, index: int, i: int, j: int,
                          window: Window) -> _Outcome:
    bounds = window_bounds(window, plan.transform)
    transform = window_transform(window, plan.transform)
    reads = [layer.read(reader, window)
             for layer, reader in zip(plan.layers, readers.get(), strict=True)]
    valid = np.logical_and.reduce([v for _, v in reads])
    if not plan.region.contains(box(*bounds)):
        with warnings.catch_warnings():  # rasterio's scratch raster has no CRS; no matter
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            valid &= geometry_mask([plan.region], valid.shape, transform, invert=True)
    fraction = float(valid.mean())
    if fraction < options.min_valid or not valid.any():
        return _Outcome(None, "invalid")
    shift = None
    if len(reads) == 2:
        found = estimate_shift(reads[0][0], reads[1][0], valid,
                               max_shift=options.tile_size / 4, scale=REGISTRATION_SCALE)
        shift = (found.dx, found.dy, found.peak)
        # A featureless chip has no measurable shift: it is kept, with its low peak.
        if options.max_shift is not None and found.reliable and found.magnitude > options.max_shift:
            return _Outcome(None, "shift")
    name = f"{index:09d}.tif"
    paths = [stage / layer.folder / name for layer in plan.layers]
    # Resuming: a chip file that exists is complete (written whole, then renamed).
    if not (options.resume and all(path.exists() for path in paths)):
        for path, layer, (data, _) in zip(paths, plan.layers, reads, strict=True):
            _write_chip(path, layer, transform, data, valid, options.creation_options)
    chip = _Chip(i, j, name, window, bounds, fraction, shift)
    return _Outcome(chip, None, [data for data, _ in reads], valid)


def _write_chip(path: Path, layer: Layer, transform: Any, data: np.ndarray, valid: np.ndarray,
                creation_options: Mapping[str, Any]) -> None:
    """Write one chip GeoTIFF: the layer's dtype, bands and nodata on the chip's grid,
    with an internal mask when some pixels are invalid (so training can ignore them).

    The chip is built in memory and its bytes written by Python under a temporary name,
    then renamed: a write error (full disk, file size limit) raises instead of being only
    logged by GDAL, and a file under a chip's name is always complete.

    Raises:
        OutputError: If the chip cannot be written.
    """
    profile = dict(layer.profile, width=data.shape[2], height=data.shape[1], transform=transform)
    profile.update(creation_options)
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
            if not valid.all():
                dst.write_mask(valid.astype(np.uint8) * 255)
            if any(layer.descriptions):
                dst.descriptions = layer.descriptions
            if layer.colormap is not None:
                dst.write_colormap(1, layer.colormap)
        content = memory.read()
    staging.write_whole(path, content, "chip")


def _crs_json(crs: Any) -> dict[str, Any]:
    return {"epsg": crs.to_epsg(), "wkt": crs.to_wkt()}


def _no_chips_message(results: list[_PlanResult], options: ExportOptions) -> str:
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


def _domain_metadata(layer: Layer, accumulator: StatisticsAccumulator) -> dict[str, Any]:
    source = layer.source
    try:
        statistics = [s.to_dict() for s in accumulator.result()]
    except NoChipsError:
        statistics = []
    return {
        "role": "input" if layer.role == "a" else "additional",
        "folder": layer.folder,
        "source": str(Path(layer.path).absolute()) if "://" not in layer.path else layer.path,
        "bands": source.count,
        "dtype": source.dtypes[0],
        "nodata": None if source.nodata is None or math.isnan(source.nodata) else source.nodata,
        "nodata_is_nan": source.nodata is not None and math.isnan(source.nodata),
        "band_descriptions": list(source.descriptions),
        "source_crs": _crs_json(source.crs),
        "source_transform": list(source.transform)[:6],
        "source_size": [source.width, source.height],
        "statistics": statistics,
    }


def _metadata(plans: list[Plan], results: list[_PlanResult], options: ExportOptions,
              resampling: str, reason: str) -> dict[str, Any]:
    domains: dict[str, Any] = {}
    grids: dict[str, Any] = {}
    for plan, result in zip(plans, results, strict=True):
        for layer, accumulator in zip(plan.layers, result.statistics, strict=True):
            domains[layer.role] = _domain_metadata(layer, accumulator)
        grid_role = plan.layers[0].role if options.unpaired else "ab"
        grids[grid_role] = {
            "crs": _crs_json(plan.grid_source.crs),
            "transform": list(plan.grid_source.transform)[:6],
            "size": [plan.grid_source.width, plan.grid_source.height],
            "split_block_pixels": result.block_chips * options.step,
        }
    shifts = [c.shift for r in results for c in r.chips if c.shift is not None]
    metadata: dict[str, Any] = {
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
        "resampling": None if options.unpaired else resampling,
        "resampling_reason": None if options.unpaired else reason,
        "grids": grids,
        "domains": domains,
        "counts": {
            "candidates": sum(len(p.grid) for p in plans),
            "train": sum(1 for r in results for c in r.chips if c.split != VAL),
            "val": sum(1 for r in results for c in r.chips if c.split == VAL),
            "skipped_invalid": sum(r.skipped_invalid for r in results),
            "skipped_shift": sum(r.skipped_shift for r in results),
            "dropped_split": sum(r.dropped_split for r in results),
        },
    }
    if shifts:
        magnitudes = np.hypot([s[0] for s in shifts], [s[1] for s in shifts])
        metadata["registration"] = {
            "median_dx": float(np.median([s[0] for s in shifts])),
            "median_dy": float(np.median([s[1] for s in shifts])),
            "p95_magnitude": float(np.percentile(magnitudes, 95)),
        }
    return metadata


def _index(plans: list[Plan], results: list[_PlanResult]) -> dict[str, Any]:
    """index.geojson: one feature per chip (per chip pair when paired), in the input's CRS."""
    features: list[dict[str, Any]] = []
    crs = plans[0].grid_source.crs
    for plan, result in zip(plans, results, strict=True):
        domain = plan.layers[0].role if len(plan.layers) == 1 else "ab"
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
            if chip.shift is not None:
                properties.update(shift_x=round(chip.shift[0], 3), shift_y=round(chip.shift[1], 3),
                                  shift_peak=round(chip.shift[2], 4))
            outline = reproject_geometry(box(*chip.bounds), plan.grid_source.crs, crs)
            features.append({
                "type": "Feature",
                "geometry": mapping(outline),
                "properties": properties,
            })
    document: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    epsg = crs.to_epsg()
    if epsg:
        document["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    return document
