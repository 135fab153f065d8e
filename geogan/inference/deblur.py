"""Sharpening a batch of windows on the generator's device, before the generator sees it.

``translate`` sharpens a scene softer than the training chips
(:mod:`geogan.inference.scene_sharpness`) with the Wiener filter of
:func:`geogan.raster.sharpness.wiener_gain`. It does so a batch at a time, where the
generator runs: on a GPU the filter costs next to nothing there, where the reader thread
would filter window after window on one CPU core, several times slower than the
generator; on a CPU a batch's FFTs in float32 take 0.54-0.60 of the time a window takes
in numpy (``benchmarks/README.md``), on the generator's threads.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from geogan.raster.sharpness import PAD, check_deblur, wiener_gain


class Deblur:
    """A Wiener filter that takes a Gaussian blur of ``sigma`` pixels back out of windows.

    Args:
        sigma: The blur's standard deviation in pixels, more than 0 and at most
            :data:`geogan.raster.sharpness.MAX_SIGMA`.

    Raises:
        ValueError: For a sigma out of that range.
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = check_deblur(sigma)

    def __call__(self, tiles: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The windows sharpened, band by band.

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
        spectrum *= _gain(padded.shape[-2], padded.shape[-1], self.sigma, tiles.device)
        sharp = torch.fft.irfft2(spectrum, s=padded.shape[-2:])
        out = sharp[..., pad:pad + height, pad:pad + width]
        out = torch.minimum(torch.maximum(out, low), high)
        if valid is not None:  # also every pixel of a window with none valid
            out = torch.where(valid[:, None], out, tiles)
        return out.contiguous()


def window_validity(masks: list[np.ndarray | None]) -> torch.Tensor | None:
    """The (N, H, W) validity of a batch of windows, each given as an (H, W) mask or None
    when it is wholly valid; None when every window is."""
    if all(mask is None for mask in masks):
        return None
    shape = next(mask.shape for mask in masks if mask is not None)
    return torch.from_numpy(np.stack([np.ones(shape, bool) if mask is None else mask
                                      for mask in masks]))


@lru_cache(maxsize=16)
def _gain(height: int, width: int, sigma: float, device: torch.device) -> torch.Tensor:
    """:func:`geogan.raster.sharpness.wiener_gain` as a float32 tensor on ``device``."""
    return torch.from_numpy(wiener_gain(height, width, sigma).astype(np.float32)).to(device)


__all__ = ["Deblur", "window_validity"]
