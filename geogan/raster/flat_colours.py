"""Is a raster a flat-colour map, and what is its palette? Found from its pixels.

Rendered maps (a web map's tiles, a land-cover map) are drawn in a few flat colours,
but real ones are anti-aliased and often JPEG-compressed, so counting exact colours
(what a synthetic map allows) finds thousands. Two observations make it robust:

* **Flatness.** In a map, a large share of pixels equal their four neighbours within
  a few levels (areas are filled with one colour); in a photo almost none do (about 40 %
  against 2 % on the pix2pix aerial/map pairs). That decides *whether* it is a map.
* **Modes of the flat pixels.** The colours of flat pixels cluster tightly around the
  palette (anti-aliased edges are never flat); mean-shift from the densest colour
  finds each cluster. Thin features (roads drawn 4 px wide) have few flat pixels, so a
  second pass looks for dense colours among the pixels no palette colour explains and
  keeps those that are not a blend of two palette colours.

Integer rasters only (uint8/uint16 maps and class rasters); values are compared in raw
levels. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

FLAT_LEVELS = 3
"""A pixel is flat when no band differs from its 4 neighbours by more than this."""

MIN_FLAT_SHARE = 0.2
"""A flat-colour map has at least this share of flat pixels (photos have a few %)."""

MERGE_DISTANCE = 16.0
"""Colours closer than this (Euclidean, in levels) are one palette colour: the 40 pix2pix
maps draw water in two shades 15 apart and a beige 14.5 from their background,
which as classes of their own split what the class head learns (validation water IoU 0.22
against 0.32). The closest distinct colours of a web map, background and buildings, are
19.7 apart."""

COVER_DISTANCE = 20.0
"""A pixel is explained by the palette when a colour is at most this far."""

MIN_COVERAGE = 0.9
"""A flat-colour map has at least this share of pixels explained by its palette."""

MIN_FLAT_CLASS_SHARE = 0.0003
"""A colour of the first pass covers at least this share of the flat pixels."""

MIN_THIN_CLASS_SHARE = 0.001
"""A colour of the second pass (thin features) covers at least this share of pixels."""

MIN_BLEND_DISTANCE = 20.0
"""A second-pass colour this close to the segment between two palette colours is a
blend of them (anti-aliasing), not a colour of its own."""

MAX_CLASSES = 32
"""At most this many colours."""

MAX_SEEDS = 2 * MAX_CLASSES
"""At most this many seeds (dense and sparse clusters together) per pass."""

MAX_SAMPLES = 200_000
"""Pixels drawn (seeded) from each pass's candidates, to bound the work."""


def flat_mask(image: NDArray[Any], valid: NDArray[np.bool_] | None = None) -> NDArray[np.bool_]:
    """(H, W) pixels of ``image`` (C, H, W) equal to their four neighbours within
    :data:`FLAT_LEVELS` on every band (border pixels and invalid ones are not flat)."""
    x = np.asarray(image, dtype=np.int64)
    height, width = x.shape[1:]
    flat = np.zeros((height, width), dtype=bool)
    if height < 3 or width < 3:
        return flat
    centre = x[:, 1:-1, 1:-1]
    spread = np.zeros(centre.shape[1:], dtype=np.int64)
    for neighbour in (x[:, :-2, 1:-1], x[:, 2:, 1:-1], x[:, 1:-1, :-2], x[:, 1:-1, 2:]):
        spread = np.maximum(spread, np.abs(centre - neighbour).max(axis=0))
    flat[1:-1, 1:-1] = spread <= FLAT_LEVELS
    if valid is not None:
        flat &= np.asarray(valid, dtype=bool)
        flat[1:-1, 1:-1] &= (valid[:-2, 1:-1] & valid[2:, 1:-1]
                             & valid[1:-1, :-2] & valid[1:-1, 2:])
    return flat


