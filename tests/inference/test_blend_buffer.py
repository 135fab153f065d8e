"""The writer's blend buffer: blocks of final rows, the same bits as one buffer of the
whole raster, and memory of the shared rows alone across the width."""

from __future__ import annotations

import numpy as np
import pytest

from geogan.grids.windows import WindowGrid
from geogan.inference.blend_buffer import BlendBuffer


def blend_in_blocks(grid: WindowGrid, outputs: dict[tuple[int, int], np.ndarray],
                    channels: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The blocks of a :class:`BlendBuffer` fed ``outputs`` (window → (C, tile, tile)) put
    together, and the (row, column) of each block."""
    sums = np.full((channels, grid.height, grid.width), np.nan, np.float32)
    weights = np.full((grid.height, grid.width), np.nan, np.float32)
    starts: list[tuple[int, int]] = []
    blend = BlendBuffer(grid, channels)

    def take(end: int) -> None:
        while (block := blend.finish(end)) is not None:
            rows, cols = block.weights.shape
            assert np.isnan(weights[block.row:block.row + rows, block.col:block.col + cols]).all()
            sums[:, block.row:block.row + rows, block.col:block.col + cols] = block.sums
            weights[block.row:block.row + rows, block.col:block.col + cols] = block.weights
            starts.append((block.row, block.col))

    for i, row in enumerate(grid.row_starts):
        for j, col in enumerate(grid.col_starts):
            if (i, j) not in outputs:
                continue
            take(col)
            h, w = min(grid.tile_size, grid.height - row), min(grid.tile_size, grid.width - col)
            blend.add(j, outputs[i, j][:, :h, :w].copy(), grid.weight(i, j)[:h, :w])
        take(grid.width)
        blend.next_row()
    return sums, weights, starts


def blend_whole(grid: WindowGrid, outputs: dict[tuple[int, int], np.ndarray],
                channels: int) -> tuple[np.ndarray, np.ndarray]:
    """One buffer of the whole raster, the windows added in order."""
    sums = np.zeros((channels, grid.height, grid.width), np.float32)
    weights = np.zeros((grid.height, grid.width), np.float32)
    for (i, j), values in sorted(outputs.items()):
        row, col = grid.row_starts[i], grid.col_starts[j]
        h, w = min(grid.tile_size, grid.height - row), min(grid.tile_size, grid.width - col)
        weight = grid.weight(i, j)[:h, :w]
        sums[:, row:row + h, col:col + w] += values[:, :h, :w] * weight
        weights[row:row + h, col:col + w] += weight
    return sums, weights


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "anchor"), [
    (300, 700, 64, 16, None),  # the scene's lattice, a last window shifted in
    (256, 256, 64, 0, None),  # no overlap
    (200, 150, 64, 32, (5, 3)),  # the CRS grid's lattice: a first window close to the next
    (40, 500, 64, 16, None),  # lower than a tile
    (500, 50, 64, 16, None),  # narrower than a tile
    (190, 330, 64, 32, (63, 1)),  # three window rows over some pixels
])
def test_blocks_are_the_bits_of_one_buffer_of_the_whole_raster(height, width, tile, overlap,
                                                               anchor):
    grid = WindowGrid(height, width, tile, overlap, "cosine", anchor)
    rng = np.random.default_rng(height + width)
    outputs = {(i, j): rng.normal(size=(3, tile, tile)).astype(np.float32)
               for i in range(grid.rows) for j in range(grid.cols)
               if rng.random() > 0.2}  # windows with no valid pixel are not run
    sums, weights, starts = blend_in_blocks(grid, outputs, 3)
    whole_sums, whole_weights = blend_whole(grid, outputs, 3)
    assert not np.isnan(weights).any()  # every pixel handed on, once
    np.testing.assert_array_equal(sums, whole_sums)
    np.testing.assert_array_equal(weights, whole_weights)
    # Each window row hands on its rows above the next one's, in blocks at most a tile wide.
    assert sorted({row for row, _ in starts}) == list(grid.row_starts)
    for row in grid.row_starts:
        cols = [col for r, col in starts if r == row]
        assert np.diff([*cols, width]).max() <= tile


def test_across_the_width_it_keeps_only_the_rows_the_next_window_row_shares():
    grid = WindowGrid(1024, 16384, 256, 64, "cosine")
    blend = BlendBuffer(grid, 9)
    held = sum(array.nbytes for array in vars(blend).values() if isinstance(array, np.ndarray))
    window_row = 9 * 256 * 16384 * 4  # a window row's sums, the whole width
    assert held < window_row / 3  # 47 MB against 151
    assert blend._carry_sums.shape == (9, 64, 16384)


def test_windows_must_come_after_the_blocks_left_of_them():
    grid = WindowGrid(64, 256, 64, 16, "cosine")
    blend = BlendBuffer(grid, 1)
    with pytest.raises(ValueError, match="blocks taken"):
        blend.add(1, np.ones((1, 64, 64), np.float32), grid.weight(0, 1))
    with pytest.raises(ValueError, match="columns left"):
        blend.next_row()
