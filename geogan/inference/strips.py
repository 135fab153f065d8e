"""The translate reader's strips: the scene as read, a tile high and the whole width, for
consecutive window rows, and the normalised tiles cut from them."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

from geogan.inference.translator import Translator, pad_to_tile
from geogan.raster.io import can_be_missing, missing, valid_mask


class Strips:
    """Strips of the scene as read, full width, for consecutive window rows, and the
    normalised tiles cut from them.

    Window rows overlap, so each strip keeps the rows it shares with the previous one
    and reads only the new rows: every pixel is read once. The strip holds the raster's
    own values, a byte a value for most imagery instead of float32's four (37 MB less at
    16384 RGB pixels wide); each tile is normalised as it is cut, to the values
    normalising the whole strip gave (every step is per value). The strip is one buffer
    of a tile's height, reused: what :meth:`read` returns is valid until the next call.
    """

    def __init__(self, dataset: Any, bands: list[int], translator: Translator,
                 region: Window, tile: int) -> None:
        self.dataset, self.bands, self.tile_size = dataset, bands, tile
        self.width = int(region.width)
        self.origin = (int(region.row_off), int(region.col_off))
        self.normalization = translator.input_normalization
        self.row_off = 0
        self.buffer: NDArray[Any] | None = None  # (C, tile, W) in the raster's dtype
        self.valid = np.zeros((0, self.width), bool)
        self.can_miss = False

    def read(self, row_off: int, height: int) -> tuple[NDArray[Any], NDArray[np.bool_]]:
        """Rows ``[row_off, row_off + height)``: the raster's values (C, height, W) and
        their validity (height, W)."""
        kept = max(0, self.row_off + self.valid.shape[0] - row_off)
        first = row_off + kept  # first row not held yet
        window = Window(self.origin[1], self.origin[0] + first, self.width,
                        row_off + height - first)
        data = self.dataset.read(self.bands, window=window)  # (C, new rows, W)
        valid = valid_mask(self.dataset, window, data, any_band=True)
        if self.buffer is None:
            self.buffer = np.zeros((data.shape[0], self.tile_size, self.width), data.dtype)
            self.can_miss = can_be_missing(data.dtype, self.dataset.nodata)
        skip = row_off - self.row_off
        move_up(self.buffer, skip, kept, axis=1)  # the rows kept
        self.buffer[:, kept:kept + data.shape[1]] = data
        if kept:
            valid = np.concatenate([self.valid[skip:], valid])
        self.row_off, self.valid = row_off, valid
        return self.buffer[:, :height], valid

    def tile(self, strip: NDArray[Any], valid: NDArray[np.bool_], col_off: int
             ) -> NDArray[np.float32]:
        """The window at ``col_off`` of a strip :meth:`read` gave, normalised, with
        invalid pixels (and missing values of valid ones) at the mid value 0, as in
        training, and padded to the tile where the scene is smaller: (C, tile, tile)."""
        end = col_off + self.tile_size
        values = strip[:, :, col_off:end]
        tile = self.normalization.normalize(values)
        if self.can_miss:  # a band missing in a valid pixel
            tile[missing(values, self.dataset.nodata)] = 0.0
        inside = valid[:, col_off:end]
        if not inside.all():  # invalid pixels at 0
            tile *= inside
        return pad_to_tile(tile, self.tile_size)

    def tile_validity(self, valid: NDArray[np.bool_], col_off: int
                      ) -> NDArray[np.bool_] | None:
        """The valid pixels (tile, tile) of :meth:`tile`'s window at ``col_off``, where
        padding to the tile counts as invalid; None when they all are valid."""
        inside = valid[:, col_off:col_off + self.tile_size]
        if inside.shape == (self.tile_size, self.tile_size) and inside.all():
            return None
        mask = np.zeros((self.tile_size, self.tile_size), bool)
        mask[:inside.shape[0], :inside.shape[1]] = inside
        return mask


def move_up(array: NDArray[Any], by: int, count: int, axis: int) -> None:
    """Move rows ``[by, by + count)`` of ``array`` (along ``axis``) to ``[0, count)``,
    ``by`` rows at a time and one index of the axes before ``axis`` at a time: source and
    target are then disjoint stretches of memory, so numpy needs no temporary copy of
    the rows moved. (Along a later axis, the stretches of all the leading indices
    interleave: numpy could not tell them apart and copied the whole source first, most
    of a strip.)"""
    if axis > 0:
        for part in array:
            move_up(part, by, count, axis - 1)
        return
    for start in range(0, count, max(by, 1)):
        stop = min(start + by, count)
        array[start:stop] = array[start + by:stop + by]


__all__ = ["Strips", "move_up"]