def detect_flat_palette(images: Sequence[NDArray[Any]],
                        valids: Sequence[NDArray[np.bool_] | None] | None = None,
                        seed: int = 0) -> list[tuple[float, ...]] | None:
    """The palette of a flat-colour map seen in ``images``, or None when it is not one.

    Args:
        images: (C, H, W) integer arrays (chips or blocks of one map).
        valids: (H, W) validity of each image, or None for all valid.
        seed: Seeds the subsampling of pixels.

    Returns:
        Colours (one value per band), the most common first; None when the images are
        not integer, have fewer than :data:`MIN_FLAT_SHARE` flat pixels, or their
        palette explains fewer than :data:`MIN_COVERAGE` of the pixels.
    """
    if not images or any(np.asarray(i).dtype.kind not in "ui" for i in images):
        return None
    valids = list(valids) if valids is not None else [None] * len(images)
    flat_pixels, all_pixels = [], []
    flat_count = valid_count = 0
    for image, valid in zip(images, valids, strict=True):
        image = np.asarray(image)
        ok = np.ones(image.shape[1:], bool) if valid is None else np.asarray(valid, bool)
        flat = flat_mask(image, ok)
        flat_count += int(flat.sum())
        valid_count += int(ok.sum())
        flat_pixels.append(image[:, flat].T)
        all_pixels.append(image[:, ok].T)
    if valid_count == 0 or flat_count < MIN_FLAT_SHARE * valid_count:
        return None
    rng = np.random.default_rng(seed)
    flat_px = _subsample(np.concatenate(flat_pixels).astype(np.float64), rng)
    every_px = _subsample(np.concatenate(all_pixels).astype(np.float64), rng)
    colours = _modes(flat_px, MIN_FLAT_CLASS_SHARE * len(flat_px))
    nearest = _distances(every_px, colours).min(axis=1)
    unexplained = every_px[nearest >= COVER_DISTANCE]
    for colour in _modes(unexplained, MIN_THIN_CLASS_SHARE * len(every_px)):
        if len(colours) >= MAX_CLASSES:
            break
        if _blend_distance(colour, colours) >= MIN_BLEND_DISTANCE:
            colours.append(colour)
    if len(colours) < 2 or (_distances(every_px, colours).min(axis=1)
                            < COVER_DISTANCE).mean() < MIN_COVERAGE:
        return None
    return [tuple(float(round(v)) for v in c) for c in colours]


def _subsample(pixels: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    if len(pixels) <= MAX_SAMPLES:
        return pixels
    return pixels[rng.choice(len(pixels), MAX_SAMPLES, replace=False)]


def _distances(pixels: NDArray[np.float64], colours: Sequence[Any]) -> NDArray[np.float64]:
    """(n, k) Euclidean distances of pixels (n, C) to colours (k, C)."""
    if not len(colours):
        return np.full((len(pixels), 1), np.inf)
    centres = np.asarray(colours, dtype=np.float64)
    squared = ((pixels[:, None, :] - centres[None]) ** 2).sum(axis=2)
    distances: NDArray[np.float64] = np.sqrt(squared)
    return distances


def _modes(pixels: NDArray[np.float64], min_count: float) -> list[NDArray[np.float64]]:
    """Dense colours of ``pixels``, densest first: seed at the most common quantised
    colour, mean-shift it, take every pixel within :data:`MERGE_DISTANCE`, repeat.

    A seed whose cluster is sparser than ``min_count`` is set aside, not the end of the
    search: among thin features the commonest quantised colour is often an anti-aliased
    blend of a few pixels, and a highway drawn in twice as many pixels comes after it.
    At most :data:`MAX_SEEDS` seeds are tried.
    """
    found: list[NDArray[np.float64]] = []
    if len(pixels) == 0:
        return found
    quantised = np.round(pixels / 3).astype(np.int64)
    keys = np.zeros(len(pixels), dtype=np.int64)
    for band in quantised.T:
        keys = keys * (int(band.max()) + 1) + band
    remaining = np.ones(len(pixels), dtype=bool)
    for _ in range(MAX_SEEDS):
        index = np.flatnonzero(remaining)
        if len(found) >= MAX_CLASSES or len(index) < max(min_count, 1):
            break
        _, inverse, counts = np.unique(keys[index], return_inverse=True,
                                            return_counts=True)
        seed = index[inverse == counts.argmax()]
        centre = pixels[seed].mean(axis=0)
        for _ in range(5):
            near = np.sqrt(((pixels[index] - centre) ** 2).sum(axis=1)) < MERGE_DISTANCE / 2
            if near.any():
                centre = pixels[index[near]].mean(axis=0)
        taken = remaining & (np.sqrt(((pixels - centre) ** 2).sum(axis=1)) < MERGE_DISTANCE)
        # A dense cluster within MERGE_DISTANCE of a denser one is a shade of it
        # (anti-aliasing, JPEG): its pixels go to that colour.
        dense = taken.sum() >= max(min_count, 1)
        if dense and _distances(centre[None], found).min() >= MERGE_DISTANCE:
            found.append(centre)
        remaining &= ~taken
        remaining[seed] = False  # a seed that mean-shift left behind is not tried again
    return found


def _blend_distance(colour: NDArray[np.float64], colours: Sequence[Any]) -> float:
    """Distance of ``colour`` to the nearest segment between two of ``colours``."""
    best = np.inf
    for i in range(len(colours)):
        for j in range(i + 1, len(colours)):
            a, b = np.asarray(colours[i]), np.asarray(colours[j])
            ab = b - a
            t = float(np.clip((colour - a) @ ab / max(float(ab @ ab), 1e-9), 0.0, 1.0))
            best = min(best, float(np.linalg.norm(colour - (a + t * ab))))
    return best


__all__ = ["detect_flat_palette", "flat_mask"]
