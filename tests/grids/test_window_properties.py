"""Property tests (hypothesis) of the window grid: for arbitrary raster sizes, tile sizes,
overlaps and blends, every pixel is covered, no window leaves the raster (or its padded
tile when the raster is smaller than one), and the blend weights are positive where they
must be and add up to exactly 1 wherever at most two windows meet.

The hand-picked cases are in ``test_windows.py``; these search the space around them.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import configuration, example, given, settings
from hypothesis import strategies as st

from geogan.grids.windows import BLENDS, WindowGrid, axis_starts, axis_weights

# No example database written into the repository; the search is seeded from the test
# itself, so a failure reproduces on every run.
# Hypothesis also caches what it learns of the code (the constants it finds) under
# ./.hypothesis: keep that out of the repository too, unless a location is configured.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "geogan-hypothesis")
SETTINGS = settings(max_examples=200, deadline=None, database=None, derandomize=True)

TILES = st.one_of(st.sampled_from([16, 32, 48, 64, 128, 256, 512]), st.integers(1, 100))


@st.composite
def axes(draw: st.DrawFn, max_length: int = 3000) -> tuple[int, int, int]:
    """(length, tile, overlap) with an overlap the options allow (0 .. tile // 2)."""
    tile = draw(TILES)
    overlap = draw(st.integers(0, tile // 2))
    # Lengths near the tile (shorter, equal, one more) and near a whole number of steps
    # are where the edge cases live: draw them often.
    step = tile - overlap
    near = st.builds(lambda n, d: max(1, min(max_length, tile + n * step + d)),
                     st.integers(0, 6), st.integers(-2, 2))
    length = draw(st.one_of(st.integers(1, max_length), near))
    return length, tile, overlap


def coverage(length: int, tile: int, starts: tuple[int, ...], weights: list[np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of the axis: windows covering it, summed weight, windows with weight 1.

    A window covers ``[start, min(start + tile, length))``: the rest of a window that is
    longer than the raster is the engine's reflection padding, cropped away."""
    count = np.zeros(length, int)
    total = np.zeros(length)
    owners = np.zeros(length, int)
    for start, weight in zip(starts, weights, strict=True):
        end = min(start + tile, length)
        count[start:end] += 1
        total[start:end] += weight[:end - start]
        owners[start:end] += weight[:end - start] == 1.0
    return count, total, owners


@SETTINGS
@given(axes())
@example((1, 64, 16)).via("a one-pixel raster")
@example((64, 64, 32)).via("exactly one tile")
@example((65, 64, 32)).via("one pixel more than a tile, largest overlap")
@example((3000, 1, 0)).via("one-pixel tiles")
def test_axis_starts_cover_every_pixel_inside_the_raster(case):
    length, tile, overlap = case
    starts = axis_starts(length, tile, overlap)
    assert starts[0] == 0
    assert all(b > a for a, b in itertools.pairwise(starts)), starts  # strictly increasing
    assert all(0 <= s and s + tile <= max(length, tile) for s in starts), starts
    if length <= tile:
        assert starts == (0,)
    else:
        assert starts[-1] + tile == length  # the last window ends on the edge
        steps = np.diff(starts)
        assert (steps[:-1] == tile - overlap).all(), starts  # regular but for the last
        assert 0 < steps[-1] <= tile - overlap, starts
    count, _, _ = coverage(length, tile, starts, [np.ones(tile)] * len(starts))
    assert (count >= 1).all()


@SETTINGS
@given(axes(), st.sampled_from(BLENDS))
@example((1, 64, 16), "cosine")
@example((65, 64, 32), "linear")
@example((65, 64, 0), "none")
@example((129, 64, 0), "none")
def test_axis_weights_are_bounded_and_cover_every_pixel(case, blend):
    length, tile, overlap = case
    starts = axis_starts(length, tile, overlap)
    weights = axis_weights(starts, tile, blend)
    assert len(weights) == len(starts)
    for w in weights:
        assert w.shape == (tile,) and w.dtype == np.float32
        assert np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()
    count, total, owners = coverage(length, tile, starts, weights)
    assert (total > 0).all()  # the engine divides by it
    # The raster's edges are not tapered: no neighbour to hand over to.
    assert weights[0][0] == 1.0 and weights[-1][-1] == 1.0
    if blend == "none":
        assert all(set(np.unique(w).tolist()) <= {0.0, 1.0} for w in weights)
        assert (owners == 1).all()  # exactly one window owns each pixel
        assert (total == 1.0).all()
    else:
        assert all((w > 0).all() for w in weights)
        two = count <= 2  # everywhere but where the shifted last window makes three
        np.testing.assert_allclose(total[two], 1.0, atol=1e-6, rtol=0)
        assert (count[:starts[-1]] <= 2).all()  # only the shifted last window adds a third


@SETTINGS
@given(axes(max_length=600), st.integers(1, 600), st.sampled_from(BLENDS))
@example((1, 64, 16), 1, "cosine")
@example((65, 64, 32), 200, "linear")
@example((40, 64, 0), 300, "none")
def test_grid_weights_blend_to_one_over_the_whole_raster(case, width, blend):
    height, tile, overlap = case
    grid = WindowGrid(height, width, tile, overlap, blend)
    total = np.zeros((height, width))
    covered = np.zeros((height, width), int)
    windows = list(grid)
    assert len(windows) == len(grid) == grid.rows * grid.cols
    for w in windows:
        assert 0 <= w.row_off and w.row_off + tile <= max(height, tile)
        assert 0 <= w.col_off and w.col_off + tile <= max(width, tile)
        # As the engine adds a window: cropped to the raster where it is smaller.
        h, wd = min(tile, height - w.row_off), min(tile, width - w.col_off)
        weight = grid.weight(w.row, w.col)
        assert weight.shape == (tile, tile)
        total[w.row_off:w.row_off + h, w.col_off:w.col_off + wd] += weight[:h, :wd]
        covered[w.row_off:w.row_off + h, w.col_off:w.col_off + wd] += 1
    assert (covered >= 1).all()
    assert np.isfinite(total).all() and (total > 0).all()
    # Regular: no pixel where the shifted last window makes three along either axis.
    row_count, _, _ = coverage(height, tile, grid.row_starts, grid.row_weights)
    col_count, _, _ = coverage(width, tile, grid.col_starts, grid.col_weights)
    regular = (row_count <= 2)[:, None] & (col_count <= 2)[None, :]
    if blend == "none":
        regular[:] = True
    np.testing.assert_allclose(total[regular], 1.0, atol=1e-6, rtol=0)
    # final_rows: no later window row touches the rows before it; the last ends the raster.
    for i in range(grid.rows):
        final = grid.final_rows(i)
        assert all(grid.row_starts[k] >= final for k in range(i + 1, grid.rows))
    assert grid.final_rows(grid.rows - 1) == height


def contributions(starts: tuple[int, ...], weights: list[np.ndarray], tile: int, length: int,
                  shift: int, pixel: int) -> dict[int, float]:
    """Global window start → blend weight of the windows covering ``pixel`` (axis
    coordinates), for an axis whose first pixel is ``shift`` on the global grid."""
    return {shift + start: float(weight[pixel - start])
            for start, weight in zip(starts, weights, strict=True)
            if start <= pixel < min(start + tile, length)}


@SETTINGS
@given(axes(max_length=800), st.integers(-10_000, 10_000), st.sampled_from(BLENDS))
@example((300, 64, 16), 0, "cosine")
@example((300, 64, 16), 17, "none")
@example((65, 64, 0), -1, "linear")
def test_anchored_starts_lie_on_the_global_lattice_and_cover_every_pixel(case, anchor, blend):
    length, tile, overlap = case
    starts = axis_starts(length, tile, overlap, anchor)
    assert starts[0] == 0 and list(starts) == sorted(set(starts)), starts
    assert all(0 <= s and s + tile <= max(length, tile) for s in starts), starts
    if length <= tile:
        assert starts == (0,)
        return
    assert starts[-1] + tile == length
    step = tile - overlap
    inner = starts[1:-1]
    assert all((anchor + s) % step == 0 for s in inner), starts
    assert all(b - a <= step for a, b in itertools.pairwise(starts)), starts  # no gap
    weights = axis_weights(starts, tile, blend)
    _, total, _ = coverage(length, tile, starts, weights)
    assert (total > 0).all()


@SETTINGS
@given(axes(max_length=900), st.integers(-5_000, 5_000), st.integers(0, 400),
       st.integers(1, 900), st.sampled_from(BLENDS))
@example((900, 64, 16), 0, 37, 300, "cosine")
@example((900, 64, 0), 5, 23, 200, "none")
def test_a_crop_has_the_wholes_windows_and_weights_more_than_a_tile_in(case, anchor, offset,
                                                                       size, blend):
    """What makes translate independent of how a scene was cut: the pixels of a crop more
    than a tile from its edges lie in the same windows, with the same weights, as in the
    whole axis."""
    length, tile, overlap = case
    offset = min(offset, length - 1)
    size = min(size, length - offset)
    whole = axis_starts(length, tile, overlap, anchor)
    whole_weights = axis_weights(whole, tile, blend)
    crop = axis_starts(size, tile, overlap, anchor + offset)
    crop_weights = axis_weights(crop, tile, blend)
    for pixel in range(tile, size - tile):
        assert (contributions(crop, crop_weights, tile, size, offset, pixel)
                == contributions(whole, whole_weights, tile, length, 0, offset + pixel)), pixel
