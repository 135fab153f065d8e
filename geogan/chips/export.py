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
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, WindowError
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from geogan import staging
from geogan.chips.layout import (
    CHIPS_FORMAT,
    CHIPS_FORMAT_VERSION,
    INDEX_NAME,
    METADATA_NAME,
    PAIRED_FOLDERS,
    UNPAIRED_FOLDERS,
)
from geogan.chips.registration import estimate_shift
from geogan.errors import (
    ExportInterrupted,
    GeoganError,
    InputError,
    NoChipsError,
    NoOverlapError,
)
from geogan.grids.chip_grid import ChipGrid, chip_grid, pixel_region
from geogan.grids.split import DROPPED, VAL, split_chips
from geogan.progress import Counter
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.raster.footprints import (
    crs_label,
    describe_bounds,
    load_aoi,
    lonlat_bounds,
    raster_footprint,
    reproject_geometry,
)
from geogan.raster.io import chip_profile, is_categorical, open_raster, same_grid, valid_mask
from geogan.version import __version__

#: The record, in an unfinished export's stage folder, of the settings it was started with.
SETTINGS_NAME = ".geogan-export.json"
SETTINGS_FORMAT = "geogan-export-stage"

#: Chips are registered on 2 × 2 block means: 4 × less work, about 0.2 px precision.
REGISTRATION_SCALE = 2

