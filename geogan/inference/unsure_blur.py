"""Smoothing the unsure pixels of a shaded map, row piece by row piece.

A shaded map (:mod:`geogan.inference.class_colours`) is speckled where the model is unsure:
each pixel takes its own tint of the candidate classes, and neighbouring pixels that the
model finds about as likely to be park as background come out park green and background
grey in turn. Real maps are flat there. Blurring the *unsure* pixels (those shading moved
past the exact radius of their class colour, and whose most likely class has less than
even odds) with a Gaussian of a pixel or two lets each take the colours around it: on real
aerial photo → map pairs it raises PSNR and SSIM on every model measured, and brings the
SSIM of unfamiliar scenes to a blank map's, at the price of a little of the rare classes'
IoU (``benchmarks/README.md``, "The unsure pixels blurred by default").
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

DEFAULT_SIGMA = 1.5
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
        taps = np.exp(-0.5 * (np.arange(self.radius + 1) / sigma) ** 2)
        # The kernel is symmetric: taps[k] weighs the pixels k away on either side.
        self._taps = (taps / (2 * taps.sum() - taps[0])).astype(np.float32)
        self.height = height
        self._received = 0
        self._emitted = 0
        # Rows fed and not yet returned: colours, unsure, valid and riders.
        self._held: list[NDArray[Any]] | None = None
        # Column-blurred weighted colours and weights, stacked (C + 1 planes), of rows
        # [_emitted - radius, _received), zero rows standing for the rows above the first.
        self._rows: NDArray[np.float32] | None = None

    @property
    def held(self) -> int:
        """Rows fed but not yet returned."""
        return self._received - self._emitted

    @property
    def emitted(self) -> int:
        """Rows returned so far."""
        return self._emitted

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
            order: none, or one. They are the blur's own copies (the inputs may be
            reused).

        Raises:
            ValueError: If more than ``height`` rows are fed.
        """
        rows, width = valid.shape
        if self._received + rows > self.height:
            raise ValueError(f"{self._received + rows} rows fed to a blur of {self.height}")
        bands, r = colours.shape[0], self.radius
        # Weighted colours and weights, zero-padded left and right, blurred along the rows.
        padded = np.zeros((bands + 1, rows, width + 2 * r), np.float32)
        np.multiply(colours, valid, out=padded[:bands, :, r:r + width])
        padded[bands, :, r:r + width] = valid
        pieces = (colours, unsure, valid, *riders)
        if self._rows is None or self._held is None:
            self._rows = np.zeros((bands + 1, r, width), np.float32)
            self._held = [a[..., :0, :] for a in pieces]
        self._rows = np.concatenate([self._rows, self._correlate(padded, 2, width)], axis=1)
        self._held = [np.concatenate([held, new], axis=-2)
                      for held, new in zip(self._held, pieces, strict=True)]
        self._received += rows
        if self._received == self.height:  # the rows below the last stand for zeros
            self._rows = np.concatenate(
                [self._rows, np.zeros((bands + 1, r, width), np.float32)], axis=1)
            ready = self._received - self._emitted
        else:
            ready = max(self._received - r - self._emitted, 0)
        if not ready:
            return []
        return [self._finish(ready)]

    def _correlate(self, padded: NDArray[np.float32], axis: int, count: int
                   ) -> NDArray[np.float32]:
        """The kernel along ``axis`` of ``padded`` (``radius`` more each side than the
        ``count`` values wanted): the taps summed in one fixed order, whatever the piece."""
        r = self.radius

        def shifted(offset: int) -> NDArray[np.float32]:
            index = [slice(None)] * padded.ndim
            index[axis] = slice(r + offset, r + offset + count)
            return padded[tuple(index)]

        out: NDArray[np.float32] = shifted(0) * self._taps[0]
        pair = np.empty_like(out)
        for k in range(1, r + 1):
            np.add(shifted(-k), shifted(k), out=pair)
            pair *= self._taps[k]
            out += pair
        return out

    def _finish(self, count: int
                ) -> tuple[NDArray[np.float32], NDArray[np.bool_], list[NDArray[Any]]]:
        """The pass across the rows for the next ``count`` held rows; they leave the
        buffers."""
        assert self._rows is not None and self._held is not None
        sums = self._correlate(self._rows[:, :count + 2 * self.radius], 1, count)
        # Views of the held copies, which nothing writes to again: the rows leave them.
        colours, unsure, valid, *riders = (a[..., :count, :] for a in self._held)
        blur = unsure & valid  # the pixel itself is valid: its weight is above 0
        np.divide(sums[:-1], sums[-1], out=colours, where=blur)
        self._held = [a[..., count:, :] for a in self._held]
        self._rows = self._rows[:, count:]
        self._emitted += count
        return colours, valid, riders


def blur_unsure(colours: NDArray[np.float32], unsure: NDArray[np.bool_],
                valid: NDArray[np.bool_], sigma: float = DEFAULT_SIGMA
                ) -> NDArray[np.float32]:
    """:class:`UnsureBlur` of a whole (C, H, W) drawing at once."""
    if sigma <= 0 or not unsure.any():
        return colours
    return UnsureBlur(sigma, valid.shape[0]).add(colours, unsure, valid)[0][0]


__all__ = ["DEFAULT_SIGMA", "UnsureBlur", "blur_radius", "blur_unsure"]
