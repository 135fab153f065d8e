"""How sharp a window is, the blur between two of them, and the filter that takes it out
(geogan.raster.sharpness)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geogan.raster.sharpness import (
    MAX_SIGMA,
    TOLERANCE,
    Deblur,
    blur_between,
    excess_blur,
    spectral_slope,
    typical_slope,
)


def natural(rng: np.random.Generator, bands: int = 3, size: int = 256) -> np.ndarray:
    """(bands, size, size) fields with a 1/f² power spectrum, as aerial imagery has."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    amplitude = np.where(radius > 0, 1.0 / np.maximum(radius, 1e-9), 0.0)
    spectra = (rng.normal(size=(bands, *radius.shape))
               + 1j * rng.normal(size=(bands, *radius.shape))) * amplitude
    fields = np.fft.irfft2(spectra, s=(size, size))
    return fields / fields.std(axis=(1, 2), keepdims=True)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Each band blurred by an exact Gaussian of ``sigma`` px (circular)."""
    fy = np.fft.fftfreq(image.shape[-2])[:, None]
    fx = np.fft.rfftfreq(image.shape[-1])[None, :]
    gain = np.exp(-2 * math.pi**2 * sigma**2 * (fy * fy + fx * fx))
    return np.fft.irfft2(np.fft.rfft2(image) * gain, s=image.shape[-2:])


def test_the_slope_is_the_same_for_any_scale_and_offset_of_each_band(rng):
    image = natural(rng)
    slope = spectral_slope(image)
    assert slope is not None and -6 < slope < 0
    rescaled = image * np.array([2.0, 50.0, 0.1])[:, None, None] + np.array([5, -3, 100])[
        :, None, None]
    assert spectral_slope(rescaled) == pytest.approx(slope, abs=1e-9)
    assert spectral_slope(image[0]) is not None  # one band, (H, W)


def test_windows_too_small_constant_or_not_finite_are_not_measured(rng):
    assert spectral_slope(natural(rng, size=16)) is None
    assert spectral_slope(np.full((3, 64, 64), 7.0)) is None
    image = natural(rng, size=64)
    image[0, 3, 3] = np.nan
    assert spectral_slope(image) is None
    assert typical_slope([None, -3.0, -2.0, -4.0]) == -3.0
    assert typical_slope([None]) is None and typical_slope([]) is None


@pytest.mark.parametrize("sigma", [0.5, 0.75, 1.0, 1.5, 2.0])
def test_a_gaussian_blur_is_measured_back_from_the_slopes(rng, sigma):
    image = natural(rng)
    sharp = spectral_slope(image)
    soft = spectral_slope(gaussian_blur(image, sigma))
    assert sharp is not None and soft is not None
    assert blur_between(soft, sharp) == pytest.approx(sigma, abs=0.1)
    assert blur_between(sharp, soft) == 0.0  # a sharper scene: no blur
    assert blur_between(sharp, sharp) == 0.0


def test_a_blur_beyond_the_largest_is_the_largest():
    assert blur_between(-100.0, -3.0) == MAX_SIGMA


def test_the_tolerance_comes_off_in_the_fourth_power():
    assert excess_blur(0.0) == 0.0 and excess_blur(TOLERANCE) == 0.0
    assert excess_blur(0.4) == 0.0
    assert excess_blur(1.0) == pytest.approx((1 - TOLERANCE**4) ** 0.25)
    assert excess_blur(2.0) == pytest.approx((16 - TOLERANCE**4) ** 0.25)
    # Continuous at the tolerance, and rising with the blur.
    blurs = np.linspace(TOLERANCE, MAX_SIGMA, 50)
    taken = [excess_blur(b) for b in blurs]
    assert taken[0] == 0.0 and bool(np.all(np.diff(taken) > 0))
    assert excess_blur(TOLERANCE + 1e-6) < 0.05


def test_the_deblur_takes_most_of_a_blur_back(rng):
    image = natural(rng, size=128).astype(np.float32)
    soft = gaussian_blur(image, 1.0).astype(np.float32)
    sharpened = Deblur(1.0).apply(soft)
    assert sharpened.dtype == np.float32 and sharpened.shape == image.shape
    before = np.abs(soft - image)[:, 8:-8, 8:-8].mean()  # away from the reflected edges
    after = np.abs(sharpened - image)[:, 8:-8, 8:-8].mean()
    assert after < 0.75 * before, (before, after)  # the finest detail stays lost
    slope = spectral_slope(sharpened)
    assert slope is not None and blur_between(slope, spectral_slope(image) or 0.0) < 0.4


def test_the_deblur_keeps_flat_areas_the_range_and_invalid_pixels(rng):
    flat = np.full((2, 40, 50), 0.25, np.float32)
    assert np.allclose(Deblur(1.5).apply(flat), 0.25, atol=1e-6)
    window = np.clip(gaussian_blur(natural(rng, 3, 64), 1.0), -1, 1).astype(np.float32)
    valid = np.ones((64, 64), bool)
    valid[:, :20] = False
    window[:, ~valid] = 0.0
    out = Deblur(1.5).apply(window, valid)
    assert np.array_equal(out[:, ~valid], window[:, ~valid])
    inside = window[:, valid]
    assert (out[:, valid].min(axis=1) >= inside.min(axis=1)).all()
    assert (out[:, valid].max(axis=1) <= inside.max(axis=1)).all()
    assert not np.allclose(out[:, valid], inside)
    nothing = np.zeros((3, 64, 64), np.float32)
    assert np.array_equal(Deblur(1.0).apply(nothing, np.zeros((64, 64), bool)), nothing)


@pytest.mark.parametrize("sigma", [0.0, -1.0, MAX_SIGMA + 0.1, float("nan")])
def test_a_deblur_out_of_range_is_refused(sigma):
    with pytest.raises(ValueError, match="deblur"):
        Deblur(sigma)
