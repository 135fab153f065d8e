"""What translate checks of a scene against the model's training chips: the pixel size
(a scene finer by more than ×1.25, or coarser by ×1.25–2, translated at the model's, a
coarser one warned about, an error with strict, --resample and --no-resample), recorded
in tags."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from geogan.errors import GeoganWarning, SceneMismatchError
from geogan.inference.batch import translate_batch
from geogan.inference.scene import translate_raster
from geogan.nn.data_profile import PixelSize
from geogan.nn.model_file import read_model_file, save_model_file
from tests.helpers import CPU, UTM33, leftovers, make_model, save_model, textured, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scene_at(tmp: Path, rng: np.random.Generator, pixel: float, size: int = 96,
             name: str = "") -> Path:
    return write_raster(tmp / f"scene-{name or pixel}.tif", textured(rng, 3, size, size),
                        transform=Affine(pixel, 0.0, 500_000.0, 0.0, -pixel, 5_000_000.0))


def tags(path: Path) -> dict[str, str]:
    with rasterio.open(path) as src:
        return src.tags()


def geogan_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, GeoganWarning)]


def test_the_model_file_records_the_training_chips_pixel_size(trained_model, tmp_path):
    model = read_model_file(trained_model)
    assert model.trained_on.pixel_size == PixelSize(1.0, 1.0, "metre", 1.0, UTM33)
    # An older model file, without the entry, reads as unknown.
    payload = torch.load(trained_model, weights_only=True)
    del payload["trained_on"]
    torch.save(payload, tmp_path / "old.pt")
    assert read_model_file(tmp_path / "old.pt").trained_on.pixel_size is None


@pytest.mark.parametrize(("pixel", "resample", "expected"), [
    (3.0, None, "3 × coarser"), (2.0, False, "2 × coarser"), (0.5, False, "2 × finer"),
    (1.2, None, None), (0.85, None, None), (1.2, False, None), (0.85, False, None)])
def test_a_scene_beyond_a_quarter_translated_at_its_own_pixels_gets_one_warning(
        tmp_path, rng, pixel, resample, expected):
    model = save_model(tmp_path / "m.pt", pixel=1.0)
    scene = scene_at(tmp_path, rng, pixel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = translate_raster(scene, tmp_path / "out.tif", model, resample=resample,
                                  **CPU)
    messages = geogan_warnings(caught)
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages
        assert "--resample" in messages[0] and "1 × 1 metre pixels" in messages[0]
        assert (f"{pixel ** 2:g} × the pixels to translate" in messages[0]) == (pixel > 1)
    record = json.loads(tags(report.output)["GEOGAN_RESOLUTION"])
    assert record["scene"] == [pixel, pixel, "metre"] and record["model"] == [1.0, 1.0, "metre"]
    assert record["ratio"] == pytest.approx(pixel) and record["resampled"] is False
    assert report.resampled == ""


def test_a_finer_scene_is_translated_at_the_models_pixel_size_by_default(tmp_path, rng):
    """Without --resample or --no-resample, a scene at 0.5 m through a 1 m model is
    averaged down to 1 m, translated, and brought back bilinearly; with no warning, and it
    says so in the report and the tags."""
    model = save_model(tmp_path / "m.pt", pixel=1.0, out_dtype="float32",
                       out_range=(0.0, 1000.0))
    scene = scene_at(tmp_path, rng, 0.5, size=128)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = translate_raster(scene, tmp_path / "auto.tif", model, **CPU)
    assert geogan_warnings(caught) == []
    record = json.loads(tags(report.output)["GEOGAN_RESOLUTION"])
    assert record["resampled"] is True and record["resampling"] == "average"
    assert record["model_pixel"] == [1.0, 1.0]
    assert json.loads(tags(report.output)["GEOGAN_LATTICE"])["size"] == [64, 64]
    provenance = json.loads(tags(report.output)["GEOGAN_OPTIONS"])
    assert (provenance["resample"], provenance["resampling"]) == ("auto", "auto")
    assert report.resampled == ("translated at the model's 1 × 1 metre pixels: the scene's "
                                "are 2 × finer, read by average")
    assert report.windows == 1  # 64² at 1 m: one 64-pixel window, where 0.5 m needs four
    expected = by_hand_at_1m(tmp_path, scene, model, Resampling.bilinear)
    with rasterio.open(report.output) as dst, rasterio.open(scene) as src:
        assert (dst.crs, dst.transform, dst.width, dst.height) == (
            src.crs, src.transform, src.width, src.height)
        np.testing.assert_allclose(dst.read(), expected, atol=1e-3)
    assert leftovers(tmp_path) == []


def by_hand_at_1m(tmp: Path, scene: Path, model: Path, back: Resampling,
                  **options: str) -> np.ndarray:
    """A 128² scene at 0.5 m averaged down to 1 m, translated there, and the result
    brought back onto the scene's grid by ``back``."""
    with rasterio.open(scene) as src, WarpedVRT(
            src, crs=src.crs, transform=Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 5_000_000.0),
            width=64, height=64, resampling=Resampling.average) as vrt:
        at_1m = write_raster(tmp / "at-1m.tif", vrt.read(), transform=vrt.transform)
    by_hand = translate_raster(at_1m, tmp / "by-hand-1m.tif", model, overwrite=True,
                               **options, **CPU).output
    with rasterio.open(by_hand) as src, WarpedVRT(
            src, crs=src.crs, transform=Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 5_000_000.0),
            width=128, height=128, resampling=back) as vrt:
        return vrt.read()


