"""The windows ``translate`` lays over a scene and the weights that blend them (numpy only)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from geogan.errors import ConfigError
from geogan.grids.windows import (
    BLENDS,
    LatticeRecord,
    WindowGrid,
    axis_starts,
    axis_weights,
    check_window_options,
    default_overlap,
)

# (length, tile, overlap): shorter than, equal to, one more than a tile; a whole number of
# steps and not; no overlap, a quarter and half a tile; the last window shifted a little
# and a lot.
CASES = [
    (1, 64, 16), (40, 64, 16), (63, 64, 0), (64, 64, 16), (64, 64, 32), (65, 64, 16),
    (65, 64, 0), (65, 64, 32), (100, 64, 32), (112, 64, 16), (113, 64, 16), (127, 64, 0),
    (128, 64, 0), (129, 64, 0), (150, 64, 16), (170, 64, 32), (256, 64, 16), (257, 64, 16),
    (300, 64, 31), (1000, 64, 16), (1000, 64, 0), (1000, 64, 32), (1100, 256, 64),
    (513, 256, 128), (5, 8, 4), (9, 8, 4), (23, 8, 3), (97, 16, 1),
]


def coverage(length: int, tile: int, starts: tuple[int, ...],
             weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of the axis: windows covering it, summed weight, windows with weight 1.

    A window starting at 0 covers min(tile, length) pixels (the rest is padding)."""
    count = np.zeros(length, int)
    total = np.zeros(length)
    ones = np.zeros(length, int)
    for start, weight in zip(starts, weights, strict=True):
        end = min(start + tile, length)
        count[start:end] += 1
        total[start:end] += weight[:end - start]
        ones[start:end] += weight[:end - start] == 1.0
    return count, total, ones


