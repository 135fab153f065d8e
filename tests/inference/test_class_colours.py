"""Shaded map colours: exact where the model is sure, tinted where it is not, and never
read as another class than the most likely one."""

from __future__ import annotations

import numpy as np

from geogan.evaluation.class_metrics import snap_to_palette
from geogan.inference.class_colours import EXACT_RADIUS, shaded_colours

# The real map colours of the pix2pix maps set: background, building, road, park, water.
MAP = np.array([[232, 229, 222], [243, 240, 234], [254, 254, 253], [202, 223, 174],
                [177, 207, 254]], dtype=np.float64)


def _random_probabilities(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    logits = rng.normal(0, 2.5, (len(MAP), *shape))
    p = np.exp(logits - logits.max(0))
    return np.asarray(p / p.sum(0))


def _expected_squared_error(colours: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mean over pixels of sum_k p_k |colour - c_k|^2."""
    d = colours[None] - MAP[:, :, None, None]  # (K, C, H, W)
    return np.asarray((p * (d * d).sum(1)).sum(0))


def test_a_sure_pixel_is_its_class_colour_exactly() -> None:
    p = np.zeros((len(MAP), 1, len(MAP)))
    p[np.arange(len(MAP)), 0, np.arange(len(MAP))] = 1.0
    assert np.array_equal(shaded_colours(p, MAP)[:, 0].T, MAP)


def test_every_shaded_pixel_snaps_back_to_its_most_likely_class() -> None:
    p = _random_probabilities(np.random.default_rng(0), (64, 64))
    shaded = np.rint(shaded_colours(p, MAP))
    assert np.array_equal(snap_to_palette(shaded, MAP), p.argmax(0))
    # Real tinting happens: many pixels are neither their crisp colour nor far outside.
    crisp = np.moveaxis(MAP[p.argmax(0)], -1, 0)
    assert (np.abs(shaded - crisp).max(0) > EXACT_RADIUS).mean() > 0.2


def test_shading_never_raises_the_expected_squared_error() -> None:
    p = _random_probabilities(np.random.default_rng(1), (32, 32))
    crisp = np.moveaxis(MAP[p.argmax(0)], -1, 0)
    shaded = shaded_colours(p, MAP)
    expected = np.tensordot(MAP.T, p, axes=1)
    assert (_expected_squared_error(shaded, p) <= _expected_squared_error(crisp, p) + 1e-9).all()
    # Where the expected colour lies within the exact radius, it is written as it is.
    close = np.abs(expected - crisp).max(0) <= EXACT_RADIUS
    assert close.any()
    assert np.allclose(shaded[:, close], expected[:, close])


def test_greys_stay_exact_and_far_colours_are_shaded() -> None:
    # (K, 1, 2): pixel 0 torn between background and building (near greys), pixel 1
    # between background and park (far apart).
    p = np.zeros((len(MAP), 1, 2))
    p[[0, 1], 0, 0] = 0.55, 0.45
    p[[0, 3], 0, 1] = 0.55, 0.45
    shaded = shaded_colours(p, MAP)[:, 0].T  # (2 px, C)
    assert np.abs(shaded[0] - MAP[0]).max() <= EXACT_RADIUS + 1e-9
    assert np.abs(shaded[1] - MAP[0]).max() > 4 * EXACT_RADIUS
    # ...yet still nearer background than park.
    assert np.linalg.norm(shaded[1] - MAP[0]) < np.linalg.norm(shaded[1] - MAP[3])
