"""How sharp an image is against the chips a model learnt from, and the filter that
takes a Gaussian blur back out.

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

numpy only.
"""

from __future__ import annotations

import math
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
    drop = reference - slope
    if not drop > 0:
        return 0.0
    if drop >= _slope_drop(MAX_SIGMA):
        return MAX_SIGMA
    low, high = 0.0, MAX_SIGMA
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if _slope_drop(middle) < drop else (low, middle)
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


def check_deblur(sigma: float) -> float:
    """``sigma`` as a float, when a deblur can take that many pixels of blur out.

    Raises:
        ValueError: For a sigma not above 0 or above :data:`MAX_SIGMA` (or NaN).
    """
    if not 0 < sigma <= MAX_SIGMA:
        raise ValueError(f"a deblur takes out 0 to {MAX_SIGMA} px, not {sigma}")
    return float(sigma)


@lru_cache(maxsize=16)
def wiener_gain(height: int, width: int, sigma: float) -> NDArray[np.float64]:
    """The gain on the rfft2 grid of (height, width) of the Wiener filter that takes a
    Gaussian blur of ``sigma`` pixels out: H / (H² + :data:`NOISE`), scaled so that the
    mean (frequency 0) passes unchanged. Read-only: it is shared."""
    blur = np.exp(-2 * math.pi**2 * sigma**2 * _frequency(height, width) ** 2)
    gain: NDArray[np.float64] = blur / (blur * blur + NOISE) * (1 + NOISE)
    gain.flags.writeable = False
    return gain


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
    f = _frequency(256, 256)
    low, high = _band_masks(256, 256)
    weight = np.where(f > 0, f, 1.0) ** -2.0
    kept = np.exp(-4 * math.pi**2 * sigma**2 * f * f)
    share = [float((kept * weight)[band].sum() / weight[band].sum()) for band in (high, low)]
    return -math.log(share[0] / share[1])


__all__ = ["HIGH_BAND", "LOW_BAND", "MAX_SIGMA", "NOISE", "PAD", "TOLERANCE", "blur_between",
           "check_deblur", "excess_blur", "spectral_slope", "typical_slope", "wiener_gain"]