@pytest.mark.parametrize(("length", "tile", "overlap"), CASES)
def test_axis_starts_cover_every_pixel_from_edge_to_edge(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    assert starts[0] == 0
    assert list(starts) == sorted(set(starts)), starts  # strictly increasing
    if length <= tile:
        assert starts == (0,)
        return
    assert all(0 <= s and s + tile <= length for s in starts), starts  # inside the axis
    assert starts[-1] + tile == length  # the last window ends on the edge
    steps = np.diff(starts)
    assert (steps[:-1] == tile - overlap).all(), starts
    assert 0 < steps[-1] <= tile - overlap, starts  # the last one shifted inwards
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()


@pytest.mark.parametrize("blend", ["cosine", "linear"])
@pytest.mark.parametrize(("length", "tile", "overlap"), CASES)
def test_tapered_weights_are_positive_and_sum_to_one(length, tile, overlap, blend):
    starts = axis_starts(length, tile, overlap)
    weights = axis_weights(starts, tile, blend)
    assert len(weights) == len(starts)
    assert all(w.shape == (tile,) and w.dtype == np.float32 for w in weights)
    assert all((w > 0).all() and (w <= 1).all() for w in weights)
    # The raster's edges are not tapered: no neighbour to hand over to.
    assert weights[0][0] == 1.0 and weights[-1][-1] == 1.0
    if len(starts) == 1:
        assert (weights[0] == 1.0).all()
    count, total, _ = coverage(length, tile, starts, weights)
    assert (total > 0).all()
    two = count <= 2  # everywhere but where the shifted last window makes three
    np.testing.assert_allclose(total[two], 1.0, atol=1e-6)
    # Regular spacing: only the shifted last window may add a third.
    assert (count[: starts[-1]] <= 2).all()


@pytest.mark.parametrize(("length", "tile", "overlap"), CASES)
def test_no_blend_gives_each_pixel_to_exactly_one_window(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    weights = axis_weights(starts, tile, "none")
    assert all(set(np.unique(w)) <= {0.0, 1.0} for w in weights)
    _, total, ones = coverage(length, tile, starts, weights)
    assert (ones == 1).all()
    assert (total == 1.0).all()
    assert weights[0][0] == 1.0 and weights[-1][-1] == 1.0


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_tapers_are_symmetric_and_flat_in_the_middle(blend):
    starts = axis_starts(256, 64, 16)  # (0, 48, 96, 144, 192): regular, no shift
    assert starts == (0, 48, 96, 144, 192)
    weights = axis_weights(starts, 64, blend)
    middle = weights[2]
    np.testing.assert_allclose(middle, middle[::-1], atol=1e-7)
    assert (middle[16:48] == 1.0).all() and (middle[:16] < 1).all() and (middle[48:] < 1).all()
    assert (np.diff(middle[:16]) > 0).all()  # rises monotonically


def test_cosine_and_linear_ramps_differ():
    starts = axis_starts(256, 64, 16)
    cosine, linear = (axis_weights(starts, 64, b)[1] for b in ("cosine", "linear"))
    np.testing.assert_allclose(linear[:16], (np.arange(16) + 0.5) / 16, atol=1e-6)
    np.testing.assert_allclose(cosine[:16], np.sin((np.arange(16) + 0.5) / 16 * np.pi / 2) ** 2,
                               atol=1e-6)


@pytest.mark.parametrize(("height", "width", "overlap", "blend"), [
    (256, 256, 16, "cosine"), (150, 170, 16, "linear"), (40, 300, 0, "none"),
    (1, 70, 16, "cosine"), (64, 64, 32, "none"), (1100, 1100, 16, "cosine"),
])
def test_window_grid(height, width, overlap, blend):
    grid = WindowGrid(height, width, 64, overlap, blend)
    assert grid.row_starts == axis_starts(height, 64, overlap)
    assert grid.col_starts == axis_starts(width, 64, overlap)
    assert len(grid) == grid.rows * grid.cols == len(grid.row_starts) * len(grid.col_starts)
    windows = list(grid)
    assert len(windows) == len(grid)
    assert [(w.row, w.col) for w in windows] == list(itertools.product(range(grid.rows),
                                                                       range(grid.cols)))
    assert [(w.row_off, w.col_off) for w in windows] == [
        (grid.row_starts[w.row], grid.col_starts[w.col]) for w in windows]
    for i, j in [(0, 0), (grid.rows - 1, grid.cols - 1), (grid.rows // 2, grid.cols // 2)]:
        weight = grid.weight(i, j)
        assert weight.shape == (64, 64)
        np.testing.assert_array_equal(weight, np.outer(grid.row_weights[i], grid.col_weights[j]))
    # final_rows: no later window row touches the rows before it; the last ends the raster.
    for i in range(grid.rows):
        final = grid.final_rows(i)
        assert all(grid.row_starts[k] >= final for k in range(i + 1, grid.rows))
        assert final > grid.row_starts[i] or final == height
    assert grid.final_rows(grid.rows - 1) == height
    # Blended over the whole raster, the 2-D weights never leave a pixel uncovered.
    total = np.zeros((height, width))
    for w in windows:
        h, wd = min(64, height - w.row_off), min(64, width - w.col_off)
        total[w.row_off:w.row_off + h, w.col_off:w.col_off + wd] += grid.weight(w.row,
                                                                                w.col)[:h, :wd]
    assert (total > 0).all()


def test_window_grid_sums_to_one_away_from_the_shifted_windows():
    grid = WindowGrid(256, 256, 64, 16, "cosine")  # regular: no window shifted
    total = np.zeros((256, 256))
    for w in grid:
        total[w.row_off:w.row_off + 64, w.col_off:w.col_off + 64] += grid.weight(w.row, w.col)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_window_options_are_checked():
    check_window_options(64, 0, "none")
    check_window_options(64, 32, "cosine")  # half the tile is the most
    assert default_overlap(64) == 16 and default_overlap(256) == 64
    assert BLENDS[0] == "cosine" and set(BLENDS) == {"cosine", "linear", "none"}
    with pytest.raises(ConfigError, match="overlap"):
        check_window_options(64, 33, "cosine")
    with pytest.raises(ConfigError, match="overlap"):
        check_window_options(64, -1, "cosine")
    with pytest.raises(ConfigError, match="blend"):
        check_window_options(64, 16, "gaussian")
    with pytest.raises(ConfigError, match="overlap"):
        WindowGrid(100, 100, 64, 40, "linear")
    with pytest.raises(ConfigError, match="blend"):
        WindowGrid(100, 100, 64, 16, "median")
    with pytest.raises(ConfigError, match="no windows"):
        WindowGrid(0, 100, 64, 16, "cosine")


def test_anchored_windows_start_on_multiples_of_the_step_of_the_global_grid():
    # The axis's first pixel is global pixel 17; the step is 48: windows at global 48, 96,
    # ... i.e. local 31, 79, ..., after one at 0, and the last ends on the edge.
    assert axis_starts(300, 64, 16, anchor=17) == (0, 31, 79, 127, 175, 223, 236)
    assert axis_starts(300, 64, 16, anchor=48) == (0, 48, 96, 144, 192, 236)  # on the lattice
    assert axis_starts(300, 64, 16, anchor=-5_000_000) == axis_starts(300, 64, 16, anchor=16)
    assert axis_starts(50, 64, 16, anchor=17) == (0,)
    grid = WindowGrid(300, 200, 64, 16, "cosine", anchor=(17, 48))
    assert grid.row_starts[1] == 31 and grid.col_starts[1] == 48 and grid.lattice == "grid"
    assert WindowGrid(300, 200, 64, 16, "cosine").lattice == "scene"


def test_lattice_records_survive_their_tag():
    record = LatticeRecord("grid", "crs", (-5_000_000, 500_022), (64, 0), (400, 300))
    assert LatticeRecord.from_tag(record.to_tag()) == record
    scene = LatticeRecord("scene", "no crs", None, (0, 0), (10, 20))
    assert LatticeRecord.from_tag(scene.to_tag()) == scene
    for text in (None, "", "{", "[]", '{"lattice": "grid", "anchor": null, "offset": [0, 0], '
                 '"size": [1, 1]}', '{"lattice": "diagonal", "anchor": null, "offset": [0, 0],'
                 ' "size": [1, 1]}'):
        assert LatticeRecord.from_tag(text) is None
    assert record.window_grid(64, 16, "cosine") == WindowGrid(400, 300, 64, 16, "cosine",
                                                              (-5_000_000, 500_022))
