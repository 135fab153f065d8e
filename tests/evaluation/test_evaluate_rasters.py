"""evaluate_rasters: pixel scores, common grid, masks, palettes, streaming, seams, skimage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geogan.errors import InputError, NoOverlapError
from geogan.evaluation.image_metrics import PSNR_CAP_DB, psnr, ssim
from geogan.evaluation.rasters import EvaluateOptions, evaluate_rasters
from geogan.raster.palette import load_palette
from tests.helpers import UTM33, smooth_field, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ORIGIN = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 5_000_000.0)
PALETTE = {"land": [232, 229, 222], "water": [163, 204, 255], "road": [255, 255, 255]}


def field_rgb(rng: np.random.Generator, height: int = 96, width: int = 128) -> np.ndarray:
    """Three textured uint8 bands in 20..230 (room for offsets either way)."""
    return (np.stack([smooth_field(rng, (height, width), 8) for _ in range(3)]) * 210
            + 20).astype(np.uint8)


def class_map(height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A flat-colour RGB map of PALETTE's classes and its class indices."""
    classes = np.zeros((height, width), dtype=np.intp)
    classes[:, width * 5 // 8:] = 1  # water on the right
    classes[40:48, :] = 2  # a road across
    colours = np.asarray(list(PALETTE.values()), dtype=np.uint8)  # (K, 3)
    return np.moveaxis(colours[classes], -1, 0).copy(), classes


def test_identical_rasters_score_perfectly(tmp_path, rng):
    data = field_rgb(rng)
    a = write_raster(tmp_path / "a.tif", data)
    b = write_raster(tmp_path / "b.tif", data)
    report = evaluate_rasters(a, b)
    assert (report.grid, report.pixels, report.data_range) == ("same", 96 * 128, 255.0)
    for scores in (*report.bands, report.mean):
        assert (scores.l1, scores.rmse, scores.psnr) == (0.0, 0.0, PSNR_CAP_DB)
        assert scores.ssim == pytest.approx(1.0, abs=1e-12)
    document = json.loads(json.dumps(report.to_dict()))  # strict JSON: no Infinity
    assert document["mean"]["psnr"] == PSNR_CAP_DB
    assert document["palette"] is None and document["seams"] is None


def test_a_known_offset_gives_known_errors(tmp_path, rng):
    data = field_rgb(rng)
    shifted = data.copy()
    shifted[0] += 10  # band 1 off by 10 everywhere, the others exact
    report = evaluate_rasters(write_raster(tmp_path / "p.tif", shifted),
                              write_raster(tmp_path / "r.tif", data))
    band1, band2 = report.bands[0], report.bands[1]
    assert (band1.l1, band1.rmse) == (10.0, 10.0)
    assert band1.psnr == pytest.approx(20 * math.log10(255 / 10))
    assert (band2.l1, band2.psnr) == (0.0, PSNR_CAP_DB)
    assert report.mean.l1 == pytest.approx(10 / 3)
    assert report.mean.rmse == pytest.approx(math.sqrt(100 / 3))
    assert report.mean.psnr == pytest.approx(10 * math.log10(255**2 / (100 / 3)))


def test_nodata_masks_and_nan_are_ignored(tmp_path, rng):
    ref = (smooth_field(rng, (80, 90), 8) * 50 + 100).astype(np.float32)[None]  # 100..150
    pred = ref + 2.0
    pred[:, :10] = -9999.0  # the prediction's nodata: wildly wrong if it counted
    ref_bad = ref.copy()
    ref_bad[:, :, :5] = np.nan  # NaN in the reference
    pred[:, 20:30, 20:30] = 1e6  # hidden under the reference's mask below
    p = write_raster(tmp_path / "p.tif", pred, nodata=-9999.0)
    r = write_raster(tmp_path / "r.tif", ref_bad)
    with rasterio.open(r, "r+") as dst:  # an internal mask, as GDAL writes it
        mask = np.full((80, 90), 255, np.uint8)
        mask[20:30, 20:30] = 0
        dst.write_mask(mask)
    report = evaluate_rasters(p, r)
    valid = np.ones((80, 90), dtype=bool)
    valid[:10] = False
    valid[:, :5] = False
    valid[20:30, 20:30] = False
    assert report.pixels == valid.sum()
    assert (report.mean.l1, report.mean.rmse) == pytest.approx((2.0, 2.0))
    # Float reference: the data range is its valid max - min.
    assert report.data_range_source == "reference"
    assert report.data_range == pytest.approx(float(ref[0][valid].max() - ref[0][valid].min()))
    assert evaluate_rasters(p, r, EvaluateOptions(data_range=100.0)).mean.psnr == (
        pytest.approx(10 * math.log10(100**2 / 4.0)))


def test_a_shifted_grid_is_read_by_whole_pixels(tmp_path, rng):
    data = field_rgb(rng)
    p = write_raster(tmp_path / "p.tif", data[:, 10:, 7:])
    r = write_raster(tmp_path / "r.tif", data[:, :70, :100])
    with rasterio.open(p, "r+") as dst:
        dst.transform = Affine(1.0, 0.0, 500_007.0, 0.0, -1.0, 4_999_990.0)
    report = evaluate_rasters(p, r)
    assert report.grid == "shifted"
    assert report.pixels == 60 * 93
    assert report.mean.l1 == 0.0


def test_a_reference_in_another_crs_is_reprojected(tmp_path, rng):
    """The same smooth scene in Web Mercator at about the same pixel size scores nearly
    as well as the aligned copy; a half-resolution copy too."""
    data = (np.stack([smooth_field(rng, (160, 160), 32) for _ in range(3)]) * 200 + 20
            ).astype(np.uint8)
    p = write_raster(tmp_path / "p.tif", data)
    transform, width, height = calculate_default_transform(
        UTM33, "EPSG:3857", 160, 160, *rasterio.transform.array_bounds(160, 160, ORIGIN))
    merc = np.zeros((3, height, width), np.uint8)
    reproject(data, merc, src_transform=ORIGIN, src_crs=UTM33, dst_transform=transform,
              dst_crs="EPSG:3857", resampling=Resampling.bilinear)
    r = write_raster(tmp_path / "r3857.tif", merc, crs="EPSG:3857", transform=transform,
                     nodata=0)
    report = evaluate_rasters(p, r)
    assert (report.grid, report.resampling) == ("warped", "bilinear")
    assert report.pixels > 0.8 * 160 * 160  # the rotated footprint's corners are not scored
    assert report.mean.l1 < 2.0 and report.mean.ssim > 0.97

    half = np.zeros((3, 80, 80), np.uint8)
    half_transform = ORIGIN * Affine.scale(2.0)
    reproject(data, half, src_transform=ORIGIN, src_crs=UTM33, dst_transform=half_transform,
              dst_crs=UTM33, resampling=Resampling.average)
    coarse = evaluate_rasters(p, write_raster(tmp_path / "half.tif", half,
                                              transform=half_transform))
    assert coarse.grid == "warped" and coarse.pixels > 0.95 * 160 * 160
    assert coarse.mean.l1 < 3.0 and coarse.mean.ssim > 0.9


def test_an_rgba_reference_is_scored_through_its_alpha_on_any_grid(tmp_path, rng):
    """An RGBA map against an RGB translation: its colour bands are compared and its alpha
    band marks what is not scored, on the prediction's grid or warped onto it (where GDAL
    once refused the alpha band the warp would add)."""
    data = field_rgb(rng, 80, 80)
    alpha = np.full((1, 80, 80), 255, np.uint8)
    alpha[0, :, :40] = 0
    rgba = np.concatenate([data, alpha])
    p = write_raster(tmp_path / "p.tif", data)
    for name, transform in (("same", ORIGIN), ("finer", ORIGIN * Affine.scale(0.5))):
        r = write_raster(tmp_path / f"r-{name}.tif", rgba if name == "same" else
                         rgba.repeat(2, axis=1).repeat(2, axis=2), photometric="RGB",
                         alpha="YES", transform=transform)
        report = evaluate_rasters(p, r, EvaluateOptions(resampling="nearest"))
        # Each 2 × 2 block of the finer copy holds one pixel of the prediction: nearest
        # neighbour gives it back exactly, and only the opaque half is scored.
        assert report.grid == ("same" if name == "same" else "warped")
        assert (report.pixels, report.mean.l1) == (80 * 40, 0.0)


def test_the_aoi_mask_limits_what_is_scored(tmp_path, rng):
    data = field_rgb(rng)
    wrong = data.copy()
    wrong[:, :, 64:] = 0  # the right half is wrong
    aoi = tmp_path / "left.geojson"
    left, top = 500_000.0, 5_000_000.0
    ring = [[left, top - 96], [left + 64, top - 96], [left + 64, top], [left, top],
            [left, top - 96]]
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [ring],
                               "crs": {"type": "name", "properties": {"name": UTM33}}}))
    p = write_raster(tmp_path / "p.tif", wrong)
    r = write_raster(tmp_path / "r.tif", data)
    report = evaluate_rasters(p, r, EvaluateOptions(mask=aoi))
    assert report.pixels == 96 * 64
    assert report.mean.l1 == 0.0
    assert evaluate_rasters(p, r).mean.l1 > 10


