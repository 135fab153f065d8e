"""The translate writer's blend of overlapping windows, finished a column block at a time.

Each window's output, times its blend weight, is added into a buffer of sums, and the
weight into a buffer of weights; a pixel is final once no later window touches it. The
windows arrive a window row at a time, left to right. So the rows of a window row above
the next window row's first are final column by column as its windows arrive: every
column left of a window's first is (*blocks*). Only the rows the next window row shares
(a quarter of a tile by default) are kept the whole width of the scene (the *carry*),
with the few columns the latest windows cover (the *active* columns).

For a map of 9 class probabilities, 16384 pixels wide, that is 38 MB of float32 sums
across the width instead of a whole window row's 151 MB. The carry is as high as the most
any window row shares with the next: on the CRS grid's lattice the first window row
shares up to a tile less the lattice's offset with the second (and the last with the one
before), which the row order of the windows makes unavoidable. The sums are added in the
order one buffer of whole rows adds them (what earlier window rows left first, then this
row's windows left to right), so the blended values are the same bits.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from geogan.grids.windows import WindowGrid


@dataclass(frozen=True)
class Block:
    """Final rows of a window row, in some of its columns: views into the buffer, valid
    (and free to change) until the next call to :meth:`BlendBuffer.finish`.

    Attributes:
        row: Raster row of the first of them (the window row's first).
        col: Raster column of the first of them.
        sums: (C, rows, columns) weighted sums of the window outputs.
        weights: (rows, columns) summed weights (0 where no window reached).
    """

    row: int
    col: int
    sums: NDArray[np.float32]
    weights: NDArray[np.float32]


class BlendBuffer:
    """Weighted sums and summed weights of one window row's windows at a time, handed on
    in final blocks (see the module docstring).

    Use: for each window row in order, for each of its windows left to right, take every
    block :meth:`finish` gives up to the window's first column, then :meth:`add` the
    window; once the row's windows are all in, take every block up to the scene's width
    and call :meth:`next_row`.
    """

    def __init__(self, grid: WindowGrid, channels: int) -> None:
        self.grid = grid
        tile, width = grid.tile_size, grid.width
        # The row after the last that each window row, or one before it, reaches.
        self._ends = tuple(itertools.accumulate(
            (min(start + tile, grid.height) for start in grid.row_starts), max))
        carry = max(end - grid.final_rows(i) for i, end in enumerate(self._ends))
        rows = max(end - start for end, start in zip(self._ends, grid.row_starts, strict=True))
        capacity = min(2 * tile, width)  # a window's columns, and those still active
        self._carry_sums = np.zeros((channels, carry, width), np.float32)
        self._carry_weights = np.zeros((carry, width), np.float32)
        self._sums = np.zeros((channels, rows, capacity), np.float32)
        self._weights = np.zeros((rows, capacity), np.float32)
        self.row = 0  # the window row being added
        self._origin = 0  # raster column of the active columns' first
        self._entered = 0  # raster columns [0, entered) taken into the active ones
        self._done = 0  # raster columns [0, done) of this window row handed on

    @property
    def _first(self) -> int:
        return self.grid.row_starts[self.row]

    @property
    def _height(self) -> int:
        """Rows of the current window row: its own and any an earlier one reached."""
        return self._ends[self.row] - self._first

    @property
    def _carried(self) -> int:
        """Rows of the carry the current window row starts from: those the rows before
        it reached below its first."""
        return self._ends[self.row - 1] - self._first if self.row else 0

    @property
    def _top(self) -> int:
        """Rows of the current window row that no later one touches."""
        return self.grid.final_rows(self.row) - self._first

    def add(self, col: int, values: NDArray[np.float32], weight: NDArray[np.float32]) -> None:
        """Add ``values`` (C, h, w) times ``weight`` (h, w) of window (:attr:`row`,
        ``col``); ``values`` is changed. Every block left of the window must have been
        taken (:meth:`finish` up to its first column)."""
        start = self.grid.col_starts[col]
        if self._done != start:
            raise ValueError(f"window {col} starts at column {start}, but the blocks taken "
                             f"end at {self._done}")
        _, height, width = values.shape
        self._enter(start + width)
        c = start - self._origin
        values *= weight
        self._sums[:, :height, c:c + width] += values
        self._weights[:height, c:c + width] += weight

    def finish(self, end: int) -> Block | None:
        """The next block of final rows left of raster column ``end`` (at most a tile
        wide), or None when there are no more; call it until None. What lies below the
        block, in the rows the next window row shares, moves to the carry."""
        end = min(end, self._done + self.grid.tile_size)
        if end <= self._done:
            return None
        self._enter(end)
        a, b = self._done - self._origin, end - self._origin
        top, height = self._top, self._height
        self._carry_sums[:, :height - top, self._done:end] = self._sums[:, top:height, a:b]
        self._carry_weights[:height - top, self._done:end] = self._weights[top:height, a:b]
        block = Block(self._first, self._done, self._sums[:, :top, a:b],
                      self._weights[:top, a:b])
        self._done = end
        return block

    def next_row(self) -> None:
        """Start the next window row; every block of this one must have been taken."""
        if self._done < self.grid.width:
            raise ValueError(f"window row {self.row} has columns left to finish")
        self.row += 1
        self._origin = self._entered = self._done = 0

    def _enter(self, end: int) -> None:
        """Take raster columns up to ``end`` into the active ones, each with what earlier
        window rows left in it (from the carry) and zeros below."""
        if end <= self._entered:
            return
        if end - self._origin > self._weights.shape[1]:  # move the active ones to the front
            keep = slice(self._done - self._origin, self._entered - self._origin)
            count = keep.stop - keep.start
            self._sums[:, :, :count] = self._sums[:, :, keep]
            self._weights[:, :count] = self._weights[:, keep]
            self._origin = self._done
        new = slice(self._entered - self._origin, end - self._origin)
        carried, height = self._carried, self._height
        self._sums[:, :carried, new] = self._carry_sums[:, :carried, self._entered:end]
        self._weights[:carried, new] = self._carry_weights[:carried, self._entered:end]
        self._sums[:, carried:height, new] = 0.0
        self._weights[carried:height, new] = 0.0
        self._entered = end


__all__ = ["BlendBuffer", "Block"]
