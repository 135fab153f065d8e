"""Numbers that cannot lie: non-finite inputs are nodata, integer outputs are clipped and
never wrapped, and the reduced-precision paths stay close to float32 on a fixed input.

Models are test_translate's tiny random-weight ones (tile 64, ngf 4) on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import DeviceError
from geogan.inference.scene import translate_raster
from geogan.inference.translator import Translator, load_model
from geogan.nn.devices import cpu_has_native_bf16
from geogan.nn.model_file import ModelFile, save_model_file
from geogan.nn.normalization import BandNormalization
from tests.helpers import CPU, make_model, save_model, smooth_field, textured, write_raster

BF16 = {"device": "cpu", "precision": "bf16"}
needs_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(),
                                reason="this CPU has no native bfloat16 (bf16 is refused)")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def read(path: Path) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Values, dataset mask and nodata of a raster."""
    with rasterio.open(path) as src:
        return src.read(), src.dataset_mask(), src.nodata


# -- integer outputs are clipped, never wrapped ------------------------------------------

# Far outside [-1, 1], infinite, and a float64 so large that the mapping overflows.
WILD = np.array([-1e308, -1e6, -5.0, -1.0, 1.0, 5.0, 1e6, 1e308, -np.inf, np.inf])


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "int64", "uint64"])
@pytest.mark.parametrize("source", ["float32", "float64"])
def test_integer_denormalize_clips_to_the_type_and_never_wraps(dtype, source):
    info = np.iinfo(dtype)
    low, high = (0.0, 255.0) if dtype == "uint8" else (float(max(info.min, -500)), 500.0)
    norm = BandNormalization((low,), (high,), dtype, None)
    with np.errstate(over="ignore"):
        y = WILD.astype(source)[None, None, :]  # float32 holds ±1e308 as ±inf
        linear = (WILD + 1.0) / 2.0 * (high - low) + low  # what the map gives, unbounded
    out = norm.denormalize(y)[0, 0]
    assert out.dtype == np.dtype(dtype)
    # A 64-bit type's maximum is not a float64: the largest float64 below it is the top.
    top = info.max if int(float(info.max)) <= info.max else int(
        np.nextafter(float(info.max), 0.0))
    expected = [info.min if v < info.min else top if v > top else round(v)
                for v in linear.tolist()]
    assert out.tolist() == expected, f"{dtype} from {source}: {out.tolist()}"
    # The signs survive: nothing below the range comes out above it, or the reverse.
    assert (out[WILD < -1] <= low).all() and (out[WILD > 1] >= min(high, info.max)).all()
    # NaN has no side: it gives the middle of [low, high], as documented.
    nan = norm.denormalize(np.full((1, 1, 2), np.nan, source))
    assert nan.tolist() == [[[round((low + high) / 2)] * 2]]


@pytest.mark.parametrize(("out_dtype", "out_range", "ends"), [
    ("uint8", (0.0, 255.0), (0, 255)),
    ("uint8", (-100.0, 400.0), (0, 255)),  # the range is wider than the type
    ("int16", (-1000.0, 1000.0), (-1000, 1000)),
    ("int16", (-40000.0, 40000.0), (-32768, 32767)),
])
@pytest.mark.parametrize("bias", [-20.0, 20.0])
def test_a_saturated_generator_writes_exactly_the_ends_of_the_range(
        tmp_path, out_dtype, out_range, ends, bias):
    rng = np.random.default_rng(3)
    scene = write_raster(tmp_path / "scene.tif", textured(rng, 3, 90, 150))
    model = save_model(tmp_path / "m.pt", out_dtype=out_dtype, out_range=out_range,
                       out_bias=bias)
    out = tmp_path / "out.tif"
    report = translate_raster(scene, out, model, **CPU)
    assert report.dtype == out_dtype
    values, mask, _ = read(out)
    assert values.dtype == np.dtype(out_dtype)
    end = ends[0] if bias < 0 else ends[1]
    assert (values == end).all(), np.unique(values)
    assert (mask == 255).all()


# -- NaN and infinity are nodata --------------------------------------------------------


def float_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (3, height, width) float32 scene in [0, 1] with texture."""
    return np.stack([smooth_field(rng, (height, width), s) for s in (16, 8, 4)]).astype(np.float32)


def spoil(data: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Put NaN, +inf and -inf into ``data``: in every band of a block (a window's worth,
    so some windows hold nothing valid) and of scattered pixels, and in one band only of
    other scattered pixels. Returns the spoiled copy and the pixels missing in every band."""
    spoiled = data.copy()
    _, height, width = data.shape
    gone = np.zeros((height, width), bool)
    gone[:70, :70] = True  # covers the first window and more
    pixels = rng.choice(height * width, 300, replace=False)
    gone.flat[pixels[:200]] = True
    values = np.array([np.nan, np.inf, -np.inf], np.float32)
    for band in range(data.shape[0]):
        spoiled[band][gone] = rng.choice(values, int(gone.sum()))
    partly = np.zeros_like(gone)
    partly.flat[pixels[200:]] = True
    partly &= ~gone
    spoiled[1][partly] = rng.choice(values, int(partly.sum()))
    return spoiled, gone


