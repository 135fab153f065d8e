"""Tests of the streaming per-band statistics, checked against numpy on the same values."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from geogan.errors import NoChipsError
from geogan.raster.band_stats import BandStatistics, StatisticsAccumulator

BANDS = 3
SIZE = 32


def random_chip(rng: np.random.Generator, dtype: str) -> NDArray[Any]:
    """A (BANDS, SIZE, SIZE) chip spanning most of the type's range (or N(100, 30) floats)."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.normal(100.0, 30.0, (BANDS, SIZE, SIZE)).astype(dtype)
    info = np.iinfo(dtype)
    low, high = max(int(info.min), -(2**20)), min(int(info.max), 2**20)
    return rng.integers(low, high, (BANDS, SIZE, SIZE), endpoint=True).astype(dtype)


def feed(
    acc: StatisticsAccumulator, rng: np.random.Generator, dtype: str, chips: int
) -> NDArray[Any]:
    """Update ``acc`` with random masked chips; return the valid values, (BANDS, N)."""
    seen = []
    for _ in range(chips):
        chip = random_chip(rng, dtype)
        valid = rng.random((SIZE, SIZE)) > 0.3
        acc.update(chip, valid)
        seen.append(chip[:, valid])
    return np.concatenate(seen, axis=1)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_histogram_types_match_numpy_exactly(dtype: str) -> None:
    rng = np.random.default_rng(1)
    acc = StatisticsAccumulator(BANDS, dtype)
    values = feed(acc, rng, dtype, chips=5)
    assert acc.exact_percentiles
    for band, stats in enumerate(acc.result()):
        x = values[band]
        p2, p98 = np.percentile(x, [2, 98])
        assert stats.count == x.size
        assert stats.min == np.min(x)
        assert stats.max == np.max(x)
        assert stats.p2 == p2
        assert stats.p98 == p98
        # Mean and std are summed in a different order than numpy's: float64 rounding.
        assert stats.mean == pytest.approx(np.mean(x), rel=1e-12)
        assert stats.std == pytest.approx(np.std(x), rel=1e-12)


def test_histogram_percentiles_exact_on_small_and_tied_samples() -> None:
    # Few values with many ties put the interpolation between equal and unequal
    # order statistics, on both sides of gamma = 0.5.
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 7, 50, 51, 101):
        values = rng.integers(0, 5, (1, 1, n)).astype(np.uint8)
        acc = StatisticsAccumulator(1, "uint8")
        acc.update(values)
        stats = acc.result()[0]
        assert (stats.p2, stats.p98) == tuple(np.percentile(values, [2, 98]))


@pytest.mark.parametrize("dtype", ["int32", "uint32", "float32", "float64"])
def test_wide_types_match_numpy_before_any_thinning(dtype: str) -> None:
    rng = np.random.default_rng(3)
    acc = StatisticsAccumulator(BANDS, dtype)
    values = feed(acc, rng, dtype, chips=5)
    assert not acc.exact_percentiles
    for band, stats in enumerate(acc.result()):
        x = values[band]
        assert stats.count == x.size
        assert stats.min == np.min(x)
        assert stats.max == np.max(x)
        assert stats.mean == pytest.approx(np.mean(x, dtype=np.float64), rel=1e-9)
        assert stats.std == pytest.approx(np.std(x, dtype=np.float64), rel=1e-9)
        p2, p98 = np.percentile(x, [2, 98])
        assert stats.p2 == pytest.approx(p2, rel=1e-6)
        assert stats.p98 == pytest.approx(p98, rel=1e-6)


def test_thinned_sample_stays_bounded_and_percentiles_stay_close() -> None:
    rng = np.random.default_rng(4)
    cap = 2_000
    acc = StatisticsAccumulator(BANDS, "float32", sample_cap=cap)
    seen = []
    for _ in range(60):
        chip = rng.lognormal(3.0, 1.0, (BANDS, SIZE, SIZE)).astype(np.float32)
        acc.update(chip)
        seen.append(chip.reshape(BANDS, -1))
        assert max(acc.sample_sizes) <= 2 * cap
    values = np.concatenate(seen, axis=1)
    assert values.shape[1] > 20 * cap  # the sample really was thinned
    for band, stats in enumerate(acc.result()):
        x = values[band]
        # Count, extremes and moments stay exact; percentiles are off by a few ranks.
        assert stats.count == x.size
        assert (stats.min, stats.max) == (x.min(), x.max())
        assert stats.mean == pytest.approx(np.mean(x, dtype=np.float64), rel=1e-9)
        assert stats.std == pytest.approx(np.std(x, dtype=np.float64), rel=1e-9)
        assert np.mean(x <= stats.p2) == pytest.approx(0.02, abs=0.006)
        assert np.mean(x <= stats.p98) == pytest.approx(0.98, abs=0.006)


def test_thinning_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[BandStatistics]:
        rng = np.random.default_rng(5)
        acc = StatisticsAccumulator(BANDS, "float64", seed=seed, sample_cap=500)
        feed(acc, rng, "float64", chips=10)
        return acc.result()

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_histogram_memory_does_not_grow() -> None:
    rng = np.random.default_rng(6)
    acc = StatisticsAccumulator(BANDS, "uint16")
    feed(acc, rng, "uint16", chips=20)
    assert acc.sample_sizes == (0,) * BANDS  # no sample: a fixed-size histogram


