"""The class head's palette: learnt from the target chips when they are a flat-colour map.

Sat → map users want a map, not a painting of one: crisp palette colours, and a class
per pixel that GIS tools read as land cover. When ``TrainConfig.classes`` is ``auto``
and the target chips turn out to be a flat-colour map (:mod:`geogan.flatcolours`), the
generator gets a class head over that palette, trained with cross-entropy beside the
image output; ``translate`` then writes the colours of the most likely classes.
"""

from __future__ import annotations

import numpy as np
import torch

from geogan.data import ChipFolder, read_chip
from geogan.flatcolours import colour_name, detect_flat_palette
from geogan.normalization import BandNormalization

PALETTE_CHIPS = 64
"""Target chips (drawn with the run's seed) the palette is learnt from."""


def learn_palette(folder: ChipFolder, seed: int = 0
                  ) -> tuple[list[tuple[float, ...]], list[str]] | None:
    """The palette and class names of the target chips, or None when they are not a
    flat-colour map (photos, elevation, reflectance, or too many colours)."""
    chips = folder.train["b"]
    if not chips:
        return None
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(chips), min(PALETTE_CHIPS, len(chips)), replace=False))
    images, valids = zip(*(read_chip(chips[i]) for i in chosen), strict=True)
    palette = detect_flat_palette(list(images), list(valids), seed=seed)
    if palette is None:
        return None
    return palette, [colour_name(c) for c in palette]


def normalized_colours(palette: tuple[tuple[float, ...], ...],
                       normalization: BandNormalization) -> torch.Tensor:
    """The palette (K colours of C bands) in the generator's units, as (K, C) float32."""
    colours = np.asarray(palette, dtype=np.float64).T[:, :, None]  # (C, K, 1)
    return torch.from_numpy(normalization.normalize(colours)[:, :, 0].T.copy())


__all__ = ["PALETTE_CHIPS", "learn_palette", "normalized_colours"]