@pytest.mark.parametrize(("out_dtype", "out_nodata"), [("float32", -9999.0),
                                                      ("float32", float("nan")),
                                                      ("uint8", None)])
def test_non_finite_input_values_are_nodata_in_the_output(tmp_path, out_dtype, out_nodata):
    rng = np.random.default_rng(11)
    clean = float_scene(rng, 150, 170)
    spoiled, gone = spoil(clean, rng)
    model = save_model(tmp_path / "m.pt", in_dtype="float32", in_range=(0.0, 1.0),
                       out_bands=2, out_dtype=out_dtype, out_range=(0.0, 255.0),
                       out_nodata=out_nodata)
    scene = write_raster(tmp_path / "spoiled.tif", spoiled)
    out = tmp_path / "out.tif"
    report = translate_raster(scene, out, model, **CPU)
    assert report.windows_run < report.windows  # the all-NaN window was never run
    values, mask, nodata = read(out)
    if out_nodata is None:
        assert nodata is None
        assert (mask[gone] == 0).all() and (mask[~gone] == 255).all()
    elif np.isnan(out_nodata):
        assert nodata is not None and np.isnan(nodata)
        assert np.isnan(values[:, gone]).all()
    else:
        assert nodata == out_nodata
        assert (values[:, gone] == out_nodata).all()
    valid = values[:, ~gone]
    if out_dtype == "float32":
        assert np.isfinite(valid).all()
        assert ((valid >= 0.0) & (valid <= 255.0)).all()
        if out_nodata is not None and not np.isnan(out_nodata):
            assert (valid != out_nodata).all()
    # The same pixels declared nodata the ordinary way translate the same: non-finite
    # values are missing values, not numbers that leak into their neighbours.
    declared = np.where(gone, np.float32(-1.0), spoiled)
    # One band missing in a pixel the others hold: fed as the mid value (0.5 here).
    declared[1][~np.isfinite(declared[1])] = 0.5
    declared_scene = write_raster(tmp_path / "declared.tif", declared, nodata=-1.0)
    twin = tmp_path / "twin.tif"
    translate_raster(declared_scene, twin, model, **CPU)
    twin_values, twin_mask, _ = read(twin)
    np.testing.assert_array_equal(twin_mask, mask)
    np.testing.assert_array_equal(twin_values, values)


def test_translate_array_treats_non_finite_values_as_invalid(tmp_path):
    model = make_model(in_dtype="float32", in_range=(0.0, 1.0), out_bands=1,
                       out_dtype="float32", out_range=(0.0, 255.0), out_nodata=-9999.0)
    translator = Translator(model, **CPU)
    rng = np.random.default_rng(2)
    clean = float_scene(rng, 50, 60)
    spoiled = clean.copy()
    spoiled[:, :10, :10] = np.nan
    spoiled[0, 20:25, 20:25] = np.inf
    spoiled[2, 30:35, 30:35] = -np.inf
    out = translator.translate_array(spoiled)
    # Nodata where every band is missing; a pixel with one infinite band stays valid (that
    # band goes in as the mid value), as in translate_raster.
    bad = ~np.isfinite(spoiled).any(axis=0)
    assert bad.sum() == 100
    assert (out[:, bad] == -9999.0).all()
    assert np.isfinite(out[:, ~bad]).all() and (out[:, ~bad] != -9999.0).all()
    one_band = spoiled.copy()
    one_band[0, 20:25, 20:25] = 0.5  # the mid value of the input range [0, 1]
    one_band[2, 30:35, 30:35] = 0.5
    assert np.array_equal(translator.translate_array(one_band)[:, 20:35, 20:35],
                          out[:, 20:35, 20:35])


def test_export_chips_counts_non_finite_pixels_invalid_and_leaves_them_out_of_statistics(
        tmp_path):
    rng = np.random.default_rng(4)
    a = (float_scene(rng, 64, 192)[:1] * 10 + 10).astype(np.float32)  # values in [10, 20]
    b = textured(rng, 3, 64, 192)
    bad = np.zeros((64, 192), bool)
    holes = np.zeros((64, 64), bool)
    holes.flat[rng.choice(64 * 64, 120, replace=False)] = True
    bad[:, :64] = holes  # chip 0: 120 of 4096 pixels
    bad[:, 128:] = True  # chip 2: nothing valid
    a[0][bad] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), int(bad.sum()))
    a_path = write_raster(tmp_path / "a.tif", a)
    b_path = write_raster(tmp_path / "b.tif", b)
    out = tmp_path / "chips"
    report = export_chips(a_path, b_path, out,
                          ExportOptions(tile_size=64, val_fraction=0, min_valid=0.9))
    assert report.exported == 2 and report.skipped_invalid == 1
    metadata = json.loads((out / "geogan-chips.json").read_text())
    features = json.loads((out / "index.geojson").read_text())["features"]
    fractions = sorted(f["properties"]["valid_fraction"] for f in features)
    assert fractions == pytest.approx([1 - 120 / 4096, 1.0])
    # The statistics saw only the finite values.
    stats = metadata["domains"]["a"]["statistics"][0]
    for key in ("min", "max", "mean", "std", "p2", "p98"):
        assert np.isfinite(stats[key]), stats
    assert 10.0 <= stats["min"] <= stats["p2"] <= stats["p98"] <= stats["max"] <= 20.0
    finite = a[0][:, :128][~bad[:, :128]]
    assert stats["mean"] == pytest.approx(float(finite.mean()), rel=1e-4)
    # The chip with holes says where they are: an internal mask on both layers.
    name = next(f["properties"]["file"] for f in features
                if f["properties"]["valid_fraction"] < 1)
    for folder in ("images", "images2"):
        with rasterio.open(out / folder / name) as chip:
            np.testing.assert_array_equal(chip.dataset_mask() > 0, ~bad[:, :64])