def test_nan_and_inf_are_ignored_band_by_band() -> None:
    rng = np.random.default_rng(7)
    chip = rng.normal(0.0, 1.0, (BANDS, SIZE, SIZE)).astype(np.float32)
    chip[0, :4] = np.nan
    chip[1, 5, 5] = np.inf
    chip[1, 6, 6] = -np.inf
    valid = np.ones((SIZE, SIZE), dtype=bool)
    valid[-3:] = False
    acc = StatisticsAccumulator(BANDS, "float32")
    acc.update(chip, valid)
    for band, stats in enumerate(acc.result()):
        x = chip[band][valid]
        x = x[np.isfinite(x)]
        assert stats.count == x.size
        assert (stats.min, stats.max) == (x.min(), x.max())
        assert stats.mean == pytest.approx(np.mean(x, dtype=np.float64), rel=1e-9)
        assert np.isfinite([stats.std, stats.p2, stats.p98]).all()
        assert stats.p98 == pytest.approx(np.percentile(x, 98), rel=1e-6)
    assert acc.result()[0].count == (SIZE - 4 - 3) * SIZE


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_merge_equals_one_accumulator(dtype: str) -> None:
    rng = np.random.default_rng(8)
    chips = [random_chip(rng, dtype) for _ in range(6)]
    masks = [rng.random((SIZE, SIZE)) > 0.2 for _ in range(6)]
    single = StatisticsAccumulator(BANDS, dtype)
    left = StatisticsAccumulator(BANDS, dtype)
    right = StatisticsAccumulator(BANDS, dtype)
    for i, (chip, valid) in enumerate(zip(chips, masks, strict=True)):
        single.update(chip, valid)
        (left if i % 2 else right).update(chip, valid)
    left.merge(right)
    for merged, alone in zip(left.result(), single.result(), strict=True):
        assert merged.count == alone.count
        assert (merged.min, merged.max) == (alone.min, alone.max)
        assert (merged.p2, merged.p98) == (alone.p2, alone.p98)
        assert merged.mean == pytest.approx(alone.mean, rel=1e-12)
        assert merged.std == pytest.approx(alone.std, rel=1e-12)


def test_merge_of_thinned_samples_stays_bounded() -> None:
    rng = np.random.default_rng(9)
    cap = 1_000
    parts = [StatisticsAccumulator(BANDS, "float32", sample_cap=cap) for _ in range(3)]
    # Different numbers of chips leave the parts at different sampling rates.
    values = np.concatenate(
        [feed(part, rng, "float32", chips=2 + 4 * i) for i, part in enumerate(parts)], axis=1
    )
    merged = parts[0]
    merged.merge(parts[1])
    merged.merge(parts[2])
    assert max(merged.sample_sizes) <= 2 * cap
    for band, stats in enumerate(merged.result()):
        x = values[band]
        assert stats.count == x.size
        assert (stats.min, stats.max) == (x.min(), x.max())
        assert stats.mean == pytest.approx(np.mean(x, dtype=np.float64), rel=1e-9)
        assert np.mean(x <= stats.p2) == pytest.approx(0.02, abs=0.01)
        assert np.mean(x <= stats.p98) == pytest.approx(0.98, abs=0.01)


def test_merge_rejects_other_types() -> None:
    acc = StatisticsAccumulator(BANDS, "uint8")
    with pytest.raises(ValueError, match="cannot merge"):
        acc.merge(StatisticsAccumulator(BANDS, "uint16"))
    with pytest.raises(ValueError, match="cannot merge"):
        acc.merge(StatisticsAccumulator(BANDS + 1, "uint8"))


def test_no_valid_pixel_raises() -> None:
    acc = StatisticsAccumulator(BANDS, "uint8")
    with pytest.raises(NoChipsError, match="no valid pixel"):
        acc.result()
    acc.update(np.ones((BANDS, SIZE, SIZE), dtype=np.uint8), np.zeros((SIZE, SIZE), dtype=bool))
    with pytest.raises(NoChipsError):
        acc.result()


def test_band_with_only_nan_raises() -> None:
    chip = np.ones((2, SIZE, SIZE), dtype=np.float32)
    chip[1] = np.nan
    acc = StatisticsAccumulator(2, "float32")
    acc.update(chip)
    with pytest.raises(NoChipsError, match="band"):
        acc.result()


def test_update_checks_shapes_and_types() -> None:
    acc = StatisticsAccumulator(BANDS, "uint16")
    with pytest.raises(ValueError, match="shape"):
        acc.update(np.zeros((BANDS + 1, SIZE, SIZE), dtype=np.uint16))
    with pytest.raises(ValueError, match="mask"):
        acc.update(np.zeros((BANDS, SIZE, SIZE), dtype=np.uint16), np.ones((SIZE, 3), bool))
    with pytest.raises(ValueError, match="float32"):
        acc.update(np.zeros((BANDS, SIZE, SIZE), dtype=np.float32))
    acc.update(np.full((BANDS, SIZE, SIZE), 7, dtype=np.uint8))  # safe cast is fine
    assert acc.result()[0].mean == 7.0
    with pytest.raises(ValueError, match="integer or float"):
        StatisticsAccumulator(BANDS, "bool")


def test_dict_round_trip() -> None:
    rng = np.random.default_rng(10)
    acc = StatisticsAccumulator(BANDS, "int16")
    feed(acc, rng, "int16", chips=2)
    for stats in acc.result():
        as_json = json.loads(json.dumps(stats.to_dict()))
        assert BandStatistics.from_dict(as_json) == stats
        assert isinstance(as_json["count"], int)
    with pytest.raises(ValueError, match="p98"):
        BandStatistics.from_dict({"count": 1, "min": 0, "max": 0, "mean": 0, "std": 0, "p2": 0})