def test_palette_from_a_file_and_detected_give_the_known_confusion(tmp_path):
    ref, classes = class_map()
    pred = ref.astype(np.int16)
    pred[:, :10, :10] = np.asarray(PALETTE["water"])[:, None, None] - 5  # land read as water
    pred[:, 44:48, 100:] = np.asarray(PALETTE["water"])[:, None, None]  # road read as water
    p = write_raster(tmp_path / "p.tif", pred.clip(0, 255).astype(np.uint8))
    r = write_raster(tmp_path / "r.tif", ref)
    palette_file = tmp_path / "palette.json"
    palette_file.write_text(json.dumps(PALETTE))
    report = evaluate_rasters(p, r, EvaluateOptions(palette=palette_file))
    scores = report.palette
    assert report.palette_source == str(palette_file)
    expected = np.zeros((3, 3), np.int64)
    for k in range(3):
        expected[k, k] = int((classes == k).sum())
    expected[0, 0] -= 100
    expected[0, 1] += 100
    expected[2, 2] -= 4 * 28
    expected[2, 1] += 4 * 28
    assert scores.confusion.tolist() == expected.tolist()
    assert scores.accuracy["road"] == pytest.approx(1 - 112 / (8 * 128))
    assert scores.pixel_accuracy == pytest.approx(1 - 212 / (96 * 128))

    auto = evaluate_rasters(p, r, EvaluateOptions(palette="auto")).palette
    assert auto is not None
    # Detected classes are named by colour, most common first: land, water, road.
    assert auto.classes == ("#e8e5de", "#a3ccff", "#ffffff")
    assert auto.confusion.tolist() == expected.tolist()
    assert auto.mean_iou == pytest.approx(scores.mean_iou)


