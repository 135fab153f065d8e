"""Class scores of translated maps whose reference is drawn in a flat-colour palette.

The functions work on numpy RGB arrays ``(3, H, W)`` in the raster's own values (0-255
for uint8), not on tensors: a map's classes are its colours, and a translated pixel
belongs to the class whose palette colour is nearest. A confusion matrix holds counts
only, so scenes larger than memory are scored window by window by adding the windows'
matrices (:mod:`geogan.evaluation.rasters`). Palettes themselves are read by
:mod:`geogan.raster.palette`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["PaletteScores", "palette_confusion", "palette_scores", "scores_from_confusion",
           "snap_to_palette"]


@dataclass(frozen=True, eq=False)  # eq=False: an array field has no single truth value
class PaletteScores:
    """How well a translated map's classes agree with a reference map's.

    Attributes:
        classes: Class names, in palette order.
        confusion: (K, K) int64 pixel counts; row = reference class, column = predicted.
        accuracy: Per class, the share of the reference's pixels of that class that the
            prediction gives that class too (recall, producer's accuracy); ``None`` for a
            class the reference does not hold.
        iou: Per class, intersection over union of the two maps' pixels of that class;
            ``None`` for a class the reference does not hold.
        pixel_accuracy: Share of all scored pixels whose class agrees (NaN if none).
        mean_iou: Mean of the IoU of the classes the reference holds (NaN if none).
        pixels: Scored pixels in all.
    """

    classes: tuple[str, ...]
    confusion: NDArray[np.int64]
    accuracy: dict[str, float | None]
    iou: dict[str, float | None]
    pixel_accuracy: float
    mean_iou: float
    pixels: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, floats, ``None``), for JSON."""
        return {
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
            "accuracy": dict(self.accuracy),
            "iou": dict(self.iou),
            "pixel_accuracy": self.pixel_accuracy,
            "mean_iou": self.mean_iou,
            "pixels": self.pixels,
        }


def _palette_array(palette: Mapping[str, Sequence[int]] | NDArray[Any]) -> NDArray[np.float64]:
    """The palette as (K, 3) float64 colours, checked."""
    values = list(palette.values()) if isinstance(palette, Mapping) else palette
    colours = np.asarray(values, dtype=np.float64)
    if colours.ndim != 2 or colours.shape[0] < 1 or colours.shape[1] < 1:
        raise ValueError(f"a palette must be (K, C) colours with K >= 1; got {colours.shape}")
    return colours


def snap_to_palette(
    rgb: NDArray[Any], palette: Mapping[str, Sequence[int]] | NDArray[Any]
) -> NDArray[np.intp]:
    """The class of every pixel: the index of the palette colour nearest to it.

    Distance is Euclidean in the raster's values (RGB 0-255 for a uint8 map); a pixel
    exactly half-way between two colours goes to the one listed first. A flat-colour map
    snaps to itself exactly; a translated map, whose colours are only near the palette,
    is read as the classes it shows. Works one palette colour at a time, so memory is a
    few (H, W) arrays whatever the palette's size.

    Args:
        rgb: (C, H, W) of any numeric dtype, C the palette's channel count (3 for RGB).
        palette: Class name to colour (insertion order = class index), or a (K, C) array.

    Returns:
        (H, W) class indices into the palette.

    Raises:
        ValueError: If ``rgb`` is not (C, H, W) with the palette's C channels.
    """
    colours = _palette_array(palette)  # (K, C)
    if rgb.ndim != 3 or rgb.shape[0] != colours.shape[1]:
        raise ValueError(f"expected a ({colours.shape[1]}, H, W) image for a palette of "
                         f"{colours.shape[1]}-channel colours; got shape {rgb.shape}")
    pixels = np.asarray(rgb, dtype=np.float64)  # (C, H, W)
    labels = np.zeros(pixels.shape[1:], dtype=np.intp)  # (H, W)
    best = np.full(pixels.shape[1:], np.inf)  # (H, W) squared distance to the nearest so far
    for index, colour in enumerate(colours):
        distance = ((pixels - colour[:, None, None]) ** 2).sum(axis=0)  # (H, W)
        closer = distance < best  # strict: ties stay with the earlier colour
        labels[closer] = index
        best[closer] = distance[closer]
    return labels


def palette_confusion(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    palette: Mapping[str, Sequence[int]] | NDArray[Any],
    valid: NDArray[Any] | None = None,
) -> NDArray[np.int64]:
    """Pixel counts of (reference class, predicted class), both snapped to ``palette``.

    Args:
        prediction: The translated map, (C, H, W) in the reference's values.
        reference: The reference map, same shape.
        palette: Class name to colour, or a (K, C) array.
        valid: Optional (H, W) bool, True where a pixel is scored (e.g. not nodata in
            either map).

    Returns:
        (K, K) int64; row = reference class, column = predicted class. Matrices of
        several windows or scenes add up.

    Raises:
        ValueError: If the shapes do not agree with each other or the palette.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {prediction.shape} and reference {reference.shape} "
                         "must have the same shape")
    k = _palette_array(palette).shape[0]
    predicted = snap_to_palette(prediction, palette)  # (H, W)
    actual = snap_to_palette(reference, palette)  # (H, W)
    if valid is not None:
        scored = np.asarray(valid).astype(bool, copy=False)
        if scored.shape != actual.shape:
            raise ValueError(f"valid must be (H, W) = {actual.shape}; got {scored.shape}")
        predicted, actual = predicted[scored], actual[scored]
    pairs = actual.ravel() * k + predicted.ravel()
    return np.bincount(pairs, minlength=k * k).reshape(k, k).astype(np.int64)


def scores_from_confusion(confusion: NDArray[Any], classes: Sequence[str]) -> PaletteScores:
    """Per-class accuracy and IoU, pixel accuracy and mean IoU of a confusion matrix.

    A class absent from the reference (an empty row) has no accuracy and no IoU
    (``None``) and is left out of the mean IoU: there is nothing of it to find, and
    any pixel predicted as it already counts against the class it should have been.

    Args:
        confusion: (K, K) counts, row = reference class, column = predicted class.
        classes: The K class names, in the matrix's order.

    Returns:
        The scores.

    Raises:
        ValueError: If the matrix is not K x K for the K names given.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    k = len(classes)
    if counts.shape != (k, k):
        raise ValueError(f"confusion must be ({k}, {k}) for {k} classes; got {counts.shape}")
    hits = np.diag(counts)  # (K,)
    in_reference = counts.sum(axis=1)  # (K,)
    in_prediction = counts.sum(axis=0)  # (K,)
    union = in_reference + in_prediction - hits  # (K,)
    accuracy: dict[str, float | None] = {}
    iou: dict[str, float | None] = {}
    for index, name in enumerate(classes):
        present = in_reference[index] > 0
        accuracy[name] = float(hits[index] / in_reference[index]) if present else None
        iou[name] = float(hits[index] / union[index]) if present else None
    total = int(counts.sum())
    ious = [value for value in iou.values() if value is not None]
    return PaletteScores(
        classes=tuple(classes),
        confusion=counts,
        accuracy=accuracy,
        iou=iou,
        pixel_accuracy=float(hits.sum() / total) if total else math.nan,
        mean_iou=float(np.mean(ious)) if ious else math.nan,
        pixels=total,
    )


def palette_scores(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    palette: Mapping[str, Sequence[int]],
    valid: NDArray[Any] | None = None,
) -> PaletteScores:
    """Class scores of a translated map against a flat-colour reference map.

    Both maps are snapped to ``palette`` (:func:`snap_to_palette`) and compared pixel by
    pixel (:func:`palette_confusion`, :func:`scores_from_confusion`).

    Args:
        prediction: The translated map, (C, H, W) in the reference's values (0-255).
        reference: The reference map, same shape, drawn in the palette's colours.
        palette: Class name to colour, in class order (e.g. the ``GEOGAN_PALETTE`` tag
            read with :func:`geogan.raster.palette.palette_from_tags`).
        valid: Optional (H, W) bool, True where a pixel is scored.

    Returns:
        Per-class accuracy and IoU, pixel accuracy, mean IoU and the confusion matrix.

    Raises:
        ValueError: If the shapes do not agree with each other or the palette.
    """
    confusion = palette_confusion(prediction, reference, palette, valid)
    return scores_from_confusion(confusion, list(palette))
