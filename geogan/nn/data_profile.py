"""What a model was trained on, for ``translate`` to compare a scene with: the training
chips' pixel size and the distribution of each band's values.

:class:`PixelSize` is the chips' pixel width and height in their CRS's unit (``metre``,
``US survey foot``, ``degree``...), with the metres per unit of linear units, so that a
scene in another CRS compares too. :class:`BandProfile` summarises one band of one
domain's training chips: mean, standard deviation and the values at the quantile levels
:data:`QUANTILE_LEVELS`; with them a scene's sampled values can be placed against the
training distribution (the distance between the two quantile functions). The same
summary of each band's *share* of a pixel's total over the bands (:func:`band_shares`:
its colour, whatever the brightness) catches a colour balance the model has not seen.
Each domain's *sharpness* (the median spectral slope of its chips,
:func:`geogan.raster.sharpness.spectral_slope`) tells translate how much softer a scene
is than what the model learnt from.

The model file carries them (its ``trained_on`` entry); files written before them lack
them, and read as unknown. Plain values only; the training layer computes them from
the chips (this layer reads no rasters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Quantile levels a band's values are summarised at: the midpoints of 20 equal shares,
#: so that the mean absolute difference of two quantile functions over them approximates
#: the 1-Wasserstein distance of the two distributions.
QUANTILE_LEVELS = tuple((k + 0.5) / 20 for k in range(20))


@dataclass(frozen=True)
class PixelSize:
    """The pixel size of the training chips.

    Attributes:
        x: Pixel width, in ``unit``.
        y: Pixel height, in ``unit`` (positive).
        unit: The CRS's unit: ``metre``, ``US survey foot``, ``degree``...
        metres: Metres per ``unit`` for linear units; None for angular ones (degrees).
        crs: The chips' CRS, as ``EPSG:<code>`` or its name.
    """

    x: float
    y: float
    unit: str
    metres: float | None
    crs: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the model file."""
        return {"x": self.x, "y": self.y, "unit": self.unit, "metres": self.metres,
                "crs": self.crs}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PixelSize:
        """The pixel size :meth:`to_dict` wrote.

        Raises:
            ValueError: If a value is missing, not a number or not positive.
        """
        metres = value.get("metres")
        size = cls(float(value["x"]), float(value["y"]), str(value["unit"]),
                   None if metres is None else float(metres), str(value.get("crs", "")))
        numbers = [size.x, size.y] + ([] if size.metres is None else [size.metres])
        if not all(math.isfinite(v) and v > 0 for v in numbers):
            raise ValueError(f"pixel size must be positive numbers, not {value}")
        return size

    def label(self) -> str:
        """``0.6 × 0.6 metre (EPSG:3857)``."""
        crs = f" ({self.crs})" if self.crs else ""
        return f"{self.x:.4g} × {self.y:.4g} {self.unit}{crs}"


@dataclass(frozen=True)
class BandProfile:
    """One band's values over a domain's training chips (valid pixels only).

    Attributes:
        mean: Mean value.
        std: Population standard deviation.
        quantiles: Values at :data:`QUANTILE_LEVELS`.
    """

    mean: float
    std: float
    quantiles: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the model file."""
        return {"mean": self.mean, "std": self.std, "quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> BandProfile:
        """The profile :meth:`to_dict` wrote.

        Raises:
            ValueError: If a value is missing or not finite, or the quantiles are not
                one per level.
        """
        profile = cls(float(value["mean"]), float(value["std"]),
                      tuple(float(q) for q in value["quantiles"]))
        if len(profile.quantiles) != len(QUANTILE_LEVELS) or not all(
                math.isfinite(v) for v in (profile.mean, profile.std, *profile.quantiles)):
            raise ValueError("a band profile needs a finite mean, std and "
                             f"{len(QUANTILE_LEVELS)} quantiles")
        return profile

    @classmethod
    def of(cls, values: NDArray[Any]) -> BandProfile:
        """The profile of a band's valid values (1-D, at least one)."""
        values = np.asarray(values, dtype=np.float64)
        quantiles = np.quantile(values, QUANTILE_LEVELS)
        return cls(float(values.mean()), float(values.std()),
                   tuple(float(q) for q in quantiles))

    def distance(self, other: BandProfile) -> float:
        """How far ``other``'s values lie from these, in units of this band's spread:
        the mean absolute difference of the two quantile functions (about the
        1-Wasserstein distance of the distributions) over this profile's standard
        deviation. 0 for the same distribution; 1 for one shifted by a whole standard
        deviation, or spread twice as wide; large for other units altogether."""
        gap = float(np.mean(np.abs(np.subtract(other.quantiles, self.quantiles))))
        return gap / (self.std if self.std > 0 else 1.0)


