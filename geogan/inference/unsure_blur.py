"""Smoothing the unsure pixels of a shaded map, row piece by row piece.

A shaded map (:mod:`geogan.inference.class_colours`) is speckled where the model is unsure:
each pixel takes its own tint of the candidate classes, and neighbouring pixels that the
model finds about as likely to be park as background come out park green and background
grey in turn. Real maps are flat there. Blurring the *unsure* pixels (those shading moved
past the exact radius of their class colour) with a Gaussian of about one pixel lets each
take the colours around it: on real aerial photo → map pairs it raises PSNR and SSIM on
every model measured, and brings the SSIM of unfamiliar scenes to a blank map's, at the
price of some of the rare classes' IoU (``benchmarks/README.md``, "Smoothing the drawing").
Pixels drawn at (or within the exact radius of) their class colour are kept as drawn, so
the share of exact colours does not change.

The blur is a normalised convolution: only valid pixels inside the rows and columns given
contribute, so nodata never bleeds into a colour and edges need no padding rule. It is
separable and sums its taps in a fixed order, so the values do not depend on how the rows
are cut into pieces: ``translate``'s writer feeds it the blended rows as they are finished,
and it hands rows back once the rows below them have arrived.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_SIGMA = 1.0
"""Standard deviation, in pixels, of the blur of unsure pixels (``translate``'s default)."""

TRUNCATE = 3.0
"""The kernel reaches this many standard deviations each side."""


def blur_radius(sigma: float) -> int:
    """Rows (and columns) each side that the blur of ``sigma`` pixels reaches (0 if off)."""
    return math.ceil(TRUNCATE * sigma) if sigma > 0 else 0


class UnsureBlur:
    """Blurs the unsure pixels of ``height`` rows fed in order as pieces of any length.

    :meth:`add` takes the next rows and returns the rows it can finish (those whose
    neighbours below have arrived, or all of them once ``height`` rows are in). Arrays
    ``riders`` travel along unchanged and come back cut as the colours are.
    """

    def __init__(self, sigma: float, height: int) -> None:
        if sigma <= 0:
            raise ValueError(f"the blur's sigma must be positive, not {sigma}")
        self.radius = blur_radius(sigma)
        taps = np.exp(-0.5 * (np.arange(-self.radius, self.radius + 1) / sigma) ** 2)
        self._taps = (taps / taps.sum()).astype(np.float32)
        self.height = height
        self._received = 0
        self._emitted = 0
        # Rows fed and not yet returned: colours, unsure, valid and riders.
        self._held: list[NDArray[Any]] | None = None
        # Column-blurred sums and weights of rows [_emitted - radius, _received), with
        # zero rows standing for the rows above the first.
        self._sums: NDArray[np.float32] | None = None
        self._weights: NDArray[np.float32] | None = None

    @property
    def held(self) -> int:
        """Rows fed but not yet returned."""
        return self._received - self._emitted

    def add(self, colours: NDArray[np.float32], unsure: NDArray[np.bool_],
            valid: NDArray[np.bool_], riders: Sequence[NDArray[Any]] = ()
            ) -> list[tuple[NDArray[np.float32], NDArray[np.bool_], list[NDArray[Any]]]]:
        """Feed the next rows; return the finished ones.

        Args:
            colours: (C, n, W) drawn colours, unrounded.
            unsure: (n, W) pixels to blur (the others are returned as drawn).
            valid: (n, W) pixels with data; the others neither take nor give colour.
            riders: Arrays (..., n, W) returned cut as the rows are (not blurred).

        Returns:
            Pieces ``(colours, valid, riders)`` of the rows finished by this call, in
            order: none, or one. The arrays are new (the inputs may be reused).

        Raises:
            ValueError: If more than ``height`` rows are fed.
        """
        rows = valid.shape[0]
        if self._received + rows > self.height:
            raise ValueError(f"{self._received + rows} rows fed to a blur of {self.height}")
        weights = valid.astype(np.float32)
        sums, weights = self._along_rows(colours * weights, weights)
        pieces = (colours, unsure, valid, *riders)
        if self._sums is None or self._weights is None or self._held is None:
            top = np.zeros((colours.shape[0], self.radius, colours.shape[2]), np.float32)
            self._sums, self._weights = top, top[0]
            self._held = [a[..., :0, :] for a in pieces]
        self._sums = np.concatenate([self._sums, sums], axis=1)
        self._weights = np.concatenate([self._weights, weights], axis=0)
        self._held = [np.concatenate([held, new], axis=-2)
                      for held, new in zip(self._held, pieces, strict=True)]
        self._received += rows
        if self._received == self.height:  # the rows below the last stand for zeros
            pad = np.zeros((self._sums.shape[0], self.radius, self._sums.shape[2]), np.float32)
            self._sums = np.concatenate([self._sums, pad], axis=1)
            self._weights = np.concatenate([self._weights, pad[0]], axis=0)
            ready = self._received - self._emitted
        else:
            ready = max(self._received - self.radius - self._emitted, 0)
        if not ready:
            return []
        return [self._finish(ready)]

    def _along_rows(self, sums: NDArray[np.float32], weights: NDArray[np.float32]
                    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The column pass (along each row) of weighted colours and of weights."""
        r, width = self.radius, weights.shape[-1]
        padded_sums = np.pad(sums, ((0, 0), (0, 0), (r, r)))
        padded_weights = np.pad(weights, ((0, 0), (r, r)))
        out_sums = np.zeros_like(sums)
        out_weights = np.zeros_like(weights)
        for k, tap in enumerate(self._taps):
            out_sums += tap * padded_sums[..., k:k + width]
            out_weights += tap * padded_weights[..., k:k + width]
        return out_sums, out_weights

    def _finish(self, count: int
                ) -> tuple[NDArray[np.float32], NDArray[np.bool_], list[NDArray[Any]]]:
        """The row pass for the next ``count`` held rows; they leave the buffers."""
        assert self._sums is not None and self._weights is not None and self._held is not None
        sums = np.zeros((self._sums.shape[0], count, self._sums.shape[2]), np.float32)
        weights = np.zeros((count, self._weights.shape[1]), np.float32)
        for k, tap in enumerate(self._taps):
            sums += tap * self._sums[:, k:k + count]
            weights += tap * self._weights[k:k + count]
        colours, unsure, valid, *riders = (a[..., :count, :] for a in self._held)
        blurred = np.divide(sums, weights, out=colours.copy(), where=weights > 0)
        colours = np.where(unsure & valid, blurred, colours)
        self._held = [a[..., count:, :] for a in self._held]
        self._sums = self._sums[:, count:]
        self._weights = self._weights[count:]
        self._emitted += count
        return colours, valid.copy(), [r.copy() for r in riders]


def blur_unsure(colours: NDArray[np.float32], unsure: NDArray[np.bool_],
                valid: NDArray[np.bool_], sigma: float = DEFAULT_SIGMA
                ) -> NDArray[np.float32]:
    """:class:`UnsureBlur` of a whole (C, H, W) drawing at once."""
    if sigma <= 0 or not unsure.any():
        return colours
    return UnsureBlur(sigma, valid.shape[0]).add(colours, unsure, valid)[0][0]


__all__ = ["DEFAULT_SIGMA", "UnsureBlur", "blur_radius", "blur_unsure"]
