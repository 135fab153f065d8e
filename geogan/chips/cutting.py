"""Cutting chip windows: read one window of every layer, test it, register the pair and
write its chip files, for a run of windows at a time, in this process or in a worker's.

A :class:`CutJob` is what a worker needs of a plan, and pickles: no open dataset is in
it (a mosaic travels as its VRT document). A :class:`WindowCutter` keeps its datasets and
chip encoders open from one run of windows to the next; a worker process keeps one per job.

Statistics stay byte-identical whoever cuts: for histogram types (``uint8``,
``uint16``, ...) a run returns the histograms of its chips, which add up exactly in any
order; for the others it returns the chips' pixels, which the exporter feeds to the
statistics in grid order (their percentile subsample comes from one seeded generator).
"""

from __future__ import annotations

import os
import signal
import uuid
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from geogan import staging
from geogan.chips.chip_tiff import ChipEncoder
from geogan.chips.manifest import Chip
from geogan.chips.options import ExportOptions
from geogan.chips.plan import Layer, Plan
from geogan.chips.registration import estimate_shift
from geogan.raster.band_stats import StatisticsAccumulator, uses_histograms

#: Chips are registered on 2 × 2 block means: 4 × less work, about 0.2 px precision.
REGISTRATION_SCALE = 2

#: One window of a plan's grid: (position in the grid, row, column, window).
GridWindow = tuple[int, int, int, Window]


@dataclass(frozen=True)
class CutJob:
    """What cutting a plan's windows needs, without open datasets (it pickles)."""

    layers: tuple[Layer, ...]
    transform: Affine  # the chip grid's
    region: BaseGeometry  # where chips may have valid pixels, in the grid's CRS
    options: ExportOptions
    stage: Path  # the folder the chips are written into
    prefix: str  # what the chips' names start with
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # tells jobs apart in a worker

    @classmethod
    def of(cls, plan: Plan, options: ExportOptions, stage: Path, prefix: str) -> CutJob:
        """The job of cutting ``plan``'s windows into ``stage``."""
        return cls(tuple(plan.layers), plan.transform, plan.region, options, stage, prefix)

    @property
    def histogram_layers(self) -> tuple[bool, ...]:
        """For each layer, whether its statistics are histograms (summed in any order)."""
        return tuple(uses_histograms(layer.dtype) for layer in self.layers)


@dataclass
class Outcome:
    """What became of one window: a chip, or why it was skipped."""

    chip: Chip | None
    skipped: str | None = None  # "invalid" or "shift"
    # The chip's pixels, one (C, H, W) array per layer whose statistics are not
    # histograms (None for the others), and its validity.
    pixels: list[np.ndarray | None] = field(default_factory=list)
    valid: np.ndarray | None = None


@dataclass
class CutResult:
    """What became of a run of windows, in grid order, and the histograms of its chips
    (one accumulator per layer; None where the outcomes carry the pixels instead)."""

    outcomes: list[Outcome]
    histograms: list[StatisticsAccumulator | None]


class WindowCutter:
    """Cuts windows of one job, keeping its datasets and chip encoders open between runs.
    Not for sharing between threads (GDAL handles are not)."""

    def __init__(self, job: CutJob) -> None:
        self.job = job
        self._stack = ExitStack()
        self._readers: list[Any] | None = None
        self._region_test = prep(job.region)  # many times faster per chip, same answers
        self._histograms = job.histogram_layers
        self._encoders = [ChipEncoder(partial(chip_bytes, layer, job.options.creation_options))
                          for layer in job.layers]

    def cut(self, windows: Sequence[GridWindow]) -> CutResult:
        """Read, filter and write the chips of these windows."""
        if self._readers is None:
            self._readers = [_open_reader(layer, self._stack) for layer in self.job.layers]
        histograms = [StatisticsAccumulator(layer.count, layer.dtype) if exact else None
                      for layer, exact in zip(self.job.layers, self._histograms, strict=True)]
        outcomes = []
        for index, i, j, window in windows:
            outcome = self._cut_window(f"{self.job.prefix}{index:09d}.tif", i, j, window)
            if outcome.chip is not None:
                for position, accumulator in enumerate(histograms):
                    pixels = outcome.pixels[position]
                    if accumulator is not None and pixels is not None:
                        accumulator.update(pixels, outcome.valid)
                        outcome.pixels[position] = None  # counted: no need to send them
            outcomes.append(outcome)
        return CutResult(outcomes, histograms)

    def close(self) -> None:
        """Close the datasets."""
        self._stack.close()
        self._readers = None

    def _cut_window(self, name: str, i: int, j: int, window: Window) -> Outcome:
        job, options = self.job, self.job.options
        assert self._readers is not None
        bounds = window_bounds(window, job.transform)
        transform = window_transform(window, job.transform)
        reads = [layer.read(reader, window)
                 for layer, reader in zip(job.layers, self._readers, strict=True)]
        valid = np.logical_and.reduce([v for _, v in reads])
        if not self._region_test.contains(box(*bounds)):
            with warnings.catch_warnings():  # rasterio's scratch raster has no CRS; no matter
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                valid &= geometry_mask([job.region], valid.shape, transform, invert=True)
        fraction = float(valid.mean())
        if fraction < options.min_valid or not valid.any():
            return Outcome(None, "invalid")
        whole = fraction == 1.0  # every pixel valid: no mask to register or write
        shift = None
        if len(reads) == 2:
            found = estimate_shift(reads[0][0], reads[1][0], None if whole else valid,
                                   max_shift=options.tile_size / 4, scale=REGISTRATION_SCALE)
            shift = (found.dx, found.dy, found.peak)
            # A featureless chip has no measurable shift: it is kept, with its low peak.
            if (options.max_shift is not None and found.reliable
                    and found.magnitude > options.max_shift):
                return Outcome(None, "shift")
        paths = [job.stage / layer.folder / name for layer in job.layers]
        # Resuming: a chip file that exists is complete (written whole, then renamed).
        if not (options.resume and all(path.exists() for path in paths)):
            for path, encoder, (data, _) in zip(paths, self._encoders, reads, strict=True):
                write_chip(path, encoder, transform, data, valid)
        chip = Chip(i, j, name, window, bounds, fraction, shift)
        return Outcome(chip, None, [data for data, _ in reads], valid)


