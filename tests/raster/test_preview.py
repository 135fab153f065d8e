"""Tests of the PNG previews: band rule, stretch, grid layout and clean PNG files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning

from geogan.errors import OutputError
from geogan.raster.preview import (
    downsample_for_preview,
    grid,
    normalized_to_display,
    to_display_rgb,
    write_png,
)


def read_png(path: Path) -> NDArray[np.uint8]:
    """The pixels of a PNG, (C, H, W); reading one is expected to warn about georeferencing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            assert src.driver == "PNG"
            data: NDArray[np.uint8] = src.read()
    return data


def ramp(bands: int, dtype: str = "float32") -> NDArray[np.generic]:
    """(bands, 10, 10) with band ``b`` holding 100 * b + 0..99."""
    values = np.arange(100, dtype=np.float64).reshape(10, 10)
    return np.stack([values + 100 * b for b in range(bands)]).astype(dtype)


# -- write_png -------------------------------------------------------------------------


def test_write_png_round_trip_is_clean(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (3, 37, 53), dtype=np.uint8)
    path = tmp_path / "preview.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a NotGeoreferencedWarning
        write_png(path, rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png"]  # no .aux.xml
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(read_png(path), rgb)


def test_write_png_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    write_png(str(path), np.zeros((3, 4, 4), dtype=np.uint8))
    write_png(path, np.full((3, 6, 5), 200, dtype=np.uint8))
    np.testing.assert_array_equal(read_png(path), np.full((3, 6, 5), 200, dtype=np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_write_png_into_a_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "p.png"
    with pytest.raises(OutputError, match=r"p\.png"):
        write_png(path, np.zeros((3, 4, 4), dtype=np.uint8))
    assert not path.parent.exists()


def test_write_png_over_a_folder_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(OutputError, match=r"taken\.png"):
        write_png(tmp_path / "taken.png", np.zeros((3, 4, 4), dtype=np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["taken.png"]


def test_write_png_refuses_other_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "p.png", np.zeros((3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_png(tmp_path / "p.png", np.zeros((1, 4, 4), dtype=np.uint8))


# -- band rule and stretch -------------------------------------------------------------


@pytest.mark.parametrize(("bands", "shown"), [(1, [0, 0, 0]), (2, [0, 0, 0]), (3, [0, 1, 2]),
                                              (4, [0, 1, 2])])
def test_band_rule(bands: int, shown: list[int]) -> None:
    # Each band a different constant, so the output tells which band went where.
    array = np.stack([np.full((5, 6), 10 * (b + 1), dtype=np.uint8) for b in range(bands)])
    rgb = to_display_rgb(array)
    assert rgb.shape == (3, 5, 6) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[:, 0, 0], [10 * (b + 1) for b in shown])


def test_stretch_maps_percentiles_to_the_ends() -> None:
    band = np.linspace(0.0, 100.0, 101).reshape(1, 1, 101)  # p2 = 2, p98 = 98
    rgb = to_display_rgb(band)
    grey = rgb[0, 0]
    assert (rgb[0] == rgb[1]).all() and (rgb[0] == rgb[2]).all()
    assert grey[2] == 0 and grey[98] == 255
    assert grey[:3].max() == 0 and grey[98:].min() == 255  # clipped beyond
    assert grey[50] == 128  # 48 / 96 * 255 = 127.5, rounded half to even
    assert (np.diff(grey.astype(int)) >= 0).all()


def test_stretch_is_per_band() -> None:
    rgb = to_display_rgb(ramp(3))
    # Every band spans its own 2..98 percentile range, whatever its offset.
    for band in rgb:
        assert band.min() == 0 and band.max() == 255
    np.testing.assert_array_equal(rgb[0], rgb[2])


def test_explicit_limits() -> None:
    array = ramp(4)
    rgb = to_display_rgb(array, low=0.0, high=255.0)
    np.testing.assert_array_equal(rgb[0], np.arange(100).reshape(10, 10))
    np.testing.assert_array_equal(rgb[1], 100 + np.arange(100).reshape(10, 10))
    assert rgb[2, 0, 0] == 200 and rgb[2, 9, 9] == 255  # 299 clipped
    per_band = to_display_rgb(array, low=[0, 100, 200, 300], high=[255, 355, 455, 555])
    for band in range(3):
        np.testing.assert_array_equal(per_band[band], np.arange(100).reshape(10, 10))
    # One value per shown band is read the same way as one per input band.
    np.testing.assert_array_equal(
        to_display_rgb(array, low=[0, 100, 200], high=[255, 355, 455]), per_band
    )
    inverted = to_display_rgb(array[:1], low=255.0, high=0.0)
    assert inverted[0, 0, 0] == 255
    with pytest.raises(ValueError, match="low"):
        to_display_rgb(array, low=[0, 1])


def test_uint8_passes_through_unstretched() -> None:
    array = ramp(3, "uint8")
    rgb = to_display_rgb(array)
    np.testing.assert_array_equal(rgb, array)
    assert rgb is not array
    # Limits given: stretched like any other type.
    assert to_display_rgb(array, low=0, high=99)[0].max() == 255


def test_nan_mask_and_constant_bands_are_black() -> None:
    array = ramp(1)
    array[0, 0, 0] = np.nan
    mask = np.ones((10, 10), dtype=bool)
    mask[9] = False
    rgb = to_display_rgb(array, mask=mask)
    assert (rgb[:, 0, 0] == 0).all() and (rgb[:, 9] == 0).all()
    # The masked row (the largest values) is left out of the percentiles.
    assert rgb[0, 8, 8] == 255 and rgb[0, 8, 0] < 255
    assert (to_display_rgb(np.full((1, 4, 4), 7.0)) == 0).all()
    assert (to_display_rgb(np.full((2, 4, 4), np.nan)) == 0).all()


def test_normalized_to_display() -> None:
    array = np.stack([np.linspace(-1.0, 1.0, 5, dtype=np.float32).reshape(1, 5)] * 3)
    rgb = normalized_to_display(array)
    np.testing.assert_array_equal(rgb[0, 0], [0, 64, 128, 191, 255])  # 63.75, 127.5, 191.25
    assert rgb[0, 0, 0] == 0 and rgb[0, 0, -1] == 255
    assert (normalized_to_display(np.full((1, 2, 2), -1.0)) == 0).all()
    assert (normalized_to_display(np.full((1, 2, 2), 1.0)) == 255).all()
    assert (normalized_to_display(np.full((1, 2, 2), 3.0)) == 255).all()
    mask = np.array([[True, False], [True, True]])
    masked = normalized_to_display(np.ones((2, 2, 2)), mask)
    assert (masked[:, 0, 1] == 0).all() and (masked[:, 1, 1] == 255).all()


# -- grid and downsampling -------------------------------------------------------------


def test_grid_layout_and_gutter() -> None:
    a = np.full((3, 10, 20), 10, dtype=np.uint8)
    b = np.full((3, 5, 8), 20, dtype=np.uint8)
    c = np.full((3, 12, 6), 30, dtype=np.uint8)
    image = grid([[a, b], [c]], gutter=3, background=200)
    # Columns 20 and 8 wide, rows 10 and 12 tall, 3-pixel gutters between.
    assert image.shape == (3, 10 + 3 + 12, 20 + 3 + 8) and image.dtype == np.uint8
    assert (image[:, :10, :20] == 10).all()
    assert (image[:, :5, 23:31] == 20).all()
    assert (image[:, 13:25, :6] == 30).all()
    assert (image[:, :, 20:23] == 200).all()  # vertical gutter
    assert (image[:, 10:13, :] == 200).all()  # horizontal gutter
    assert (image[:, 5:10, 23:] == 200).all()  # padding under the short panel
    assert (image[:, 13:, 6:] == 200).all()  # empty cell of the short row


def test_grid_of_equal_panels() -> None:
    panel = np.zeros((3, 16, 16), dtype=np.uint8)
    image = grid([[panel] * 3] * 2)
    assert image.shape == (3, 2 * 16 + 4, 3 * 16 + 4 * 2)
    assert image.max() == 255 and image[:, :16, :16].max() == 0
    assert grid([[panel]], gutter=0).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="panel"):
        grid([])
    with pytest.raises(ValueError, match="uint8"):
        grid([[panel.astype(np.float32)]])


@pytest.mark.parametrize(
    ("shape", "max_side", "expected"),
    [((3, 1000, 600), 300, (3, 250, 150)), ((1, 301, 300), 300, (1, 151, 150)),
     ((2, 100, 80), 100, (2, 100, 80)), ((5, 7), 2, (2, 2))],
)
def test_downsample_for_preview(
    shape: tuple[int, ...], max_side: int, expected: tuple[int, ...]
) -> None:
    array = np.zeros(shape, dtype=np.int16)
    small = downsample_for_preview(array, max_side)
    assert small.shape == expected and small.dtype == np.int16
    assert max(small.shape[-2:]) <= max_side


def test_downsample_keeps_values() -> None:
    array = ramp(2)
    small = downsample_for_preview(array, 5)
    np.testing.assert_array_equal(small, array[:, ::2, ::2])
    with pytest.raises(ValueError, match="max_side"):
        downsample_for_preview(array, 0)
