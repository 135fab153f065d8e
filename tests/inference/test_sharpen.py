"""translate's sharpening of a scene softer than the training chips (--sharpen): the
model file records the chips' sharpness, a scene as sharp as them is translated as
without sharpening, a softer one is sharpened by its measured blur beyond the tolerance,
a sharper one softened by the inverse of its measured unsharp mask beyond its tolerance,
and what is not measured (old model files, mosaics) is left as it is."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from geogan.errors import ConfigError
from geogan.inference.batch import translate_batch
from geogan.inference.scene import translate_raster
from geogan.nn.data_profile import DataProfile
from geogan.nn.model_file import read_model_file, save_model_file
from geogan.raster.sharpness import (
    MAX_SIGMA,
    TOLERANCE,
    UNSHARP_RADIUS,
    UNSHARP_TOLERANCE,
    excess_blur,
    excess_unsharp,
)
from tests.helpers import CPU, smooth_field, torch_threads, unsharp_mask, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def training_like(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """Values like pair_scene's input (the chips trained_model learnt from)."""
    return (np.stack([smooth_field(rng, (size, size), 16) for _ in range(3)]) * 250
            ).astype(np.uint8)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """Each band blurred by a Gaussian of ``sigma`` px, back in uint8."""
    fy = np.fft.fftfreq(image.shape[1])[:, None]
    fx = np.fft.rfftfreq(image.shape[2])[None, :]
    gain = np.exp(-2 * math.pi**2 * sigma**2 * (fy * fy + fx * fx))
    soft = np.fft.irfft2(np.fft.rfft2(image.astype(np.float64)) * gain, s=image.shape[1:])
    return np.clip(np.rint(soft), 0, 255).astype(np.uint8)


