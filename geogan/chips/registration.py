"""Residual translation between the two images of a chip pair.

The two rasters of a training pair are georeferenced independently, and a shift of a
few pixels between them teaches a generator to blur. This module measures that shift
so the chip exporter can report it or drop badly aligned pairs.

The images come from different domains (a satellite photo and a flat-colour map, SAR
backscatter and optical reflectance, a surface model and an orthophoto), so their
intensities do not correspond, but their edges mostly do. :func:`estimate_shift`
therefore correlates gradient magnitudes, by phase correlation:

1. Each image is standardised band by band over the valid pixels, so that bands of
   any type and scale weigh the same. Small nodata holes are filled from their
   neighbours. Each band is blurred by [1, 2, 1] along both axes and differentiated
   by central differences (a Sobel-like operator that keeps pixel noise from
   becoming edges), and the band gradients are combined into one magnitude by root
   mean square: unlike a mean of the bands taken first, this keeps the edges of a
   colour map whose red and green go opposite ways across a boundary. Pixels whose
   stencil reaches nodata are zeroed, the rest made zero-mean, and the result is
   multiplied by a 2-D Hann window so that the chip's borders do not look like
   edges.
2. The normalised cross-power spectrum ``Fb * conj(Fa) / |Fb * conj(Fa)|`` keeps only
   the phase difference, which is what a translation changes; it is weighted by a
   Gaussian low-pass (standard deviation :data:`LOWPASS_SIGMA` cycles per pixel) that
   discounts the noisy high frequencies and makes the correlation peak a smooth
   blob about one pixel wide.
3. The inverse FFT of that spectrum peaks at the shift. The integer peak is refined
   to sub-pixel precision by fitting a Gaussian (a parabola on the logarithm) to it
   and its two neighbours along each axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

LOWPASS_SIGMA = 0.15
"""Standard deviation, in cycles per pixel, of the spectral weighting (peak ≈ 1 px wide)."""

_FEATURELESS = 1e-4
"""Largest RMS variation of the gradient magnitude, relative to its mean, of a chip
considered featureless (a constant or a uniform slope, up to float32 rounding)."""


MIN_RELIABLE_PEAK = 0.1
"""Below this ``peak`` a shift estimate means nothing (unrelated images score up to
about 0.09 on 256² chips; matched pairs of different domains 0.15 to 0.7)."""


@dataclass(frozen=True)
class Shift:
    """Translation of image ``b`` relative to image ``a``, in pixels.

    Attributes:
        dx: Columns; positive when the content of ``b`` lies to the right of the same
            content in ``a``.
        dy: Rows; positive when the content of ``b`` lies below.
        peak: Confidence in [0, 1]: the height of the correlation peak relative to the
            height a perfect match (``b`` an exact circular shift of ``a``) would give.
            Edges shared by both images raise it; pixel noise and edges found in one
            image only do not. On 256 x 256 chips, unrelated images score about 0.05
            (up to 0.1) and pairs of different domains typically 0.15 to 0.7, less
            where nodata covers much of the chip; below about 0.1 the shift means
            nothing. Featureless chips score 0.
    """

    dx: float
    dy: float
    peak: float

    @property
    def reliable(self) -> bool:
        """Whether the correlation peak is strong enough for the shift to mean anything."""
        return self.peak >= MIN_RELIABLE_PEAK

    @property
    def magnitude(self) -> float:
        """Length of the shift, in pixels."""
        return math.hypot(self.dx, self.dy)


def estimate_shift(
    a: NDArray[Any],
    b: NDArray[Any],
    valid: NDArray[np.bool_] | None = None,
    *,
    max_shift: float | None = None,
    scale: int = 1,
) -> Shift:
    """Estimate the translation between two images of the same place.

    Args:
        a: Reference image, shape (Ca, H, W), any numeric type.
        b: Image whose shift is measured, shape (Cb, H, W); Cb may differ from Ca.
        valid: Pixels that hold data in both images, shape (H, W); None when all do.
            NaN and infinite values are treated as invalid too.
        max_shift: Largest shift to consider along each axis, in pixels; None allows
            anything up to half the chip size. Restricting it avoids picking a
            repeated pattern (field rows, street grids) one period away.
        scale: Average ``scale`` × ``scale`` blocks before correlating: ``scale**2``
            times less work, for a sub-pixel precision ``scale`` times coarser (the
            exporter uses 2: about 0.2 px, ample to flag pairs misregistered by pixels).

    Returns:
        The shift of ``b`` relative to ``a`` and the confidence of the estimate.
        Featureless input (constant images, or no valid pixel) gives
        ``Shift(0.0, 0.0, peak=0.0)``.

    Raises:
        ValueError: If the shapes do not match or the chips are smaller than 3 x 3.
    """
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"expected two chips of shape (C, H, W) with the same H and W, "
            f"got {a.shape} and {b.shape}"
        )
    height, width = a.shape[1:]
    if height < 3 or width < 3:
        raise ValueError(f"chips of {height} x {width} pixels are too small to register")
    if valid is not None and valid.shape != (height, width):
        raise ValueError(f"mask of shape {valid.shape} does not match chips of {a.shape}")

    if scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale}")
    if scale > 1 and min(height, width) // scale >= 16:
        a, b, valid = (_block_mean(a, scale), _block_mean(b, scale),
                       None if valid is None else _block_all(valid, scale))
        found = estimate_shift(a, b, valid,
                               max_shift=None if max_shift is None else max_shift / scale)
        return Shift(found.dx * scale, found.dy * scale, found.peak)

    mask = np.ones((height, width), dtype=bool) if valid is None else valid.astype(bool)
    images = []
    for image in (a, b):
        image32 = image.astype(np.float32)  # a copy: the caller's chip is not touched
        if image.dtype.kind not in "biu":  # NaN and inf (also float64 beyond float32)
            finite = np.isfinite(image32)
            if not finite.all():
                mask &= finite.all(axis=0)
                image32[~finite] = 0
        images.append(image32)

    edges_a = _edge_image(images[0], mask)
    edges_b = _edge_image(images[1], mask)
    if edges_a is None or edges_b is None:
        return Shift(0.0, 0.0, peak=0.0)

    cross = np.fft.rfft2(edges_b) * np.conj(np.fft.rfft2(edges_a))  # (H, W // 2 + 1)
    magnitude = np.abs(cross)
    # A relative epsilon keeps bins with no energy in either image at ~0, not 0 / 0.
    cross /= magnitude + (np.float32(1e-6) * magnitude.max() + np.float32(1e-30))
    weight, perfect_peak = _lowpass(height, width)
    surface = np.fft.irfft2(cross * weight, s=(height, width))  # (H, W), peak at the shift

    search = surface
    if max_shift is not None:
        search = np.where(_within(height, width, max_shift), surface, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(search)), surface.shape)
    peak = float(surface[iy, ix]) / perfect_peak
    if not peak > 0.0:  # also catches NaN
        return Shift(0.0, 0.0, peak=0.0)

    rows = surface[[(iy - 1) % height, iy, (iy + 1) % height], ix]
    cols = surface[iy, [(ix - 1) % width, ix, (ix + 1) % width]]
    dy = _signed(int(iy), height) + _subpixel(rows)
    dx = _signed(int(ix), width) + _subpixel(cols)
    return Shift(dx=float(dx), dy=float(dy), peak=min(peak, 1.0))


def _block_mean(image: NDArray[Any], scale: int) -> NDArray[np.float32]:
    """Mean of ``scale`` × ``scale`` blocks, (C, H, W) → (C, H // scale, W // scale).

    NaN and infinities propagate into their block, which is then treated as invalid."""
    h, w = image.shape[1] // scale, image.shape[2] // scale
    exact = _exact_integer_sum(image.dtype, scale)
    if exact is not None:
        # Integer sums are exact in any order, and exact in float32: rows first, whole
        # rows at a time, then columns, is almost twice as fast and gives the same floats.
        rows = image[:, : h * scale, : w * scale].reshape(image.shape[0], h, scale, w * scale)
        sums = rows[:, :, 0].astype(exact)
        for i in range(1, scale):
            sums += rows[:, :, i]
        columns = sums.reshape(image.shape[0], h, w, scale)
        block = columns[..., 0].copy()
        for j in range(1, scale):
            block += columns[..., j]
        mean = block.astype(np.float32)
    else:
        # Summing strided slices is several times faster than a mean over a reshaped view.
        mean = np.zeros((image.shape[0], h, w), np.float32)
        with np.errstate(invalid="ignore"):  # inf + -inf in one block: NaN, as documented
            for i in range(scale):
                for j in range(scale):
                    mean += image[:, i : h * scale : scale, j : w * scale : scale]
    mean *= np.float32(1 / scale**2)
    return mean


def _exact_integer_sum(dtype: np.dtype[Any], scale: int) -> type[np.integer[Any]] | None:
    """An integer type that sums ``scale`` × ``scale`` values of ``dtype`` exactly, with
    every partial sum exact in float32 too (below 2**24); None if there is none."""
    if dtype.kind not in "biu" or dtype.itemsize > 2:
        return None
    info = np.iinfo(np.uint8) if dtype.kind == "b" else np.iinfo(dtype)
    largest = scale * scale * max(abs(int(info.min)), int(info.max))
    if largest >= 2**24:
        return None
    if info.min >= 0 and largest <= np.iinfo(np.uint16).max:
        return np.uint16
    return np.int32


def _block_all(mask: NDArray[np.bool_], scale: int) -> NDArray[np.bool_]:
    """A block is valid when all its pixels are."""
    h, w = mask.shape[0] // scale, mask.shape[1] // scale
    # AND-ing strided slices is many times faster than all() over a reshaped view.
    result = mask[0 : h * scale : scale, 0 : w * scale : scale].copy()
    for i in range(scale):
        for j in range(scale):
            if i or j:
                result &= mask[i : h * scale : scale, j : w * scale : scale]
    return result


def _edge_image(image: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.float32] | None:
    """Windowed, zero-mean gradient magnitude of a chip, or None if it has no edges.

    Args:
        image: Chip of shape (C, H, W).
        mask: Valid pixels, shape (H, W).

    Returns:
        Edge image of shape (H, W), or None when no pixel has a valid neighbourhood or
        the edge strength is uniform (a constant or linear-ramp chip).
    """
    bands = image.shape[0]
    count = int(np.count_nonzero(mask))
    if count == 0:
        return None
    full = count == mask.size
    # Per-band standardisation over the valid pixels; masked sums are dot products,
    # much faster than gathering the valid pixels with a boolean index.
    flat = image.reshape(bands, -1)  # (C, H*W)
    weights = None if full else mask.reshape(-1).astype(np.float32) / np.float32(count)
    mean = flat.mean(axis=1) if weights is None else flat @ weights  # (C,)
    deviation = flat - mean[:, None]
    if weights is None:
        var = np.einsum("ij,ij->i", deviation, deviation) / np.float32(deviation.shape[1])
    else:
        var = (deviation * deviation) @ weights
    scale = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 0).astype(np.float32)
    standard = (deviation * scale[:, None]).reshape(image.shape)  # (C, H, W)

    support = mask
    if not full:
        standard *= mask
        # Fill small holes with the weighted mean of their valid neighbours (normalised
        # convolution), so that scattered nodata pixels do not leave a pattern shared
        # by both images, which would correlate at zero shift. Large nodata areas stay
        # out of the support and their border is cut off below.
        coverage = _blur5(mask.astype(np.float32)[None])[0]  # (H, W)
        support = mask | (coverage >= 0.25)
        fill = _blur5(standard) / np.maximum(coverage, np.float32(1e-6))
        standard = np.where(mask, standard, np.where(support, fill, np.float32(0)))

    # A [1, 2, 1] blur along each axis, then central differences: a Sobel-like
    # derivative that averages pixel noise away before it turns into false edges.
    # In place (``standard`` is this function's own), each neighbours' sum taken first.
    smooth = standard
    neighbours = smooth[:, 2:, :] + smooth[:, :-2, :]
    neighbours *= np.float32(0.5)
    smooth[:, 1:-1, :] += neighbours
    neighbours = smooth[:, :, 2:] + smooth[:, :, :-2]
    neighbours *= np.float32(0.5)
    smooth[:, :, 1:-1] += neighbours
    gx = np.zeros_like(smooth)
    gy = np.zeros_like(smooth)
    np.subtract(smooth[:, :, 2:], smooth[:, :, :-2], out=gx[:, :, 1:-1])
    np.subtract(smooth[:, 2:, :], smooth[:, :-2, :], out=gy[:, 1:-1, :])
    # Per-band gradients combined by root mean square, so that bands whose values go
    # opposite ways across an edge (a colour map's red and green) add up, not cancel.
    gx *= gx
    gy *= gy
    gx += gy
    edges = np.sqrt(gx.sum(axis=0) / np.float32(bands))  # (H, W)

    # Only pixels whose whole 5 x 5 stencil lies in the support carry a true gradient.
    inner = _erode_full(*support.shape) if full else _erode(support, 2)
    inner_count = int(np.count_nonzero(inner))
    if inner_count == 0:
        return None
    inner_weights = inner.astype(np.float32) / np.float32(inner_count)
    level = np.float32(np.vdot(edges, inner_weights))
    edges -= level
    edges *= inner
    spread = float(np.vdot(edges, edges)) / inner_count  # variance of the magnitude
    if spread <= (_FEATURELESS * float(level)) ** 2 + np.finfo(np.float32).tiny:
        return None
    windowed: NDArray[np.float32] = edges * _hann(*mask.shape)
    return windowed


def _blur5(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Separable [1, 4, 6, 4, 1] / 16 blur of each band of (C, H, W), zero outside."""
    return _blur5_axis(_blur5_axis(x, 1), 2)


def _blur5_axis(x: NDArray[np.float32], axis: int) -> NDArray[np.float32]:
    """[1, 4, 6, 4, 1] / 16 blur along one axis, with zeros beyond the ends."""
    size = x.shape[axis]
    out = np.float32(6 / 16) * x
    for shift, tap in ((1, 4 / 16), (2, 1 / 16)):
        head = [slice(None)] * x.ndim
        tail = [slice(None)] * x.ndim
        head[axis] = slice(0, size - shift)
        tail[axis] = slice(shift, size)
        out[tuple(head)] += np.float32(tap) * x[tuple(tail)]  # neighbour after
        out[tuple(tail)] += np.float32(tap) * x[tuple(head)]  # neighbour before
    return out


def _erode(mask: NDArray[np.bool_], radius: int) -> NDArray[np.bool_]:
    """Pixels whose (2 * radius + 1)-square neighbourhood lies inside the mask and chip."""
    height, width = mask.shape
    if min(height, width) <= 2 * radius:  # no pixel has a whole neighbourhood
        return np.zeros_like(mask)
    rows = np.zeros_like(mask)
    rows[radius : height - radius] = mask[radius : height - radius]
    for step in range(1, radius + 1):
        rows[radius : height - radius] &= mask[radius - step : height - radius - step]
        rows[radius : height - radius] &= mask[radius + step : height - radius + step]
    out = np.zeros_like(mask)
    out[:, radius : width - radius] = rows[:, radius : width - radius]
    for step in range(1, radius + 1):
        out[:, radius : width - radius] &= rows[:, radius - step : width - radius - step]
        out[:, radius : width - radius] &= rows[:, radius + step : width - radius + step]
    return out


@lru_cache(maxsize=8)
def _erode_full(height: int, width: int) -> NDArray[np.bool_]:
    """:func:`_erode` of a chip whose pixels are all valid (the usual case), made once.
    Read-only: it is shared."""
    inner = _erode(np.ones((height, width), dtype=bool), 2)
    inner.flags.writeable = False
    return inner


@lru_cache(maxsize=8)
def _hann(height: int, width: int) -> NDArray[np.float32]:
    """2-D Hann window, shape (height, width)."""
    return np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)


