"""The filters translate sharpens or softens a batch of windows with, on the generator's
device (geogan.inference.deblur): a Wiener filter against a blur, the inverse of an
unsharp mask against a vendor's sharpening."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geogan.inference.deblur import Deblur, Unsharpen, window_validity
from geogan.raster.sharpness import (
    MAX_SIGMA,
    MAX_UNSHARP,
    PAD,
    UNSHARP_RADIUS,
    blur_between,
    spectral_slope,
    unsharp_between,
    wiener_gain,
)
from tests.helpers import gaussian_blur, natural, unsharp_mask


def reference(window: np.ndarray, sigma: float) -> np.ndarray:
    """One wholly valid (C, H, W) window filtered in float64 numpy: reflected by PAD,
    the gain applied, cut back and kept within each band's range."""
    padded = np.pad(window.astype(np.float64), ((0, 0), (PAD, PAD), (PAD, PAD)),
                    mode="reflect")
    spectrum = np.fft.rfft2(padded) * wiener_gain(*padded.shape[1:], sigma)
    sharp = np.fft.irfft2(spectrum, s=padded.shape[1:])[:, PAD:-PAD, PAD:-PAD]
    low = window.min(axis=(1, 2))[:, None, None]
    high = window.max(axis=(1, 2))[:, None, None]
    return np.clip(sharp, low, high)


def test_the_deblur_takes_most_of_a_blur_back(rng):
    image = natural(rng, size=128).astype(np.float32)
    soft = gaussian_blur(image, 1.0).astype(np.float32)
    sharpened = Deblur(1.0)(torch.from_numpy(soft)[None])[0].numpy()
    assert sharpened.dtype == np.float32 and sharpened.shape == image.shape
    before = np.abs(soft - image)[:, 8:-8, 8:-8].mean()  # away from the reflected edges
    after = np.abs(sharpened - image)[:, 8:-8, 8:-8].mean()
    assert after < 0.75 * before, (before, after)  # the finest detail stays lost
    slope = spectral_slope(sharpened)
    assert slope is not None and blur_between(slope, spectral_slope(image) or 0.0) < 0.4


def test_each_window_of_a_batch_is_filtered_on_its_own_as_in_float64(rng):
    windows = np.stack([gaussian_blur(natural(rng, 3, 96), s) for s in (0.5, 1.0, 2.0)])
    windows = np.clip(windows, -1, 1).astype(np.float32)
    batch = Deblur(1.2)(torch.from_numpy(windows)).numpy()
    for window, out in zip(windows, batch, strict=True):
        alone = Deblur(1.2)(torch.from_numpy(window)[None])[0].numpy()
        assert np.array_equal(out, alone)
        assert np.abs(out - reference(window, 1.2)).max() < 1e-5


def test_the_deblur_keeps_flat_areas_the_range_and_invalid_pixels(rng):
    flat = torch.full((1, 2, 40, 50), 0.25)
    assert torch.allclose(Deblur(1.5)(flat), flat, atol=1e-6)
    window = np.clip(gaussian_blur(natural(rng, 3, 64), 1.0), -1, 1).astype(np.float32)
    valid = np.ones((64, 64), bool)
    valid[:, :20] = False
    window[:, ~valid] = 0.0
    nothing = np.zeros((3, 64, 64), np.float32)
    batch = torch.from_numpy(np.stack([window, nothing]))
    masks = torch.from_numpy(np.stack([valid, np.zeros((64, 64), bool)]))
    out = Deblur(1.5)(batch, masks).numpy()
    assert np.array_equal(out[0][:, ~valid], window[:, ~valid])
    inside = window[:, valid]
    assert (out[0][:, valid].min(axis=1) >= inside.min(axis=1)).all()
    assert (out[0][:, valid].max(axis=1) <= inside.max(axis=1)).all()
    assert not np.allclose(out[0][:, valid], inside)
    assert np.array_equal(out[1], nothing)  # no valid pixel: as it was


def test_a_batchs_validity_is_none_only_when_every_window_is_whole():
    assert window_validity([None, None]) is None
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    valid = window_validity([None, mask])
    assert valid is not None and valid.dtype == torch.bool and valid.shape == (2, 4, 4)
    assert bool(valid[0].all()) and torch.equal(valid[1], torch.from_numpy(mask))


@pytest.mark.parametrize("sigma", [0.0, -1.0, MAX_SIGMA + 0.1, float("nan")])
def test_a_deblur_out_of_range_is_refused(sigma):
    with pytest.raises(ValueError, match="deblur"):
        Deblur(sigma)


def test_the_unsharpen_takes_an_unsharp_mask_back_out(rng):
    image = natural(rng, size=128).astype(np.float32)
    sharp = unsharp_mask(image, UNSHARP_RADIUS, 1.0).astype(np.float32)
    softened = Unsharpen(1.0)(torch.from_numpy(sharp)[None])[0].numpy()
    assert softened.dtype == np.float32 and softened.shape == image.shape
    before = np.abs(sharp - image)[:, 8:-8, 8:-8].mean()  # away from the reflected edges
    after = np.abs(softened - image)[:, 8:-8, 8:-8].mean()
    assert after < 0.05 * before, (before, after)  # an exact inverse: nothing was lost
    slope = spectral_slope(softened)
    assert slope is not None and unsharp_between(slope, spectral_slope(image) or 0.0) < 0.1
    # It keeps flat areas, and a batch's windows are filtered each on its own.
    flat = torch.full((1, 2, 40, 50), 0.25)
    assert torch.allclose(Unsharpen(2.0)(flat), flat, atol=1e-6)
    pair = torch.from_numpy(np.stack([sharp, sharp[::-1].copy()]))
    assert torch.equal(Unsharpen(1.0)(pair)[0], Unsharpen(1.0)(pair[:1])[0])


@pytest.mark.parametrize("amount", [0.0, -1.0, MAX_UNSHARP + 0.1, float("nan")])
def test_an_unsharpen_out_of_range_is_refused(amount):
    with pytest.raises(ValueError, match="unsharp"):
        Unsharpen(amount)
