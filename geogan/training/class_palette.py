"""The class head's palette: learnt from the target chips when they are a flat-colour map.

Sat → map users want a map, not a painting of one: crisp palette colours, and a class
per pixel that GIS tools read as land cover. When ``TrainConfig.classes`` is ``auto``
and the target chips turn out to be a flat-colour map (:mod:`geogan.raster.flat_colours`), the
generator gets a class head over that palette, trained with cross-entropy beside the
image output; ``translate`` then writes the colours of the most likely classes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from geogan.nn.config import Architecture, TrainConfig
from geogan.nn.losses import class_targets
from geogan.nn.normalization import BandNormalization
from geogan.raster.flat_colours import detect_flat_palette
from geogan.raster.palette import colour_name
from geogan.training.chip_folder import ChipFolder, read_chip

PALETTE_CHIPS = 64
"""Target chips (drawn with the run's seed) the palette is learnt from."""


def with_class_head(architecture: Architecture, config: TrainConfig,
                    folder: ChipFolder) -> Architecture:
    """``architecture`` with the palette of the target chips, and the weights and label
    smoothing the class head trains with, when ``config.classes`` is ``auto``, the model
    is a Pix2Pix and the chips are a flat-colour map; else as it is."""
    if config.classes != "auto" or architecture.kind != "pix2pix":
        return architecture
    learnt = learn_palette(folder, config.seed)
    if learnt is None:
        return architecture
    headed = replace(architecture, palette=tuple(learnt[0]), class_names=tuple(learnt[1]),
                     label_smoothing=config.label_smoothing)
    weights = class_weights(headed, config, folder, folder.domains["b"].normalization())
    if weights is None:
        return headed
    return replace(headed, class_weights=tuple(float(w) for w in weights))


def without_map_discriminator(architecture: Architecture, config: TrainConfig) -> TrainConfig:
    """``config`` with no adversarial loss (``lambda_gan`` 0: the discriminator is never
    trained) when ``architecture`` has a class head and ``config.map_discriminator`` is
    False; else as it is. Translate draws such a model's map from its class head, which
    the discriminator does not judge."""
    if architecture.palette and not config.map_discriminator and config.lambda_gan > 0:
        return replace(config, lambda_gan=0.0)
    return config


def learn_palette(folder: ChipFolder, seed: int = 0
                  ) -> tuple[list[tuple[float, ...]], list[str]] | None:
    """The palette and class names of the target chips, or None when they are not a
    flat-colour map (photos, elevation, reflectance, or too many colours)."""
    images, valids = _sample_targets(folder, seed)
    if not images:
        return None
    palette = detect_flat_palette(images, valids, seed=seed)
    if palette is None:
        return None
    return palette, [colour_name(c) for c in palette]


def class_weights(architecture: Architecture, config: TrainConfig, folder: ChipFolder,
                  normalization: BandNormalization) -> torch.Tensor | None:
    """Cross-entropy weight of each class, ``share ** -class_balance`` over the sampled
    target chips (classes with fewer pixels weigh more), scaled to a mean of 1; None
    without a class head or balancing.

    Thin roads and small ponds are a few per cent of a map's pixels: unweighted, the
    head learns that "background" is nearly always right and never draws them.
    """
    if not architecture.palette or config.class_balance <= 0:
        return None
    images, valids = _sample_targets(folder, config.seed)
    colours = normalized_colours(architecture.palette, normalization)
    counts = torch.ones(len(architecture.palette), dtype=torch.float64)  # no zero shares
    for image, valid in zip(images, valids, strict=True):
        counts += class_counts(image, valid, colours, normalization,
                               edges=config.class_edges).double()
    weights = (counts / counts.sum()) ** -config.class_balance
    return (weights / weights.mean()).float()


def class_counts(image: np.ndarray, valid: np.ndarray, colours: torch.Tensor,
                 normalization: BandNormalization, edges: bool = False) -> torch.Tensor:
    """(K,) int64: the pixels of each palette class in one target chip, (C, H, W) in the
    raster's values; invalid pixels count for none, and pixels between two colours too
    unless ``edges`` (as the class head is trained: ``TrainConfig.class_edges``)."""
    target = torch.from_numpy(normalization.normalize(image))[None]  # (1, C, H, W)
    mask = torch.from_numpy(valid.astype(np.float32))[None, None]
    classes = class_targets(target, colours, mask, edges=edges)
    return torch.bincount(classes[classes >= 0], minlength=len(colours))


def _sample_targets(folder: ChipFolder, seed: int) -> tuple[list[Any], list[Any]]:
    """Up to :data:`PALETTE_CHIPS` training target chips drawn with ``seed``, and their
    validity."""
    chips = folder.train["b"]
    if not chips:
        return [], []
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(chips), min(PALETTE_CHIPS, len(chips)), replace=False))
    images, valids = zip(*(read_chip(chips[i]) for i in chosen), strict=True)
    return list(images), list(valids)


def normalized_colours(palette: tuple[tuple[float, ...], ...],
                       normalization: BandNormalization) -> torch.Tensor:
    """The palette (K colours of C bands) in the generator's units, as (K, C) float32."""
    colours = np.asarray(palette, dtype=np.float64).T[:, :, None]  # (C, K, 1)
    return torch.from_numpy(normalization.normalize(colours)[:, :, 0].T.copy())


__all__ = ["PALETTE_CHIPS", "class_counts", "class_weights", "learn_palette",
           "normalized_colours", "with_class_head", "without_map_discriminator"]