def _open_reader(layer: Layer, stack: ExitStack) -> Any:
    """A dataset of the caller's own for ``layer``, in an environment of its own (which
    closing the dataset does not end, whichever thread closes it)."""
    with rasterio.Env():
        if layer.vrt is None:
            return layer.open_reader(stack)
        memory = stack.enter_context(MemoryFile(layer.vrt.encode(), ext=".vrt"))
        return layer.open_reader(stack, memory.name)


def write_chip(path: Path, encoder: ChipEncoder, transform: Any, data: np.ndarray,
               valid: np.ndarray) -> None:
    """Write one chip GeoTIFF (:func:`chip_bytes`) whole under a temporary name, then
    rename it: a write error (full disk, file size limit) raises instead of being only
    logged by GDAL, and a file under a chip's name is always complete.

    Raises:
        OutputError: If the chip cannot be written.
    """
    staging.write_whole(path, encoder.encode(data, valid, transform), "chip")


def chip_bytes(layer: Layer, creation_options: Mapping[str, Any], data: np.ndarray,
               valid: np.ndarray, transform: Any) -> bytes:
    """One chip GeoTIFF as GDAL writes it: the layer's dtype, bands and nodata on the
    chip's grid, with an internal mask when some pixels are invalid (so training can
    ignore them). :class:`ChipEncoder` reproduces these bytes for most chips without GDAL.
    """
    profile = dict(layer.profile, width=data.shape[2], height=data.shape[1], transform=transform)
    profile.update(creation_options)
    # The mask inside the file; GDAL's configuration is per thread (rasterio environments).
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
            if not valid.all():
                dst.write_mask(valid.astype(np.uint8) * 255)
            if any(layer.descriptions):
                dst.descriptions = layer.descriptions
            if layer.colormap is not None:
                dst.write_colormap(1, layer.colormap)
        content: bytes = memory.read()
    return content


# --------------------------------------------------------------------------- in a worker

#: GDAL's block cache in each worker process, MB, unless GDAL_CACHEMAX is set.
WORKER_GDAL_CACHE_MB = 64

#: This worker process's cutter, kept for the next run of windows of the same job.
_worker_cutter: WindowCutter | None = None


def cut_in_worker(job: CutJob, windows: Sequence[GridWindow]) -> CutResult:
    """:meth:`WindowCutter.cut` in a pool's worker process, with the worker's cutter of
    this job (a new job closes the last one's datasets)."""
    global _worker_cutter
    if _worker_cutter is None or _worker_cutter.job.key != job.key:
        if _worker_cutter is not None:
            _worker_cutter.close()
        _worker_cutter = WindowCutter(job)
    return _worker_cutter.cut(windows)


def start_worker() -> None:
    """Set up a worker process: Ctrl-C is the exporter's to handle (it lets the started
    runs finish), and GDAL's block cache is small unless the user set one (each chip
    window is read once; GDAL's default is 5 % of RAM in every process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break to the process group
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    os.environ.setdefault("GDAL_CACHEMAX", str(WORKER_GDAL_CACHE_MB))


def worker_started() -> None:
    """Nothing: a worker that returns it has started."""
