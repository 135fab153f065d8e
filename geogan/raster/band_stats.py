"""Streaming per-band statistics of the chips a dataset is cut into.

The chip exporter sees chips one at a time and must describe each band of the whole
dataset (count, min, max, mean, standard deviation, 2nd and 98th percentiles) without
holding the chips in memory. :class:`StatisticsAccumulator` does that in bounded memory,
whatever the number of chips, and two accumulators filled by parallel workers can be
merged into one.

How each statistic is kept, and why:

* Integer types whose range fits :data:`MAX_HISTOGRAM_BINS` bins (``uint8``, ``int8``,
  ``uint16``, ``int16``) are counted in a full histogram, one bin per possible value.
  Every statistic is then *exact*: min, max and the percentiles are read off the
  cumulative histogram with numpy's default ``linear`` interpolation, so they equal
  ``np.percentile(valid_values, [2, 98])``; mean and standard deviation come from a
  two-pass sum over the bins in float64. A histogram costs 512 KiB per ``uint16`` band
  and one ``np.bincount`` per update.
* Other types (``int32``, ``uint32``, ``float32``, ``float64``, ...) have too many
  possible values for that. Count, min and max are still exact; mean and variance are
  combined chip by chip with Chan's parallel update in float64, which stays accurate
  where a running sum of squares would cancel. The percentiles are *approximate*: they
  are computed from a uniform random subsample of the valid values. Every value seen
  is kept until a band holds more than ``2 * sample_cap`` of them; then a random half
  is dropped and later values are kept with half the probability, as often as needed.
  Each value seen is therefore in the sample with the same probability ``2**-k``, the
  sample holds between ``sample_cap`` and ``2 * sample_cap`` values once it has been
  thinned, and the percentiles are exact until it is. After that, the rank of the
  2nd (or 98th) percentile within all the values is off by about
  ``sqrt(0.02 * 0.98 / sample_cap)``: 0.014 % of the values with the default cap.
  The subsample is drawn from a generator seeded by ``seed``, so the same chips in
  the same order give the same result.

NaN and infinite values of floating-point data are treated as nodata, band by band, so
each band keeps its own count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geogan.errors import NoChipsError

MAX_HISTOGRAM_BINS = 2**16
"""Largest number of possible values for which a type gets an exact histogram."""

PERCENTILES = (2.0, 98.0)
"""The percentiles kept for each band, as given to ``np.percentile``."""


@dataclass(frozen=True)
class BandStatistics:
    """Summary of the valid pixels of one band over all the chips seen.

    Attributes:
        count: Number of valid pixels.
        min: Smallest valid value.
        max: Largest valid value.
        mean: Mean of the valid values.
        std: Population standard deviation (``ddof=0``) of the valid values.
        p2: 2nd percentile, numpy's default ``linear`` definition.
        p98: 98th percentile, numpy's default ``linear`` definition.
    """

    count: int
    min: float
    max: float
    mean: float
    std: float
    p2: float
    p98: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the statistics as a plain dict, ready for JSON metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BandStatistics:
        """Rebuild statistics written by :meth:`to_dict`.

        Args:
            d: Mapping with one entry per field; extra entries are ignored so that
                metadata written by a newer version can still be read.

        Returns:
            The statistics, with ``count`` as an int and the rest as floats.

        Raises:
            ValueError: If a field is missing.
        """
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"band statistics lack the field(s) {', '.join(missing)}")
        return cls(
            count=int(d["count"]),
            min=float(d["min"]),
            max=float(d["max"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
            p2=float(d["p2"]),
            p98=float(d["p98"]),
        )


def uses_histograms(dtype: str | np.dtype[Any]) -> bool:
    """Whether :class:`StatisticsAccumulator` keeps exact histograms for this data type
    (integers of at most :data:`MAX_HISTOGRAM_BINS` values), which add up in any order."""
    data_type = np.dtype(dtype)
    if data_type.kind not in "ui":
        return False
    info = np.iinfo(data_type)
    return int(info.max) - int(info.min) + 1 <= MAX_HISTOGRAM_BINS


class StatisticsAccumulator:
    """Per-band statistics of chips fed one at a time, in bounded memory.

    See the module docstring for which statistics are exact and how the percentiles
    of wide and floating-point types are approximated.

    Args:
        band_count: Number of bands of every chip.
        dtype: Data type of the chips. Data of a type that casts safely to it
            (``uint8`` into a ``uint16`` accumulator) is accepted too.
        seed: Seed of the generator that draws the percentile subsample; unused by
            histogram types.
        sample_cap: Size the percentile subsample of each band is thinned back to
            once it exceeds twice this number.

    Raises:
        ValueError: If ``band_count`` or ``sample_cap`` is not positive, or ``dtype``
            is not an integer or floating-point type.
    """

    def __init__(
        self,
        band_count: int,
        dtype: str | np.dtype[Any],
        *,
        seed: int = 0,
        sample_cap: int = 1_000_000,
    ) -> None:
        if band_count < 1:
            raise ValueError(f"band_count must be at least 1, not {band_count}")
        if sample_cap < 1:
            raise ValueError(f"sample_cap must be at least 1, not {sample_cap}")
        self.band_count = band_count
        self.dtype: np.dtype[Any] = np.dtype(dtype)
        if self.dtype.kind not in "uif":
            raise ValueError(f"statistics need integer or float data, not {self.dtype}")
        self.sample_cap = sample_cap

        info = np.iinfo(self.dtype) if self.dtype.kind in "ui" else None
        self._histogram_mode = uses_histograms(self.dtype)
        # Histogram mode: bin i counts the value i - offset.
        self._offset = -int(info.min) if info is not None and self._histogram_mode else 0
        nbins = int(info.max) - int(info.min) + 1 if info is not None else 0
        self._hist: NDArray[np.int64] = np.zeros(
            (band_count, nbins if self._histogram_mode else 0), dtype=np.int64
        )

        # Sample mode: exact moments and extremes, subsample for the percentiles.
        self._rng = np.random.default_rng(seed)
        self._count = np.zeros(band_count, dtype=np.int64)
        self._mean = np.zeros(band_count, dtype=np.float64)
        self._m2 = np.zeros(band_count, dtype=np.float64)  # sum of squared deviations
        self._min: list[Any] = [None] * band_count  # scalars of self.dtype
        self._max: list[Any] = [None] * band_count
        self._samples: list[list[NDArray[Any]]] = [[] for _ in range(band_count)]
        self._sample_len = [0] * band_count
        self._level = [0] * band_count  # a value is sampled with probability 2**-level

    @property
    def exact_percentiles(self) -> bool:
        """Whether the percentiles are exact for this type whatever the data size."""
        return self._histogram_mode

    @property
    def sample_sizes(self) -> tuple[int, ...]:
        """Number of values held in each band's percentile subsample (0 for histograms)."""
        return tuple(self._sample_len)

    def update(self, data: NDArray[Any], valid: NDArray[np.bool_] | None = None) -> None:
        """Add the valid pixels of one chip.

        Args:
            data: Chip of shape (C, H, W) with C equal to ``band_count``.
            valid: Validity mask of shape (H, W), True where a pixel holds data; None
                when every pixel does. NaN and infinite values are skipped as well.

        Raises:
            ValueError: If the shapes do not match, or the data type does not cast
                safely to the accumulator's.
        """
        if data.ndim != 3 or data.shape[0] != self.band_count:
            raise ValueError(
                f"expected a chip of shape ({self.band_count}, H, W), got {data.shape}"
            )
        if not np.can_cast(data.dtype, self.dtype, casting="safe"):
            raise ValueError(f"cannot add {data.dtype} data to {self.dtype} statistics")
        if valid is not None and valid.shape != data.shape[1:]:
            raise ValueError(
                f"mask of shape {valid.shape} does not match chip of shape {data.shape}"
            )
        if valid is None or valid.all():  # a reshape instead of a boolean-index copy
            values = data.reshape(self.band_count, -1)  # (C, H*W)
        else:
            values = data[:, valid.astype(bool, copy=False)]  # (C, N)
        if values.shape[1] == 0:
            return
        if self._histogram_mode:
            self._update_histogram(values)
        else:
            values = values.astype(self.dtype, copy=False)
            for band in range(self.band_count):
                self._update_band(band, values[band])

    def merge(self, other: StatisticsAccumulator) -> None:
        """Add everything another accumulator has seen to this one.

        The result is the same as if this accumulator had seen all the chips, except
        for which values the percentile subsample holds. ``other`` is left unchanged.

        Args:
            other: Accumulator with the same band count and data type.

        Raises:
            ValueError: If the band counts or data types differ.
        """
        if other.band_count != self.band_count or other.dtype != self.dtype:
            raise ValueError(
                f"cannot merge statistics of {other.band_count} {other.dtype} band(s) "
                f"into statistics of {self.band_count} {self.dtype} band(s)"
            )
        if self._histogram_mode:
            self._hist += other._hist
            return
        for band in range(self.band_count):
            n_b = int(other._count[band])
            if n_b == 0:
                continue
            self._combine_moments(band, n_b, float(other._mean[band]), float(other._m2[band]))
            self._combine_extremes(band, other._min[band], other._max[band])
            # Bring both subsamples to the lower of the two sampling rates, then join.
            level = max(self._level[band], other._level[band])
            mine = self._thin(self._samples[band], level - self._level[band])
            theirs = self._thin(other._samples[band], level - other._level[band])
            self._samples[band] = mine + theirs
            self._sample_len[band] = sum(len(s) for s in self._samples[band])
            self._level[band] = level
            self._compact(band)

    def result(self) -> list[BandStatistics]:
        """Return the statistics of each band.

        Returns:
            One :class:`BandStatistics` per band, in band order.

        Raises:
            NoChipsError: If a band has not had a single valid pixel.
        """
        counts = self._hist.sum(axis=1) if self._histogram_mode else self._count
        empty = [str(band + 1) for band in range(self.band_count) if counts[band] == 0]
        if empty:
            raise NoChipsError(
                f"no valid pixel in band(s) {', '.join(empty)} of any chip: every pixel "
                "was nodata; check the nodata value and the area of interest"
            )
        if self._histogram_mode:
            return [self._histogram_result(band) for band in range(self.band_count)]
        return [self._sample_result(band) for band in range(self.band_count)]

    # --- Histogram mode -------------------------------------------------------------

    def _update_histogram(self, values: NDArray[Any]) -> None:
        nbins = self._hist.shape[1]
        for band in range(self.band_count):
            row = values[band]
            if self._offset:
                row = row.astype(np.int32) + self._offset
            self._hist[band] += np.bincount(row, minlength=nbins)

    def _histogram_result(self, band: int) -> BandStatistics:
        hist = self._hist[band]
        nonzero = np.flatnonzero(hist)
        hist = hist[nonzero]  # only the values that occur
        values = (nonzero - self._offset).astype(np.float64)
        count = int(hist.sum())
        mean = float(np.dot(hist, values)) / count
        var = float(np.dot(hist, (values - mean) ** 2)) / count
        cdf = np.cumsum(hist)  # cdf[i]: number of values <= values[i]

        def order_statistic(rank: int) -> float:
            # Value at position `rank` of the sorted valid values.
            return float(values[np.searchsorted(cdf, rank, side="right")])

        p2, p98 = (_linear_percentile(count, q, order_statistic) for q in PERCENTILES)
        return BandStatistics(
            count=count,
            min=float(values[0]),
            max=float(values[-1]),
            mean=mean,
            std=var**0.5,
            p2=p2,
            p98=p98,
        )

    # --- Sample mode ----------------------------------------------------------------

    def _update_band(self, band: int, row: NDArray[Any]) -> None:
        if self.dtype.kind == "f":
            finite = np.isfinite(row)
            if not finite.all():
                row = row[finite]
        n_b = row.size
        if n_b == 0:
            return
        mean_b = float(row.mean(dtype=np.float64))
        deviation = row - np.float64(mean_b)  # float64 whatever the input type
        m2_b = float(np.dot(deviation, deviation))
        self._combine_moments(band, n_b, mean_b, m2_b)
        self._combine_extremes(band, row.min(), row.max())
        level = self._level[band]
        if level:
            row = row[self._rng.random(n_b) < 0.5**level]
        self._samples[band].append(row.copy())  # own the values, not the caller's chip
        self._sample_len[band] += row.size
        self._compact(band)

    def _combine_moments(self, band: int, n_b: int, mean_b: float, m2_b: float) -> None:
        # Chan, Golub & LeVeque's pairwise update of count, mean and M2.
        n_a = int(self._count[band])
        n = n_a + n_b
        delta = mean_b - float(self._mean[band])
        self._mean[band] += delta * n_b / n
        self._m2[band] += m2_b + delta * delta * (n_a * n_b / n)
        self._count[band] = n

    def _combine_extremes(self, band: int, low: Any, high: Any) -> None:
        if self._min[band] is None or low < self._min[band]:
            self._min[band] = low
        if self._max[band] is None or high > self._max[band]:
            self._max[band] = high

    def _thin(self, chunks: list[NDArray[Any]], halvings: int) -> list[NDArray[Any]]:
        # Keep each value with probability 2**-halvings.
        if halvings == 0:
            return list(chunks)
        keep = 0.5**halvings
        return [c[self._rng.random(c.size) < keep] for c in chunks]

    def _compact(self, band: int) -> None:
        # Halve the sample (and the future sampling rate) until it is within bounds.
        if self._sample_len[band] <= 2 * self.sample_cap:
            return
        sample = np.concatenate(self._samples[band])
        while sample.size > 2 * self.sample_cap:
            keep = self._rng.random(sample.size) < 0.5
            if not keep.any():  # only conceivable for a tiny cap; keep the sample non-empty
                keep[self._rng.integers(sample.size)] = True
            sample = sample[keep]
            self._level[band] += 1
        self._samples[band] = [sample]
        self._sample_len[band] = sample.size

    def _sample_result(self, band: int) -> BandStatistics:
        sample = np.concatenate(self._samples[band])
        p2, p98 = (float(p) for p in np.percentile(sample, PERCENTILES))
        count = int(self._count[band])
        return BandStatistics(
            count=count,
            min=float(self._min[band]),
            max=float(self._max[band]),
            mean=float(self._mean[band]),
            std=max(float(self._m2[band]) / count, 0.0) ** 0.5,
            p2=p2,
            p98=p98,
        )


def _linear_percentile(
    count: int, percentile: float, order_statistic: Callable[[int], float]
) -> float:
    """Percentile of ``count`` sorted values with numpy's default ``linear`` method.

    Mirrors ``np.percentile`` step by step (virtual index, then its two-sided
    interpolation) so that the results are bit-for-bit equal.

    Args:
        count: Number of values.
        percentile: Percentile in [0, 100].
        order_statistic: Callable returning the value at a 0-based sorted position.

    Returns:
        The interpolated percentile.
    """
    index = (count - 1) * (np.float64(percentile) / 100)
    if index >= count - 1:
        return float(order_statistic(count - 1))
    below = int(np.floor(index))
    gamma = float(index - below)
    a = float(order_statistic(below))
    b = float(order_statistic(below + 1))
    diff = b - a
    # numpy's _lerp interpolates from the nearer end for accuracy.
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