@lru_cache(maxsize=8)
def _lowpass(height: int, width: int) -> tuple[NDArray[np.float32], float]:
    """Gaussian spectral weighting on the rfft2 grid, and the peak of a perfect match.

    A perfect match has a unit cross-power spectrum, so its correlation peak is the
    inverse FFT of the weighting at the origin: the mean of the weighting over the
    full (not half) spectrum.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    weight = np.exp(-(fy**2 + fx**2) / (2 * LOWPASS_SIGMA**2))  # (H, W // 2 + 1)
    full_fx = np.fft.fftfreq(width)[None, :]
    perfect_peak = float(np.exp(-(fy**2 + full_fx**2) / (2 * LOWPASS_SIGMA**2)).mean())
    return weight.astype(np.float32), perfect_peak


@lru_cache(maxsize=8)
def _within_cached(height: int, width: int, max_shift: float) -> NDArray[np.bool_]:
    dy = np.abs(_signed_axis(height))[:, None]
    dx = np.abs(_signed_axis(width))[None, :]
    return (dy <= max_shift) & (dx <= max_shift)


def _within(height: int, width: int, max_shift: float) -> NDArray[np.bool_]:
    """Cells of the correlation surface whose shift is at most ``max_shift`` per axis."""
    return _within_cached(height, width, float(max(max_shift, 0.0)))


def _signed_axis(size: int) -> NDArray[np.int64]:
    """Signed shift of each index of a circular axis: 0, 1, ..., -2, -1."""
    index = np.arange(size, dtype=np.int64)
    return np.where(index < (size + 1) // 2, index, index - size)


def _signed(index: int, size: int) -> int:
    """Signed shift of one index of a circular axis."""
    return index if index < (size + 1) // 2 else index - size


def _subpixel(values: NDArray[Any]) -> float:
    """Offset of a peak from its middle sample, from the samples on either side.

    Fits a Gaussian (a parabola through the logarithms) when all three are positive,
    which is exact for the Gaussian-shaped peak the low-pass produces; otherwise a
    parabola. The offset is clipped to half a pixel.
    """
    left, centre, right = (float(v) for v in values)
    if left > 0 and right > 0:
        left, centre, right = math.log(left), math.log(centre), math.log(right)
    curvature = left - 2 * centre + right
    if curvature >= 0:  # flat or not a maximum
        return 0.0
    return max(-0.5, min(0.5, 0.5 * (left - right) / curvature))
