"""Per-band linear normalisation of raster values to the [-1, 1] range the GANs see.

The generators end in ``tanh``, so pixels go in and come out in [-1, 1]. How a band is
mapped there depends on its data type, as in the Pix2Pix and CycleGAN papers and their
code for 8-bit images:

* ``uint8``: the whole range, 0 → -1 and 255 → 1, so that a round trip is exact.
* Every other type (``uint16`` reflectance, ``int16`` SAR, ``float32`` heights in metres):
  the band's 2nd and 98th percentiles map to -1 and 1 and values beyond them are
  clipped. A few extreme pixels (specular glints, sensor spikes, deep shadows) would
  otherwise squeeze the rest of the band into a small part of the range.

A :class:`BandNormalization` is computed once from the chip statistics, stored in the
model file (:meth:`~BandNormalization.to_dict`) and inverted on the generator's output
(:meth:`~BandNormalization.denormalize`). This module needs numpy only. It lives in the
network layer because the model file carries it; raster statistics come in through
:class:`PercentileStatistics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class PercentileStatistics(Protocol):
    """What :meth:`BandNormalization.from_statistics` reads of a band's statistics
    (:class:`geogan.raster.band_stats.BandStatistics` has it; nn never imports raster)."""

    @property
    def p2(self) -> float:
        """2nd percentile."""

    @property
    def p98(self) -> float:
        """98th percentile."""


#: Data types mapped linearly over their whole range instead of a percentile clip.
FULL_RANGE = {"uint8": (0.0, 255.0)}


@dataclass(frozen=True)
class BandNormalization:
    """A linear map of each band from ``[low, high]`` to [-1, 1], and back.

    Attributes:
        low: Per band, the value mapped to -1.
        high: Per band, the value mapped to 1; always greater than ``low``.
        dtype: The data type of the raster values (what :meth:`denormalize` returns).
        nodata: The rasters' nodata value (NaN allowed), or None; carried along for
            writers, not used by the mapping.

    Raises:
        ValueError: If ``low`` and ``high`` differ in length, are empty, are not
            finite, or some ``high`` is not greater than its ``low``; or ``dtype`` is
            not a numeric type.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    dtype: str
    nodata: float | None

    def __post_init__(self) -> None:
        low = tuple(float(v) for v in self.low)
        high = tuple(float(v) for v in self.high)
        if not low or len(low) != len(high):
            raise ValueError(
                f"need one low and one high value per band, got {len(low)} and {len(high)}"
            )
        if not all(math.isfinite(v) for v in low + high):
            raise ValueError("normalisation bounds must be finite numbers")
        flat = [str(b + 1) for b, (lo, hi) in enumerate(zip(low, high, strict=True)) if hi <= lo]
        if flat:
            raise ValueError(f"high must exceed low; it does not in band(s) {', '.join(flat)}")
        dtype = np.dtype(self.dtype)
        if dtype.kind not in "uif":
            raise ValueError(f"normalisation needs an integer or float type, not {dtype}")
        # Store plain Python values whatever was passed (numpy scalars, lists).
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "dtype", dtype.name)
        object.__setattr__(self, "nodata", None if self.nodata is None else float(self.nodata))

    @classmethod
    def from_statistics(
        cls, statistics: Sequence[PercentileStatistics], dtype: str, nodata: float | None
    ) -> BandNormalization:
        """The normalisation of a domain from its per-band chip statistics.

        Args:
            statistics: One :class:`~geogan.raster.band_stats.BandStatistics` per band.
            dtype: The domain's data type: ``uint8`` maps 0..255; any other type maps
                each band's ``p2``..``p98``.
            nodata: The domain's nodata value, or None.

        Returns:
            The normalisation. A constant band (``p98 <= p2``) gets ``high = low + 1``,
            so that nothing divides by zero.

        Raises:
            ValueError: If ``statistics`` is empty or ``dtype`` is not numeric.
        """
        if not statistics:
            raise ValueError("need the statistics of at least one band")
        name = np.dtype(dtype).name
        if name in FULL_RANGE:
            low_value, high_value = FULL_RANGE[name]
            low = [low_value] * len(statistics)
            high = [high_value] * len(statistics)
        else:
            low = [s.p2 for s in statistics]
            high = [s.p98 if s.p98 > s.p2 else s.p2 + 1.0 for s in statistics]
        return cls(tuple(low), tuple(high), name, nodata)

    @property
    def bands(self) -> int:
        """Number of bands."""
        return len(self.low)

    def _check(self, array: np.ndarray) -> None:
        if array.ndim < 3 or array.shape[-3] != self.bands:
            raise ValueError(
                f"expected an array of shape ({self.bands}, H, W), got {array.shape}"
            )

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.bands, 1, 1)  # broadcasts over (..., C, H, W)
        low = np.asarray(self.low, dtype=np.float64).reshape(shape)
        span = (np.asarray(self.high, dtype=np.float64) - low.ravel()).reshape(shape)
        return low, span

    def normalize(self, array: np.ndarray) -> np.ndarray:
        """Map raster values to [-1, 1].

        Args:
            array: Values of shape (C, H, W) (or (..., C, H, W)), any numeric type.

        Returns:
            float32 values ``clip((x - low) / (high - low) * 2 - 1, -1, 1)``; NaN and
            infinite values become 0.

        Raises:
            ValueError: If the band axis does not have :attr:`bands` entries.
        """
        self._check(array)
        low, span = self._bounds()
        out = array.astype(np.float32)  # (C, H, W)
        out -= low.astype(np.float32)  # subtract first: no cancellation near low
        out *= (2.0 / span).astype(np.float32)
        out -= 1.0
        if array.dtype.kind == "f":
            out[~np.isfinite(out)] = 0.0
        np.clip(out, -1.0, 1.0, out=out)
        return out

    def denormalize(self, array: np.ndarray) -> np.ndarray:
        """Map [-1, 1] values back to raster values of :attr:`dtype`.

        Args:
            array: Values of shape (C, H, W) (or (..., C, H, W)), normally in [-1, 1].

        Returns:
            ``(y + 1) / 2 * (high - low) + low`` in :attr:`dtype`: rounded half to even
            and clipped to the type's range for integer types (values beyond it, infinite
            ones included, give the type's minimum or maximum; nothing wraps around),
            cast for float types. NaN gives the middle of ``[low, high]`` for integer
            types.

        Raises:
            ValueError: If the band axis does not have :attr:`bands` entries.
        """
        self._check(array)
        low, span = self._bounds()
        values = array.astype(np.float64)  # (C, H, W); then in place: no temporaries
        with np.errstate(over="ignore"):  # an overflow to ±inf is clipped below
            values += 1.0
            values *= span / 2.0
            values += low
        dtype = np.dtype(self.dtype)
        if dtype.kind == "f":
            cast: np.ndarray = values.astype(dtype)
            return cast
        # Only NaN has no side to clip to; an infinite value (or a finite one so large
        # that the mapping overflowed) is clipped like any other out-of-range value.
        missing = np.isnan(values)
        if missing.any():
            values = np.where(missing, low + span / 2.0, values)
        np.rint(values, out=values)
        np.clip(values, *_float_range(dtype), out=values)
        result: np.ndarray = values.astype(dtype)
        return result

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, floats, str, None) for a model file or JSON."""
        return {
            "low": list(self.low),
            "high": list(self.high),
            "dtype": self.dtype,
            "nodata": self.nodata,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BandNormalization:
        """Rebuild a normalisation written by :meth:`to_dict`.

        Args:
            d: The mapping; extra entries are ignored.

        Returns:
            The normalisation.

        Raises:
            ValueError: If an entry is missing or a value is out of range.
        """
        missing = [k for k in ("low", "high", "dtype", "nodata") if k not in d]
        if missing:
            raise ValueError(f"normalisation lacks the field(s) {', '.join(missing)}")
        try:
            low = tuple(float(v) for v in d["low"])
            high = tuple(float(v) for v in d["high"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"normalisation bounds must be lists of numbers ({error})") from error
        nodata = d["nodata"]
        return cls(low, high, str(d["dtype"]), None if nodata is None else float(nodata))


def _float_range(dtype: np.dtype[Any]) -> tuple[float, float]:
    """The smallest and largest float64 values that cast to the integer ``dtype`` without
    wrapping: its range, rounded inwards where float64 cannot hold its ends (64-bit
    types, whose maximum rounds up to a power of two just out of range)."""
    info = np.iinfo(dtype)
    low, high = float(info.min), float(info.max)
    if int(high) > info.max:
        high = float(np.nextafter(high, -np.inf))
    if int(low) < info.min:  # never for two's complement types; kept for symmetry
        low = float(np.nextafter(low, np.inf))
    return low, high
