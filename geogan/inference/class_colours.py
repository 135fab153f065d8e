"""Colours from class probabilities: what a model with a class head draws.

A map model knows, per pixel, how likely each palette class is. Two ways to turn that
into colours (``translate --output-kind``):

* ``palette``: the colour of the most likely class, crisp. A wrong pixel costs the whole
  distance between two map colours (park green where the map has plain background), so
  on real imagery a crisp map scores below a blank map of one colour on PSNR and SSIM.
* ``shaded`` (:func:`shaded_colours`): the class colour moved toward the
  probability-weighted mean of the palette, the colour with the least expected squared
  error. Where the model is sure, the pixel stays its class's exact colour; where it is
  unsure, it takes a tint of the other candidates. It never moves so far that it reads as
  another class: snapped to the nearest palette colour (as ``geogan evaluate`` and any
  classification of the map do), every pixel gives back the most likely class.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

EXACT_RADIUS = 3.0
"""A shade within this many band values of its class colour (on every band) still reads
as that colour exactly: shading is first limited to it."""

SHADE_COST = 300.0
"""Squared band values (summed over the bands) of expected error a pixel must save, per
unit of its class's probability, to be shaded past :data:`EXACT_RADIUS`. A pixel that is
its class colour with probability p loses that exactness when shaded further, so it is
shaded further only where that buys at least ``SHADE_COST * p``: mostly pixels torn between
colours far apart (park or water against background), hardly ever between the greys of
background, buildings and streets."""


UNSURE_BELOW = 0.5
"""A pixel shaded past :data:`EXACT_RADIUS` is *unsure* (and then blurred among its
neighbours, see :mod:`geogan.inference.unsure_blur`) when its most likely class is also
less likely than this: less than even odds. Pixels the model gives better odds keep their
own shade, so that thin and rare classes it does see are not blurred away. The default of
:func:`shade`, and of models that record no other (``Architecture.unsure_below``)."""


def cell_room(colours: NDArray[np.floating]) -> NDArray[np.floating]:
    """How far a colour may lie toward each other class colour and still snap back to its
    own: ``room[j, m]`` bounds ``(c_j - c_m) . (x - c_m)`` for a point ``x`` of class ``m``'s
    cell, a rounding's length (sqrt(C) / 2) inside it, so that integer outputs snap back
    too. (K, C) colours give a (K, K) array."""
    bands = colours.shape[1]
    gap = np.sqrt(((colours[:, None] - colours[None]) ** 2).sum(axis=-1))  # (K, K)
    room: NDArray[np.floating] = gap * np.maximum(gap / 2 - 0.5 * np.sqrt(bands), 0.0)
    return room


def shaded_colours(probabilities: NDArray[np.floating], palette: NDArray[np.floating]
                   ) -> NDArray[np.float32]:
    """Shaded map colours of class probabilities (see the module docstring and
    :func:`shade`, which also says which pixels were shaded past the exact radius)."""
    return shade(probabilities, palette)[0]


def shade(probabilities: NDArray[np.floating], palette: NDArray[np.floating],
          unsure_below: float = UNSURE_BELOW) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Shaded map colours of class probabilities, and the pixels left unsure.

    Per pixel, with class colours ``c_k``, probabilities ``p_k`` and the most likely
    class ``m``: the expected colour ``mu = sum p_k c_k``; the farthest point toward
    ``mu`` that is still nearer ``c_m`` than any other colour, rounded or not
    (``full``); the same point limited to :data:`EXACT_RADIUS` of ``c_m`` (``near``).
    ``near`` is written unless ``full`` lowers the expected squared error by more than
    :data:`SHADE_COST` × ``p_m``. Both lie between ``c_m`` and ``mu``, so the expected
    squared error is never above the crisp colour's.

    Args:
        probabilities: (K, ...) class probabilities (summing to 1 over K).
        palette: (K, C) class colours in output band values.
        unsure_below: Odds of the most likely class under which a pixel shaded past the
            exact radius is unsure (:data:`UNSURE_BELOW`).

    Returns:
        (C, ...) colours, float32, unrounded; and (...) the *unsure* pixels: those
        shaded past :data:`EXACT_RADIUS` (``full`` was written and lies beyond it) whose
        most likely class is less likely than ``unsure_below``.
    """
    colours = np.asarray(palette, dtype=np.float32)  # (K, C)
    classes, bands = colours.shape
    shape = np.shape(probabilities)[1:]
    p = np.asarray(probabilities, dtype=np.float32).reshape(classes, -1)  # (K, N)
    best = p.argmax(axis=0)  # (N,)
    start = colours.T[:, best]  # (C, N): the crisp colour
    toward = colours.T @ p  # (C, N): mu ...
    toward -= start  # ... - start
    # Largest step a along `toward` that stays in the most likely class's cell:
    # a (c_j - c_m).toward <= room[j, m] for every j != m.
    room = cell_room(colours)
    along = colours @ toward  # (K, N): c_j . toward ...
    along -= (start * toward).sum(axis=0)  # ... - c_m . toward
    np.put_along_axis(along, best[None], 0.0, axis=0)  # the class's own colour: no limit
    limits = np.divide(room[:, best], along, out=np.full_like(along, np.inf),
                       where=along > 0)
    step = np.minimum(limits.min(axis=0), 1.0)  # (N,)
    reach = np.abs(toward).max(axis=0)
    near = np.minimum(step, np.divide(EXACT_RADIUS, reach, out=np.full_like(reach, np.inf),
                                      where=reach > 0))
    # Expected squared error of start + a * toward is |toward|^2 (1 - a)^2 + const.
    saving = (toward * toward).sum(axis=0) * ((1 - near) ** 2 - (1 - step) ** 2)
    odds = p.max(axis=0)
    far = saving > SHADE_COST * odds
    chosen = np.where(far, step, near)
    start += chosen * toward
    shaded: NDArray[np.float32] = start.reshape(bands, *shape)
    # ``step`` can be ``near`` (the cell ends within the radius): not past it then.
    unsure = far & (step * reach > EXACT_RADIUS * np.float32(1.001)) & (odds < unsure_below)
    unsure = unsure.reshape(shape)
    return shaded, unsure


__all__ = ["EXACT_RADIUS", "SHADE_COST", "UNSURE_BELOW", "cell_room", "shade",
           "shaded_colours"]