def band_shares(values: NDArray[Any]) -> NDArray[np.float64] | None:
    """Each band's share of the pixel's total over the bands, (C, N) of pixels whose total
    is positive; None for a single band or negative values (shares mean nothing there)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] < 2 or (values.size and values.min() < 0):
        return None
    total = values.sum(axis=0)  # (N,)
    shares: NDArray[np.float64] = values[:, total > 0] / total[total > 0]
    return shares


@dataclass(frozen=True)
class DataProfile:
    """What a model was trained on: the chips' pixel size and each domain's bands.

    Attributes:
        pixel_size: The training chips' pixel size; None when unknown (chips without a
            CRS, or a model file from before it was recorded).
        bands: Per domain (``a``, ``b``), one :class:`BandProfile` per band; a domain is
            absent when unknown.
        shares: Per domain, one :class:`BandProfile` per band of its shares
            (:func:`band_shares`); absent for single bands and negative values.
        sharpness: Per domain, the median spectral slope of its training chips,
            normalised as the model sees them; absent when unknown (model files from
            before it was recorded, or no wholly valid chip).
    """

    pixel_size: PixelSize | None = None
    bands: Mapping[str, tuple[BandProfile, ...]] | None = None
    shares: Mapping[str, tuple[BandProfile, ...]] | None = None
    sharpness: Mapping[str, float] | None = None

    def domain(self, name: str) -> tuple[BandProfile, ...] | None:
        """The band profiles of domain ``name``, or None when unknown."""
        return (self.bands or {}).get(name)

    def domain_shares(self, name: str) -> tuple[BandProfile, ...] | None:
        """The band-share profiles of domain ``name``, or None when unknown."""
        return (self.shares or {}).get(name)

    def domain_sharpness(self, name: str) -> float | None:
        """The median spectral slope of domain ``name``'s chips, or None when unknown."""
        return (self.sharpness or {}).get(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the model file (``"unknown"`` for what is not known)."""
        return {"pixel_size": "unknown" if self.pixel_size is None
                else self.pixel_size.to_dict(),
                "bands": {name: [band.to_dict() for band in bands]
                          for name, bands in (self.bands or {}).items()},
                "shares": {name: [band.to_dict() for band in bands]
                           for name, bands in (self.shares or {}).items()},
                "sharpness": dict(self.sharpness or {})}

    @classmethod
    def from_dict(cls, value: Any) -> DataProfile:
        """The profile in a model file's ``trained_on`` entry. Lenient: what is missing
        or unreadable is unknown: no warning about it, and no scene sharpened by it (a
        damaged record never stops a model from translating)."""
        if not isinstance(value, Mapping):
            return cls()
        pixel_size = None
        if isinstance(value.get("pixel_size"), Mapping):
            try:
                pixel_size = PixelSize.from_dict(value["pixel_size"])
            except (KeyError, TypeError, ValueError):
                pixel_size = None
        return cls(pixel_size, _profiles(value.get("bands")), _profiles(value.get("shares")),
                   _slopes(value.get("sharpness")) or None)


def _profiles(value: Any) -> dict[str, tuple[BandProfile, ...]]:
    """Per domain, the band profiles that read (a damaged domain is left out)."""
    found: dict[str, tuple[BandProfile, ...]] = {}
    for name, listed in (value if isinstance(value, Mapping) else {}).items():
        try:
            found[str(name)] = _band_profiles(listed)
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _slopes(value: Any) -> dict[str, float]:
    """Per domain, the sharpness that reads as a finite number."""
    found: dict[str, float] = {}
    for name, slope in (value if isinstance(value, Mapping) else {}).items():
        if isinstance(slope, int | float) and not isinstance(slope, bool) \
                and math.isfinite(slope):
            found[str(name)] = float(slope)
    return found


def _band_profiles(listed: Sequence[Mapping[str, Any]]) -> tuple[BandProfile, ...]:
    profiles = tuple(BandProfile.from_dict(band) for band in listed)
    if not profiles:
        raise ValueError("no band")
    return profiles
