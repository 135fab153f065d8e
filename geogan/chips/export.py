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

Chips are cut (read, tested, registered, written) by worker processes, a run of windows
per task (:mod:`geogan.chips.cutting`), while this process gathers the runs in grid order
with the statistics: the files do not depend on the number of workers or on timing.

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
import multiprocessing
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from geogan import staging
from geogan.chips import manifest
from geogan.chips.cutting import (
    CutJob,
    CutResult,
    GridWindow,
    WindowCutter,
    cut_in_worker,
    start_worker,
    worker_started,
)
from geogan.chips.layout import INDEX_NAME, METADATA_NAME, UNPAIRED_FOLDERS
from geogan.chips.manifest import Chip, PlannedPair, PlanResult
from geogan.chips.options import ExportOptions, ExportReport
from geogan.chips.pairs import PairSpec, held_out_pairs, read_pairs, whole_pairs_for_val
from geogan.chips.plan import Plan, choose_resampling, plan_paired, plan_single
from geogan.chips.resume import SETTINGS_NAME, check_resumable, export_settings
from geogan.errors import (
    ExportInterrupted,
    GeoganError,
    InputError,
    NoChipsError,
    WorkerError,
)
from geogan.grids.split import DROPPED, TRAIN, VAL, split_chips
from geogan.progress import Counter
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.raster.io import open_raster
from geogan.raster.mosaic import open_source

#: Progress callback: (windows done, windows in all).
ProgressCallback = Callable[[int, int], None]

#: Most worker processes by default (one per CPU core up to this).
MAX_WORKERS = 8

#: Exports of fewer windows are cut in this process by default: starting worker
#: processes would cost more than they save.
POOL_MIN_WINDOWS = 128

#: Windows a worker cuts per task.
RUN_WINDOWS = 16


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
            windows = sum(len(p.grid) for pair in planned for p in pair.plans)
            advance = Counter(windows, progress)
            accumulators: dict[str, StatisticsAccumulator] = {}
            with _cutting_pool(options, windows) as workers:
                for pair in planned:
                    pair.results = [_export_plan(plan, stage, options, advance, accumulators,
                                                 pair.spec.chip_prefix, workers)
                                    for plan in pair.plans]
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


@dataclass
class _Workers:
    """The worker processes of an export, and whether they have started."""

    pool: Executor
    count: int
    wait: bool  # False: cut windows in this process until one worker runs
    started: list[Future[None]] = field(default_factory=list)  # one call per worker
    no_processes: bool = False  # none can start here: every window is cut in this one
    error: BaseException | None = None  # any other failure to start, raised by ready()

    def start(self) -> None:
        """Start the worker processes. In a thread of its own when not ``wait``: the
        first start of the fork server (its imports) takes about half a second, in which
        this process cuts windows instead of waiting."""
        try:
            self.started = [self.pool.submit(worker_started) for _ in range(self.count)]
        except OSError:  # e.g. no folder for the fork server's socket
            self.no_processes = True
        except BaseException as error:  # for the exporting thread to raise
            self.error = error

    def ready(self) -> bool:
        """Whether runs should go to the workers now."""
        if self.error is not None:
            raise self.error
        if self.no_processes:
            return False
        return self.wait or any(call.done() for call in self.started)