@pytest.mark.parametrize(("output", "back"), [
    ("classes", Resampling.nearest), ("palette", Resampling.nearest),
    ("shaded", Resampling.bilinear)])
def test_a_class_heads_output_comes_back_from_the_models_pixel_size_as_it_should(
        tmp_path, rng, output, back):
    """Class indices and crisp palette colours come back by nearest neighbour, so that no
    class or colour is invented; a shaded map bilinearly, as an image, its edges
    anti-aliased as the maps it learnt from."""
    palette = ((232.0, 229.0, 222.0), (202.0, 223.0, 174.0), (177.0, 207.0, 254.0))
    model = save_model(tmp_path / "m.pt", pixel=1.0, palette=palette, class_scale=30.0)
    scene = scene_at(tmp_path, rng, 0.5, size=128)
    out = translate_raster(scene, tmp_path / f"{output}.tif", model, output=output,
                           **CPU).output
    expected = by_hand_at_1m(tmp_path, scene, model, back, output=output)
    with rasterio.open(out) as dst:
        got = dst.read()
    np.testing.assert_array_equal(got, expected)
    if output == "shaded":  # colours between the classes' at their edges, as in a map
        nearest = by_hand_at_1m(tmp_path, scene, model, Resampling.nearest, output=output)
        assert not np.array_equal(got, nearest)
    else:  # nothing a class or the palette does not have
        known = {(c,) for c in range(len(palette))} if output == "classes" else \
            {tuple(int(v) for v in colour) for colour in palette}
        assert set(map(tuple, got.reshape(got.shape[0], -1).T.tolist())) <= known


