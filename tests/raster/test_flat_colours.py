"""Flat-colour maps found from their pixels, rendered ones (anti-aliased, noisy) too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geogan.evaluation.rasters import EvaluateOptions, evaluate_rasters
from geogan.raster.flat_colours import detect_flat_palette, flat_mask
from tests.helpers import smooth_field, write_raster

PALETTE = np.array([[232, 229, 222], [243, 240, 234], [255, 255, 255], [202, 223, 174],
                    [170, 201, 254], [250, 158, 35]])


def rendered_map(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A map as a web map draws it: areas of a few colours, thin roads, anti-aliased
    edges and JPEG-like noise. Returns the (3, H, W) uint8 image and the class map."""
    field = smooth_field(rng, (size, size), 32)
    classes = np.digitize(field, [0.35, 0.6, 0.8]).astype(np.int64)  # bg, building, park, water
    classes = np.array([0, 1, 3, 4])[classes]
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    classes[(np.abs((rows + cols) % 64 - 32) < 3)] = 2  # white diagonal streets
    classes[np.abs(np.arange(size) - size // 3) < 3, :] = 5  # one orange highway
    image = PALETTE[classes].astype(np.float64)  # (H, W, 3)
    # Anti-aliasing: a 3 x 3 box blur; then noise of a few levels.
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(padded[i:i + size, j:j + size] for i in range(3) for j in range(3)) / 9
    noisy = blurred + rng.normal(0, 1.2, blurred.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8).transpose(2, 0, 1), classes


def test_a_rendered_map_gives_its_palette() -> None:
    rng = np.random.default_rng(0)
    maps = [rendered_map(rng) for _ in range(4)]
    images = [image for image, _ in maps]
    commonest = np.bincount(np.concatenate([c.ravel() for _, c in maps])).argmax()
    assert len(np.unique(images[0].reshape(3, -1), axis=1).T) > 1000  # no exact palette
    palette = detect_flat_palette(images)
    assert palette is not None
    found = np.asarray(palette)
    # Every true colour is found within a few levels, and nothing else.
    distances = np.linalg.norm(PALETTE[:, None] - found[None], axis=2)  # (true, found)
    assert distances.min(axis=1).max() < 6, found
    assert len(found) == len(PALETTE), found
    assert tuple(found[0]) == pytest.approx(tuple(PALETTE[commonest]), abs=3)  # commonest first


def test_photos_floats_and_textures_are_not_maps() -> None:
    rng = np.random.default_rng(1)
    photo = (np.stack([smooth_field(rng, (128, 128), s) for s in (4, 8, 16)]) * 200
             + rng.normal(0, 8, (3, 128, 128))).clip(0, 255).astype(np.uint8)
    assert flat_mask(photo).mean() < 0.2
    assert detect_flat_palette([photo]) is None
    assert detect_flat_palette([photo.astype(np.float32)]) is None
    assert detect_flat_palette([]) is None


def test_flat_mask_ignores_invalid_pixels_and_borders() -> None:
    image = np.zeros((1, 5, 5), np.uint8)
    valid = np.ones((5, 5), bool)
    valid[2, 3] = False
    flat = flat_mask(image, valid)
    assert not flat[0].any() and not flat[:, 0].any()  # borders have no 4 neighbours
    assert not flat[2, 2] and not flat[2, 3]  # invalid, and next to invalid
    assert flat[1, 1] and flat[3, 2]


def test_evaluate_palette_auto_scores_rendered_maps(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    reference, classes = rendered_map(rng)
    prediction = PALETTE[classes].astype(np.uint8).transpose(2, 0, 1)  # crisp, right classes
    ref = write_raster(tmp_path / "ref.tif", reference)
    pred = write_raster(tmp_path / "pred.tif", prediction)
    report = evaluate_rasters(pred, ref, EvaluateOptions(palette="auto"))
    assert report.palette_source == "detected"
    assert report.palette is not None
    assert len(report.palette.classes) == len(PALETTE)
    # Anti-aliased edges snap to either side, so a right prediction scores high, not 1.
    assert report.palette.pixel_accuracy > 0.9
    assert report.palette.mean_iou > 0.75


def test_a_thin_colour_is_found_behind_a_sparser_denser_seeded_one() -> None:
    # Among the pixels the area colours leave unexplained, the commonest quantised colour
    # can be a tight clump of a few anti-aliased blend pixels; the highway, noisier and
    # spread over many quantised colours but twice as many pixels, comes after it.
    rng = np.random.default_rng(3)
    images = []
    for _ in range(4):
        image, classes = rendered_map(rng)
        highway = classes == 5
        noisy = image.astype(np.float64)
        noisy[:, highway] += rng.normal(0, 6, (3, int(highway.sum())))
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        clump = rng.choice(image.shape[1] * image.shape[2], 40, replace=False)
        image.reshape(3, -1)[:, clump] = np.array([[208], [205], [200]])
        images.append(image)
    palette = detect_flat_palette(images)
    assert palette is not None
    distances = np.linalg.norm(np.asarray(palette) - PALETTE[5], axis=1)
    assert distances.min() < 8, palette
    assert np.linalg.norm(np.asarray(palette) - [208, 205, 200], axis=1).min() > 6, palette


def test_two_shades_closer_than_the_merge_distance_are_one_colour() -> None:
    # The 40 pix2pix maps hold water in two shades 15 levels apart; as two classes the
    # class head split the water between them. Background and buildings, 19.7 apart,
    # stay two.
    rng = np.random.default_rng(4)
    images = []
    for _ in range(4):
        image, classes = rendered_map(rng)
        second_shade = (classes == 4) & (np.arange(classes.shape[1])[None, :] < 128)
        shifted = image.astype(np.int64)
        shifted[:, second_shade] += np.array([[-10], [-8], [-1]])  # 12.8 levels away
        images.append(np.clip(shifted, 0, 255).astype(np.uint8))
    palette = np.asarray(detect_flat_palette(images))
    waters = np.linalg.norm(palette - [165, 197, 254], axis=1) < 12
    assert waters.sum() == 1, palette
    assert (np.linalg.norm(palette[:, None] - PALETTE[[0, 1]][None], axis=2) < 6).any(0).all()
