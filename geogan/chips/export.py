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

Either side may be many files (a folder, a glob, a VRT, ``@list.txt``): it becomes one
mosaic (:mod:`geogan.raster.mosaic`). :func:`export_pairs` exports the independent pairs
of a ``pairs.csv`` into one folder (:mod:`geogan.chips.pairs`): each pair on its own grid
and in its own CRS, its chips named after the pair (``p0001-000000012.tif``), the
statistics pooled over all pairs exactly as if streamed over one raster (one accumulator
per domain, fed pair after pair in grid order), and the spatial split made within each
pair (or of whole pairs, with ``val_pairs``).

The plan (grid and layers) is :mod:`geogan.chips.plan`, the resume record
:mod:`geogan.chips.resume`, the stage folder :mod:`geogan.staging`, the metadata and index
:mod:`geogan.chips.manifest`, and the folder format :mod:`geogan.chips.layout`.
"""

from __future__ import annotations

import json
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
from functools import partial
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
from shapely.geometry import box

from geogan import staging
from geogan.chips import manifest
from geogan.chips.chip_tiff import ChipEncoder
from geogan.chips.layout import INDEX_NAME, METADATA_NAME, UNPAIRED_FOLDERS
from geogan.chips.manifest import Chip, PlannedPair, PlanResult
from geogan.chips.options import ExportOptions, ExportReport
from geogan.chips.pairs import PairSpec, held_out_pairs, read_pairs, whole_pairs_for_val
from geogan.chips.plan import Layer, Plan, choose_resampling, plan_paired, plan_single
from geogan.chips.registration import estimate_shift
from geogan.chips.resume import SETTINGS_NAME, check_resumable, export_settings
from geogan.errors import (
    ExportInterrupted,
    GeoganError,
    InputError,
    NoChipsError,
)
from geogan.grids.split import DROPPED, TRAIN, VAL, split_chips
from geogan.progress import Counter
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.raster.io import open_raster
from geogan.raster.mosaic import open_source

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
            # Opened in an environment of their own, which closing them does not end:
            # they are closed from another thread, which has none.
            with rasterio.Env():
                readers = [layer.open_reader(stack) for layer in self._layers]
            self._local.readers = readers
        return readers

    def close(self) -> None:
        """Close every thread's datasets."""
        for stack in self._stacks:
            stack.close()


