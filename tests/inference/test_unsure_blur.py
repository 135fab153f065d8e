"""The blur of a shaded map's unsure pixels: what it computes, and that the streaming
writer's pieces, nodata and a crop's neighbours do not change it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from geogan.errors import ConfigError
from geogan.inference.class_colours import EXACT_RADIUS, UNSURE_BELOW, shade
from geogan.inference.scene import translate_raster
from geogan.inference.translator import load_model
from geogan.inference.unsure_blur import DEFAULT_SIGMA, UnsureBlur, blur_radius, blur_unsure
from geogan.nn.config import Architecture, build_configs
from geogan.nn.model_file import read_model_file, save_model_file
from tests.helpers import CPU, MAP_PALETTE, save_model, textured, write_raster

MAP = MAP_PALETTE


def drawing(rng: np.random.Generator, height: int = 23, width: int = 17
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    colours = rng.uniform(0, 255, (3, height, width)).astype(np.float32)
    unsure = rng.random((height, width)) < 0.4
    valid = rng.random((height, width)) < 0.85
    return colours, unsure, valid


def brute_force(colours: np.ndarray, unsure: np.ndarray, valid: np.ndarray, sigma: float
                ) -> np.ndarray:
    """The normalised Gaussian of the valid pixels around each unsure valid pixel, summed
    pixel by pixel in float64."""
    r = blur_radius(sigma)
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = colours.astype(np.float64)
    height, width = valid.shape
    for y, x in zip(*np.nonzero(unsure & valid), strict=True):
        total, weight = np.zeros(colours.shape[0]), 0.0
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                yy, xx = y + dy, x + dx
                if 0 <= yy < height and 0 <= xx < width and valid[yy, xx]:
                    w = taps[dy + r] * taps[dx + r]
                    total += w * colours[:, yy, xx]
                    weight += w
        out[:, y, x] = total / weight
    return out


@pytest.mark.parametrize("sigma", [0.6, 1.0, 1.5])
def test_each_unsure_pixel_takes_the_gaussian_mean_of_its_valid_neighbours(rng, sigma):
    colours, unsure, valid = drawing(rng)
    got = blur_unsure(colours.copy(), unsure, valid, sigma)
    np.testing.assert_allclose(got, brute_force(colours, unsure, valid, sigma), rtol=1e-5)
    kept = ~(unsure & valid)  # sure pixels, and nodata, come back as drawn
    assert np.array_equal(got[:, kept], colours[:, kept])


def test_nodata_pixels_give_no_colour(rng):
    colours, unsure, valid = drawing(rng)
    garbage = colours.copy()
    garbage[:, ~valid] = 1e9
    assert np.array_equal(blur_unsure(garbage, unsure, valid)[:, valid],
                          blur_unsure(colours, unsure, valid)[:, valid])


@pytest.mark.parametrize("pieces", [[1] * 23, [2, 5, 1, 7, 8], [4, 19], [23]])
def test_rows_fed_in_any_pieces_come_back_the_same(rng, pieces):
    """The writer feeds rows as they are finished: how they are cut changes no value, and
    the riders (the uncertainty band) come back cut as the rows."""
    colours, unsure, valid = drawing(rng)
    rider = rng.random((1, 23, 17)).astype(np.float32)
    whole = blur_unsure(colours, unsure, valid)
    blur = UnsureBlur(DEFAULT_SIGMA, 23)
    parts, start = [], 0
    for n in pieces:
        rows = slice(start, start + n)
        parts += blur.add(colours[:, rows], unsure[rows], valid[rows], [rider[:, rows]])
        start += n
        assert blur.held <= blur.radius
    assert blur.held == 0
    assert np.array_equal(np.concatenate([c for c, _, _ in parts], axis=1), whole)
    assert np.array_equal(np.concatenate([v for _, v, _ in parts]), valid)
    assert np.array_equal(np.concatenate([r[0] for _, _, r in parts], axis=1), rider)
    with pytest.raises(ValueError, match="24 rows"):
        blur.add(colours[:, :1], unsure[:1], valid[:1])


def test_an_unsure_speck_takes_the_colour_around_it_and_sure_edges_stay():
    """Park green tinted toward the background it lies in, unsure, becomes background;
    a sure park next to it keeps its exact colour."""
    p = np.zeros((4, 9, 9), np.float32)
    p[0] = 1.0
    p[:, 4, 2] = (0.4, 0.45, 0.15, 0.0)  # an unsure speck of park in background
    p[:, :, 6:] = 0.0
    p[1, :, 6:] = 1.0  # a sure park on the right
    colours, unsure = shade(p, np.asarray(MAP))
    assert unsure[4, 2] and unsure.sum() == 1
    assert np.abs(colours[:, 4, 2] - np.asarray(MAP[1])).max() > EXACT_RADIUS
    out = np.rint(blur_unsure(colours, unsure, np.ones((9, 9), bool)))
    assert np.abs(out[:, 4, 2] - np.asarray(MAP[0])).max() <= 8  # reads as background
    assert np.array_equal(out[:, :, 6:], np.broadcast_to(np.asarray(MAP[1])[:, None, None],
                                                         (3, 9, 3)))


def test_the_unsure_pixels_are_shaded_past_the_exact_radius_at_less_than_even_odds(rng):
    p = rng.dirichlet(np.full(4, 0.3), size=(40, 40)).transpose(2, 0, 1)
    colours, unsure = shade(p, np.asarray(MAP))
    crisp = np.asarray(MAP).T[:, p.argmax(0)]
    past = np.abs(colours - crisp).max(axis=0) > EXACT_RADIUS + 1e-3
    odds = p.max(axis=0)
    assert unsure.any() and (past & (odds >= UNSURE_BELOW)).any()
    assert np.array_equal(unsure, past & (odds < UNSURE_BELOW))
    # Lower odds leave fewer of the same pixels unsure; 0 none.
    fewer = shade(p, np.asarray(MAP), 0.4)
    assert np.array_equal(fewer[0], colours)  # the colours do not change
    assert np.array_equal(fewer[1], past & (odds < 0.4)) and fewer[1].sum() < unsure.sum()
    assert not shade(p, np.asarray(MAP), 0.0)[1].any()


@pytest.fixture
def map_model(tmp_path: Path) -> Path:
    return save_model(tmp_path / "map.pt", palette=MAP, class_scale=3000.0)


def test_translate_blurs_by_default_and_0_turns_it_off(tmp_path, rng, map_model):
    scene = write_raster(tmp_path / "photo.tif", textured(rng, 3, 150, 170))
    paths = {}
    for name, blur in (("default", None), ("given", DEFAULT_SIGMA), ("off", 0.0)):
        options = {} if blur is None else {"unsure_blur": blur}
        paths[name] = translate_raster(scene, tmp_path / f"{name}.tif", map_model, **CPU,
                                       **options).output
    drawn = {name: rasterio.open(path).read() for name, path in paths.items()}
    assert np.array_equal(drawn["default"], drawn["given"])
    changed = (drawn["default"] != drawn["off"]).any(axis=0)
    assert 0 < changed.mean() < 0.5
    # Only pixels the unblurred map draws away from their class colour change.
    palette = np.asarray(MAP)
    off = drawn["off"].astype(np.float64)
    nearest = ((off[None] - palette[:, :, None, None]) ** 2).sum(1).argmin(0)
    away = np.abs(off - palette.T[:, nearest]).max(axis=0)
    assert away[changed].min() > EXACT_RADIUS
    with rasterio.open(paths["default"]) as src:
        assert f'"unsure_blur": {DEFAULT_SIGMA}' in src.tags()["GEOGAN_OPTIONS"]


def test_translate_array_blurs_as_translate_does(tmp_path, rng, map_model):
    data = textured(rng, 3, 64, 64)
    scene = write_raster(tmp_path / "tile.tif", data)
    translator = load_model(map_model, **CPU)
    out = translate_raster(scene, tmp_path / "out.tif", translator).output
    with rasterio.open(out) as src:
        assert np.array_equal(translator.translate_array(data), src.read())


def test_a_negative_blur_is_refused(map_model):
    with pytest.raises(ConfigError, match="blur"):
        load_model(map_model, unsure_blur=-1.0, **CPU)


def test_the_odds_of_unsure_pixels_are_the_model_files_unless_asked(tmp_path, rng, map_model):
    """Files that record no odds (and the tiny preset's) read today's constant; faithful
    models record 0.45; the option overrides either, reaches the provenance tag, and a
    translator loaded one way is refused for the other."""
    model = read_model_file(map_model)
    assert model.architecture.unsure_below == UNSURE_BELOW == Architecture("pix2pix", 3, 3
                                                                           ).unsure_below
    assert build_configs("pix2pix", 3, 3, 256, preset="faithful")[0].unsure_below == 0.45
    fewer = save_model_file(tmp_path / "fewer.pt", replace(
        model, architecture=replace(model.architecture, unsure_below=0.3)))
    payload = torch.load(map_model, weights_only=True)
    payload["architecture"].pop("unsure_below")
    older = tmp_path / "older.pt"
    torch.save(payload, older)
    scene = write_raster(tmp_path / "photo.tif", textured(rng, 3, 120, 140))
    runs = {"default": (map_model, {}), "older": (older, {}), "file": (fewer, {}),
            "asked": (map_model, {"unsure_below": 0.3}), "back": (fewer, {"unsure_below": 0.5})}
    drawn, tags = {}, {}
    for name, (path, options) in runs.items():
        out = translate_raster(scene, tmp_path / f"{name}.tif", path, **CPU, **options).output
        with rasterio.open(out) as src:
            drawn[name] = src.read()
            tags[name] = json.loads(src.tags()["GEOGAN_OPTIONS"])["unsure_below"]
    assert tags == {"default": 0.5, "older": 0.5, "file": 0.3, "asked": 0.3, "back": 0.5}
    assert np.array_equal(drawn["older"], drawn["default"])
    assert np.array_equal(drawn["back"], drawn["default"])
    assert np.array_equal(drawn["asked"], drawn["file"])
    assert not np.array_equal(drawn["file"], drawn["default"])
    with pytest.raises(ConfigError, match=r"unsure_below=0\.5"):
        translate_raster(scene, tmp_path / "x.tif", load_model(map_model, **CPU),
                         unsure_below=0.3)
    for odds in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="unsure"):
            load_model(map_model, unsure_below=odds, **CPU)
        with pytest.raises(ConfigError, match="unsure"):
            translate_raster(scene, tmp_path / "x.tif", map_model, unsure_below=odds, **CPU)