#: Progress callback: (windows done, windows in all).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportOptions:
    """How to cut chips. Defaults follow ArcGIS's *Export Training Data For Deep Learning*."""

    tile_size: int = 256  # chip side, pixels
    stride: int | None = None  # step between chips, pixels; None = tile_size (no overlap)
    min_valid: float = 0.9  # chips with a smaller share of valid pixels are skipped
    val_fraction: float = 0.1  # share of chips in the validation split (spatial blocks)
    seed: int = 0  # seed of the split
    aoi: str | os.PathLike[str] | None = None  # GeoJSON polygon(s) to clip to
    unpaired: bool = False  # chip each raster on its own (CycleGAN)
    resampling: str | None = None  # additional raster's resampling; None = by its content
    max_shift: float | None = None  # drop chip pairs misregistered by more pixels than this
    overwrite: bool = False  # replace an existing non-empty output folder
    workers: int = 0  # threads reading and writing chips; 0 = one per CPU core (at most 8)
    creation_options: Mapping[str, Any] = field(default_factory=dict)  # GeoTIFF options
    resume: bool = False  # continue an interrupted export of the same inputs and settings

    @property
    def step(self) -> int:
        """The stride actually used."""
        return self.stride if self.stride is not None else self.tile_size

    def check(self) -> None:
        """Raise :class:`InputError` for values that cannot work."""
        if self.tile_size < 16:
            raise InputError(f"tile size must be at least 16 pixels, not {self.tile_size}.")
        if self.step < 1:
            raise InputError(f"stride must be at least 1 pixel, not {self.step}.")
        if not 0.0 <= self.min_valid <= 1.0:
            raise InputError(f"min-valid must be between 0 and 1, not {self.min_valid}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"val-fraction must be in [0, 1), not {self.val_fraction}.")
        if self.max_shift is not None and self.max_shift < 0:
            raise InputError(f"max-shift must not be negative, not {self.max_shift}.")
        if self.resampling is not None and self.resampling not in Resampling.__members__:
            names = ", ".join(r.name for r in Resampling)
            raise InputError(f"unknown resampling {self.resampling!r}; use one of {names}.")


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and what it skipped, and why."""

    out_dir: Path
    mode: str  # "paired" or "unpaired"
    candidates: int  # chip windows examined
    train: int
    val: int
    skipped_invalid: int  # below min_valid
    skipped_shift: int  # above max_shift
    dropped_split: int  # would have overlapped the other split
    resampling: str
    seconds: float

    @property
    def exported(self) -> int:
        """Chips (or chip pairs) written."""
        return self.train + self.val


@dataclass
class _Layer:
    """One raster as chips are read from it on the chip grid."""

    role: str  # "a" (input domain) or "b" (target domain)
    folder: str
    path: str
    source: Any  # the source dataset opened by the caller (profile, descriptions, colours)
    grid_crs: Any  # the CRS of the chip grid
    warp: dict[str, Any] | None = None  # WarpedVRT arguments onto the grid, when grids differ
    offset: tuple[int, int] = (0, 0)  # (rows, cols) of the grid's origin in the source's pixels

    def __post_init__(self) -> None:
        # What chip writers need of the source, read once here: worker threads must not
        # touch the caller's dataset handle.
        self.profile = chip_profile(self.source, self.grid_crs)
        self.count: int = self.source.count
        self.dtype: str = self.source.dtypes[0]
        self.descriptions = self.source.descriptions
        palette = self.source.count == 1 and self.source.colorinterp[0].name == "palette"
        self.colormap = self.source.colormap(1) if palette else None

    @property
    def alpha_band(self) -> bool:
        """Whether the warp adds an alpha band that says where the source had data."""
        return self.warp is not None and bool(self.warp.get("add_alpha"))

    def open_reader(self, stack: ExitStack) -> Any:
        """A dataset of this thread's own to read windows from (GDAL handles are not
        shared between threads)."""
        dataset = stack.enter_context(rasterio.open(self.path))
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


class _ThreadReaders:
    """Each worker thread's own open datasets for a list of layers, closed together."""

    def __init__(self, layers: list[_Layer]) -> None:
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
    settings = _settings(input_path, additional_path, options)
    stage = staging.stage_path(out)
    if options.resume:
        _check_resumable(stage, settings)
    started = time.perf_counter()
    with ExitStack() as stack:
        a = stack.enter_context(open_raster(input_path))
        b = stack.enter_context(open_raster(additional_path))
        resampling, reason = _choose_resampling(b, options.resampling)
        if options.unpaired:
            plans = [
                _plan_single(a, os.fspath(input_path), "a", UNPAIRED_FOLDERS[0], options),
                _plan_single(b, os.fspath(additional_path), "b", UNPAIRED_FOLDERS[1], options),
            ]
        else:
            plans = [_plan_paired(a, b, os.fspath(input_path), os.fspath(additional_path),
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


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    """One chip grid and the layers read on it (two when paired, one per domain otherwise)."""

    grid: ChipGrid
    grid_source: Any  # the dataset whose grid the chips follow (main thread only)
    region: BaseGeometry  # where chips may have valid pixels, in the grid's CRS
    layers: list[_Layer]

    def __post_init__(self) -> None:
        self.transform: Affine = self.grid_source.transform


def _plan_paired(a: Any, b: Any, a_path: str, b_path: str, options: ExportOptions,
                 resampling: Resampling) -> _Plan:
    footprint_a = raster_footprint(a)
    footprint_b = raster_footprint(b, a.crs)
    region = footprint_a.intersection(footprint_b)
    if region.is_empty or region.area == 0:
        raise NoOverlapError(
            f"{a_path} ({lonlat_bounds(a)}) and {b_path} ({lonlat_bounds(b)}) do not "
            "overlap; check that both rasters show the same place and that their CRS is right."
        )
    region = _clip_to_aoi(region, options, a.crs)
    grid = chip_grid(pixel_region(a, region.bounds), options.tile_size, options.step)
    if len(grid) == 0:
        raise NoChipsError(_too_small_message(region, a, options))
    offset = same_grid(a, b)
    if offset is not None:
        layer_b = _Layer("b", PAIRED_FOLDERS[1], b_path, b, a.crs, offset=offset)
    else:
        warp = dict(crs=a.crs, transform=a.transform, width=a.width, height=a.height,
                    resampling=resampling, add_alpha=b.nodata is None)
        layer_b = _Layer("b", PAIRED_FOLDERS[1], b_path, b, a.crs, warp=warp)
    layer_a = _Layer("a", PAIRED_FOLDERS[0], a_path, a, a.crs)
    return _Plan(grid, a, region, [layer_a, layer_b])


def _plan_single(dataset: Any, path: str, role: str, folder: str, options: ExportOptions) -> _Plan:
    region = _clip_to_aoi(raster_footprint(dataset), options, dataset.crs)
    grid = chip_grid(pixel_region(dataset, region.bounds), options.tile_size, options.step)
    if len(grid) == 0:
        raise NoChipsError(_too_small_message(region, dataset, options, path))
    return _Plan(grid, dataset, region, [_Layer(role, folder, path, dataset, dataset.crs)])


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


def _choose_resampling(dataset: Any, requested: str | None) -> tuple[Resampling, str]:
    if requested is not None:
        return Resampling[requested], "requested"
    if is_categorical(dataset):
        return Resampling.nearest, "categorical (palette or few distinct values)"
    return Resampling.bilinear, "continuous values"


# --------------------------------------------------------------------------- export loop


@dataclass
class _PlanResult:
    chips: list[_Chip]
    statistics: list[StatisticsAccumulator]
    skipped_invalid: int
    skipped_shift: int
    dropped_split: int
    block_chips: int


def _export_plan(plan: _Plan, stage: Path, options: ExportOptions,
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


def _export_window(plan: _Plan, stage: Path, options: ExportOptions, readers: _ThreadReaders,
                   index: int, i: int, j: int, window: Window) -> _Outcome:
    """Read, filter and write one chip window (in a worker thread, whose GDAL
    configuration is its own: rasterio environments are per thread)."""
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        return _export_window_in_env(plan, stage, options, readers, index, i, j, window)


def _export_window_in_env(plan: _Plan, stage: Path, options: ExportOptions,
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


def _write_chip(path: Path, layer: _Layer, transform: Any, data: np.ndarray, valid: np.ndarray,
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


def _file_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies an input file's version: absolute path, size and modification time."""
    text = os.fspath(path)
    if "://" in text or text.startswith("/vsi"):
        return {"path": text}
    try:
        status = os.stat(text)
    except OSError:
        return {"path": str(Path(text).absolute())}
    return {"path": str(Path(text).absolute()), "size": status.st_size,
            "mtime_ns": status.st_mtime_ns}


def _settings(input_path: str | os.PathLike[str], additional_path: str | os.PathLike[str],
              options: ExportOptions) -> dict[str, Any]:
    """Everything that changes an export's output: its inputs' identities and the options
    (not ``overwrite``, ``workers`` or ``resume``, which don't)."""
    return {
        "format": SETTINGS_FORMAT,
        "created_by": f"geogan {__version__}",
        "inputs": {
            "input": _file_record(input_path),
            "additional": _file_record(additional_path),
            "aoi": None if options.aoi is None else _file_record(options.aoi),
        },
        "options": {
            "tile_size": options.tile_size,
            "stride": options.step,
            "min_valid": options.min_valid,
            "val_fraction": options.val_fraction,
            "seed": options.seed,
            "unpaired": options.unpaired,
            "resampling": options.resampling,
            "max_shift": options.max_shift,
            "creation_options": {str(k).upper(): str(v)
                                 for k, v in sorted(options.creation_options.items())},
        },
    }


def _check_resumable(stage: Path, settings: dict[str, Any]) -> None:
    """Raise :class:`InputError` unless ``stage`` is an interrupted export of ``settings``."""
    out = staging.published_path(stage)
    if not (stage / SETTINGS_NAME).is_file():
        what = "holds no record of its settings" if stage.is_dir() else "does not exist"
        raise InputError(
            f"there is no interrupted export of {out} to resume ({stage} {what}); "
            "run without --resume to start it"
        )
    try:
        recorded = json.loads((stage / SETTINGS_NAME).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot resume: {stage / SETTINGS_NAME} cannot be read ({error}); "
                         "run without --resume to start over") from None
    differences = []
    for group in ("inputs", "options"):
        old, new = recorded.get(group, {}), settings[group]
        differences += [_setting_label(group, name) for name in new
                        if old.get(name) != new[name]]
    if recorded.get("created_by") != settings["created_by"]:
        differences.append(f"geogan version ({recorded.get('created_by')})")
    if differences:
        raise InputError(
            f"cannot resume the export in {stage}: it was started with other "
            f"{', '.join(differences)}; rerun with the same inputs and settings, or without "
            "--resume to start over"
        )


def _setting_label(group: str, name: str) -> str:
    """How a user knows a setting: the command line's option, or which input file."""
    if group == "inputs":
        return {"input": "INPUT raster", "additional": "ADDITIONAL raster",
                "aoi": "--aoi file"}[name]
    return "--co" if name == "creation_options" else "--" + name.replace("_", "-")


def _crs_json(crs: Any) -> dict[str, Any]:
    return {"epsg": crs.to_epsg(), "wkt": crs.to_wkt()}


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


def _domain_metadata(layer: _Layer, accumulator: StatisticsAccumulator) -> dict[str, Any]:
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


def _metadata(plans: list[_Plan], results: list[_PlanResult], options: ExportOptions,
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


def _index(plans: list[_Plan], results: list[_PlanResult]) -> dict[str, Any]:
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