def translated(scene: Path, out: Path, model: Path, **options: Any
               ) -> tuple[np.ndarray, dict[str, Any] | None, str]:
    """The output's pixels, its GEOGAN_SHARPEN record, and the report's sentence."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = translate_raster(scene, out, model, **CPU, **options)
    with rasterio.open(report.output) as dst:
        tag = dst.tags().get("GEOGAN_SHARPEN")
        return dst.read(), None if tag is None else json.loads(tag), report.sharpened


def test_the_model_file_records_each_domains_sharpness(trained_model, tmp_path):
    trained_on = read_model_file(trained_model).trained_on
    for domain in ("a", "b"):
        slope = trained_on.domain_sharpness(domain)
        assert slope is not None and math.isfinite(slope) and slope < 0
    # An older model file, without the entry, reads as unknown.
    payload = torch.load(trained_model, weights_only=True)
    del payload["trained_on"]["sharpness"]
    torch.save(payload, tmp_path / "old.pt")
    assert read_model_file(tmp_path / "old.pt").trained_on.domain_sharpness("a") is None
    # A damaged record is unknown where it is damaged, never an error.
    damaged = DataProfile.from_dict({"sharpness": {"a": "sharp", "b": float("nan"),
                                                   "c": True, "d": -3}})
    assert damaged.sharpness == {"d": -3.0} and damaged.domain_sharpness("a") is None
    assert DataProfile.from_dict({"sharpness": [1, 2]}).sharpness is None


def test_a_scene_as_sharp_as_the_chips_is_translated_as_without_sharpening(
        tmp_path, rng, trained_model):
    scene = write_raster(tmp_path / "like.tif", training_like(rng))
    auto, record, said = translated(scene, tmp_path / "auto.tif", trained_model)
    off, off_record, _ = translated(scene, tmp_path / "off.tif", trained_model, sharpen=0)
    assert np.array_equal(auto, off) and said == "" and off_record is None
    assert record is not None and record["sigma"] == 0.0 and record["unsharp"] == 0.0
    assert record["measured_blur"] <= TOLERANCE and record["windows"] >= 4
    assert record["measured_unsharp"] <= UNSHARP_TOLERANCE


def test_a_softer_scene_is_sharpened_by_its_blur_beyond_the_tolerance(
        tmp_path, rng, trained_model):
    sharp = training_like(rng)
    soft = write_raster(tmp_path / "soft.tif", blurred(sharp, 1.0))
    auto, record, said = translated(soft, tmp_path / "auto.tif", trained_model)
    assert record is not None and record["measured_blur"] == pytest.approx(1.0, abs=0.25)
    assert record["sigma"] == pytest.approx(excess_blur(record["measured_blur"]), abs=1e-3)
    assert said == (f"sharpened by {record['sigma']:.2f} px (the scene measured "
                    f"{record['measured_blur']:.2f} px softer than the training chips)")
    off, _, _ = translated(soft, tmp_path / "off.tif", trained_model, sharpen=0)
    assert not np.array_equal(auto, off)
    # The same blur asked for takes the same windows to the generator.
    asked, asked_record, _ = translated(soft, tmp_path / "asked.tif", trained_model,
                                        sharpen=record["sigma"])
    assert asked_record == {"sigma": record["sigma"]}
    assert np.abs(asked.astype(int) - auto.astype(int)).max() <= 1


def test_a_sharper_scene_is_softened_by_its_unsharp_mask_beyond_the_tolerance(
        tmp_path, rng, trained_model):
    plain = training_like(rng).astype(np.float64)
    sharp = np.clip(np.rint(unsharp_mask(plain, UNSHARP_RADIUS, 3.0)), 0, 255).astype(np.uint8)
    scene = write_raster(tmp_path / "sharp.tif", sharp)
    auto, record, said = translated(scene, tmp_path / "auto.tif", trained_model)
    assert record is not None and record["sigma"] == 0.0 and record["measured_blur"] == 0.0
    assert record["measured_unsharp"] > UNSHARP_TOLERANCE
    assert record["unsharp"] == pytest.approx(excess_unsharp(record["measured_unsharp"]),
                                              abs=1e-3)
    assert said == (f"softened by the inverse of an unsharp mask of {record['unsharp']:.2f} "
                    f"(the scene measured as the training chips unsharp-masked by "
                    f"{record['measured_unsharp']:.2f})")
    off, _, _ = translated(scene, tmp_path / "off.tif", trained_model, sharpen=0)
    assert not np.array_equal(auto, off)
    # A blur asked for is all that is done: no scene is softened unless measured.
    _, asked, _ = translated(scene, tmp_path / "asked.tif", trained_model, sharpen=0.6)
    assert asked == {"sigma": 0.6}


def test_a_model_file_without_the_chips_sharpness_never_sharpens_on_its_own(
        tmp_path, rng, trained_model):
    model = read_model_file(trained_model)
    old = save_model_file(tmp_path / "old.pt", replace(
        model, trained_on=replace(model.trained_on, sharpness=None)))
    soft = write_raster(tmp_path / "soft.tif", blurred(training_like(rng), 1.0))
    auto, record, said = translated(soft, tmp_path / "auto.tif", old)
    off, _, _ = translated(soft, tmp_path / "off.tif", old, sharpen=0)
    assert np.array_equal(auto, off) and record is None and said == ""
    _, asked, said = translated(soft, tmp_path / "asked.tif", old, sharpen=1.0)
    assert asked == {"sigma": 1.0} and said == "sharpened by 1.00 px"


def test_soft_tiles_of_a_mosaic_are_not_measured_each_on_its_own(tmp_path, rng,
                                                                 trained_model):
    """Each tile's own measure would sharpen it unlike its neighbours: seams. A blur
    asked for is taken out of every tile alike."""
    tiles = [str(write_raster(tmp_path / f"soft-{i}.tif", blurred(training_like(rng, 128), 1.0),
                              transform=Affine(1.0, 0.0, 500_000.0 + 128 * i, 0.0, -1.0,
                                               5_000_000.0)))
             for i in range(2)]
    for sharpen, expected in ((None, None), (0.8, {"sigma": 0.8})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = translate_batch(tiles, tmp_path / f"out-{sharpen}", trained_model,
                                    mosaic=True, sharpen=sharpen, **CPU)
        assert batch.count("done") == 2
        for i in range(2):
            with rasterio.open(tmp_path / f"out-{sharpen}" / f"soft-{i}.tif") as dst:
                tag = dst.tags().get("GEOGAN_SHARPEN")
                assert (None if tag is None else json.loads(tag)) == expected


@pytest.mark.parametrize("sharpen", [-0.5, MAX_SIGMA + 1, float("nan")])
def test_a_blur_out_of_range_is_a_config_error(tmp_path, rng, trained_model, sharpen):
    scene = write_raster(tmp_path / "like.tif", training_like(rng, 64))
    with pytest.raises(ConfigError, match="--sharpen"):
        translate_raster(scene, tmp_path / "out.tif", trained_model, sharpen=sharpen, **CPU)
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize("options", [{}, {"samples": 2}, {"adapt_norm": True}],
                         ids=["default", "samples", "adapt-norm"])
def test_a_sharpened_scene_keeps_its_nodata_on_every_path(tmp_path, rng, trained_model,
                                                          options):
    """The windows are sharpened where the generator runs, a batch at a time (also with
    --samples, and for BatchNorm's statistics of the scene): nodata stays out of the
    filter's range and comes out nodata; two generator streams (a batch's halves, each
    with its windows' validity) write the bytes of one."""
    image = blurred(training_like(rng), 1.0)
    image[:, :50, :60] = 0
    soft = write_raster(tmp_path / "soft.tif", image, nodata=0)
    sharp, record, _ = translated(soft, tmp_path / "sharp.tif", trained_model, sharpen=1.0,
                                  **options)
    plain, _, _ = translated(soft, tmp_path / "plain.tif", trained_model, sharpen=0, **options)
    assert record == {"sigma": 1.0}
    with rasterio.open(tmp_path / "sharp.tif") as a, rasterio.open(tmp_path / "plain.tif") as b:
        assert np.array_equal(a.read_masks(1), b.read_masks(1))
        valid = a.read_masks(1) > 0
    assert not valid[:50, :60].any() and valid.mean() > 0.8
    assert not np.array_equal(sharp[:, valid], plain[:, valid])
    if not options:
        with torch_threads(2):
            translated(soft, tmp_path / "two.tif", trained_model, sharpen=1.0, batch_size=5)
        translated(soft, tmp_path / "one.tif", trained_model, sharpen=1.0, batch_size=5)
        assert (tmp_path / "two.tif").read_bytes() == (tmp_path / "one.tif").read_bytes()
