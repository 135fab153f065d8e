"""The grid of chip windows laid over a region of a raster.

Chips start at the region's top-left pixel and step by ``stride``; every window lies
wholly inside both the raster and the region's pixel bounding box, so no chip needs
padding. Windows come from :mod:`rasterio.windows`, never from arithmetic on bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rasterio.windows import Window, from_bounds


@dataclass(frozen=True)
class ChipGrid:
    """Chip windows of ``tile_size`` pixels every ``stride`` pixels from ``(row0, col0)``."""

    row0: int
    col0: int
    rows: int  # number of chip rows
    cols: int  # number of chip columns
    tile_size: int
    stride: int

    def __len__(self) -> int:
        return self.rows * self.cols

    def window(self, i: int, j: int) -> Window:
        """The window of chip row ``i``, column ``j``."""
        return Window(
            self.col0 + j * self.stride, self.row0 + i * self.stride, self.tile_size, self.tile_size
        )

    def __iter__(self) -> Iterator[tuple[int, int, Window]]:
        """Chip row, chip column and window, in row-major order."""
        for i in range(self.rows):
            for j in range(self.cols):
                yield i, j, self.window(i, j)


def pixel_region(dataset: Any, bounds: tuple[float, float, float, float]) -> Window:
    """The window of whole pixels of ``dataset`` that covers ``bounds``, clipped to it."""
    window = from_bounds(*bounds, transform=dataset.transform)
    col0 = max(0, math.floor(window.col_off + 1e-6))
    row0 = max(0, math.floor(window.row_off + 1e-6))
    col1 = min(dataset.width, math.ceil(window.col_off + window.width - 1e-6))
    row1 = min(dataset.height, math.ceil(window.row_off + window.height - 1e-6))
    return Window(col0, row0, max(0, col1 - col0), max(0, row1 - row0))


def chip_grid(region: Window, tile_size: int, stride: int) -> ChipGrid:
    """Lay chips of ``tile_size`` every ``stride`` pixels inside ``region``."""
    width, height = int(region.width), int(region.height)
    cols = 0 if width < tile_size else (width - tile_size) // stride + 1
    rows = 0 if height < tile_size else (height - tile_size) // stride + 1
    return ChipGrid(int(region.row_off), int(region.col_off), rows, cols, tile_size, stride)
