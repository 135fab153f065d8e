"""How sharp an image is against the chips a model learnt from, and the filters that
take a Gaussian blur, or an unsharp mask, back out.

A generator trained on the chips of one sensor learns their sharpness as a cue. Shown a
softer photo (another sensor, haze, a JPEG of a coarser product, a scene read up from a
coarser pixel size) it draws what it learnt for smooth things: an aerial → map model
paints the smooth areas as water. Taking the extra blur back out of the photo before the
generator sees it gives it back the photo it knows how to draw.

* **Measure.** :func:`spectral_slope` is the logarithm of the mean spectral power of a
  window in a high band of frequencies (:data:`HIGH_BAND`) over its mean power in a low
  one (:data:`LOW_BAND`), its bands standardised and averaged (so that any band count,
  type and scaling gives the same figure) and the window tapered by a Hann window. A
  Gaussian blur of σ pixels lowers it by an amount that depends on σ alone under the
  1/f² power spectrum of natural and aerial imagery: :func:`blur_between` turns the
  difference between a scene's slope and the training chips' back into that σ.
* **Tolerance.** What a window shows moves its slope too: over the 40 aerial photos of
  the pix2pix maps set it spreads with a standard deviation of 0.39, which reads as up to
  0.4 px of blur on photos exactly as sharp as the chips. :func:`excess_blur` therefore
  takes :data:`TOLERANCE` out (in the fourth power) before anything is sharpened, so that
  a scene as sharp as the chips is left as it is.
* **Take it out.** :func:`wiener_gain` is the gain of a Wiener filter of that Gaussian
  (capped by :data:`NOISE`, against amplifying noise). Translate applies it to each
  window, reflected at its edges, on the generator's device
  (:class:`geogan.inference.deblur.Deblur`).
* **Sharper than the chips.** Vendors sharpen their imagery, and a photo sharper than
  the chips loses a model what it drew from smoothness: an aerial → map model lost its
  water and parks on photos unsharp-masked after the fact. :func:`unsharp_between` reads
  a slope above the chips' as the amount of an unsharp mask of :data:`UNSHARP_RADIUS`
  (the usual vendor's radius; other radii read as another amount),
  :func:`excess_unsharp` takes :data:`UNSHARP_TOLERANCE` off it, and
  :func:`unsharp_inverse_gain`, the exact inverse of that mask (a low-pass whose gain
  never exceeds 1), takes the rest back out.

numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

LOW_BAND = (0.05, 0.1)
"""Frequencies, in cycles per pixel, of the reference band of :func:`spectral_slope`:
scales of 10 to 20 pixels, which a blur of a pixel or two hardly touches."""

HIGH_BAND = (0.2, 0.35)
"""Frequencies of the band whose power a blur takes: scales of 3 to 5 pixels (below the
Nyquist limit's aliasing and JPEG's 8-pixel blocks)."""

TOLERANCE = 0.5
"""Blur, in pixels, that a scene may seem to have over the training chips without being
sharpened: what the content of a photo as sharp as the chips alone reads as (up to 0.4 px
on the maps set's held-out photos). Subtracted in the fourth power (:func:`excess_blur`)."""

NOISE = 0.01
"""The Wiener filter's noise-to-signal ratio: its gain never exceeds about
1 / (2 √NOISE) = 5, so noise and compression artefacts are not blown up. On the maps
set's held-out photos blurred by 1 px, 0.01 drew them back to the sharp photos' PSNR;
0.03 and 0.1 sharpened too little."""

MAX_SIGMA = 3.0
"""The largest blur taken out, in pixels: a scene softer than that has lost what a
deblur could give back."""

UNSHARP_RADIUS = 1.0
"""Radius (the Gaussian's standard deviation), in pixels, of the unsharp mask that a scene
sharper than the chips is taken to have been through."""

UNSHARP_TOLERANCE = 0.7
"""Amount of an unsharp mask of :data:`UNSHARP_RADIUS` that a scene may seem to have over
the training chips without being softened: what the content of photos as sharp as the
chips reads as (against 29 training chips of the maps set, its 11 held-out photos read
0–0.62; of all 40 photos one reads 0.84, the next 0.63). Subtracted in the fourth power
(:func:`excess_unsharp`)."""

MAX_UNSHARP = 4.0
"""The largest amount of unsharp mask taken out (400 %)."""

MIN_SIZE = 32
"""Windows smaller than this along either axis are not measured (too few frequencies)."""

PAD = 16
"""Pixels each window is reflected by before it is filtered, so that its edges do not
wrap around into each other."""


def spectral_slope(window: NDArray[Any]) -> float | None:
    """How much of a window's detail is fine: log(mean power in :data:`HIGH_BAND` / mean
    power in :data:`LOW_BAND`), of its standardised bands' mean.

    Args:
        window: (C, H, W) or (H, W) values, every pixel valid (finite).

    Returns:
        The slope (the higher, the sharper: about -3 for the maps set's aerial photos,
        -5.3 for them blurred by 1 px); None for a window smaller than
        :data:`MIN_SIZE`, or one without detail in either band (a constant).
    """
    values = np.asarray(window, dtype=np.float64)
    if values.ndim == 2:
        values = values[None]
    height, width = values.shape[1:]
    if min(height, width) < MIN_SIZE or not np.isfinite(values).all():
        return None
    flat = values.reshape(values.shape[0], -1)
    spread = flat.std(axis=1)
    varied = spread > 0
    if not varied.any():
        return None
    standard = (flat[varied] - flat[varied].mean(axis=1, keepdims=True)) / spread[varied, None]
    image = standard.mean(axis=0).reshape(height, width)
    image -= image.mean()
    power = np.abs(np.fft.rfft2(image * _hann(height, width))) ** 2
    low, high = _band_masks(height, width)
    low_power, high_power = float(power[low].mean()), float(power[high].mean())
    if not (low_power > 0 and high_power > 0):
        return None
    return math.log(high_power / low_power)


def typical_slope(slopes: list[float | None]) -> float | None:
    """The median of the slopes measured (None ones left out); None without any."""
    found = [s for s in slopes if s is not None]
    return float(np.median(found)) if found else None


def blur_between(slope: float, reference: float) -> float:
    """The Gaussian blur, in pixels (standard deviation), that takes images whose slope
    is ``reference`` to ``slope``: 0 when ``slope`` is as high or higher.

    Under a 1/f² power spectrum a blur of σ multiplies the power at frequency f by
    exp(-4π²σ²f²); this finds the σ whose effect on the two bands' powers makes up the
    difference (about 0.65 for 0.5 px, 2.3 for 1 px, 4.7 for 1.5 px), up to
    :data:`MAX_SIGMA`."""
    return _solve(_slope_drop, reference - slope, MAX_SIGMA)


def unsharp_between(slope: float, reference: float) -> float:
    """The amount of an unsharp mask of :data:`UNSHARP_RADIUS` (1: 100 %) that takes
    images whose slope is ``reference`` to ``slope``: 0 when ``slope`` is as low or lower.

    Under a 1/f² power spectrum the mask multiplies the power at frequency f by
    (1 + amount · (1 - exp(-2π²r²f²)))²; this finds the amount whose effect on the two
    bands' powers makes up the difference (about 0.54 for 0.5, 0.92 for 1, 1.46 for 2),
    up to :data:`MAX_UNSHARP`."""
    return _solve(_slope_rise, slope - reference, MAX_UNSHARP)


def _solve(effect: Callable[[float], float], change: float, largest: float) -> float:
    """The strength in [0, ``largest``] at which the rising ``effect`` on the slope makes
    up ``change``: 0 for no change or one the other way, ``largest`` beyond its effect."""
    if not change > 0:
        return 0.0
    if change >= effect(largest):
        return largest
    low, high = 0.0, largest
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if effect(middle) < change else (low, middle)
    return (low + high) / 2


def excess_blur(blur: float) -> float:
    """The part of a measured blur that is taken out: (blur⁴ - :data:`TOLERANCE`⁴)^¼, so
    that a scene measured 0.5 px softer than the chips is left as it is, and one measured
    clearly softer loses nearly all of it (0.6 px: 0.51 px taken out; 1 px: 0.98 px).
    Subtracting in quadrature instead (1 px: 0.87 px) left held-out photos blurred by
    1 px less sharp than they were: on three models δ5 and SSIM were lower on each
    (by 0.006–0.018 and 0.004–0.007)."""
    if blur <= TOLERANCE:
        return 0.0
    return float((blur**4 - TOLERANCE**4) ** 0.25)


def excess_unsharp(amount: float) -> float:
    """The part of a measured unsharp mask that is taken out: (amount⁴ -
    :data:`UNSHARP_TOLERANCE`⁴)^¼, as :func:`excess_blur` does for a blur, so that photos
    as sharp as the chips are left as they are. Softening those is not free: taking a mask
    of 0.5 out of every held-out photo of the maps set cost an aerial → map model 0.007 of
    SSIM on the unfamiliar pairs."""
    if amount <= UNSHARP_TOLERANCE:
        return 0.0
    return float((amount**4 - UNSHARP_TOLERANCE**4) ** 0.25)


def check_deblur(sigma: float) -> float:
    """``sigma`` as a float, when a deblur can take that many pixels of blur out.

    Raises:
        ValueError: For a sigma not above 0 or above :data:`MAX_SIGMA` (or NaN).
    """
    return _strength(sigma, MAX_SIGMA, f"a deblur takes out 0 to {MAX_SIGMA} px, not {sigma}")


@lru_cache(maxsize=16)
def wiener_gain(height: int, width: int, sigma: float) -> NDArray[np.float64]:
    """The gain on the rfft2 grid of (height, width) of the Wiener filter that takes a
    Gaussian blur of ``sigma`` pixels out: H / (H² + :data:`NOISE`), scaled so that the
    mean (frequency 0) passes unchanged. Read-only: it is shared."""
    blur = _gaussian(height, width, sigma)
    gain: NDArray[np.float64] = blur / (blur * blur + NOISE) * (1 + NOISE)
    gain.flags.writeable = False
    return gain


def check_unsharpen(amount: float) -> float:
    """``amount`` as a float, when an unsharp mask that strong can be taken out.

    Raises:
        ValueError: For an amount not above 0 or above :data:`MAX_UNSHARP` (or NaN).
    """
    return _strength(amount, MAX_UNSHARP,
                     f"an unsharp mask of 0 to {MAX_UNSHARP} can be taken out, not {amount}")


def _strength(value: float, largest: float, refusal: str) -> float:
    """``value`` as a float when it lies in (0, ``largest``]; else ValueError(``refusal``)."""
    if not 0 < value <= largest:
        raise ValueError(refusal)
    return float(value)


@lru_cache(maxsize=16)
def unsharp_inverse_gain(height: int, width: int, amount: float) -> NDArray[np.float64]:
    """The gain on the rfft2 grid of (height, width) that undoes an unsharp mask of
    ``amount`` and :data:`UNSHARP_RADIUS`: 1 / (1 + amount · (1 - G)), G the mask's
    Gaussian. It passes the mean unchanged and never exceeds 1, so it amplifies nothing.
    Read-only: it is shared."""
    gain: NDArray[np.float64] = 1 / (1 + amount * (1 - _gaussian(height, width,
                                                                  UNSHARP_RADIUS)))
    gain.flags.writeable = False
    return gain


def _gaussian(height: int, width: int, sigma: float) -> NDArray[np.float64]:
    """The transfer function of a Gaussian blur of ``sigma`` px on the rfft2 grid."""
    return np.exp(-2 * math.pi**2 * sigma**2 * _frequency(height, width) ** 2)


@lru_cache(maxsize=16)
def _frequency(height: int, width: int) -> NDArray[np.float64]:
    """|f| in cycles per pixel on the rfft2 grid of (height, width)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius: NDArray[np.float64] = np.sqrt(fy * fy + fx * fx)
    return radius


@lru_cache(maxsize=16)
def _band_masks(height: int, width: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    f = _frequency(height, width)
    return ((f > LOW_BAND[0]) & (f < LOW_BAND[1]), (f > HIGH_BAND[0]) & (f < HIGH_BAND[1]))


@lru_cache(maxsize=16)
def _hann(height: int, width: int) -> NDArray[np.float64]:
    return np.outer(np.hanning(height), np.hanning(width))


@lru_cache(maxsize=256)
def _slope_drop(sigma: float) -> float:
    """How much a blur of ``sigma`` px lowers :func:`spectral_slope` under a 1/f² power
    spectrum (measured on a 256-pixel grid; the bands are fixed in cycles per pixel, so
    the size hardly matters)."""
    return -_slope_change(_gaussian(256, 256, sigma) ** 2)


@lru_cache(maxsize=256)
def _slope_rise(amount: float) -> float:
    """How much an unsharp mask of ``amount`` and :data:`UNSHARP_RADIUS` raises
    :func:`spectral_slope` under a 1/f² power spectrum (as :func:`_slope_drop`)."""
    gain = 1 + amount * (1 - _gaussian(256, 256, UNSHARP_RADIUS))
    return _slope_change(gain**2)


def _slope_change(power_gain: NDArray[np.float64]) -> float:
    """How much multiplying a 1/f² power spectrum by ``power_gain`` (on the rfft2 grid of
    256²) changes :func:`spectral_slope`."""
    f = _frequency(256, 256)
    low, high = _band_masks(256, 256)
    weight = np.where(f > 0, f, 1.0) ** -2.0
    share = [float((power_gain * weight)[band].sum() / weight[band].sum())
             for band in (high, low)]
    return math.log(share[0] / share[1])


__all__ = ["HIGH_BAND", "LOW_BAND", "MAX_SIGMA", "MAX_UNSHARP", "NOISE", "PAD", "TOLERANCE",
           "UNSHARP_RADIUS", "UNSHARP_TOLERANCE", "blur_between", "check_deblur",
           "check_unsharpen", "excess_blur", "excess_unsharp", "spectral_slope",
           "typical_slope", "unsharp_between", "unsharp_inverse_gain", "wiener_gain"]