def export_chips(
    input_path: str | os.PathLike[str],
    additional_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Cut a pair of rasters into georeferenced chips with metadata.

    Args:
        input_path: The input-domain raster (the chips' grid in paired mode): a raster
            file, or many as one mosaic: a folder, a glob, a VRT or ``@list.txt``.
        additional_path: The target-domain raster (any CRS and resolution), likewise.
        out_dir: The chip folder to create.
        options: How to cut; defaults to :class:`ExportOptions()`.
        progress: Called with (windows done, windows in all) as work advances.

    Returns:
        Counts of what was written and skipped.

    Raises:
        RasterNotFoundError, NotARasterError, MissingCRSError, UnsupportedRasterError:
            An input raster cannot be used.
        MosaicError: The files of one side are not on one pixel grid (other CRSs or pixel
            sizes: export them as separate pairs with :func:`export_pairs`).
        AOIError: The AOI file cannot be used.
        NoOverlapError: The footprints (and AOI) do not intersect.
        NoChipsError: No chip passes the filters.
        OutputExistsError: ``out_dir`` exists, is not empty, and ``overwrite`` is False.
        OutputError: ``out_dir`` cannot be written (the stage folder is kept: rerun with
            ``resume=True`` once the cause is fixed; it is removed after an input error,
            which a rerun would meet again, or an unexpected exception).
        InputError: ``resume`` is True but there is no interrupted export to resume, or it
            was started with other inputs or settings; or a ``--pairs`` option is set.
        ExportInterrupted: On Ctrl-C (KeyboardInterrupt); the stage folder is kept.
    """
    options = options or ExportOptions()
    if options.val_pairs is not None or options.skip_bad_pairs:
        raise InputError("--val-pairs and --skip-bad-pairs apply to --pairs exports only.")
    pair = PairSpec(0, None, os.fspath(input_path), os.fspath(additional_path))
    return _export([pair], None, out_dir, options, progress)


def export_pairs(
    pairs_file: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Cut the independent pairs a ``pairs.csv`` lists into one chip folder.

    Each pair is chipped on its own grid and keeps its own CRS; chip names start with the
    pair's number; the index says which pair each chip came from; the statistics are
    pooled over all pairs; the validation split is made within each pair (a pair too
    small for two blocks goes whole to one side), or of whole pairs with
    ``options.val_pairs``. See :mod:`geogan.chips.pairs` for the file.

    Args:
        pairs_file: The CSV: one ``input,additional`` pair a row, relative to the file.
        out_dir: The chip folder to create.
        options: How to cut; ``skip_bad_pairs`` skips (and counts) pairs that fail.
        progress: Called with (windows done, windows in all) as work advances.

    Returns:
        Counts of what was written and skipped, pairs included.

    Raises:
        InputError: The file cannot be read or a row is malformed; a pair fails (its
            error, naming the row), unless ``skip_bad_pairs``; every pair fails; and as
            for :func:`export_chips`.
        OutputExistsError, OutputError, ExportInterrupted: As for :func:`export_chips`.
    """
    options = options or ExportOptions()
    options.check()
    staging.check_folder_output(Path(out_dir), options.overwrite)
    return _export(read_pairs(pairs_file), Path(pairs_file), out_dir, options, progress)


def _export(pairs: list[PairSpec], pairs_file: Path | None, out_dir: str | os.PathLike[str],
            options: ExportOptions, progress: ProgressCallback | None) -> ExportReport:
    options.check()
    out = Path(out_dir)
    staging.check_folder_output(out, options.overwrite)
    stage = staging.stage_path(out)
    started = time.perf_counter()
    with ExitStack() as stack:
        planned, skipped = _plan_pairs(pairs, pairs_file, options, stack)
        settings = export_settings(planned, pairs_file, skipped, options)
        if options.resume:
            check_resumable(stage, settings)
            staging.remove_partial_files(stage)
        else:
            staging.make_stage(stage, SETTINGS_NAME, json.dumps(settings, indent=2))
        try:
            advance = Counter(sum(len(p.grid) for pair in planned for p in pair.plans),
                              progress)
            accumulators: dict[str, StatisticsAccumulator] = {}
            for pair in planned:
                pair.results = [_export_plan(plan, stage, options, advance, accumulators,
                                             pair.spec.chip_prefix) for plan in pair.plans]
            results = [r for pair in planned for r in pair.results]
            if sum(len(r.chips) for r in results) == 0:
                raise NoChipsError(manifest.no_chips_message(results, options))
            _split(planned, stage, options, multi=pairs_file is not None)
            metadata = manifest.metadata(planned, accumulators, options, pairs_file, skipped)
            # The manifest last: it never lists a chip that is not there.
            staging.write_text(stage / INDEX_NAME, json.dumps(manifest.index(planned), indent=1))
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
        resampling=planned[0].resampling,
        seconds=time.perf_counter() - started,
        pairs=len(planned),
        skipped_pairs=tuple(f"row {s['row']}: {s['error']}" for s in skipped),
        whole_pairs_train=sum(p.split == "whole-train" for p in planned),
        whole_pairs_val=sum(p.split == "whole-val" for p in planned),
        held_out_pairs=sum(p.split == "held-out" for p in planned),
    )


# --------------------------------------------------------------------------- planning


def _plan_pairs(pairs: list[PairSpec], pairs_file: Path | None, options: ExportOptions,
                stack: ExitStack) -> tuple[list[PlannedPair], list[dict[str, Any]]]:
    """Open and plan every pair; its datasets are closed again (each worker opens its
    own), its mosaics stay in ``stack``. A pair that fails stops the export, naming its
    row, or with ``skip_bad_pairs`` is recorded and left out."""
    planned: list[PlannedPair] = []
    skipped: list[dict[str, Any]] = []
    for pair in pairs:
        try:
            planned.append(_plan_pair(pair, options, stack, planned[0] if planned else None))
        except InputError as error:
            if pair.row is None:
                raise
            if not options.skip_bad_pairs:
                raise type(error)(f"{pairs_file} row {pair.row} ({pair.input}, "
                                  f"{pair.additional}): {error} (--skip-bad-pairs leaves "
                                  "out such pairs)") from None
            skipped.append({"pair": pair.number, "row": pair.row, "input": pair.input,
                            "additional": pair.additional, "error": str(error)})
    if not planned:
        raise NoChipsError(f"no pair of {pairs_file} can be exported: {skipped[0]['error']} "
                           f"(row {skipped[0]['row']}, and {len(skipped) - 1} more).")
    if options.val_pairs is not None:
        held_out = held_out_pairs(len(planned), options.val_pairs, options.seed)
        for position, pair_ in enumerate(planned):
            pair_.split = "held-out" if position in held_out else "train"
    return planned, skipped


def _plan_pair(pair: PairSpec, options: ExportOptions, stack: ExitStack,
               first: PlannedPair | None) -> PlannedPair:
    a_source = stack.enter_context(open_source(pair.input, pair.base, "INPUT"))
    b_source = stack.enter_context(open_source(pair.additional, pair.base, "ADDITIONAL"))
    with open_raster(a_source.path) as a, open_raster(b_source.path) as b:
        resampling, reason = choose_resampling(b, options.resampling)
        if options.unpaired:
            plans = [plan_single(a, a_source, "a", UNPAIRED_FOLDERS[0], options),
                     plan_single(b, b_source, "b", UNPAIRED_FOLDERS[1], options)]
        else:
            plans = [plan_paired(a, b, a_source, b_source, options, resampling)]
    for plan in plans:
        plan.chip_prefix = pair.chip_prefix
    if first is not None:  # every pair's chips go into the same domain folders
        kinds = {layer.role: layer for plan in first.plans for layer in plan.layers}
        for layer in (layer for plan in plans for layer in plan.layers):
            known = kinds[layer.role]
            if (layer.count, layer.dtype) != (known.count, known.dtype):
                side = "INPUT" if layer.role == "a" else "ADDITIONAL"
                raise InputError(
                    f"its {side} has {layer.count} {layer.dtype} band(s) but the first "
                    f"pair's has {known.count} {known.dtype}; every pair must have the same "
                    "bands and data type on each side")
    return PlannedPair(pair, plans, resampling.name, reason)


# --------------------------------------------------------------------------- splitting


def _split(pairs: list[PlannedPair], stage: Path, options: ExportOptions, multi: bool) -> None:
    """Label every chip train or val (deleting those dropped at block borders): whole
    pairs with ``val_pairs``, else spatial blocks within each pair; with several pairs,
    one too small for two blocks goes whole to one side."""
    small: list[PlannedPair] = []
    for pair in pairs:
        if pair.split in ("held-out", "train"):
            for result in pair.results:
                for chip in result.chips:
                    chip.split = VAL if pair.split == "held-out" else TRAIN
            continue
        for plan, result in zip(pair.plans, pair.results, strict=True):
            positions = [(c.row, c.col) for c in result.chips]
            split = split_chips(plan.grid, positions, options.val_fraction, options.seed)
            result.block_chips = split.block_chips
            blocks = {(i // split.block_chips, j // split.block_chips) for i, j in positions}
            if multi and len(blocks) < 2 and pair not in small:
                small.append(pair)
            for chip in result.chips:
                chip.split = split.labels[(chip.row, chip.col)]
        if pair in small:
            pair.split = "whole-train"
            continue
        for plan, result in zip(pair.plans, pair.results, strict=True):
            kept = []
            for chip in result.chips:
                if chip.split == DROPPED:
                    for layer in plan.layers:
                        (stage / layer.folder / chip.name).unlink()
                else:
                    kept.append(chip)
            result.dropped_split = len(result.chips) - len(kept)
            result.chips = kept
    for position in whole_pairs_for_val([p.chips for p in small], options.val_fraction,
                                        options.seed):
        small[position].split = "whole-val"
    for pair in small:
        for result in pair.results:
            for chip in result.chips:
                chip.split = VAL if pair.split == "whole-val" else TRAIN


# --------------------------------------------------------------------------- export loop


def _export_plan(plan: Plan, stage: Path, options: ExportOptions, advance: Callable[[], None],
                 accumulators: dict[str, StatisticsAccumulator], prefix: str) -> PlanResult:
    """Export every window of a plan's grid: workers read, filter and write chips while
    this thread gathers statistics (into ``accumulators``, one per domain, shared by
    every pair), in grid order (so results do not depend on timing)."""
    for layer in plan.layers:
        (stage / layer.folder).mkdir(exist_ok=True)
    for layer in plan.layers:
        if layer.role not in accumulators:
            accumulators[layer.role] = StatisticsAccumulator(layer.count, layer.dtype,
                                                             seed=options.seed)
    layer_accumulators = [accumulators[layer.role] for layer in plan.layers]
    chips: list[Chip] = []
    skipped_invalid = skipped_shift = 0

    def gather(outcome: _Outcome) -> None:
        nonlocal skipped_invalid, skipped_shift
        advance()
        if outcome.chip is None:
            skipped_invalid += outcome.skipped == "invalid"
            skipped_shift += outcome.skipped == "shift"
            return
        chips.append(outcome.chip)
        for data, accumulator in zip(outcome.pixels, layer_accumulators, strict=True):
            accumulator.update(data, outcome.valid)

    readers = _ThreadReaders(plan.layers)
    encoders = [ChipEncoder(partial(_chip_bytes, layer, options.creation_options))
                for layer in plan.layers]
    workers = options.workers or min(8, os.cpu_count() or 1)
    pending: deque[Future[_Outcome]] = deque()
    try:
        with ThreadPoolExecutor(workers) as pool:
            try:
                for index, (i, j, window) in enumerate(plan.grid):
                    pending.append(pool.submit(_export_window, plan, stage, options, readers,
                                               encoders, f"{prefix}{index:09d}.tif", i, j,
                                               window))
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
    return PlanResult(chips, skipped_invalid, skipped_shift)


@dataclass
class _Outcome:
    """What a worker did with one window: a chip and its pixels, or why it was skipped."""

    chip: Chip | None
    skipped: str | None = None  # "invalid" or "shift"
    pixels: list[np.ndarray] = field(default_factory=list)  # one (C, H, W) array per layer
    valid: np.ndarray | None = None


def _export_window(plan: Plan, stage: Path, options: ExportOptions, readers: _ThreadReaders,
                   encoders: list[ChipEncoder], name: str, i: int, j: int,
                   window: Window) -> _Outcome:
    """Read, filter and write one chip window (in a worker thread)."""
    bounds = window_bounds(window, plan.transform)
    transform = window_transform(window, plan.transform)
    reads = [layer.read(reader, window)
             for layer, reader in zip(plan.layers, readers.get(), strict=True)]
    valid = np.logical_and.reduce([v for _, v in reads])
    if not plan.region_test.contains(box(*bounds)):
        with warnings.catch_warnings():  # rasterio's scratch raster has no CRS; no matter
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            valid &= geometry_mask([plan.region], valid.shape, transform, invert=True)
    fraction = float(valid.mean())
    if fraction < options.min_valid or not valid.any():
        return _Outcome(None, "invalid")
    whole = fraction == 1.0  # every pixel valid: no mask to register or write
    shift = None
    if len(reads) == 2:
        found = estimate_shift(reads[0][0], reads[1][0], None if whole else valid,
                               max_shift=options.tile_size / 4, scale=REGISTRATION_SCALE)
        shift = (found.dx, found.dy, found.peak)
        # A featureless chip has no measurable shift: it is kept, with its low peak.
        if options.max_shift is not None and found.reliable and found.magnitude > options.max_shift:
            return _Outcome(None, "shift")
    paths = [stage / layer.folder / name for layer in plan.layers]
    # Resuming: a chip file that exists is complete (written whole, then renamed).
    if not (options.resume and all(path.exists() for path in paths)):
        for path, encoder, (data, _) in zip(paths, encoders, reads, strict=True):
            _write_chip(path, encoder, transform, data, valid)
    chip = Chip(i, j, name, window, bounds, fraction, shift)
    return _Outcome(chip, None, [data for data, _ in reads], valid)


def _write_chip(path: Path, encoder: ChipEncoder, transform: Any, data: np.ndarray,
                valid: np.ndarray) -> None:
    """Write one chip GeoTIFF (:func:`_chip_bytes`) whole under a temporary name, then
    rename it: a write error (full disk, file size limit) raises instead of being only
    logged by GDAL, and a file under a chip's name is always complete.

    Raises:
        OutputError: If the chip cannot be written.
    """
    staging.write_whole(path, encoder.encode(data, valid, transform), "chip")


def _chip_bytes(layer: Layer, creation_options: Mapping[str, Any], data: np.ndarray,
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