def test_streamed_blocks_equal_the_one_shot_result(tmp_path, rng):
    ref, _ = class_map(150, 170)
    pred = np.clip(ref.astype(np.int16) + rng.integers(-40, 41, ref.shape), 0, 255
                   ).astype(np.uint8)
    pred[:, 30:40, 50:60] = 0
    p = write_raster(tmp_path / "p.tif", pred, nodata=0)
    r = write_raster(tmp_path / "r.tif", ref)
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps(PALETTE))
    options = {"palette": palette, "tile": 64, "overlap": 16}
    whole = evaluate_rasters(p, r, EvaluateOptions(block_size=1024, **options))
    blocks = evaluate_rasters(p, r, EvaluateOptions(block_size=23, **options))
    one, many = whole.to_dict(), blocks.to_dict()
    assert many["palette"] == one["palette"]
    assert many["pixels"] == one["pixels"] and many["ssim_positions"] == one["ssim_positions"]
    for key in ("l1", "rmse", "psnr", "ssim"):
        assert many["mean"][key] == pytest.approx(one["mean"][key], rel=1e-12)
    assert many["seams"]["prediction"] == pytest.approx(one["seams"]["prediction"], rel=1e-12)
    # The one-shot SSIM is metrics.ssim's over the same validity.
    valid = torch.from_numpy((pred != 0).any(axis=0))[None, None]
    x = torch.from_numpy(pred.astype(np.float64))[None]
    y = torch.from_numpy(ref.astype(np.float64))[None]
    assert one["mean"]["ssim"] == pytest.approx(float(ssim(x, y, valid, 255.0)[0]), rel=1e-12)