# -- reduced precision against float32 ---------------------------------------------------


def test_fp16_is_refused_on_the_cpu(tmp_path):
    model = save_model(tmp_path / "m.pt")
    with pytest.raises(DeviceError, match="fp16"):
        load_model(model, device="cpu", precision="fp16")
    scene = write_raster(tmp_path / "scene.tif", textured(np.random.default_rng(0), 3, 40, 40))
    with pytest.raises(DeviceError, match="fp16"):
        translate_raster(scene, tmp_path / "out.tif", model, device="cpu", precision="fp16")
    assert not (tmp_path / "out.tif").exists()


def contrasty_model(seed: int) -> ModelFile:
    """A tiny random model whose last layer is scaled up so that its output spans a good
    part of [-1, 1] (std about 0.13; unscaled it is about 0.005, a flat grey that would
    hide any difference)."""
    model = make_model(seed=seed)
    model.generators["a2b"]["decoder.0.1.weight"] *= 30.0
    return model


@needs_bf16
def test_bf16_translation_stays_within_two_grey_levels_of_fp32(tmp_path):
    rng = np.random.default_rng(8)
    scene = write_raster(tmp_path / "scene.tif", textured(rng, 3, 160, 230))
    model = save_model_file(tmp_path / "m.pt", contrasty_model(seed=3))
    fp32, bf16 = tmp_path / "fp32.tif", tmp_path / "bf16.tif"
    assert translate_raster(scene, fp32, model, **CPU).precision == "fp32"
    assert translate_raster(scene, bf16, model, **BF16).precision == "bf16"
    a, _, _ = read(fp32)
    b, _, _ = read(bf16)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    figures = (f"bf16 vs fp32, uint8: max {diff.max()}, mean {diff.mean():.4f}, "
               f"differing {np.mean(diff > 0):.2%} of values")
    # Measured on the development CPU: max 1, mean 0.041 (4.1 % of values differ by 1).
    assert diff.max() <= 2, figures
    assert diff.mean() <= 0.5, figures
    assert a.std() > 5, "the model's output is flat; the comparison would say nothing"


@needs_bf16
def test_bf16_tiles_stay_close_to_fp32_in_normalised_units():
    fp32, bf16 = Translator(contrasty_model(5), **CPU), Translator(contrasty_model(5), **BF16)
    torch.manual_seed(0)
    tiles = torch.rand(4, 3, 64, 64) * 2 - 1  # (N, C, tile, tile) in [-1, 1]
    a, b = fp32.translate_tiles(tiles), bf16.translate_tiles(tiles)
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == (4, 3, 64, 64)
    diff = (a - b).abs()
    figures = f"bf16 vs fp32 tiles: max {diff.max().item():.2e}, mean {diff.mean().item():.2e}"
    # Measured on the development CPU: max 4.1e-3, mean 3.8e-4 (one grey level is 7.8e-3).
    assert diff.max().item() <= 0.02, figures
    assert diff.mean().item() <= 4e-3, figures
    assert a.std().item() > 0.05, "the model's output is flat; the comparison would say nothing"


def test_a_band_missing_in_a_valid_pixel_goes_in_as_the_mid_value(tmp_path):
    """translate_raster and translate_array agree: the scene's nodata value in one band of
    a pixel that other bands keep valid is fed as the mid value, not as a number."""
    model = make_model(in_dtype="float32", in_range=(0.0, 1.0), in_nodata=-1.0, out_bands=1,
                       out_dtype="float32", out_range=(0.0, 255.0), out_nodata=-9999.0)
    path = save_model_file(tmp_path / "m.pt", model)
    scene = float_scene(np.random.default_rng(5), 64, 64)
    holed, mid = scene.copy(), scene.copy()
    holed[1, 10:20, 10:20] = -1.0
    mid[1, 10:20, 10:20] = 0.5
    outs = []
    for name, data in (("holed", holed), ("mid", mid)):
        src = write_raster(tmp_path / f"{name}.tif", data, nodata=-1.0)
        with rasterio.open(translate_raster(src, tmp_path / f"{name}-out.tif", path,
                                            **CPU).output) as out:
            outs.append(out.read())
    assert np.array_equal(outs[0], outs[1])
    translator = Translator(model, **CPU)
    assert np.allclose(translator.translate_array(holed), outs[0], atol=1e-3)
