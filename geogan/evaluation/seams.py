"""Seam score: are the translate engine's window boundaries visible in a raster?

``translate`` lays windows of the model's tile size over a scene (:mod:`geogan.grids.windows`)
and blends their predictions. If blending fails (or is turned off), the lines where one
window's contribution starts or stops show as steps. The seam score measures them:

    seam score = mean |difference between neighbouring pixels| across those lines
                 / mean |difference between neighbouring pixels| everywhere else

over valid pixel pairs (both pixels valid), all bands together, both axes together.
1.0 means the boundary lines look like any other line of the raster: no seams. 1.3
means the steps across window boundaries are 30 % larger than elsewhere.

The lines come from the engine's own :class:`~geogan.grids.windows.WindowGrid`: along each
axis, a line lies between pixels ``p - 1`` and ``p`` wherever some window's blend weight
becomes positive or drops to zero there: the window edges for ``cosine`` and ``linear``
blends, the centre-crop cuts for ``none``. A raster of a single window has no lines and
no score (``None``).

Scenes larger than memory are scored window by window: :func:`seam_sums` takes a piece
of the raster with its offset and counts only the differences whose first pixel lies in
the piece's own part; :class:`SeamSums` add up. This module needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geogan.grids.windows import BLENDS, LatticeRecord, WindowGrid

__all__ = ["SeamSums", "output_seam_lines", "seam_lines", "seam_score", "seam_sums"]


@dataclass(frozen=True)
class SeamSums:
    """Sums of absolute neighbour differences across window boundaries and elsewhere.

    Attributes:
        across: Sum of |difference| over pixel pairs that straddle a boundary line.
        across_count: Number of those pairs (times bands).
        elsewhere: Sum of |difference| over all other pixel pairs.
        elsewhere_count: Number of those pairs (times bands).
    """

    across: float = 0.0
    across_count: int = 0
    elsewhere: float = 0.0
    elsewhere_count: int = 0

    def __add__(self, other: SeamSums) -> SeamSums:
        return SeamSums(self.across + other.across, self.across_count + other.across_count,
                        self.elsewhere + other.elsewhere,
                        self.elsewhere_count + other.elsewhere_count)

    @property
    def score(self) -> float | None:
        """Mean difference across the lines over the mean elsewhere; ``None`` when there
        is no line, no other pair, or the raster is flat away from the lines."""
        if not self.across_count or not self.elsewhere_count or self.elsewhere <= 0:
            return None
        return (self.across / self.across_count) / (self.elsewhere / self.elsewhere_count)


def _axis_lines(starts: tuple[int, ...], weights: list[NDArray[np.float32]], length: int,
                tile_size: int) -> NDArray[np.bool_]:
    """(length,) bool: True at ``p`` when a window's support starts or ends between
    pixels ``p - 1`` and ``p`` (never at 0: that is the raster's edge)."""
    lines = np.zeros(length, dtype=bool)
    for start, weight in zip(starts, weights, strict=True):
        support = np.flatnonzero(weight[: max(0, min(tile_size, length - start))] > 0)
        if support.size == 0:
            continue
        first, end = start + int(support[0]), start + int(support[-1]) + 1
        if 0 < first < length:
            lines[first] = True
        if 0 < end < length:
            lines[end] = True
    return lines


def seam_lines(grid: WindowGrid) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The boundary lines of ``grid``'s windows.

    Returns:
        ``(rows, cols)``: (height,) and (width,) bool; ``rows[p]`` is True when a line
        runs between pixel rows ``p - 1`` and ``p``, ``cols[p]`` likewise for columns.
    """
    rows = _axis_lines(grid.row_starts, grid.row_weights, grid.height, grid.tile_size)
    cols = _axis_lines(grid.col_starts, grid.col_weights, grid.width, grid.tile_size)
    return rows, cols


def output_seam_lines(record: LatticeRecord | None, height: int, width: int, tile: int,
                      overlap: int, blend: str) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The boundary lines of an output of ``height`` × ``width`` pixels whose windows
    ``record`` describes (its ``GEOGAN_LATTICE`` tag): the lines of the windows laid over
    the raster they were laid over (the scene, or the part of a mosaic around it), cut to
    the output. ``None`` (an output without the tag) is the ``scene`` lattice over the
    output itself. Returned as :func:`seam_lines` returns them."""
    if record is None:
        record = LatticeRecord("scene", "", None, (0, 0), (height, width))
    rows, cols = seam_lines(record.window_grid(tile, overlap, blend))
    r0, c0 = record.offset
    out_rows = np.zeros(height, dtype=bool)
    out_cols = np.zeros(width, dtype=bool)
    part_rows, part_cols = rows[r0:r0 + height], cols[c0:c0 + width]
    out_rows[:part_rows.size], out_cols[:part_cols.size] = part_rows, part_cols
    return out_rows, out_cols


def seam_sums(array: NDArray[Any], valid: NDArray[Any] | None, row_lines: NDArray[np.bool_],
              col_lines: NDArray[np.bool_], own_rows: tuple[int, int] | None = None,
              own_cols: tuple[int, int] | None = None) -> SeamSums:
    """Neighbour differences of one piece of a raster, split by the boundary lines.

    Args:
        array: (C, H, W) or (H, W) values of the piece.
        valid: (H, W) bool, True where a pixel counts; ``None`` for all.
        row_lines: (H,) the piece's rows of :func:`seam_lines`' ``rows`` (``row_lines[k]``
            True when a line runs between the piece's rows ``k - 1`` and ``k``).
        col_lines: (W,) likewise for columns.
        own_rows: ``[start, stop)`` rows of the piece whose differences it counts (a
            difference belongs to its first pixel, so ``stop`` must be below ``H`` unless
            the piece ends at the raster's edge); ``None`` for all.
        own_cols: The same for columns.

    Returns:
        The sums, to be added over pieces.
    """
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 2:
        values = values[None]
    _, h, w = values.shape
    ok = np.ones((h, w), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    ok = ok & np.isfinite(values).all(axis=0)
    r0, r1 = own_rows or (0, h)
    c0, c1 = own_cols or (0, w)
    mine = np.zeros((h, w), dtype=bool)
    mine[r0:r1, c0:c1] = True
    totals = [0.0, 0, 0.0, 0]
    # Differences down the rows (across horizontal lines), then along them (vertical lines).
    for axis, lines in ((1, row_lines), (2, col_lines)):
        diff = np.abs(np.diff(values, axis=axis))  # (C, H-1, W) or (C, H, W-1)
        if axis == 1:
            pair_ok = ok[:-1] & ok[1:] & mine[:-1]  # (H-1, W): first pixel is ours
            across = np.broadcast_to(np.asarray(lines[1:], dtype=bool)[:, None], pair_ok.shape)
        else:
            pair_ok = ok[:, :-1] & ok[:, 1:] & mine[:, :-1]  # (H, W-1)
            across = np.broadcast_to(np.asarray(lines[1:], dtype=bool)[None, :], pair_ok.shape)
        zero = np.zeros((), dtype=np.float64)
        on = pair_ok & across
        off = pair_ok & ~across
        bands = values.shape[0]
        totals[0] += float(np.where(on, diff, zero).sum())
        totals[1] += int(on.sum()) * bands
        totals[2] += float(np.where(off, diff, zero).sum())
        totals[3] += int(off.sum()) * bands
    return SeamSums(float(totals[0]), int(totals[1]), float(totals[2]), int(totals[3]))


def seam_score(array: NDArray[Any], valid: NDArray[Any] | None, tile: int, overlap: int,
               blend: str = BLENDS[0]) -> float | None:
    """Seam score of a whole raster translated with windows of ``tile`` and ``overlap``.

    Args:
        array: (C, H, W) or (H, W) values.
        valid: (H, W) bool, True where a pixel counts; ``None`` for all.
        tile: The model's tile size (window side) in pixels.
        overlap: Pixels neighbouring windows shared.
        blend: The blend translate used (``cosine``, ``linear`` or ``none``): it decides
            where the lines are (window edges, or centre-crop cuts for ``none``).

    Returns:
        Mean |neighbour difference| across the window boundary lines over the mean
        elsewhere (1.0 = no seams); ``None`` when the raster holds a single window or
        nothing to compare.

    Raises:
        ConfigError: If ``overlap`` or ``blend`` cannot work with ``tile``.
    """
    values = np.asarray(array)
    height, width = values.shape[-2:]
    grid = WindowGrid(height, width, tile, overlap, blend)
    rows, cols = seam_lines(grid)
    return seam_sums(values, valid, rows, cols).score
