"""The arcgis.learn-style API (geogan.api.learn): prepare_data, Pix2Pix, CycleGAN, load_model."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

import geogan
from geogan.api.learn import GANModel
from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.cli.main import cli
from geogan.errors import (
    ChipFolderError,
    ConfigError,
    InputError,
    ModelFileError,
    OutputExistsError,
)
from geogan.nn.model_file import read_model_file
from geogan.raster.palette import PALETTE_TAG
from tests.helpers import pair_scene, smooth_field, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"ngf": 8, "ndf": 8, "precision": "fp32", "workers": 0}
"""Narrow networks, exact arithmetic, no loader processes: fast and reproducible."""


def matplotlib_figure() -> Any:
    return pytest.importorskip("matplotlib.figure").Figure


@pytest.fixture(scope="module")
def arcgis_paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ArcGIS "Export Tiles" layout: images/ + images2/ of plain GeoTIFFs, no metadata."""
    root = tmp_path_factory.mktemp("arcgis") / "paired"
    rng = np.random.default_rng(5)
    for folder in ("images", "images2"):
        (root / folder).mkdir(parents=True)
    for i in range(12):
        a = (np.stack([smooth_field(rng, (64, 64), 8) for _ in range(3)]) * 250).astype(np.uint8)
        write_raster(root / "images" / f"{i:09d}.tif", a)
        write_raster(root / "images2" / f"{i:09d}.tif", (255 - a[:1]).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def arcgis_unpaired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train_a/ (1-band float32, SAR-like) + train_b/ (RGB uint8), unpaired."""
    root = tmp_path_factory.mktemp("arcgis") / "unpaired"
    rng = np.random.default_rng(6)
    for folder in ("train_a", "train_b"):
        (root / folder).mkdir(parents=True)
    for i in range(10):
        write_raster(root / "train_a" / f"a{i}.tif",
                     (smooth_field(rng, (64, 64), 8)[None] * -20).astype(np.float32))
    for i in range(11):
        rgb = np.stack([smooth_field(rng, (64, 64), 8) for _ in range(3)]) * 250
        write_raster(root / "train_b" / f"b{i}.tif", rgb.astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def fitted(chips: Path, tmp_path_factory: pytest.TempPathFactory) -> GANModel:
    """A Pix2Pix fitted twice: 6 steps, then 1 epoch without per-epoch checkpoints."""
    data = geogan.prepare_data(chips, seed=3)
    model = geogan.Pix2Pix(data, device="cpu", verbose=False,
                           work_dir=tmp_path_factory.mktemp("work"), **SMALL)
    model.fit(steps=6)
    model.fit(1, lr=1e-4, checkpoint=False)
    return model


@pytest.fixture(scope="module")
def cyclegan(arcgis_unpaired: Path, tmp_path_factory: pytest.TempPathFactory) -> GANModel:
    data = geogan.prepare_data(arcgis_unpaired)
    model = geogan.CycleGAN(data, device="cpu", verbose=False,
                            work_dir=tmp_path_factory.mktemp("cyc"), **SMALL)
    model.fit(steps=2)
    return model


def read_png(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as png:
            assert png.driver == "PNG"
            return png.read()


# --------------------------------------------------------------------------- import


def test_import_geogan_loads_neither_torch_nor_matplotlib():
    code = ("import sys, geogan; "
            "assert 'torch' not in sys.modules, 'torch'; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib'; "
            "assert callable(geogan.Pix2Pix) and 'torch' in sys.modules; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib on use'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_exports_are_the_learn_api():
    from geogan.api import learn
    from geogan.inference import translator

    assert geogan.prepare_data is learn.prepare_data
    assert geogan.Pix2Pix is learn.Pix2Pix and geogan.CycleGAN is learn.CycleGAN
    assert geogan.GANModel is learn.GANModel
    assert geogan.load_model is translator.load_model  # the one public load_model


# --------------------------------------------------------------------------- prepare_data


def test_the_dataset_type_comes_from_the_layout(chips, arcgis_paired, arcgis_unpaired):
    assert geogan.prepare_data(chips).dataset_type == "Pix2Pix"
    assert geogan.prepare_data(arcgis_paired).dataset_type == "Pix2Pix"
    assert geogan.prepare_data(arcgis_unpaired).dataset_type == "CycleGAN"
    # CycleGAN learns from paired chips too; Pix2Pix cannot learn from unpaired ones.
    assert geogan.prepare_data(chips, dataset_type="cyclegan").dataset_type == "CycleGAN"
    with pytest.raises(ConfigError, match="Pix2Pix needs paired chips"):
        geogan.prepare_data(arcgis_unpaired, dataset_type="Pix2Pix")
    with pytest.raises(ConfigError, match="unknown dataset_type"):
        geogan.prepare_data(chips, dataset_type="Classified_Tiles")
    with pytest.raises(ChipFolderError):
        geogan.prepare_data(chips / "missing")


def test_chip_size_must_be_the_chips_own(chips):
    assert geogan.prepare_data(chips, chip_size=64).chip_size == 64
    with pytest.raises(ConfigError, match="does not resize chips"):
        geogan.prepare_data(chips, chip_size=256)


def test_chip_data_describes_the_folder(chips, arcgis_paired, arcgis_unpaired):
    data = geogan.prepare_data(chips, batch_size=2, seed=3)
    assert (data.path, data.chip_size, data.batch_size, data.seed) == (chips, 64, 2, 3)
    assert data.bands == {"a": 3, "b": 3} and data.n_channels == 3
    assert data.dtypes == {"a": "uint8", "b": "uint8"}
    assert (data.train_count, data.val_count) == (12, 4)
    assert len(data.statistics["a"]) == 3 and data.statistics["a"][0].p98 > 0
    text = repr(data)
    assert "Pix2Pix" in text and "12 train / 4 val" in text and "images2/" in text

    plain = geogan.prepare_data(arcgis_paired, val_split_pct=0.25)
    assert plain.folder.source == "arcgis" and plain.bands == {"a": 3, "b": 1}
    assert (plain.train_count, plain.val_count) == (9, 3)
    unpaired = geogan.prepare_data(arcgis_unpaired)
    assert unpaired.dtypes == {"a": "float32", "b": "uint8"} and not unpaired.paired


def test_show_batch_is_a_grid_of_input_and_target(chips, arcgis_unpaired, tmp_path):
    figure_class = matplotlib_figure()
    data = geogan.prepare_data(chips)
    figure = data.show_batch(rows=3)
    assert isinstance(figure, figure_class) and len(figure.axes) == 6
    assert [ax.get_title() for ax in figure.axes[:2]] == ["input (a)", "target (b)"]
    figure.savefig(tmp_path / "batch.png")
    assert read_png(tmp_path / "batch.png").shape[0] >= 3
    assert len(data.show_batch(rows=2, rgb_bands=[2], split="val").axes) == 4
    unpaired = geogan.prepare_data(arcgis_unpaired).show_batch(rows=2, rgb_bands={"b": [2, 1, 0]})
    assert [ax.get_title() for ax in unpaired.axes[:2]] == ["train_a/", "train_b/"]
    with pytest.raises(ConfigError, match="rgb_bands"):
        data.show_batch(rgb_bands=[0, 5, 1])


def test_figures_without_matplotlib_say_what_to_install(chips, monkeypatch):
    data = geogan.prepare_data(chips)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'geogan\[plot\]'"):
        data.show_batch()


# --------------------------------------------------------------------------- models


def test_settings_are_checked_when_the_model_is_made(chips, arcgis_unpaired):
    data = geogan.prepare_data(chips)
    with pytest.raises(ConfigError, match="unknown setting"):
        geogan.Pix2Pix(data, lambda_l2=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        geogan.Pix2Pix(data, preset="huge")
    with pytest.raises(ConfigError, match="Pix2Pix needs paired chips"):
        geogan.Pix2Pix(geogan.prepare_data(arcgis_unpaired))
    with pytest.raises(ConfigError, match="not trained yet"):
        geogan.Pix2Pix(data).predict(np.zeros((3, 8, 8), np.uint8))


def test_val_split_pct_is_the_split_the_trainer_draws(arcgis_paired, tmp_path):
    data = geogan.prepare_data(arcgis_paired, val_split_pct=0.25)
    model = geogan.Pix2Pix(data, device="cpu", verbose=False, work_dir=tmp_path / "w", **SMALL)
    model.fit(steps=1)
    training = read_model_file(model.model_path).training
    assert (training["train_chips"], training["val_chips"]) == (data.train_count,
                                                                data.val_count)
    assert data.val_count == round(0.25 * (data.train_count + data.val_count))


def test_fit_twice_continues_from_the_first_fit(fitted):
    assert [run["run"] for run in fitted.runs] == [1, 2]
    first, second = (read_model_file(run["model"]) for run in fitted.runs)
    assert first.training["init_from"] is None
    assert second.training["init_from"] == str(fitted.runs[0]["checkpoint"])
    assert second.training["steps"] == 12  # one epoch: 12 training chips at batch 1
    assert second.training["config"]["lr"] == 1e-4
    assert [h["fit"] for h in fitted.history] == [1, 2]  # one validation per fit here
    assert {"step", "losses", "val"} <= set(fitted.history[0])
    assert fitted.model_path == fitted.runs[-1]["model"]


def test_predict_an_array_and_a_small_raster(fitted, tmp_path):
    rng = np.random.default_rng(1)
    # Like the training chips (pair_scene's input), and as sharp (this one measures 0.04
    # of unsharp mask over them): a raster is translated as a scene, which is sharpened
    # or softened when it measures softer or sharper than the chips beyond a tolerance.
    chip = (np.stack([smooth_field(rng, (64, 64), 16) for _ in range(3)]) * 250
            ).astype(np.uint8)
    out = fitted.predict(chip)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    assert np.array_equal(out, fitted.translator().translate_array(chip))
    assert fitted.predict(chip[:, :40, :50]).shape == (3, 40, 50)
    raster = write_raster(tmp_path / "small.tif", chip)
    assert np.array_equal(fitted.predict(raster), out)  # one window: the same pixels
    big = write_raster(tmp_path / "big.tif", np.zeros((3, 64 * 5, 64 * 4), np.uint8))
    with pytest.raises(InputError, match=r"model\.translate"):
        fitted.predict(big)
    with pytest.raises(ConfigError, match="CycleGAN"):
        fitted.predict(chip, convert_to="a")


def test_translate_a_scene_keeps_its_grid(fitted, chips, tmp_path):
    scene = Path(json.loads((chips / "geogan-chips.json").read_text())["domains"]["a"]["source"])
    report = fitted.translate(scene, tmp_path / "out.tif")
    with rasterio.open(scene) as src, rasterio.open(report.output) as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
    # The model is also a path to its model file, for the functions that take one.
    again = geogan.translate_raster(scene, tmp_path / "again.tif", fitted, precision="fp32")
    with rasterio.open(report.output) as one, rasterio.open(again.output) as two:
        assert np.array_equal(one.read(), two.read())


def test_cyclegan_converts_both_ways(cyclegan):
    sar = (np.random.default_rng(1).random((1, 64, 64)) * -20).astype(np.float32)
    optical = cyclegan.predict(sar)
    assert optical.shape == (3, 64, 64) and optical.dtype == np.uint8
    assert cyclegan.predict(sar, convert_to="b").shape == (3, 64, 64)
    back = cyclegan.predict(optical, convert_to="a")
    assert back.shape == (1, 64, 64) and back.dtype == np.float32
    with pytest.raises(ConfigError, match="convert_to"):
        cyclegan.predict(sar, convert_to="c")
    metrics = cyclegan.compute_metrics()
    assert metrics["cycle"] is True and np.isfinite(metrics["psnr"])


def test_show_results_and_compute_metrics(fitted, cyclegan, tmp_path):
    matplotlib_figure()
    figure = fitted.show_results(rows=2)
    assert len(figure.axes) == 6
    assert [ax.get_title() for ax in figure.axes[:3]] == ["input", "output", "target"]
    figure.savefig(tmp_path / "results.png")
    assert read_png(tmp_path / "results.png").shape[0] >= 3
    assert len(cyclegan.show_results(rows=1).axes) == 4
    metrics = fitted.compute_metrics()
    assert {"l1", "psnr", "ssim"} <= set(metrics) and metrics["chips"] == 4
    assert 0 < metrics["psnr"] < 60 and -1 <= metrics["ssim"] <= 1
    assert "pixel_accuracy" not in metrics  # photo-like target: no palette


def test_class_scores_for_a_palette_map(tmp_path):
    a, _ = pair_scene(tmp_path, 128)
    with rasterio.open(a) as src:
        pixels = src.read()
    palette = {"land": [240, 235, 220], "water": [150, 190, 230]}
    water = pixels[0] > 128
    target = np.where(water, np.array(palette["water"])[:, None, None],
                      np.array(palette["land"])[:, None, None]).astype(np.uint8)
    b = write_raster(tmp_path / "map.tif", target)
    with rasterio.open(b, "r+") as dst:
        dst.update_tags(**{PALETTE_TAG: json.dumps(palette)})
    export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=64, stride=32,
                                                           val_fraction=0.3, workers=1))
    data = geogan.prepare_data(tmp_path / "chips")
    model = geogan.Pix2Pix(data, device="cpu", verbose=False, work_dir=tmp_path / "w", **SMALL)
    model.fit(steps=2)
    metrics = model.compute_metrics()
    assert set(metrics["accuracy"]) == {"land", "water"}
    assert 0 <= metrics["pixel_accuracy"] <= 1
    assert "pixel_accuracy" not in model.compute_metrics(palette=None)


def test_save_refuses_to_overwrite(fitted, tmp_path):
    path = fitted.save(tmp_path / "m.pt")
    assert path.read_bytes() == fitted.model_path.read_bytes()
    with pytest.raises(OutputExistsError):
        fitted.save(path)
    fitted.save(path, overwrite=True)


def test_load_model_round_trip_predicts_the_same(fitted, cyclegan, chips, tmp_path):
    chip = (np.random.default_rng(2).random((3, 64, 64)) * 255).astype(np.uint8)
    loaded = geogan.GANModel.from_model(fitted.save(tmp_path / "m.pt"), precision="fp32",
                                        device="cpu")
    assert isinstance(loaded, geogan.Pix2Pix) and loaded.data is None
    assert np.array_equal(loaded.predict(chip), fitted.predict(chip))
    assert (loaded.tile_size, loaded.in_bands, loaded.out_bands) == (64, 3, 3)
    assert isinstance(geogan.GANModel.from_model(cyclegan.save(tmp_path / "c.pt")),
                      geogan.CycleGAN)
    with pytest.raises(ModelFileError, match="CycleGAN model"):
        geogan.Pix2Pix.from_model(tmp_path / "c.pt")
    with pytest.raises(ConfigError, match="needs chips"):
        loaded.fit(1)
    # Given chips, a loaded model fits on from the file's generators.
    again = geogan.Pix2Pix.from_model(tmp_path / "m.pt", data=geogan.prepare_data(chips),
                                      verbose=False, work_dir=tmp_path / "w", device="cpu")
    again.fit(steps=1)
    record = read_model_file(again.model_path).training
    assert record["init_from"] == str((tmp_path / "m.pt").absolute())
    assert read_model_file(again.model_path).architecture == fitted.architecture


def test_verbose_false_prints_nothing(chips, tmp_path, capfd):
    capfd.readouterr()
    data = geogan.prepare_data(chips, seed=3)
    model = geogan.Pix2Pix(data, device="cpu", verbose=False, work_dir=tmp_path, **SMALL)
    model.fit(steps=2)
    model.predict(np.zeros((3, 64, 64), np.uint8))
    model.compute_metrics()
    scene = json.loads((chips / "geogan-chips.json").read_text())["domains"]["a"]["source"]
    model.translate(scene, tmp_path / "out.tif")
    assert capfd.readouterr() == ("", "")
    geogan.Pix2Pix(data, device="cpu", verbose=True, work_dir=tmp_path / "v", **SMALL).fit(steps=2)
    assert "fit 1" in capfd.readouterr().err  # the progress bar, on stderr


# --------------------------------------------------------------------------- parity


def test_the_api_and_the_cli_write_the_same_model_file(chips, tmp_path):
    """Same chips, settings and seed through `geogan train` and through the API."""
    cli_model = tmp_path / "cli.pt"
    result = CliRunner().invoke(cli, [
        "-q", "train", str(chips), "-o", str(cli_model), "--preset", "tiny", "--steps", "8",
        "--seed", "5", "--ngf", "8", "--ndf", "8", "--precision", "fp32", "--workers", "0",
        "--device", "cpu"])
    assert result.exit_code == 0, result.output

    data = geogan.prepare_data(chips, seed=5)
    model = geogan.Pix2Pix(data, preset="tiny", device="cpu", verbose=False,
                           work_dir=tmp_path / "work", ngf=8, ndf=8, precision="fp32", workers=0)
    model.fit(steps=8)
    api_model = model.save(tmp_path / "api.pt")

    one, two = read_model_file(cli_model), read_model_file(api_model)
    assert one.architecture == two.architecture
    assert {k: n.to_dict() for k, n in one.normalization.items()} == {
        k: n.to_dict() for k, n in two.normalization.items()}
    assert one.generators.keys() == two.generators.keys()
    for direction, weights in one.generators.items():
        assert weights.keys() == two.generators[direction].keys()
        for name, tensor in weights.items():
            assert torch.equal(tensor, two.generators[direction][name]), name
    ignored = {"created", "seconds"}
    first = {k: v for k, v in one.training.items() if k not in ignored}
    second = {k: v for k, v in two.training.items() if k not in ignored}
    assert first == second


def test_prepare_data_takes_several_folders_and_fits_on_them(chips, tmp_path):
    arcgis_paired = tmp_path / "arcgis"  # a folder without geogan metadata, 3 → 3 bands
    for sub in ("images", "images2"):
        (arcgis_paired / sub).mkdir(parents=True)
        for chip in sorted((chips / sub).iterdir())[:3]:
            (arcgis_paired / sub / chip.name).write_bytes(chip.read_bytes())
    data = geogan.prepare_data([chips, arcgis_paired], seed=3)
    assert data.paths == [chips, arcgis_paired] and data.path == chips
    alone = [geogan.prepare_data(chips, seed=3), geogan.prepare_data(arcgis_paired, seed=3)]
    assert data.train_count == sum(d.train_count for d in alone)
    assert data.val_count == sum(d.val_count for d in alone)
    assert "2 folders" in repr(data)
    model = geogan.Pix2Pix(data, device="cpu", verbose=False, work_dir=tmp_path / "w", **SMALL)
    model.fit(steps=1)
    record = read_model_file(model.model_path).training
    assert [Path(f["path"]) for f in record["chip_folders"]] == [chips.absolute(),
                                                                 arcgis_paired.absolute()]