def test_ssim_and_psnr_agree_with_scikit_image(tmp_path, rng):
    metrics = pytest.importorskip("skimage.metrics")
    ref = field_rgb(rng, 64, 72)
    pred = np.clip(ref.astype(np.int16) + rng.integers(-12, 13, ref.shape), 0, 255
                   ).astype(np.uint8)
    report = evaluate_rasters(write_raster(tmp_path / "p.tif", pred),
                              write_raster(tmp_path / "r.tif", ref))
    expected = metrics.structural_similarity(
        pred.astype(np.float64), ref.astype(np.float64), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, channel_axis=0)
    assert report.mean.ssim == pytest.approx(expected, abs=1e-10)
    for band in range(3):
        one = metrics.structural_similarity(
            pred[band].astype(np.float64), ref[band].astype(np.float64),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
        assert report.bands[band].ssim == pytest.approx(one, abs=1e-10)
        assert report.bands[band].psnr == pytest.approx(
            metrics.peak_signal_noise_ratio(ref[band], pred[band], data_range=255), abs=1e-10)
    assert report.mean.psnr == pytest.approx(
        metrics.peak_signal_noise_ratio(ref, pred, data_range=255), abs=1e-10)
    # The training metrics score the same images mapped to [-1, 1] (data range 2): PSNR is
    # the same number; SSIM's luminance term is not shift-invariant, so it agrees with
    # scikit-image on those [-1, 1] arrays, not with the raster-unit figure above.
    x = pred.astype(np.float64) / 127.5 - 1
    y = ref.astype(np.float64) / 127.5 - 1
    assert float(psnr(torch.from_numpy(x)[None], torch.from_numpy(y)[None])[0]) == (
        pytest.approx(report.mean.psnr, abs=1e-9))
    assert float(ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None])[0]) == (
        pytest.approx(metrics.structural_similarity(
            x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=2, channel_axis=0), abs=1e-10))


def test_seams_use_the_tile_recorded_by_translate(tmp_path, rng):
    data = field_rgb(rng, 150, 170)
    p = write_raster(tmp_path / "p.tif", data)
    with rasterio.open(p, "r+") as dst:
        dst.update_tags(GEOGAN_TILE_SIZE="64",
                        GEOGAN_OPTIONS=json.dumps({"overlap": 0, "blend": "none"}))
    report = evaluate_rasters(p, write_raster(tmp_path / "r.tif", data))
    assert report.seams is not None
    assert (report.seams.tile, report.seams.overlap, report.seams.blend,
            report.seams.source) == (64, 0, "none", "tags")
    assert report.seams.prediction == report.seams.reference
    given = evaluate_rasters(p, tmp_path / "r.tif", EvaluateOptions(tile=32)).seams
    assert given is not None and (given.tile, given.overlap, given.source) == (32, 8, "options")


def test_bad_inputs_fail_with_one_clear_error(tmp_path, rng):
    data = field_rgb(rng)
    p = write_raster(tmp_path / "p.tif", data)
    with pytest.raises(InputError, match=r"3 band.*1"):
        evaluate_rasters(p, write_raster(tmp_path / "one.tif", data[:1]))
    far = write_raster(tmp_path / "far.tif", data,
                       transform=Affine(1.0, 0.0, 600_000.0, 0.0, -1.0, 5_000_000.0))
    with pytest.raises(NoOverlapError, match="do not overlap"):
        evaluate_rasters(p, far)
    bad = tmp_path / "bad.json"
    for text in ("{not json", "[1, 2]", '{"a": [1, 2, 3], "b": "red"}', '{"a": [1, 2]}'):
        bad.write_text(text)
        with pytest.raises(InputError, match="palette"):
            evaluate_rasters(p, p, EvaluateOptions(palette=bad))
    with pytest.raises(InputError, match="not a flat-colour map"):
        evaluate_rasters(p, p, EvaluateOptions(palette="auto"))
    empty = write_raster(tmp_path / "empty.tif", np.zeros_like(data), nodata=0)
    with pytest.raises(InputError, match="no pixel is valid"):
        evaluate_rasters(p, empty)
    flat = write_raster(tmp_path / "flat.tif", np.ones((3, 96, 128), np.float32))
    with pytest.raises(InputError, match="--data-range"):
        evaluate_rasters(flat, flat)
    with pytest.raises(InputError, match="resampling"):
        evaluate_rasters(p, p, EvaluateOptions(resampling="magic"))
    assert load_palette(_write(tmp_path / "ok.json", PALETTE)) == {
        k: tuple(float(v) for v in c) for k, c in PALETTE.items()}


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path
