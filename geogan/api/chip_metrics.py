"""Scores of a model on a chip folder's validation split: :meth:`geogan.Pix2Pix.compute_metrics`.

Each validation chip is translated as ``translate`` would, and scored with the evaluation
layer's functions (:func:`geogan.evaluation.image_metrics.image_metrics`,
:class:`~geogan.evaluation.image_metrics.MetricMean`, and for maps
:func:`geogan.evaluation.class_metrics.palette_confusion`), the ones training validation
and ``geogan evaluate`` use. The target's palette is resolved by :mod:`geogan.raster.palette`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray

from geogan.chips.layout import source_raster
from geogan.errors import ConfigError
from geogan.evaluation.class_metrics import palette_confusion, scores_from_confusion
from geogan.evaluation.image_metrics import MetricMean, image_metrics
from geogan.nn.normalization import BandNormalization
from geogan.raster.palette import detect_palette, given_palette, palette_in_tags
from geogan.training.chip_folder import ChipFolder, read_chip

#: ``predict(pixels, convert_to="b", valid=...)`` of a model: raster values in and out.
Predict = Callable[..., NDArray[Any]]


def chip_metrics(folder: ChipFolder, path: str | os.PathLike[str],
                 norms: Mapping[str, BandNormalization], predict: Predict,
                 palette: Mapping[str, Sequence[float]] | str | None) -> dict[str, Any]:
    """L1, PSNR and SSIM (and class scores for maps) of ``predict`` over the validation
    chips of ``folder`` (see :meth:`geogan.Pix2Pix.compute_metrics`).

    Raises:
        ConfigError: If the folder has no validation chip.
    """
    if not folder.val["a"] or not folder.val["b"]:
        raise ConfigError(f"{path} has no validation chips; export the chips with "
                          "--val-fraction above 0 (or prepare_data(val_split_pct=...))")
    cycle = not folder.paired
    mean = MetricMean()
    colours = None if cycle else chip_palette(palette, folder)
    palette_array = None if colours is None else np.asarray(list(colours.values()), float)
    confusion: NDArray[np.int64] | None = None
    for i, path in enumerate(folder.val["a"]):
        pixels, valid = read_chip(path)
        output = predict(pixels, valid=valid)
        if cycle:
            reference, reference_valid, role = pixels, valid, "a"
            output = predict(output, "a", valid=valid)
        else:
            reference, reference_valid = read_chip(folder.val["b"][i])
            role = "b"
        scored = valid & reference_valid  # (H, W)
        x, y = (torch.from_numpy(norms[role].normalize(v))[None] for v in (output, reference))
        mean.update(image_metrics(x, y, torch.from_numpy(scored)[None, None].float()))
        if palette_array is not None:
            matrix = palette_confusion(output, reference, palette_array, scored)
            confusion = matrix if confusion is None else confusion + matrix
    result: dict[str, Any] = {**mean.result(), "chips": len(folder.val["a"]),
                              "cycle": cycle}
    if colours is not None and confusion is not None:
        scores = scores_from_confusion(confusion, list(colours))
        result.update(pixel_accuracy=scores.pixel_accuracy, mean_iou=scores.mean_iou,
                      accuracy=scores.accuracy, iou=scores.iou)
    return result


def chip_palette(palette: Mapping[str, Sequence[float]] | str | None,
                     folder: ChipFolder) -> dict[str, Sequence[float]] | None:
    """The target's classes: given, from a palette tag, or its flat colours."""
    if palette is None:
        return None
    if isinstance(palette, Mapping) or palette != "auto":
        return dict(given_palette(palette))
    target = folder.domains["b"]
    if np.dtype(target.dtype).kind not in "ui" or target.bands > 4:
        return None
    sources = [_source_raster(folder), *folder.val["b"][:1]]
    for source in sources:
        if source is not None and source.exists():
            with rasterio.open(source) as dataset:
                tags = dataset.tags()
            tagged = palette_in_tags(tags)
            if tagged is not None:
                return dict(tagged)
    source = _source_raster(folder)
    if source is None or not source.exists():
        return None
    with rasterio.open(source) as dataset:
        detected = detect_palette(dataset)
    return None if detected is None else dict(detected)


def _source_raster(folder: ChipFolder) -> Path | None:
    """The target raster a geogan chip folder was cut from, as its metadata records."""
    if folder.source != "geogan":
        return None
    return source_raster(folder.root, "b")
