"""Class palettes of flat-colour rasters (maps): the one place that reads them.

A palette maps class names to colours, in class-index order. It comes from one of:

* the ``GEOGAN_PALETTE`` tag that ``geogan sample-data`` writes on its maps
  (:func:`palette_from_tags`, :func:`palette_in_tags`);
* a JSON file or a mapping given by the user (:func:`given_palette`, :func:`load_palette`);
* the raster's own flat colours (:func:`detect_palette`).

``geogan evaluate --palette``, the Python API's ``compute_metrics`` and ``show_results``,
and the demo all resolve palettes here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geogan.errors import InputError
from geogan.raster.flat_colours import detect_flat_palette
from geogan.raster.io import valid_mask

PALETTE_TAG = "GEOGAN_PALETTE"
"""GeoTIFF tag that holds a map's class palette as JSON: ``{"class name": [r, g, b], ...}``."""

AUTO_COVERAGE = 0.99
"""``palette="auto"``: the most common colours of the reference must cover this share of
its valid pixels ..."""

AUTO_MAX_CLASSES = 32
"""... with at most this many colours, for the reference to count as a flat-colour map."""

_AUTO_MAX_DISTINCT = 4096  # distinct colours counted before exact counting gives up
_AUTO_MAX_PIXELS = 4_000_000  # pixels a rendered map's palette is found from


def palette_from_tags(tags: Mapping[str, str]) -> dict[str, tuple[int, int, int]]:
    """Recover the class palette from a map GeoTIFF's tags.

    Args:
        tags: The dataset tags, e.g. ``rasterio.open(path).tags()``.

    Returns:
        Class name to RGB colour, in class-index order.

    Raises:
        InputError: If the tags hold no palette or it cannot be read.
    """
    text = tags.get(PALETTE_TAG)
    if text is None:
        raise InputError(f"The raster has no {PALETTE_TAG} tag: it is not a geogan map.")
    try:
        raw = json.loads(text)
        return {str(name): (int(rgb[0]), int(rgb[1]), int(rgb[2])) for name, rgb in raw.items()}
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise InputError(f"The {PALETTE_TAG} tag is not a palette: {error}.") from error


def palette_in_tags(tags: Mapping[str, str]) -> dict[str, tuple[int, int, int]] | None:
    """The palette of the ``GEOGAN_PALETTE`` tag, or None when the tags have none.

    Raises:
        InputError: If the tag is there but cannot be read.
    """
    return palette_from_tags(tags) if PALETTE_TAG in tags else None


def load_palette(path: str | os.PathLike[str]) -> dict[str, tuple[float, ...]]:
    """Read a palette file: a JSON object ``{"class name": [r, g, b], ...}``.

    Raises:
        InputError: If the file is missing, not JSON, or not such an object.
    """
    name = os.fspath(path)
    hint = 'give a JSON object {"class name": [r, g, b], ...}'
    try:
        document = json.loads(Path(name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"palette file {name}: no such file; {hint}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"palette file {name} is not readable JSON ({error}); "
                         f"{hint}") from None
    try:
        return check_palette(document)
    except InputError as error:
        raise InputError(f"palette file {name}: {error}; {hint}") from None


def given_palette(spec: Mapping[str, Sequence[float]] | str | os.PathLike[str]
                  ) -> dict[str, tuple[float, ...]]:
    """A palette given as a mapping of class name → colour, or as a JSON file; checked.

    Raises:
        InputError: If it is not an object of classes with colours of one length.
    """
    return check_palette(spec) if isinstance(spec, Mapping) else load_palette(spec)


def check_palette(document: Any) -> dict[str, tuple[float, ...]]:
    if not isinstance(document, Mapping) or not document:
        raise InputError("the palette is not an object of classes")
    palette: dict[str, tuple[float, ...]] = {}
    length = None
    for key, colour in document.items():
        if (not isinstance(colour, list | tuple) or not colour
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in colour)):
            raise InputError(f"class {key!r} has no list of numbers as its colour")
        if length is not None and len(colour) != length:
            raise InputError(f"class {key!r} has {len(colour)} value(s), the others {length}")
        length = len(colour)
        palette[str(key)] = tuple(float(v) for v in colour)
    return palette


def detect_palette(ref: Any) -> dict[str, tuple[float, ...]] | None:
    """The reference's flat colours, most common first, or None when it is not a map.

    A map drawn in exact colours (a class raster, a synthetic map) has its colours
    counted exactly; a rendered one (anti-aliased, JPEG-compressed: thousands of
    distinct colours) has them found as the modes of its flat areas
    (:func:`geogan.raster.flat_colours.detect_flat_palette`).
    """
    if np.dtype(ref.dtypes[0]).kind not in "ui" or ref.count > 4:
        return None
    exact = _exact_palette(ref)
    return exact if exact is not None else _rendered_palette(ref)


def _rendered_palette(ref: Any) -> dict[str, tuple[float, ...]] | None:
    """Palette of a rendered map from its blocks, up to :data:`_AUTO_MAX_PIXELS` pixels."""
    images, valids, seen = [], [], 0
    for _, window in ref.block_windows(1):
        data = ref.read(window=window)  # (C, h, w)
        images.append(data)
        valids.append(valid_mask(ref, window, data))
        seen += data.shape[1] * data.shape[2]
        if seen >= _AUTO_MAX_PIXELS:
            break
    palette = detect_flat_palette(images, valids)
    if palette is None:
        return None
    return {colour_name(c): c for c in palette}


def _exact_palette(ref: Any) -> dict[str, tuple[float, ...]] | None:
    """Counts every valid pixel's colour block by block (giving up once more than
    :data:`_AUTO_MAX_DISTINCT` colours were seen), then keeps the fewest most common
    colours that cover :data:`AUTO_COVERAGE` of the pixels (the rest is anti-aliasing or
    noise), if they are at most :data:`AUTO_MAX_CLASSES`."""
    counts: dict[int, int] = {}
    for _, window in ref.block_windows(1):
        data = ref.read(window=window)  # (C, h, w)
        valid = valid_mask(ref, window, data)  # (h, w)
        pixels = data[:, valid].astype(np.int64)  # (C, n)
        if pixels.size == 0:
            continue
        if pixels.min() < 0 or pixels.max() >= 2**16:
            return None
        keys = np.zeros(pixels.shape[1], dtype=np.uint64)
        for band in pixels:
            keys = (keys << np.uint64(16)) | band.astype(np.uint64)
        unique, number = np.unique(keys, return_counts=True)
        for key, count in zip(unique.tolist(), number.tolist(), strict=True):
            counts[key] = counts.get(key, 0) + count
        if len(counts) > _AUTO_MAX_DISTINCT:
            return None
    if not counts:
        return None
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    total = sum(counts.values())
    kept, covered = [], 0
    for key, count in ranked:
        kept.append(key)
        covered += count
        if covered >= AUTO_COVERAGE * total:
            break
    if len(kept) > AUTO_MAX_CLASSES:
        return None
    palette: dict[str, tuple[float, ...]] = {}
    for key in kept:
        colour = tuple(float((key >> (16 * (ref.count - 1 - b))) & 0xFFFF)
                       for b in range(ref.count))
        palette[colour_name(colour)] = colour
    return palette


def colour_name(colour: Sequence[float]) -> str:
    """``#rrggbb`` for 8-bit RGB colours, else the values."""
    if len(colour) == 3 and all(0 <= v <= 255 for v in colour):
        return "#" + "".join(f"{int(v):02x}" for v in colour)
    if len(colour) == 1:
        return f"value {int(colour[0])}"
    return "(" + ", ".join(str(int(v)) for v in colour) + ")"
