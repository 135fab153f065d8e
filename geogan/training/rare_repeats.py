"""Chips that hold a rare class, drawn more often: repeat factor sampling.

A small map training set holds its rare classes in a few chips: of the 29 aerial → map
training pairs of ``benchmarks/quality_real.py``, two hold all of the water, the highway
and the arterial road. Drawn uniformly, each is seen once an epoch, and the class head
learns those classes from a handful of looks. Repeat factor sampling (Gupta et al., LVIS,
2019) gives each class ``c`` the factor ``max(1, sqrt(t / f_c))``, where ``f_c`` is the
share of training chips that hold it and ``t`` the threshold (``TrainConfig.rare_repeat``),
and each chip the largest factor of the classes it holds, rounded: a class in 7 % of the
chips makes its chips count 3 times at ``t = 0.5``, a class in half of them or more
changes nothing. :func:`geogan.training.dataset.epoch_keys` then draws each epoch's chips
from the chips so repeated, as many as there are chips, so an epoch keeps its length.
"""

from __future__ import annotations

import math

import numpy as np

from geogan.errors import ConfigError
from geogan.nn.config import Architecture, TrainConfig
from geogan.nn.normalization import BandNormalization
from geogan.training.chip_folder import ChipFolder, read_chip
from geogan.training.class_palette import class_counts, normalized_colours

MIN_SHARE = 0.001
"""Share of a chip's classed pixels a class needs there to count as held (a 256² chip:
66 pixels), so that the anti-aliased fringe of one class snapped to another does not."""


def chip_repeats(folder: ChipFolder, architecture: Architecture, config: TrainConfig,
                 normalization: BandNormalization) -> tuple[int, ...] | None:
    """How many times each training chip counts in an epoch's draw (at least 1), in the
    folder's order; None when ``config.rare_repeat`` is 0.

    Reads every training target chip once.

    Raises:
        ConfigError: If the model has no class head (no classes to count).
    """
    if config.rare_repeat <= 0:
        return None
    if not architecture.palette:
        raise ConfigError("--rare-repeat draws the chips of rare map classes more often, "
                          "so it needs a class head: a Pix2Pix on flat-colour map chips "
                          "with --classes auto")
    colours = normalized_colours(architecture.palette, normalization)
    held = np.zeros((len(folder.train["b"]), len(colours)), dtype=bool)  # (chips, K)
    for row, chip in enumerate(folder.train["b"]):
        counts = class_counts(*read_chip(chip), colours, normalization).numpy()
        held[row] = counts >= max(1, MIN_SHARE * counts.sum())
    return repeats_from_presence(held, config.rare_repeat)


def repeats_from_presence(held: np.ndarray, threshold: float) -> tuple[int, ...]:
    """Each chip's repeat count from which classes it holds, (chips, K) bool: the
    largest ``max(1, sqrt(threshold / f_c))`` of its classes, rounded to the nearest
    count, ``f_c`` the share of chips holding class ``c``."""
    shares = held.mean(axis=0)  # (K,)
    factors = [max(1.0, math.sqrt(threshold / f)) if f > 0 else 1.0 for f in shares]
    return tuple(max(1, round(max((factors[c] for c in np.flatnonzero(row)), default=1.0)))
                 for row in held)


__all__ = ["MIN_SHARE", "chip_repeats", "repeats_from_presence"]
