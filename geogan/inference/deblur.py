"""Sharpening or softening a batch of windows on the generator's device, before the
generator sees it.

``translate`` sharpens a scene softer than the training chips
(:mod:`geogan.inference.scene_sharpness`) with the Wiener filter of
:func:`geogan.raster.sharpness.wiener_gain`, and softens one sharper than them with the
inverse of an unsharp mask (:func:`geogan.raster.sharpness.unsharp_inverse_gain`). It
does so a batch at a time, where the
generator runs: on a GPU the filter costs next to nothing there, where the reader thread
would filter window after window on one CPU core, several times slower than the
generator; on a CPU a batch's FFTs in float32 take 0.54-0.60 of the time a window takes
in numpy (``benchmarks/README.md``), on the generator's threads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from geogan.raster.sharpness import (
    PAD,
    check_deblur,
    check_unsharpen,
    unsharp_inverse_gain,
    wiener_gain,
)


class WindowFilter:
    """A zero-phase filter of every band of a batch of windows, given by its gain on the
    rfft2 grid (:meth:`gain`)."""

    def gain(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The filter's float32 gain on the rfft2 grid of (height, width), on ``device``."""
        raise NotImplementedError

    def __call__(self, tiles: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The windows filtered, band by band.

        Args:
            tiles: (N, C, H, W) float32 values; invalid pixels hold a neutral value
                (translate's normalised windows hold 0 there).
            valid: (N, H, W) bool, the valid pixels of each window, on the same device;
                None when all are.

        Returns:
            A new (N, C, H, W) float32 tensor on the same device: each window filtered
            reflected by :data:`geogan.raster.sharpness.PAD` pixels at its edges, each
            band kept within its range over the window's valid pixels (a deblur's
            overshoot at edges would otherwise leave the values the model was trained
            on), the invalid pixels as they were, and a window without a valid pixel
            unchanged.
        """
        height, width = tiles.shape[-2:]
        if valid is None:
            low = tiles.amin(dim=(2, 3), keepdim=True)
            high = tiles.amax(dim=(2, 3), keepdim=True)
        else:
            inside = valid[:, None]
            low = torch.where(inside, tiles, torch.inf).amin(dim=(2, 3), keepdim=True)
            high = torch.where(inside, tiles, -torch.inf).amax(dim=(2, 3), keepdim=True)
        pad = min(PAD, height - 1, width - 1)
        padded = F.pad(tiles.float(), (pad, pad, pad, pad), mode="reflect")
        spectrum = torch.fft.rfft2(padded)
        spectrum *= self.gain(padded.shape[-2], padded.shape[-1], tiles.device)
        filtered = torch.fft.irfft2(spectrum, s=padded.shape[-2:])
        out = filtered[..., pad:pad + height, pad:pad + width]
        out = torch.minimum(torch.maximum(out, low), high)
        if valid is not None:  # also every pixel of a window with none valid
            out = torch.where(valid[:, None], out, tiles)
        return out.contiguous()


class Deblur(WindowFilter):
    """A Wiener filter that takes a Gaussian blur of ``sigma`` pixels back out of windows.

    Args:
        sigma: The blur's standard deviation in pixels, more than 0 and at most
            :data:`geogan.raster.sharpness.MAX_SIGMA`.

    Raises:
        ValueError: For a sigma out of that range.
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = check_deblur(sigma)

    def gain(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        return _gain(wiener_gain, height, width, self.sigma, device)


class Unsharpen(WindowFilter):
    """The inverse of an unsharp mask of ``amount`` (1: 100 %) and
    :data:`geogan.raster.sharpness.UNSHARP_RADIUS`: a low-pass that gives a sharpened
    scene back the detail of the chips.

    Args:
        amount: More than 0 and at most :data:`geogan.raster.sharpness.MAX_UNSHARP`.

    Raises:
        ValueError: For an amount out of that range.
    """

    def __init__(self, amount: float) -> None:
        self.amount = check_unsharpen(amount)

    def gain(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        return _gain(unsharp_inverse_gain, height, width, self.amount, device)


def window_validity(masks: list[np.ndarray | None]) -> torch.Tensor | None:
    """The (N, H, W) validity of a batch of windows, each given as an (H, W) mask or None
    when it is wholly valid; None when every window is."""
    if all(mask is None for mask in masks):
        return None
    shape = next(mask.shape for mask in masks if mask is not None)
    return torch.from_numpy(np.stack([np.ones(shape, bool) if mask is None else mask
                                      for mask in masks]))


@lru_cache(maxsize=16)
def _gain(make: Callable[[int, int, float], np.ndarray], height: int, width: int,
          strength: float, device: torch.device) -> torch.Tensor:
    """The gain ``make`` gives, as a float32 tensor on ``device``."""
    return torch.from_numpy(make(height, width, strength).astype(np.float32)).to(device)


__all__ = ["Deblur", "Unsharpen", "WindowFilter", "window_validity"]
