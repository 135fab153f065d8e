"""The seam score: 1 on a smooth field, above 1 with steps on the engine's window lines."""

from __future__ import annotations

import numpy as np
import pytest

from geogan.errors import ConfigError
from geogan.evaluation.seams import SeamSums, seam_lines, seam_score, seam_sums
from geogan.grids.windows import WindowGrid
from tests.helpers import smooth_field

TILE, OVERLAP = 64, 16


def stepped(field: np.ndarray, lines: tuple[np.ndarray, np.ndarray], step: float) -> np.ndarray:
    """``field`` with a jump of ``step`` across every line: each window-boundary band of
    rows and columns offset by a different constant."""
    rows, cols = lines
    offset = (np.cumsum(rows) % 2)[:, None] * step + (np.cumsum(cols) % 2)[None, :] * step
    return field + offset


def test_lines_are_where_the_engine_windows_start_and_end():
    grid = WindowGrid(200, 130, TILE, OVERLAP, "cosine")
    rows, cols = seam_lines(grid)
    # starts 0, 48, 96, 136 (shifted inwards): edges at 48, 96, 136 and ends 64, 112, 160.
    assert grid.row_starts == (0, 48, 96, 136)
    assert np.flatnonzero(rows).tolist() == [48, 64, 96, 112, 136, 160]
    assert np.flatnonzero(cols).tolist() == [48, 64, 66, 112]
    # A centre crop hands over half-way through each overlap.
    none_rows, _ = seam_lines(WindowGrid(200, 130, TILE, OVERLAP, "none"))
    assert np.flatnonzero(none_rows).tolist() == [56, 104, 148]


def test_a_smooth_field_has_no_seams(rng):
    field = smooth_field(rng, (300, 280), 8)
    score = seam_score(field, None, TILE, OVERLAP)
    assert score is not None
    assert score == pytest.approx(1.0, abs=0.1)


def test_steps_on_the_window_lines_raise_the_score(rng):
    field = smooth_field(rng, (300, 280), 8)
    grid = WindowGrid(300, 280, TILE, OVERLAP, "cosine")
    seamy = stepped(field, seam_lines(grid), 0.2)  # about twice a typical neighbour step
    assert seam_score(seamy, None, TILE, OVERLAP) > 2.0
    # The same steps elsewhere (another grid's lines) are not this grid's seams.
    other = stepped(field, seam_lines(WindowGrid(300, 280, 100, 10, "cosine")), 0.2)
    assert seam_score(other, None, TILE, OVERLAP) < 1.3


def test_invalid_pixels_are_ignored(rng):
    field = smooth_field(rng, (300, 280), 8)
    valid = np.ones(field.shape, dtype=bool)
    valid[:, 40:70] = False  # hides a column line and its step
    grid = WindowGrid(300, 280, TILE, OVERLAP, "cosine")
    rows, cols = seam_lines(grid)
    only_hidden = np.zeros_like(cols)
    only_hidden[48] = only_hidden[64] = True
    seamy = stepped(field, (np.zeros_like(rows), only_hidden), 1.0)
    seamy[~valid] = np.nan  # NaN under invalid pixels never leaks into a sum
    assert seam_score(seamy, valid, TILE, OVERLAP) == pytest.approx(
        seam_score(field, valid, TILE, OVERLAP))


def test_pieces_add_up_to_the_whole(rng):
    data = np.stack([smooth_field(rng, (150, 170), 8) for _ in range(2)])
    grid = WindowGrid(150, 170, TILE, OVERLAP, "linear")
    rows, cols = seam_lines(grid)
    whole = seam_sums(data, None, rows, cols)
    total = SeamSums()
    for r0 in range(0, 150, 40):
        for c0 in range(0, 170, 50):
            r1, c1 = min(r0 + 40, 150), min(c0 + 50, 170)
            rr1, cc1 = min(r1 + 1, 150), min(c1 + 1, 170)  # one more: the second pixel
            total += seam_sums(data[:, r0:rr1, c0:cc1], None, rows[r0:rr1], cols[c0:cc1],
                               (0, r1 - r0), (0, c1 - c0))
    assert (total.across_count, total.elsewhere_count) == (whole.across_count,
                                                           whole.elsewhere_count)
    assert total.score == pytest.approx(whole.score, rel=1e-12)


def test_one_window_has_no_score_and_bad_options_fail(rng):
    assert seam_score(smooth_field(rng, (60, 60)), None, TILE, OVERLAP) is None
    with pytest.raises(ConfigError):
        seam_score(smooth_field(rng, (100, 100)), None, TILE, 40)