def test_pixel_sizes_in_other_units_compare_in_metres(tmp_path, rng):
    """A scene in US survey feet (EPSG:2263, New York) at 3.28 ft is the 1 m of the model."""
    model = save_model(tmp_path / "m.pt", pixel=1.0)
    feet = 1 / 0.30480060960121924
    scene = write_raster(tmp_path / "ny.tif", textured(rng, 3, 80, 80), crs="EPSG:2263",
                         transform=Affine(feet, 0.0, 980_000.0, 0.0, -feet, 200_000.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = translate_raster(scene, tmp_path / "out.tif", model, **CPU).output
    assert geogan_warnings(caught) == []
    assert json.loads(tags(out)["GEOGAN_RESOLUTION"])["ratio"] == pytest.approx(1.0)


def test_unknown_pixel_sizes_are_not_compared(tmp_path, rng):
    model = save_model(tmp_path / "m.pt")  # no pixel size recorded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = translate_raster(scene_at(tmp_path, rng, 30.0), tmp_path / "out.tif", model,
                               **CPU).output
    assert geogan_warnings(caught) == []
    record = json.loads(tags(out)["GEOGAN_RESOLUTION"])
    assert record["model"] == "unknown" and record["ratio"] is None
    with pytest.warns(GeoganWarning, match="cannot resample"):
        translate_raster(scene_at(tmp_path, rng, 30.0, name="b"), tmp_path / "r.tif", model,
                         resample=True, **CPU)


def test_strict_makes_it_an_error_and_writes_nothing(tmp_path, rng):
    model = save_model(tmp_path / "m.pt", pixel=1.0)
    (tmp_path / "out").mkdir()
    with pytest.raises(SceneMismatchError, match=r"3 × coarser.*--strict"):
        translate_raster(scene_at(tmp_path, rng, 3.0), tmp_path / "out" / "x.tif", model,
                         strict=True, **CPU)
    assert list((tmp_path / "out").iterdir()) == []
    # Resampled, the scene is translated at the model's pixel size: nothing to refuse.
    translate_raster(scene_at(tmp_path, rng, 3.0, name="r"), tmp_path / "out" / "r.tif",
                     model, strict=True, resample=True, **CPU)


@pytest.mark.parametrize("resample", [None, True])
def test_a_coarser_scene_is_read_up_by_lanczos_and_comes_back_bilinearly(
        tmp_path, rng, resample):
    """A scene at 2 m through a 1 m model, by default (2 × is within READ_UP_LIMIT) or with
    --resample, equals, by hand: the scene warped to the model's 1 m by Lanczos,
    translated, the result warped back onto the scene's 2 m grid bilinearly."""
    model = save_model(tmp_path / "m.pt", pixel=1.0, out_dtype="float32",
                       out_range=(0.0, 1000.0))
    scene = scene_at(tmp_path, rng, 2.0, size=60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = translate_raster(scene, tmp_path / "out.tif", model, resample=resample,
                                  **CPU)
    assert geogan_warnings(caught) == []
    with rasterio.open(scene) as src, rasterio.open(report.output) as dst:
        assert (dst.crs, dst.transform, dst.width, dst.height) == (
            src.crs, src.transform, src.width, src.height)
        got = dst.read()
        fine = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 5_000_000.0)
        with WarpedVRT(src, crs=src.crs, transform=fine, width=120, height=120,
                       resampling=Resampling.lanczos) as vrt:
            at_1m = write_raster(tmp_path / "at-1m.tif", vrt.read(), transform=fine)
    by_hand = translate_raster(at_1m, tmp_path / "by-hand-1m.tif", model, **CPU).output
    with rasterio.open(by_hand) as src, WarpedVRT(
            src, crs=src.crs, transform=Affine(2.0, 0.0, 500_000.0, 0.0, -2.0, 5_000_000.0),
            width=60, height=60, resampling=Resampling.bilinear) as vrt:
        expected = vrt.read()
    np.testing.assert_allclose(got, expected, atol=1e-3)
    record = json.loads(tags(report.output)["GEOGAN_RESOLUTION"])
    assert record["resampled"] is True and record["model_pixel"] == [1.0, 1.0]
    assert record["resampling"] == "lanczos"
    assert report.resampled == ("translated at the model's 1 × 1 metre pixels: the scene's "
                                "are 2 × coarser, read by lanczos")
    lattice = json.loads(tags(report.output)["GEOGAN_LATTICE"])
    assert lattice["resampled"] is True and lattice["size"] == [120, 120]
    assert leftovers(tmp_path) == []


def test_resampled_nodata_stays_nodata_and_classes_stay_classes(tmp_path, rng):
    model = make_model(pixel=1.0, in_nodata=0.0)
    save_model_file(tmp_path / "m.pt", model)
    data = textured(rng, 3, 60, 60)
    data[:, :20] = 0
    scene = write_raster(tmp_path / "nd.tif", data, nodata=0,
                         transform=Affine(2.0, 0.0, 500_000.0, 0.0, -2.0, 5_000_000.0))
    out = translate_raster(scene, tmp_path / "out.tif", tmp_path / "m.pt", resample=True,
                           resampling="cubic", **CPU).output
    with rasterio.open(out) as dst:
        mask = dst.dataset_mask()
        assert json.loads(dst.tags()["GEOGAN_RESOLUTION"])["resampling"] == "cubic"
    assert (mask[:20] == 0).all() and (mask[20:] == 255).all()


def test_a_finer_scene_with_an_alpha_band_is_resampled_through_its_alpha(tmp_path, rng):
    """An RGBA orthophoto finer than the model's pixels (a drone's, say): the warp carries
    its alpha band, where it once failed asking GDAL for a second one."""
    model = save_model(tmp_path / "m.pt", pixel=1.0)
    alpha = np.full((1, 96, 96), 255, np.uint8)
    alpha[0, :, :30] = 0
    scene = write_raster(tmp_path / "rgba.tif", np.concatenate([textured(rng, 3, 96, 96), alpha]),
                         photometric="RGB", alpha="YES",
                         transform=Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 5_000_000.0))
    report = translate_raster(scene, tmp_path / "out.tif", model, **CPU)
    assert report.resampled.startswith("translated at the model's 1 × 1 metre pixels")
    with rasterio.open(report.output) as dst:
        assert dst.count == 3
        mask = dst.dataset_mask()
        translated = dst.read()
    assert (mask[:, :30] == 0).all() and (mask[:, 30:] == 255).all()
    assert translated[:, :, 32:].std() > 0  # drawn, not left empty


