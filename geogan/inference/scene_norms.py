"""``--adapt-norm``: BatchNorm's statistics taken from the scene being translated.

A Pix2Pix generator normalises every layer with averages recalibrated on its training
chips. A scene unlike them (snow, another sensor's colours, another season) moves every
layer off those averages, and the model draws what it learnt for the nearest thing it
knows: an aerial map model paints dark snowy conifers as a lake. Adaptive BatchNorm
(AdaBN, Li et al. 2016) replaces the averages with the scene's own statistics:
:func:`sample_windows` picks windows spread evenly over the scene, and
:func:`scene_statistics` takes each layer's averages from them for as long as the scene
is translated. The windows do not depend on the batch size, so the output is one fixed
function of the scene. On a small or uniform scene the scene's own statistics hurt (a
photo that is all woods no longer looks green as a whole), so translate takes them on its
own only for a scene whose values are far from the training chips', and then only part of
the way: the training chips' averages count as :data:`PRIOR_WINDOWS` windows against the
scene's (Schneider et al. 2020, "Improving robustness against common corruptions by
covariate shift adaptation"), so the fewer windows a scene has, the less they move.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rasterio.errors import RasterioError

from geogan.errors import ConfigError
from geogan.inference.deblur import WindowFilter
from geogan.inference.pipeline import Pipeline, read_error
from geogan.inference.strips import Strips
from geogan.inference.translator import Translator

PRIOR_WINDOWS = 4
"""How many windows the training chips' averages weigh against a scene's when translate
adapts to a scene far from them on its own: n windows move BatchNorm's averages
n / (n + 4) of the way to their statistics (4 windows: half way; 11: 73 %; 64: 94 %).
Chosen on held-out photos of the maps set darkened, hazed and colour-cast, where three
photos side by side (4 windows) drew best about half way and eight (11 windows) all the
way (``benchmarks/adapt_norm.py``)."""

ADAPT_BATCH = 8
"""Windows per batch when taking the statistics: the more, the steadier the statistics of
the coarsest levels, whose few cells per window would otherwise set them."""


def sample_windows(pipeline: Pipeline, limit: int) -> Iterator[NDArray[np.float32]]:
    """Up to ``limit`` windows of ``pipeline``'s grid spread evenly over the part of the
    scene that is written, normalised (and filtered) as its reader cuts them: the wholly
    valid ones, or where there are none those with a valid pixel. Windows are read as
    they are taken, so only partly valid ones wait (until a wholly valid one comes).

    Raises:
        InputError: If the scene cannot be read.
    """
    grid, tile = pipeline.grid, pipeline.grid.tile_size
    rows = [r for r in grid.row_starts if pipeline.touches_context(r, 0)]
    cols = [c for c in grid.col_starts if pipeline.touches_context(c, 1)]
    down = min(len(rows), max(1, round(math.sqrt(limit * len(rows) / len(cols)))))
    across = min(len(cols), max(1, limit // down))
    partial: list[NDArray[np.float32]] | None = []  # None once a wholly valid one came
    source = pipeline.source
    try:
        with source.open() as dataset:
            strips = Strips(dataset, pipeline.bands, pipeline.translator, source.region, tile)
            for row_off in spread(rows, down):
                strip, valid = strips.read(row_off, min(tile, grid.height - row_off))
                for col_off in spread(cols, across):
                    inside = valid[:, col_off:col_off + tile]
                    if inside.all():
                        partial = None
                        yield _window(strips, strip, valid, col_off, pipeline.window_filter)
                    elif partial is not None and inside.any():
                        partial.append(_window(strips, strip, valid, col_off,
                                               pipeline.window_filter))
    except RasterioError as error:
        raise read_error(source.path, error) from None
    yield from partial or ()


def _window(strips: Strips, strip: NDArray[Any], valid: NDArray[np.bool_], col_off: int,
            window_filter: WindowFilter | None) -> NDArray[np.float32]:
    """The window at ``col_off``, normalised as the reader cuts it and filtered as the
    generator's stage filters it."""
    tile = strips.tile(strip, valid, col_off)
    if window_filter is None:
        return tile
    mask = strips.tile_validity(valid, col_off)
    filtered = window_filter(torch.from_numpy(tile)[None],
                             None if mask is None else torch.from_numpy(mask)[None])
    return filtered[0].numpy()


def spread(starts: list[int], count: int) -> list[int]:
    """``count`` of ``starts`` (at most all of them), evenly spaced from first to last;
    one is the middle one."""
    if count >= len(starts):
        return starts
    if count == 1:
        return [starts[len(starts) // 2]]
    return [starts[round(i * (len(starts) - 1) / (count - 1))] for i in range(count)]


@contextlib.contextmanager
def scene_statistics(translator: Translator, tiles: Iterable[NDArray[np.float32]],
                     batch_size: int = ADAPT_BATCH, prior: int = 0) -> Iterator[int]:
    """Within the block, ``translator``'s BatchNorm normalises with the statistics of
    ``tiles`` instead of the training chips' averages (with a ``prior``, moved part of
    the way to them).

    The tiles run ``batch_size`` at a time (dropout off), and each layer's averages
    become the mean of those batches' statistics, as PyTorch keeps them (the variance
    unbiased); the model file's averages are back when the block ends, even on an error.

    Args:
        translator: A model whose generator has BatchNorm.
        tiles: (in_bands, tile, tile) normalised windows.
        batch_size: Windows per batch.
        prior: How many windows the model file's averages count as: n tiles move the
            averages :func:`adapted_share` (n / (n + prior)) of the way to theirs; 0 takes
            theirs as they are.

    Yields:
        How many tiles the averages were taken from (0: none, and the model file's
        averages stay).

    Raises:
        ConfigError: If the generator has no BatchNorm (a CycleGAN's instance norm
            already normalises each window by its own statistics).
    """
    norms = translator.batch_norms()
    if not norms:
        raise ConfigError("this model's generator has no BatchNorm to take a scene's "
                          "statistics into (instance norm already takes each window's)")
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    momenta = [m.momentum for m in norms]
    count = 0
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: every batch counts the same
            norm.train()
        windows = iter(tiles)
        while group := list(itertools.islice(windows, batch_size)):
            translator.translate_tiles(torch.from_numpy(np.stack(group)))  # no autograd
            count += len(group)
        share = adapted_share(count, prior)
        for norm, state in zip(norms, saved, strict=True):
            norm.eval()
            if count == 0:  # nothing valid to run: the model file's averages
                norm.load_state_dict(state)
            elif share < 1.0:
                for name in ("running_mean", "running_var"):
                    getattr(norm, name).lerp_(state[name], 1.0 - share)
        yield count
    finally:
        for norm, state, momentum in zip(norms, saved, momenta, strict=True):
            norm.eval()
            norm.momentum = momentum
            norm.load_state_dict(state)


def adapted_share(windows: int, prior: int) -> float:
    """How far ``windows`` windows of a scene move BatchNorm's averages from the training
    chips' towards their own, against a ``prior`` of that many windows (0: all the way)."""
    return windows / (windows + prior) if windows + prior > 0 else 0.0


__all__ = ["ADAPT_BATCH", "PRIOR_WINDOWS", "adapted_share", "sample_windows",
           "scene_statistics", "spread"]
