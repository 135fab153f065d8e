"""The streaming pipeline behind ``translate``: read, generate, blend, write.

Three stages run at once, joined by small bounded queues, so that the generator is
the bottleneck:

* a **reader** thread reads one row of windows at a time (a strip of the tile's height
  across the whole width, in the raster's own data type) and cuts it into batches of
  tiles, each normalised with the model's statistics as it is cut; windows with no
  valid pixel are never run. Each window row is announced ahead of its windows (its
  validity, and how many of its windows run);
* the **generator** runs on the calling thread, batch after batch; on a CPU it hands the
  two halves of each batch to two threads with half of torch's threads each, and the
  next batch starts before the last one is done;
* a **writer** thread adds each tile's output, times its blend weight, into a buffer of
  sums and the weights into a second one (:mod:`geogan.inference.blend_buffer`); as soon
  as no later window can touch a pixel (column block by column block as a window row's
  windows arrive), it is divided by its weight and de-normalised, and once a whole
  window row is in, its rows are masked (a shaded map's unsure pixels blurred among their
  neighbours once the rows below have arrived) and written in whole blocks of the output.
  Only the rows the next window row shares are kept across the whole width.

The windows may cover more than the output: a scene translated within a mosaic reads a
margin of its neighbours (the *region* of a
:class:`~geogan.inference.scene_read.SceneRead`) and writes its own part (the *crop*);
a scene translated at the model's pixel size reads through a ``WarpedVRT``.
Rows are written in whole blocks of the output GeoTIFF, so each block is compressed
once. Peak memory is a few strips of the scene's width: it depends on the width and the
tile size, never on the height. Any error (or Ctrl-C) in any stage stops the others and
is raised on the calling thread.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geogan.errors import InputError, OutputError
from geogan.grids.windows import WindowGrid
from geogan.inference.blend_buffer import BlendBuffer, Block
from geogan.inference.deblur import WindowFilter, window_validity
from geogan.inference.heap import bound_heap, share_heap
from geogan.inference.scene_read import SceneRead
from geogan.inference.strips import Strips
from geogan.inference.translator import Translator
from geogan.progress import ProgressCallback

_QUEUE_DEPTH = 2  # batches waiting between stages: enough to overlap, little memory
_POLL_SECONDS = 0.1  # how often a blocked stage checks whether another one failed
_CHUNK_VALUES = 2**20  # values de-normalised at a time: 8 MB of float64 temporaries

#: Generator threads on a CPU. Torch's threads wait for each other at every operator, so
#: a slice of a core that the reader or the writer takes stalls a whole forward; with two
#: streams of half batches it stalls one (tiny U-Net, batch 8: 1.0-1.7 x the windows per
#: second of one stream with both cores; paper U-Net 0.95-1.24 x). The activations are
#: those of one batch, as before, and the outputs the same: a window's values depend
#: neither on the batch it is in nor on the number of threads (tested).
_CPU_STREAMS = 2


@dataclass(frozen=True)
class OutputBands:
    """How the writer turns blended rows into output pixels.

    Attributes:
        nodata: Written where the input was invalid, or None.
        mask: Write a dataset mask (for integer outputs that have no nodata value).
        uncertainty: The output has one more band: the per-pixel standard deviation of
            the samples, in output units.
    """

    nodata: float | None
    mask: bool
    uncertainty: bool


class _Stopped(Exception):
    """Another stage failed; this one stops quietly."""


@dataclass
class _Batch:
    tiles: torch.Tensor  # (N, in_bands, tile, tile), normalised
    windows: list[tuple[int, int]]  # (window row, window column) of each tile
    valid: torch.Tensor | None = None  # (N, tile, tile) with a window filter; None: all valid


@dataclass
class _Row:
    """A window row, announced ahead of its windows."""

    row: int  # window row
    queued: int  # windows of the row sent to the generator (the others had no valid pixel)
    valid: NDArray[np.bool_]  # (strip height, width) input validity of the strip


@dataclass
class _Outputs:
    values: NDArray[np.float32]  # (N, channels, tile, tile): normalised means (+ spread)
    windows: list[tuple[int, int]]


@dataclass
class _Band:
    """A window row's final rows within the context, put together as its blocks are
    finished: planes (..., height, context width), made at the first block."""

    first: int  # region row of the first
    height: int
    planes: list[NDArray[Any]] = field(default_factory=list)

    def put(self, rows: slice, cols: slice, planes: Sequence[NDArray[Any]],
            width: int) -> None:
        if not self.planes:
            self.planes = [np.empty((*p.shape[:-2], self.height, width), p.dtype)
                           for p in planes]
        for whole, plane in zip(self.planes, planes, strict=True):
            whole[..., rows, cols] = plane


_END = object()

#: A scene whose strip would take this much in float32 (8192 RGB pixels wide at tile 256)
#: bounds the heap: a measure of the width, and of what the windows' outputs take.
_WIDE_STRIP_BYTES = 24 * 2**20


class Pipeline:
    """One scene through the three stages (see the module docstring).

    Args:
        source: What to read (opened by :meth:`run` for the reader alone) and what to write.
        bands: 1-based band indexes the model reads.
        output: The output dataset, open for writing (set before :meth:`run`); only the
            writer thread uses it.
        grid: The windows over ``source.region``.
        translator: The generator and value mappings.
        bands_out: What to write besides the translated values.
        batch_size: Windows per generator call.
        samples: Generator passes per batch (dropout on) when at least 2.
        progress: Called with (windows done, windows in all).
        window_filter: Sharpens (or softens) every normalised window before the
            generator, a batch at a time on its device (set before :meth:`run`; None:
            the windows as read).
    """

    def __init__(self, source: SceneRead, bands: list[int], output: Any, grid: WindowGrid,
                 translator: Translator, bands_out: OutputBands, *, batch_size: int,
                 samples: int, progress: ProgressCallback | None) -> None:
        self.source = source
        self.bands = bands
        self.output = output
        self.grid = grid
        self.translator = translator
        self.bands_out = bands_out
        self.batch_size = batch_size
        self.samples = samples
        self.progress = progress
        self.window_filter: WindowFilter | None = None
        self.windows_run = 0
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._to_generator: queue.Queue[Any] = queue.Queue(_QUEUE_DEPTH)
        self._to_writer: queue.Queue[Any] = queue.Queue(_QUEUE_DEPTH)
        # The rows and columns finished: the crop, and as far around it as the blur of a
        # shaded map's unsure pixels reaches, so that it sees the neighbours a mosaic's
        # tiles share and each tile's edge comes out as in one whole translation.
        halo, crop = translator.blur_radius, source.crop
        row, col, height, width = (int(v) for v in (crop.row_off, crop.col_off,
                                                     crop.height, crop.width))
        top, left = max(row - halo, 0), max(col - halo, 0)
        self._context = Window(left, top, min(col + width + halo, grid.width) - left,
                               min(row + height + halo, grid.height) - top)
        self._blur = translator.blur(int(self._context.height))

    def run(self) -> None:
        """Translate the whole scene into ``output``.

        Raises:
            InputError: If the scene cannot be read.
            OutputError: If the output cannot be written.
        """
        strip_bytes = len(self.bands) * self.grid.tile_size * self.grid.width * 4
        if strip_bytes >= _WIDE_STRIP_BYTES:  # large blocks mapped: worth it when wide
            bound_heap()
        else:
            share_heap()
        # Opened here, not on the reader's thread: GDAL sets a thread up on its first
        # dataset (7-12 ms, PROJ's context among it), which would delay the first batch.
        # Only the reader uses it, until it is closed after the stages have ended.
        try:
            with self.source.open() as dataset:
                self._run_stages(dataset)
        except RasterioError as error:  # opening or closing it: the stages catch their own
            raise read_error(self.source.path, error) from None
        if self._errors:
            raise self._errors[0]

    # -- plumbing ---------------------------------------------------------------------

    def _run_stages(self, dataset: Any) -> None:
        """The reader (on ``dataset``) and the writer on threads of their own, the generator
        on this one, until all three have ended."""
        threads = [threading.Thread(target=self._guarded, args=(stage,), daemon=True,
                                    name=f"geogan-{name}")
                   for name, stage in (("read", lambda: self._read(dataset)),
                                       ("write", self._write))]
        for thread in threads:
            thread.start()
        try:
            self._guarded(self._generate)
        except BaseException:  # Ctrl-C on this thread: stop the others before leaving
            self._stop.set()
            raise
        finally:
            for thread in threads:
                thread.join()

    def _guarded(self, stage: Callable[[], None]) -> None:
        try:
            stage()
        except _Stopped:
            pass
        except Exception as error:
            self._errors.append(error)
            self._stop.set()

    def _put(self, target: queue.Queue[Any], item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                target.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _items(self, source: queue.Queue[Any]) -> Iterator[Any]:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                item = source.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    # -- stages -----------------------------------------------------------------------

    def _read(self, dataset: Any) -> None:
        """The reader stage, on ``dataset`` (the source, opened by :meth:`run`)."""
        grid, tile = self.grid, self.grid.tile_size
        tiles: list[NDArray[np.float32]] = []
        windows: list[tuple[int, int]] = []
        masks: list[NDArray[np.bool_] | None] = []  # with a window filter, which pixels it keeps
        try:
            strips = Strips(dataset, self.bands, self.translator, self.source.region, tile)
            for i, row_off in enumerate(grid.row_starts):
                height = min(tile, grid.height - row_off)
                if not self.touches_context(row_off, 0):  # the margin only: not needed
                    nothing = np.zeros((height, grid.width), bool)
                    self._put(self._to_generator, _Row(i, 0, nothing))
                    continue
                strip, valid = strips.read(row_off, height)
                run = [j for j, col_off in enumerate(grid.col_starts)
                       if self.touches_context(col_off, 1)
                       and valid[:, col_off:col_off + tile].any()]
                # Announced first: the writer finishes the row's columns as they come.
                self._put(self._to_generator, _Row(i, len(run), valid))
                for j in run:
                    tiles.append(strips.tile(strip, valid, grid.col_starts[j]))
                    windows.append((i, j))
                    if self.window_filter is not None:
                        masks.append(strips.tile_validity(valid, grid.col_starts[j]))
                    if len(tiles) == self.batch_size:
                        self._put(self._to_generator, _batch(tiles, windows, masks))
                        tiles, windows, masks = [], [], []
        except RasterioError as error:
            raise read_error(self.source.path, error) from None
        if tiles:
            self._put(self._to_generator, _batch(tiles, windows, masks))
        self._put(self._to_generator, _END)

    def touches_context(self, start: int, axis: int) -> bool:
        """Whether a window starting at ``start`` along ``axis`` (0: rows, 1: columns)
        reaches the part of the region that is written, or that the blur of unsure pixels
        reads; the others lie in the margin around a scene of a mosaic, and nothing they
        would draw is kept."""
        context = self._context
        first = int(context.row_off if axis == 0 else context.col_off)
        end = first + int(context.height if axis == 0 else context.width)
        return start < end and start + self.grid.tile_size > first

    def _generate(self) -> None:
        translator = self.translator
        if (translator.device.type == "cpu" and self.samples < 2
                and torch.get_num_threads() >= _CPU_STREAMS):
            self._generate_in_streams()
            return
        span = torch.tensor(_half_spans(translator), device=translator.device)  # (C,)
        for item in self._items(self._to_generator):
            if isinstance(item, _Batch):
                if self.samples >= 2:
                    tiles = self._filtered(item.tiles, item.valid)
                    mean, std = translator.sample_tiles(tiles, self.samples)
                    # One spread band in output units: the bands' mean std.
                    image = std[:, :translator.image_bands]  # classes have no spread
                    spread = (image * span[:, None, None]).mean(dim=1, keepdim=True)
                    out = torch.cat([mean[:, translator.drawn], spread], dim=1)  # (N, C + 1, ...)
                else:
                    out = self._drawn_tiles(item.tiles, item.valid)
                self._send(out, item.windows)
            else:
                self._put(self._to_writer, item)
        self._put(self._to_writer, _END)

    def _generate_in_streams(self) -> None:
        """:meth:`_generate` on a CPU: the halves of each batch run on two threads (see
        :data:`_CPU_STREAMS`), up to two batches at a time; what they give goes to the
        writer in the reader's order, each half as it is (no copy into one batch)."""
        threads = max(1, torch.get_num_threads() // _CPU_STREAMS)
        # One entry per reader item: a row marker (no halves), or a batch's halves.
        in_flight: deque[tuple[Any, list[tuple[Future[torch.Tensor], list[Any]]]]] = deque()
        # torch's thread count is each thread's own: setting it here leaves the caller's.
        with ThreadPoolExecutor(_CPU_STREAMS, thread_name_prefix="geogan-generate",
                                initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            try:
                for item in self._items(self._to_generator):
                    halves = []
                    if isinstance(item, _Batch):
                        cut = -(-len(item.windows) // 2)
                        halves = [(pool.submit(self._drawn_tiles, item.tiles[part],
                                               None if item.valid is None
                                               else item.valid[part]),
                                   item.windows[part])
                                  for part in (slice(None, cut), slice(cut, None))
                                  if item.windows[part]]
                    in_flight.append((item, halves))
                    while len(in_flight) > _CPU_STREAMS or (in_flight and not in_flight[0][1]):
                        self._pass_on(*in_flight.popleft())
                while in_flight:
                    self._pass_on(*in_flight.popleft())
            except BaseException:
                for _, halves in in_flight:
                    for future, _ in halves:
                        future.cancel()
                raise
        self._put(self._to_writer, _END)

    def _pass_on(self, item: Any, halves: list[tuple[Future[torch.Tensor], list[Any]]]) -> None:
        """Send the writer a row marker, or a batch's halves once each is done."""
        if not halves:
            self._put(self._to_writer, item)
        for future, windows in halves:
            self._send(future.result(), windows)

    def _drawn_tiles(self, tiles: torch.Tensor, valid: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """The generator's outputs (N, C, tile, tile) for ``tiles`` (filtered first, with
        a window filter: ``valid`` says which of their pixels it keeps), only the channels the
        output is drawn from (:attr:`Translator.drawn`): a copy of those alone when there
        are others, so that what waits for the writer, and the writer's sums, hold
        nothing the output does not use (a map drawn from 9 class probabilities, not 12
        channels)."""
        out = self.translator.translate_tiles(self._filtered(tiles, valid))
        if self.translator.drawn_bands == out.shape[1]:
            return out
        return out[:, self.translator.drawn].contiguous()

    def _filtered(self, tiles: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """``tiles`` on the generator's device, through the window filter if there is one."""
        if self.window_filter is None:
            return tiles
        device = self.translator.device
        tiles = tiles.to(device, torch.float32, non_blocking=True)
        return self.window_filter(tiles, None if valid is None else valid.to(device))

    def _send(self, out: torch.Tensor, windows: list[tuple[int, int]]) -> None:
        """Send the writer the blended channels (N, C, tile, tile) for ``windows``."""
        self.windows_run += len(windows)
        self._put(self._to_writer, _Outputs(out.cpu().numpy(), windows))

    def _write(self) -> None:
        grid, tile = self.grid, self.grid.tile_size
        blend = BlendBuffer(grid, self.translator.drawn_bands + int(self.bands_out.uncertainty))
        block = self.output.block_shapes[0][0]
        rows: dict[int, _Row] = {}  # window rows announced
        received = [0] * grid.rows
        band = self._band(0)  # the current window row's final rows, as they are finished
        # Rows no window touches any more leave ``blend`` column block by column block,
        # as output pixels (a quarter of the size or less; a shaded map's colours until
        # the blur has the rows around them) until their block row is written.
        pending: list[tuple[NDArray[Any], NDArray[np.bool_]]] = []  # finished crop rows
        written = 0  # region rows written

        def take(end: int) -> None:
            """Finish the current window row's columns left of raster column ``end``."""
            while (finished := blend.finish(end)) is not None:
                self._finish_block(finished, rows[blend.row].valid, band)

        def settle() -> None:
            """Finish the window rows whose windows are all in; write whole blocks of the
            rows no window touches any more."""
            nonlocal band, written
            while blend.row < grid.rows and blend.row in rows \
                    and received[blend.row] == rows[blend.row].queued:
                take(grid.width)
                pending.extend(self._band_rows(band))
                del rows[blend.row]
                blend.next_row()
                if blend.row < grid.rows:
                    band = self._band(blend.row)
            final = grid.final_rows(blend.row - 1) if blend.row else 0
            end = self._writable(final - (self._blur.held if self._blur else 0), block)
            if end > written:
                self._write_rows(pending, written, end)
                written = end

        done = 0
        for item in self._items(self._to_writer):
            if isinstance(item, _Outputs):
                for values, (i, j) in zip(item.values, item.windows, strict=True):
                    if i > blend.row:  # a new window row: the ones before are complete
                        settle()
                    col = grid.col_starts[j]
                    take(col)
                    h, w = min(tile, grid.height - grid.row_starts[i]), min(tile, grid.width - col)
                    blend.add(j, values[:, :h, :w], grid.weight(i, j)[:h, :w])
                    received[i] += 1
                done += len(item.windows)
            else:
                rows[item.row] = item
                done += grid.cols - item.queued  # skipped windows are done too
            settle()
            if self.progress is not None:
                self.progress(done, len(grid))

    def _band(self, row: int) -> _Band:
        """Where window row ``row``'s final rows in the context are put together."""
        context = self._context
        first = max(self.grid.row_starts[row], context.row_off)
        last = min(self.grid.final_rows(row), context.row_off + context.height)
        return _Band(first, max(last - first, 0))

    def _finish_block(self, block: Block, valid: NDArray[np.bool_], band: _Band) -> None:
        """Put the context's part of a final block into ``band``: output pixels and their
        validity, or a shaded map's colours, unsure pixels, validity (and spread) for the
        blur; ``valid`` is the window row's input validity. Every step is per pixel, in
        pieces of a few rows so that the temporaries (float64 in de-normalising) stay
        small."""
        context = self._context
        left = max(block.col, context.col_off)
        right = min(block.col + block.weights.shape[1], context.col_off + context.width)
        if band.height == 0 or right <= left:
            return
        rows = slice(band.first - block.row, band.first - block.row + band.height)
        cols = slice(left - block.col, right - block.col)
        sums, weights = block.sums[:, rows, cols], block.weights[rows, cols]
        valid = valid[band.first - block.row:][:band.height, left:right]
        blended = self.translator.drawn_bands
        step = _chunk_rows(sums.shape[0], sums.shape[2])
        for start in range(0, band.height, step):
            part = slice(start, start + step)
            covered = weights[part] > 0
            piece = sums[:, part]
            piece /= np.where(covered, weights[part], 1.0)
            planes: tuple[NDArray[Any], ...]
            if self._blur is None:
                planes = self._masked(self.translator.finish(piece[:blended]), piece[blended:],
                                      valid[part] & covered)
            else:
                planes = (*self.translator.shade(piece[:blended]), valid[part] & covered,
                          piece[blended:])
            band.put(part, slice(left - context.col_off, right - context.col_off), planes,
                     int(context.width))

    def _band_rows(self, band: _Band) -> list[tuple[NDArray[Any], NDArray[np.bool_]]]:
        """The crop's output pixels and validity of a finished band, in the pieces the
        blur returns (the band itself without it)."""
        if not band.planes:
            return []
        if self._blur is None:
            values, valid = band.planes
            return [(values, valid)]
        pieces = []
        crop, context = self.source.crop, self._context
        top, left = crop.row_off - context.row_off, crop.col_off - context.col_off
        colours, unsure, valid, spread = band.planes
        step = _chunk_rows(self.translator.drawn_bands + spread.shape[0], colours.shape[2])
        for start in range(0, band.height, step):
            part = slice(start, start + step)
            for drawn, kept, (rider,) in self._blur.add(colours[:, part], unsure[part],
                                                        valid[part], [spread[:, part]]):
                count = kept.shape[0]
                first = self._blur.emitted - count  # the context row it starts at
                rows = slice(max(top - first, 0), max(min(top + crop.height - first, count), 0))
                if rows.stop > rows.start:
                    cols = slice(left, left + crop.width)
                    pieces.append(self._masked(self.translator.cast(drawn[:, rows, cols]),
                                               rider[:, rows, cols], kept[rows, cols]))
        return pieces

    def _writable(self, final: int, block: int) -> int:
        """Region rows ``[0, end)`` to take now, of the ``final`` ones no window touches
        any more: whole blocks of the output, or up to the end of the crop (rows outside
        it are taken and dropped)."""
        top = int(self.source.crop.row_off)
        bottom = top + int(self.source.crop.height)
        if final >= bottom or final <= top or final == self.grid.height:
            return final
        return top + (final - top) // block * block

    def _write_rows(self, pending: list[tuple[NDArray[Any], NDArray[np.bool_]]],
                    written: int, end: int) -> None:
        """Write the crop's part of region rows ``[written, end)`` from the front of
        ``pending`` (removed from it), in one write as they were taken."""
        crop = self.source.crop
        first = max(written, crop.row_off)
        count = min(end, crop.row_off + crop.height) - first
        if count <= 0:
            return
        parts: list[tuple[NDArray[Any], NDArray[np.bool_]]] = []
        while count > sum(v.shape[0] for _, v in parts):
            parts.append(pending.pop(0))
        extra = sum(v.shape[0] for _, v in parts) - count
        if extra:  # the last piece reaches past ``end``: its rest stays pending
            values, valid = parts.pop()
            cut = valid.shape[0] - extra
            parts.append((values[:, :cut], valid[:cut]))
            pending.insert(0, (values[:, cut:], valid[cut:]))
        values = parts[0][0] if len(parts) == 1 else np.concatenate([p for p, _ in parts], 1)
        valid = parts[0][1] if len(parts) == 1 else np.concatenate([v for _, v in parts])
        window = Window(0, first - crop.row_off, crop.width, count)
        try:
            self.output.write(values, window=window)
            if self.bands_out.mask:
                mask = np.where(valid, np.uint8(255), np.uint8(0))
                self.output.write_mask(mask, window=window)
        except (RasterioError, OSError) as error:
            raise OutputError(f"cannot write {self.output.name}: {error}") from None

    def _masked(self, values: NDArray[Any], spread: NDArray[np.float32],
                valid: NDArray[np.bool_]) -> tuple[NDArray[Any], NDArray[np.bool_]]:
        """Output pixels with the uncertainty band (``spread``) if asked for, and nodata
        where the input was invalid."""
        if self.bands_out.uncertainty:
            values = np.concatenate([values, _cast(spread, values.dtype)])
        nodata = self.bands_out.nodata
        if nodata is not None:
            keep_off_nodata(values, valid, nodata)
            values[:, ~valid] = np.asarray(nodata).astype(values.dtype)
        return values, valid


def read_error(path: str, error: RasterioError) -> InputError:
    """The reader's error: rasterio's own message can be "Read failed. See previous
    exception"; GDAL's reason is the cause."""
    reason = error.__cause__ if error.__cause__ is not None else error
    return InputError(f"cannot read {path}: {reason}")


def _chunk_rows(channels: int, width: int) -> int:
    """Rows per piece for per-pixel work on (channels, rows, width) arrays: about
    :data:`_CHUNK_VALUES` values, so that temporaries stay small whatever the width."""
    return max(1, _CHUNK_VALUES // max(1, channels * width))


def _batch(tiles: list[NDArray[np.float32]], windows: list[tuple[int, int]],
           masks: list[NDArray[np.bool_] | None]) -> _Batch:
    """The tiles as one tensor; with ``masks`` (a window filter's), their validity."""
    valid = window_validity(masks) if masks else None
    return _Batch(torch.from_numpy(np.stack(tiles)), list(windows), valid)


def _half_spans(translator: Translator) -> list[float]:
    """Output units per normalised unit, per band."""
    normalization = translator.output_normalization
    return [(hi - lo) / 2.0 for lo, hi in zip(normalization.low, normalization.high, strict=True)]


def _cast(values: NDArray[np.float32], dtype: np.dtype[Any]) -> NDArray[Any]:
    """``values`` in ``dtype``: rounded and clipped for integer types."""
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def keep_off_nodata(values: NDArray[Any], valid: NDArray[np.bool_], nodata: float) -> None:
    """Move valid pixels that came out equal to the nodata value one step away from it,
    so that no translated pixel reads as missing."""
    if np.isnan(nodata):
        return
    target = np.asarray(nodata).astype(values.dtype)
    clash = (values == target) & valid
    if not clash.any():
        return
    if values.dtype.kind == "f":
        direction = np.inf if nodata < 0 else -np.inf
        values[clash] = np.nextafter(target, np.asarray(direction, values.dtype))
    else:
        info = np.iinfo(values.dtype)
        values[clash] = target + 1 if target < info.max else target - 1