# -- values ---------------------------------------------------------------------------


def training_like(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Values like pair_scene's input (the chips trained_model learnt from)."""
    from tests.helpers import smooth_field

    return (np.stack([smooth_field(rng, (size, size), 16) for _ in range(3)]) * 250
            ).astype(np.uint8)


def test_the_model_file_records_each_domains_values(trained_model):
    trained_on = read_model_file(trained_model).trained_on
    a, shares = trained_on.domain("a"), trained_on.domain_shares("a")
    assert a is not None and len(a) == 3 and shares is not None and len(shares) == 3
    assert all(len(band.quantiles) == 20 and 60 < band.mean < 190 and band.std > 10
               for band in a)
    assert all(0.2 < band.mean < 0.45 for band in shares)
    assert trained_on.domain("b") is not None  # for CycleGAN's b2a, and the record


def test_a_scene_like_the_training_chips_passes_quietly(tmp_path, rng, trained_model):
    scene = write_raster(tmp_path / "like.tif", training_like(rng))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = translate_raster(scene, tmp_path / "out.tif", trained_model, **CPU).output
    assert geogan_warnings(caught) == []
    record = json.loads(tags(out)["GEOGAN_DOMAIN"])
    assert record["far"] == [] and record["pixels"] == 128 * 128  # small: read whole
    assert max(record["distance"]) < 1.0 and max(record["colour_distance"]) < 3.0
    assert record["limit"] == 1.0 and record["colour_limit"] == 3.0


def test_a_scene_unlike_them_gets_one_warning_naming_bands_and_how_far(tmp_path, rng,
                                                                       trained_model):
    data = training_like(rng)
    data[0] //= 4  # a dark red band: its values and its colour share are off
    scene = write_raster(tmp_path / "dark.tif", data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = translate_raster(scene, tmp_path / "out.tif", trained_model, **CPU).output
    messages = geogan_warnings(caught)
    assert len(messages) == 1, messages
    assert "band 1" in messages[0] and "darker" in messages[0], messages
    assert "band 2" not in messages[0], messages
    # A U-Net: BatchNorm's averages move towards the scene's own, part of the way.
    assert "--no-adapt-norm keeps the training chips'" in messages[0], messages
    for asked in (True, False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            translate_raster(scene, tmp_path / f"adapted-{asked}.tif", trained_model,
                             adapt_norm=asked, **CPU)
        (message,) = geogan_warnings(caught)
        assert "band 1" in message and "--no-adapt-norm" not in message
        assert ("--adapt-norm (the" in message) == (not asked)  # suggested when turned off
    record = json.loads(tags(out)["GEOGAN_DOMAIN"])
    assert record["distance"][0] > 1.0 and record["mean_shift"][0] < 0
    assert len(record["far"]) == 1 and record["far"][0].startswith("band 1")
    # --strict: an error, and nothing written.
    (tmp_path / "strict").mkdir()
    with pytest.raises(SceneMismatchError, match=r"band 1 values .*\(darker\).*--strict"):
        translate_raster(scene, tmp_path / "strict" / "out.tif", trained_model, strict=True,
                         **CPU)
    assert list((tmp_path / "strict").iterdir()) == []


def test_only_a_far_scene_is_adapted_by_default_and_part_of_the_way(tmp_path, rng,
                                                                   trained_model):
    """translate's default (adapt_norm None): a scene whose values are far from the
    training chips' is translated with BatchNorm's averages n / (n + 4) of the way to its
    n windows' statistics; a scene like the chips exactly as without adaptation."""
    like = write_raster(tmp_path / "like.tif", training_like(rng, 160))
    dark = training_like(rng, 160)
    dark[0] //= 4
    far = write_raster(tmp_path / "far.tif", dark)
    outputs = {}
    for name, scene in (("like", like), ("far", far)):
        for asked in (None, False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = translate_raster(scene, tmp_path / f"{name}-{asked}.tif",
                                          trained_model, adapt_norm=asked, **CPU)
            with rasterio.open(report.output) as dst:
                outputs[name, asked] = (dst.read(), dst.tags().get("GEOGAN_ADAPT_NORM"),
                                        report.adapted)
    assert np.array_equal(outputs["like", None][0], outputs["like", False][0])
    assert outputs["like", None][1:] == outputs["like", False][1:] == (None, "")
    pixels, tag, said = outputs["far", None]
    record = json.loads(tag)
    windows = record["windows"]
    assert windows >= 4 and record["prior"] == 4
    assert record["share"] == pytest.approx(windows / (windows + 4), abs=1e-4)
    assert said == (f"BatchNorm's averages {100 * windows / (windows + 4):.0f} % of the way "
                    f"to those of {windows} windows of the scene")
    assert json.loads(outputs["far", True][1]) == {"windows": windows, "prior": 0,
                                                    "share": 1.0}
    assert outputs["far", False][1] is None
    # Part of the way: neither the training chips' averages nor the scene's.
    assert not np.array_equal(pixels, outputs["far", False][0])
    assert not np.array_equal(pixels, outputs["far", True][0])


def test_far_tiles_of_a_mosaic_are_not_adapted_each_on_its_own(tmp_path, rng, trained_model):
    """Each tile's own statistics would draw it unlike its neighbours: seams."""
    tiles = []
    for i in range(2):
        dark = training_like(rng)
        dark[0] //= 4
        tiles.append(str(write_raster(tmp_path / f"far-{i}.tif", dark, transform=Affine(
            1.0, 0.0, 500_000.0 + 128 * i, 0.0, -1.0, 5_000_000.0))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = translate_batch(tiles, tmp_path / "out", trained_model, mosaic=True, **CPU)
    assert batch.count("done") == 2
    messages = geogan_warnings(caught)
    assert len(messages) == 2 and not any("adapt-norm" in m for m in messages)
    for i in range(2):
        with rasterio.open(tmp_path / "out" / f"far-{i}.tif") as dst:
            assert "GEOGAN_ADAPT_NORM" not in dst.tags()


def test_another_data_type_is_said_in_the_same_one_line(tmp_path, rng, trained_model):
    scene = write_raster(tmp_path / "u16.tif", training_like(rng).astype(np.uint16) * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        translate_raster(scene, tmp_path / "out.tif", trained_model, **CPU)
    messages = geogan_warnings(caught)
    assert len(messages) == 1, messages
    assert "(it is uint16, the chips were uint8)" in messages[0] and "brighter" in messages[0]
