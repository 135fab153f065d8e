"""The translate writer's buffer of rows: weighted sums of the windows' outputs, their
summed weights and the input's validity, for the rows not yet written."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


class RowBuffer:
    """Weighted sums, summed weights and input validity of the rows not yet written.

    Holds raster rows ``[base, base + capacity)``; grows when a window reaches further
    and moves its rows down when the first ones are taken.
    """

    def __init__(self, channels: int, width: int, capacity: int) -> None:
        self.base = 0
        self.sums = np.zeros((channels, capacity, width), np.float32)  # (C, rows, W)
        self.weights = np.zeros((capacity, width), np.float32)
        self.valid = np.zeros((capacity, width), bool)

    def _reserve(self, end: int) -> None:
        need = end - self.base
        capacity = self.weights.shape[0]
        if need <= capacity:
            return
        capacity = max(need, capacity + self.weights.shape[0] // 4)
        sums = np.zeros((self.sums.shape[0], capacity, self.sums.shape[2]), np.float32)
        weights = np.zeros((capacity, self.weights.shape[1]), np.float32)
        valid = np.zeros((capacity, self.valid.shape[1]), bool)
        held = self.weights.shape[0]
        sums[:, :held], weights[:held], valid[:held] = self.sums, self.weights, self.valid
        self.sums, self.weights, self.valid = sums, weights, valid

    def add(self, row: int, col: int, values: NDArray[np.float32],
            weight: NDArray[np.float32]) -> None:
        """Add ``values`` (C, h, w) times ``weight`` (h, w) at raster pixel (row, col)."""
        _, height, width = values.shape
        self._reserve(row + height)
        r = row - self.base
        values *= weight
        self.sums[:, r:r + height, col:col + width] += values
        self.weights[r:r + height, col:col + width] += weight

    def set_valid(self, row: int, valid: NDArray[np.bool_]) -> None:
        """Record the input validity of rows ``[row, row + len(valid))``."""
        self._reserve(row + valid.shape[0])
        r = row - self.base
        self.valid[r:r + valid.shape[0]] = valid

    def head(self, end: int) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
        """Rows ``[base, end)``: their sums, weights and validity, as views (no copy) to be
        used, and changed, before :meth:`drop`."""
        n = end - self.base
        return self.sums[:, :n], self.weights[:n], self.valid[:n]

    def drop(self, end: int) -> None:
        """Remove rows ``[base, end)``."""
        n = end - self.base
        rest = self.weights.shape[0] - n
        move_up(self.sums, n, rest, axis=1)
        move_up(self.weights, n, rest, axis=0)
        move_up(self.valid, n, rest, axis=0)
        self.sums[:, rest:] = 0.0
        self.weights[rest:] = 0.0
        self.valid[rest:] = False
        self.base = end


def move_up(array: NDArray[Any], by: int, count: int, axis: int) -> None:
    """Move rows ``[by, by + count)`` of ``array`` (along ``axis``) to ``[0, count)``,
    ``by`` rows at a time and one index of the axes before ``axis`` at a time: source and
    target are then disjoint stretches of memory, so numpy needs no temporary copy of
    the rows moved. (Along a later axis, the stretches of all the leading indices
    interleave: numpy could not tell them apart and copied the whole source first, 36 to
    72 MB for the blended rows of a 16384-pixel-wide scene.)"""
    if axis > 0:
        for part in array:
            move_up(part, by, count, axis - 1)
        return
    for start in range(0, count, max(by, 1)):
        stop = min(start + by, count)
        array[start:stop] = array[start + by:stop + by]
