"""Band normalisation: uint8 full range, percentile clip for other types, inverse, storage."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from geogan.nn.normalization import BandNormalization
from geogan.raster.band_stats import BandStatistics, StatisticsAccumulator


def stats(p2: float, p98: float) -> BandStatistics:
    return BandStatistics(count=100, min=p2 - 10, max=p98 + 10, mean=(p2 + p98) / 2, std=1.0,
                          p2=p2, p98=p98)


def test_uint8_maps_the_full_range_and_round_trips_exactly():
    norm = BandNormalization.from_statistics([stats(30, 200)] * 3, "uint8", None)
    assert norm.low == (0.0, 0.0, 0.0) and norm.high == (255.0, 255.0, 255.0)
    values = np.broadcast_to(np.arange(256, dtype=np.uint8), (3, 4, 256)).copy()
    y = norm.normalize(values)
    assert y.dtype == np.float32 and y.shape == values.shape
    assert y[0, 0, 0] == -1.0 and y[0, 0, 255] == 1.0
    back = norm.denormalize(y)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, values)


def test_uint16_maps_p2_and_p98_to_minus_one_and_one_and_clips_beyond():
    norm = BandNormalization.from_statistics([stats(1000, 3000), stats(0, 100)], "uint16", 0)
    assert norm.low == (1000.0, 0.0) and norm.high == (3000.0, 100.0) and norm.bands == 2
    x = np.array([[[1000, 3000, 2000, 500, 60000]], [[0, 100, 50, 0, 200]]], dtype=np.uint16)
    y = norm.normalize(x)
    np.testing.assert_allclose(y[0, 0], [-1, 1, 0, -1, 1], atol=1e-6)
    np.testing.assert_allclose(y[1, 0], [-1, 1, 0, -1, 1], atol=1e-6)
    back = norm.denormalize(y)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[0, 0], [1000, 3000, 2000, 1000, 3000])


def test_float32_metres_round_trip_within_the_clip_range():
    norm = BandNormalization.from_statistics([stats(-5.5, 120.25)], "float32", float("nan"))
    x = np.linspace(-5.5, 120.25, 1000, dtype=np.float32).reshape(1, 10, 100)
    back = norm.denormalize(norm.normalize(x))
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, x, atol=1e-4)
    assert norm.normalize(np.array([[[-100.0, 1e6]]], np.float32)).tolist() == [[[-1.0, 1.0]]]


def test_statistics_from_the_accumulator_give_numpy_percentiles(rng):
    data = rng.normal(50, 10, size=(2, 64, 64)).astype(np.float32)
    accumulator = StatisticsAccumulator(2, "float32")
    accumulator.update(data)
    norm = BandNormalization.from_statistics(accumulator.result(), "float32", None)
    np.testing.assert_allclose(norm.low, np.percentile(data.reshape(2, -1), 2, axis=1))
    np.testing.assert_allclose(norm.high, np.percentile(data.reshape(2, -1), 98, axis=1))


def test_constant_band_does_not_divide_by_zero():
    norm = BandNormalization.from_statistics([stats(7, 7)], "int16", None)
    assert norm.high == (8.0,)
    y = norm.normalize(np.full((1, 2, 2), 7, np.int16))
    assert np.isfinite(y).all() and (y == -1).all()
    np.testing.assert_array_equal(norm.denormalize(y), 7)


def test_non_finite_values_become_zero():
    norm = BandNormalization.from_statistics([stats(0, 10)], "float32", None)
    y = norm.normalize(np.array([[[np.nan, np.inf, -np.inf, 5.0]]], np.float32))
    np.testing.assert_array_equal(y, [[[0, 0, 0, 0]]])


def test_integer_denormalize_rounds_half_to_even_and_clips_to_the_type():
    norm = BandNormalization((0.0,), (4.0,), "int16", None)
    # y = x / 2 - 1: x = 0.5 → 0, 1.5 → 2, 2.5 → 2; far outside → type limits.
    y = np.array([[[-0.75, -0.25, 0.25, 1e9, -1e9, np.nan]]], np.float32)
    np.testing.assert_array_equal(norm.denormalize(y), [[[0, 2, 2, 32767, -32768, 2]]])


def test_band_count_mismatch_is_refused():
    norm = BandNormalization.from_statistics([stats(0, 1)] * 3, "uint8", None)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        norm.normalize(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="3, H, W"):
        norm.denormalize(np.zeros((4, 4), np.float32))


def test_invalid_bounds_are_refused():
    with pytest.raises(ValueError, match="high must exceed low"):
        BandNormalization((1.0,), (1.0,), "float32", None)
    with pytest.raises(ValueError, match="one low and one high"):
        BandNormalization((0.0, 1.0), (1.0,), "float32", None)
    with pytest.raises(ValueError):
        BandNormalization.from_statistics([], "uint8", None)


@pytest.mark.parametrize("nodata", [None, 0.0, -9999.0, float("nan")])
def test_to_dict_round_trip_with_plain_values_that_torch_loads_safely(nodata):
    norm = BandNormalization.from_statistics([stats(1.5, 9.25), stats(-3, 4)], "float32", nodata)
    d = norm.to_dict()
    assert isinstance(d["low"], list) and all(type(v) is float for v in d["low"] + d["high"])
    assert d["dtype"] == "float32"
    buffer = io.BytesIO()
    torch.save(d, buffer)
    buffer.seek(0)
    loaded = BandNormalization.from_dict(torch.load(buffer, weights_only=True))
    assert (loaded.low, loaded.high, loaded.dtype) == (norm.low, norm.high, norm.dtype)
    if nodata is not None and math.isnan(nodata):
        assert loaded.nodata is not None and math.isnan(loaded.nodata)
    else:
        assert loaded == norm
    with pytest.raises(ValueError, match="high"):
        BandNormalization.from_dict({"low": [0.0], "dtype": "uint8", "nodata": None})
