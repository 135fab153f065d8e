"""How sharp a window is, the blur (or unsharp mask) between two of them, and the gains of
the filters that take them out (geogan.raster.sharpness; the filters:
tests/inference/test_deblur.py)."""

from __future__ import annotations

import numpy as np
import pytest

from geogan.raster.sharpness import (
    MAX_SIGMA,
    MAX_UNSHARP,
    NOISE,
    TOLERANCE,
    UNSHARP_RADIUS,
    UNSHARP_TOLERANCE,
    blur_between,
    check_deblur,
    check_unsharpen,
    excess_blur,
    excess_unsharp,
    spectral_slope,
    typical_slope,
    unsharp_between,
    unsharp_inverse_gain,
    wiener_gain,
)
from tests.helpers import gaussian_blur, natural, unsharp_mask


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


def test_the_wiener_gain_passes_the_mean_and_never_exceeds_its_cap():
    gain = wiener_gain(96, 80, 1.5)
    assert gain.shape == (96, 41) and gain[0, 0] == pytest.approx(1.0)
    assert gain.max() <= (1 + NOISE) / (2 * NOISE**0.5) + 1e-9
    assert not gain.flags.writeable  # shared between calls


@pytest.mark.parametrize("sigma", [0.0, -1.0, MAX_SIGMA + 0.1, float("nan")])
def test_a_deblur_out_of_range_is_refused(sigma):
    with pytest.raises(ValueError, match="deblur"):
        check_deblur(sigma)


@pytest.mark.parametrize("amount", [0.5, 1.0, 1.5, 2.5])
def test_an_unsharp_mask_is_measured_back_from_the_slopes(rng, amount):
    image = natural(rng)
    plain = spectral_slope(image)
    sharp = spectral_slope(unsharp_mask(image, UNSHARP_RADIUS, amount))
    assert plain is not None and sharp is not None and sharp > plain
    assert unsharp_between(sharp, plain) == pytest.approx(amount, rel=0.15)
    assert unsharp_between(plain, sharp) == 0.0  # a softer scene: no mask
    assert unsharp_between(plain, plain) == 0.0
    # Softer and sharper are told apart: a blurred image reads as no mask at all.
    assert unsharp_between(spectral_slope(gaussian_blur(image, 1.0)) or 0.0, plain) == 0.0


def test_an_unsharp_mask_beyond_the_largest_is_the_largest():
    assert unsharp_between(100.0, -3.0) == MAX_UNSHARP


def test_the_unsharp_tolerance_comes_off_in_the_fourth_power():
    assert excess_unsharp(0.0) == 0.0 and excess_unsharp(UNSHARP_TOLERANCE) == 0.0
    assert excess_unsharp(0.6) == 0.0
    assert excess_unsharp(1.5) == pytest.approx((1.5**4 - UNSHARP_TOLERANCE**4) ** 0.25)
    amounts = np.linspace(UNSHARP_TOLERANCE, MAX_UNSHARP, 50)
    taken = [excess_unsharp(a) for a in amounts]
    assert taken[0] == 0.0 and bool(np.all(np.diff(taken) > 0))


def test_the_unsharp_inverse_undoes_the_mask_and_amplifies_nothing(rng):
    gain = unsharp_inverse_gain(96, 80, 1.5)
    assert gain.shape == (96, 41) and gain[0, 0] == pytest.approx(1.0)
    assert gain.max() <= 1.0 and gain.min() > 1 / 2.5 - 1e-9
    assert not gain.flags.writeable
    image = natural(rng, size=96)[:, :, :80]
    sharpened = unsharp_mask(image, UNSHARP_RADIUS, 1.5)
    undone = np.fft.irfft2(np.fft.rfft2(sharpened) * gain, s=image.shape[1:])
    assert np.abs(undone - image).max() < 1e-9


@pytest.mark.parametrize("amount", [0.0, -1.0, MAX_UNSHARP + 0.1, float("nan")])
def test_an_unsharp_inverse_out_of_range_is_refused(amount):
    with pytest.raises(ValueError, match="unsharp"):
        check_unsharpen(amount)
