"""Tests of the shift estimate between the two images of a chip pair.

The synthetic scene is a land-cover map: random rectangles of a few classes painted
over each other at four times the chip resolution. Image ``a`` renders it like a
noisy three-band photo (one colour per class), image ``b`` like a one-band map with a
different, unrelated value per class, so that intensities do not correspond but
boundaries do. Rendering a window moved by ``k`` fine pixels and block-averaging it
displaces the content by exactly ``k / 4`` chip pixels, which gives sub-pixel shifts
with a known answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from geogan.chips.registration import Shift, _block_mean, estimate_shift

SIZE = 256
FINE = 4  # fine pixels per chip pixel
PAD = 12  # chip pixels of scene around the window, more than the largest shift
CLASSES = 6


def land_cover(rng: np.random.Generator) -> NDArray[np.int64]:
    """Class of each fine pixel of a scene of (SIZE + 2 * PAD) chip pixels a side."""
    side = (SIZE + 2 * PAD) * FINE
    classes = np.full((side, side), rng.integers(CLASSES), dtype=np.int64)
    for _ in range(60):
        y, x = rng.integers(0, side, 2)
        h, w = rng.integers(8 * FINE, 60 * FINE, 2)
        classes[y : y + h, x : x + w] = rng.integers(CLASSES)
    return classes


def render(
    classes: NDArray[np.int64], palette: NDArray[np.float64], dy: float = 0, dx: float = 0
) -> NDArray[np.float64]:
    """Chip (bands, SIZE, SIZE) whose content lies (dy, dx) chip pixels from the centre.

    Shifts are rounded to the nearest quarter pixel.
    """
    y0 = PAD * FINE - round(dy * FINE)
    x0 = PAD * FINE - round(dx * FINE)
    window = palette[classes[y0 : y0 + SIZE * FINE, x0 : x0 + SIZE * FINE]]  # (h, w, C)
    chip = window.reshape(SIZE, FINE, SIZE, FINE, -1).mean(axis=(1, 3))
    return np.moveaxis(chip, -1, 0)


def photo_and_map(seed: int, dy: float, dx: float) -> tuple[NDArray[np.uint16], NDArray[np.uint8]]:
    """A uint16 RGB photo of a scene, and a uint8 one-band map of it moved by (dy, dx)."""
    rng = np.random.default_rng(seed)
    classes = land_cover(rng)
    photo = render(classes, rng.uniform(0.0, 1.0, (CLASSES, 3)))
    photo += rng.normal(0.0, 0.05, photo.shape)  # texture and sensor noise
    flat = render(classes, rng.uniform(0.0, 1.0, (CLASSES, 1)), dy, dx)
    return (
        (1000 * photo.clip(0, None)).astype(np.uint16),
        (255 * flat).astype(np.uint8),
    )


@pytest.mark.parametrize(
    ("dy", "dx"), [(0, 5), (-3, 0), (8, -8), (-8, 8), (4, 7), (-6, -2), (1, -1)]
)
def test_integer_shifts_between_domains(dy: int, dx: int) -> None:
    a, b = photo_and_map(seed=(dy + 10) * 100 + dx + 10, dy=dy, dx=dx)
    shift = estimate_shift(a, b)
    assert shift.dy == pytest.approx(dy, abs=0.25)
    assert shift.dx == pytest.approx(dx, abs=0.25)
    assert shift.peak > 0.15


@pytest.mark.parametrize(
    ("dy", "dx"), [(0.25, -0.5), (2.75, 3.5), (-5.25, 1.75), (7.5, -6.75), (-0.75, -7.25)]
)
def test_subpixel_shifts_between_domains(dy: float, dx: float) -> None:
    a, b = photo_and_map(seed=int(100 * (dy - dx)) % 997, dy=dy, dx=dx)
    shift = estimate_shift(a, b)
    assert shift.dy == pytest.approx(dy, abs=0.5)
    assert shift.dx == pytest.approx(dx, abs=0.5)
    assert shift.magnitude == pytest.approx(np.hypot(dy, dx), abs=0.5)


def test_sign_convention() -> None:
    # The map's content lies 3 pixels right of and 2 pixels below the photo's.
    a, b = photo_and_map(seed=1, dy=2, dx=3)
    shift = estimate_shift(a, b)
    assert shift.dx > 2.5
    assert shift.dy > 1.5
    # Measuring the photo against the map gives the opposite shift.
    back = estimate_shift(b, a)
    assert back.dx == pytest.approx(-shift.dx, abs=0.25)
    assert back.dy == pytest.approx(-shift.dy, abs=0.25)


def test_same_place_gives_no_shift() -> None:
    a, b = photo_and_map(seed=2, dy=0, dx=0)
    shift = estimate_shift(a, b)
    assert shift.magnitude < 0.2
    assert shift.peak > 0.15


def test_inverted_intensities() -> None:
    # A surface model against an image whose bright and dark are swapped.
    rng = np.random.default_rng(3)
    classes = land_cover(rng)
    heights = rng.uniform(0.0, 40.0, (CLASSES, 1))
    a = render(classes, heights).astype(np.float32)
    b = (1000.0 - 20.0 * render(classes, heights, dy=-4.5, dx=2.25)).astype(np.int16)
    shift = estimate_shift(a, b)
    assert (shift.dy, shift.dx) == pytest.approx((-4.5, 2.25), abs=0.5)


def test_nodata_mask_and_nan() -> None:
    a, b16 = photo_and_map(seed=4, dy=-2.5, dx=6)
    b = b16.astype(np.float32)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    valid = rows + cols > 180  # a corner outside the footprint
    valid &= np.random.default_rng(5).random((SIZE, SIZE)) > 0.01  # scattered bad pixels
    a[:, ~valid] = 0
    b[:, ~valid] = np.nan
    shift = estimate_shift(a, b, valid)
    assert (shift.dy, shift.dx) == pytest.approx((-2.5, 6.0), abs=0.5)
    assert np.isfinite(shift.peak)
    # NaN alone marks pixels invalid too.
    assert estimate_shift(a, b) == shift


def test_featureless_input_gives_zero_confidence() -> None:
    a, b = photo_and_map(seed=6, dy=1, dx=1)
    flat = np.full((2, SIZE, SIZE), 17, dtype=np.uint8)
    ramp = np.broadcast_to(np.arange(SIZE, dtype=np.float64), (1, SIZE, SIZE))
    no_data = np.zeros((SIZE, SIZE), dtype=bool)
    cases: list[tuple[NDArray[Any], NDArray[Any], NDArray[np.bool_] | None]] = [
        (flat, b, None),
        (a, flat, None),
        (flat, flat, None),
        (ramp, b, None),  # a uniform slope has no edge either
        (a, b, no_data),
        (np.full((1, SIZE, SIZE), np.nan), b, None),
    ]
    for first, second, valid in cases:
        assert estimate_shift(first, second, valid) == Shift(0.0, 0.0, peak=0.0)


def test_unrelated_images_have_low_confidence() -> None:
    rng = np.random.default_rng(7)
    a = rng.random((3, SIZE, SIZE))
    b = rng.random((1, SIZE, SIZE))
    shift = estimate_shift(a, b)
    assert np.isfinite([shift.dx, shift.dy, shift.peak]).all()
    assert 0.0 <= shift.peak < 0.1
    other, _ = photo_and_map(seed=8, dy=0, dx=0)
    _, unrelated_map = photo_and_map(seed=9, dy=0, dx=0)
    assert estimate_shift(other, unrelated_map).peak < 0.12


def test_max_shift_bounds_the_search() -> None:
    a, b = photo_and_map(seed=10, dy=1, dx=-7)
    assert estimate_shift(a, b, max_shift=10).dx == pytest.approx(-7, abs=0.25)
    bounded = estimate_shift(a, b, max_shift=3)
    assert abs(bounded.dx) <= 3.5
    assert abs(bounded.dy) <= 3.5


def test_shape_errors() -> None:
    chip = np.zeros((1, 16, 16), dtype=np.uint8)
    with pytest.raises(ValueError, match="same H and W"):
        estimate_shift(chip, np.zeros((1, 16, 15), dtype=np.uint8))
    with pytest.raises(ValueError, match="same H and W"):
        estimate_shift(chip[0], chip)
    with pytest.raises(ValueError, match="mask"):
        estimate_shift(chip, chip, np.ones((15, 16), dtype=bool))
    with pytest.raises(ValueError, match="too small"):
        estimate_shift(chip[:, :2], chip[:, :2])


def test_magnitude() -> None:
    assert Shift(dx=3.0, dy=-4.0, peak=0.5).magnitude == 5.0


def test_block_averaged_estimate_keeps_the_shift() -> None:
    """scale=2 correlates 2 × 2 block means and reports the shift in full pixels."""
    rng = np.random.default_rng(5)
    coarse = rng.random((40, 40))
    scene = np.kron(coarse, np.ones((8, 8)))  # (320, 320) blocky texture with edges
    a = scene[None, 20:276, 20:276]
    b = 1.0 - scene[None, 20 - 2 : 276 - 2, 20 - 5 : 276 - 5]  # content 5 px right, 2 down
    found = estimate_shift(a, b, scale=2)
    assert abs(found.dx - 5.0) < 0.5 and abs(found.dy - 2.0) < 0.5
    assert found.peak > 0.1
    with pytest.raises(ValueError, match="scale"):
        estimate_shift(a, b, scale=0)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "bool", "int32",
                                   "float32"])
@pytest.mark.parametrize("scale", [2, 3, 16])
def test_block_means_are_the_floats_of_summing_strided_slices(dtype, scale):
    """Integer block sums (rows first) give exactly the float32 means that summing the
    strided slices in float32 gives, so the shifts in the index do not change."""
    rng = np.random.default_rng(scale)
    shape = (3, 70, 53)
    if dtype == "bool":
        image = rng.integers(0, 2, shape).astype(bool)
    elif dtype == "float32":
        image = rng.normal(0, 1e3, shape).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        image = rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
    h, w = shape[1] // scale, shape[2] // scale
    expected = np.zeros((shape[0], h, w), np.float32)
    for i in range(scale):
        for j in range(scale):
            expected += image[:, i : h * scale : scale, j : w * scale : scale]
    expected *= np.float32(1 / scale**2)
    got = _block_mean(image, scale)
    assert got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_tiny_chips_with_a_mask_have_no_measurable_shift():
    valid = np.ones((3, 4), dtype=bool)
    valid[0, 0] = False
    rng = np.random.default_rng(0)
    shift = estimate_shift(rng.random((1, 3, 4)), rng.random((1, 3, 4)), valid)
    assert shift == Shift(0.0, 0.0, peak=0.0)