@contextmanager
def _cutting_pool(options: ExportOptions, windows: int) -> Iterator[_Workers | None]:
    """Worker processes that cut windows, or None to cut them in this process: with
    ``workers`` 1, by default when there are too few windows to repay starting them, or
    when no process can be started (by default this process also cuts windows until the
    first worker runs, and all of them if none can start). On an error or Ctrl-C the runs
    not yet started are cancelled, and those started finish (each is a few chips) before
    the error goes on."""
    count = _worker_count(options)
    if count == 1 or (options.workers == 0 and windows < POOL_MIN_WINDOWS):
        yield None
        return
    pool = ProcessPoolExecutor(count, mp_context=_worker_context(), initializer=start_worker)
    workers = _Workers(pool, count, wait=options.workers != 0)
    starting = None
    if workers.wait:
        workers.start()  # here: every run waits for the workers anyway
        if workers.error is not None or workers.no_processes:
            pool.shutdown(wait=False, cancel_futures=True)
            if workers.error is not None:
                raise workers.error
            yield None  # the same chips, cut in this process
            return
    else:
        starting = threading.Thread(target=workers.start, name="geogan-export-start",
                                    daemon=True)
        starting.start()
    try:
        yield workers
        if starting is not None:
            starting.join()
        if workers.error is not None:  # met after the last run asked
            raise workers.error
    except BaseException as error:
        if starting is not None:
            starting.join()
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(error, BrokenProcessPool):
            raise WorkerError("a worker process of the export stopped unexpectedly (killed "
                              "or out of memory; or a script calls the export outside "
                              "`if __name__ == \"__main__\":`)") from None
        raise
    pool.shutdown(wait=True)


def _worker_context() -> BaseContext:
    """How worker processes start: from a fork server (not a copy of this process's
    threads and GDAL state, as ``fork`` would be) that has imported what they run, so
    that the workers of a later export start in milliseconds; else spawned."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([cut_in_worker.__module__])  # once the server runs: no-op
    return context


def _worker_count(options: ExportOptions) -> int:
    if options.workers:
        return options.workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(MAX_WORKERS, cores or 1)


def _runs(grid: Any) -> Iterator[list[GridWindow]]:
    """The grid's windows with their positions, in grid order, a run at a time."""
    run: list[GridWindow] = []
    for index, (i, j, window) in enumerate(grid):
        run.append((index, i, j, window))
        if len(run) == RUN_WINDOWS:
            yield run
            run = []
    if run:
        yield run


def _export_plan(plan: Plan, stage: Path, options: ExportOptions, advance: Callable[[], None],
                 accumulators: dict[str, StatisticsAccumulator], prefix: str,
                 workers: _Workers | None) -> PlanResult:
    """Export every window of a plan's grid, in runs of windows cut by the ``workers``
    (or here), while this thread gathers what they did in grid order, and the statistics
    (into ``accumulators``, one per domain, shared by every pair): results do not depend
    on timing or on the number of workers."""
    for layer in plan.layers:
        (stage / layer.folder).mkdir(exist_ok=True)
    for layer in plan.layers:
        if layer.role not in accumulators:
            accumulators[layer.role] = StatisticsAccumulator(layer.count, layer.dtype,
                                                             seed=options.seed)
    layer_accumulators = [accumulators[layer.role] for layer in plan.layers]
    chips: list[Chip] = []
    skipped_invalid = skipped_shift = 0

    def gather(result: CutResult) -> None:
        nonlocal skipped_invalid, skipped_shift
        for accumulator, histogram in zip(layer_accumulators, result.histograms, strict=True):
            if histogram is not None:
                accumulator.merge(histogram)
        for outcome in result.outcomes:
            advance()
            if outcome.chip is None:
                skipped_invalid += outcome.skipped == "invalid"
                skipped_shift += outcome.skipped == "shift"
                continue
            chips.append(outcome.chip)
            for data, accumulator in zip(outcome.pixels, layer_accumulators, strict=True):
                if data is not None:
                    accumulator.update(data, outcome.valid)

    job = CutJob.of(plan, options, stage, prefix)
    here: WindowCutter | None = None
    pending: deque[Future[CutResult]] = deque()
    try:
        for run in _runs(plan.grid):
            if workers is None or (not pending and not workers.ready()):
                here = here or WindowCutter(job)
                gather(here.cut(run))
                continue
            pending.append(workers.pool.submit(cut_in_worker, job, run))
            if len(pending) >= 2 * workers.count:  # bounded memory: two runs per worker
                gather(pending.popleft().result())
        while pending:
            gather(pending.popleft().result())
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    finally:
        if here is not None:
            here.close()
    return PlanResult(chips, skipped_invalid, skipped_shift)
