"""The class head: palette learnt from a flat-colour target, kept in the model file,
written by translate as shaded or crisp colours or a class raster; TTA; older model files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from geogan.errors import ConfigError
from geogan.evaluation.class_metrics import snap_to_palette
from geogan.grids.windows import WindowGrid
from geogan.inference import pipeline
from geogan.inference.blend_buffer import BlendBuffer
from geogan.inference.scene import translate_raster
from geogan.inference.translator import Translator, load_model
from geogan.nn.config import build_configs
from geogan.nn.losses import IGNORED_CLASS, class_targets
from geogan.nn.model_file import ModelFile, read_model_file, save_model_file
from geogan.nn.networks import build_generator
from geogan.nn.normalization import BandNormalization
from geogan.training.class_palette import class_counts
from geogan.training.loop import TrainOptions, train
from tests.helpers import MAP_PALETTE, write_map_chips, write_raster

PALETTE = MAP_PALETTE
CPU = {"device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def map_chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_map_chips(tmp_path_factory.mktemp("mapchips"))


@pytest.fixture(scope="module")
def class_model(map_chips: Path, tmp_path_factory: pytest.TempPathFactory,
                one_torch_thread: None) -> Path:
    out = tmp_path_factory.mktemp("classmodel") / "m.pt"
    overrides: dict[str, Any] = {"steps": 6, "ngf": 4, "ndf": 4, "classes": "auto",
                                 "unet_levels": 5, "upsample": "resize", "ema": 0.5,
                                 "rotate": True, "diffaugment": True, "precision": "fp32",
                                 "class_balance": 0.5}
    train(map_chips, out, TrainOptions(preset="tiny", overrides=overrides, device="cpu"))
    return out


def test_class_targets_leave_blends_and_nodata_out() -> None:
    colours = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    target = torch.tensor([[-0.9, 0.0, 0.95, 0.2], [-1.0, 0.0, 1.0, 0.2]]).T  # (4 px, 2 bands)
    target = target.T[None, :, None, :]  # (1, 2, 1, 4)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 1, 1, 4)
    classes = class_targets(target, colours, mask)
    assert classes.tolist() == [[[0, IGNORED_CLASS, 1, IGNORED_CLASS]]]


def test_class_edges_give_every_valid_pixel_its_nearest_colours_class() -> None:
    """``--class-edges``: an anti-aliased pixel nearer one colour (but not clearly) is that
    colour's class, in the targets and in the counts the class weights come from; nodata
    stays out."""
    colours = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    normalization = BandNormalization((0.0, 0.0), (255.0, 255.0), "uint8", None)
    image = np.array([[13, 153, 249, 153]] * 2, np.uint8)[:, None, :]  # (2 bands, 1, 4)
    valid = np.array([[True, True, True, False]])
    target = torch.from_numpy(normalization.normalize(image))[None]
    mask = torch.from_numpy(valid.astype(np.float32))[None, None]
    assert class_targets(target, colours, mask).tolist() == [[[0, IGNORED_CLASS, 1,
                                                               IGNORED_CLASS]]]
    assert class_targets(target, colours, mask, edges=True).tolist() == [[[0, 1, 1,
                                                                           IGNORED_CLASS]]]
    assert class_counts(image, valid, colours, normalization).tolist() == [1, 1]
    assert class_counts(image, valid, colours, normalization, edges=True).tolist() == [1, 2]


def test_the_palette_is_learnt_and_round_trips_through_the_model_file(
        class_model: Path) -> None:
    model = read_model_file(class_model)
    arch = model.architecture
    assert arch.classes == len(PALETTE)
    found = np.asarray(arch.palette)
    assert np.abs(np.sort(found, axis=0) - np.sort(np.asarray(PALETTE), axis=0)).max() <= 1
    assert len(arch.class_names) == len(PALETTE)
    assert all(name.startswith("#") for name in arch.class_names)
    assert (arch.unet_levels, arch.upsample) == (5, "resize")
    # The training weights: share ** -0.5, mean 1, in palette order.
    assert len(arch.class_weights) == len(PALETTE)
    assert np.mean(arch.class_weights) == pytest.approx(1.0)
    assert model.training["config"]["class_balance"] == 0.5
    # Saved again and read back: the same architecture, palette included.
    again = save_model_file(class_model.with_name("again.pt"), model)
    assert read_model_file(again).architecture == arch
    assert model.training["config"]["classes"] == "auto"


def test_translate_writes_shaded_or_crisp_palette_colours_or_a_class_raster(
        class_model: Path, map_chips: Path, tmp_path: Path) -> None:
    scene = map_chips.parent / "photo.tif"
    shaded = translate_raster(scene, tmp_path / "shaded.tif", class_model, unsure_blur=0.0,
                              **CPU)
    colours = translate_raster(scene, tmp_path / "map.tif", class_model, output="palette",
                               **CPU)
    classes = translate_raster(scene, tmp_path / "classes.tif", class_model,
                               output="classes", **CPU)
    image = translate_raster(scene, tmp_path / "image.tif", class_model, output="image", **CPU)
    palette = read_model_file(class_model).architecture.palette
    with rasterio.open(colours.output) as src:
        drawn = src.read().reshape(3, -1).T
        tags = src.tags()
    assert {tuple(map(float, c)) for c in np.unique(drawn, axis=0)} <= set(palette)
    assert json.loads(tags["GEOGAN_PALETTE"]) == {
        name: [int(v) for v in c] for name, c in zip(
            read_model_file(class_model).architecture.class_names, palette, strict=True)}
    with rasterio.open(classes.output) as src:
        assert (src.count, src.dtypes[0], src.nodata) == (1, "uint8", 255)
        ids = src.read(1)
        table = src.colormap(1)
        names = json.loads(src.tags()["GEOGAN_CLASSES"])
    assert ids.max() < len(palette)
    for index, colour in enumerate(palette):
        assert table[index][:3] == tuple(int(v) for v in colour)
    assert len(names) == len(palette)
    # The class raster and the palette map say the same thing, pixel for pixel.
    assert np.array_equal(np.asarray(palette, np.uint8)[ids].reshape(-1, 3), drawn)
    # The shaded map (unblurred) reads as the same classes, with its palette in the tags.
    with rasterio.open(shaded.output) as src:
        tinted = src.read()
        assert json.loads(src.tags()["GEOGAN_PALETTE"]) == json.loads(tags["GEOGAN_PALETTE"])
    assert np.array_equal(snap_to_palette(tinted, np.asarray(palette)), ids)
    assert not np.array_equal(tinted.reshape(3, -1).T, drawn)
    with rasterio.open(image.output) as src:
        assert src.count == 3 and len(np.unique(src.read().reshape(3, -1), axis=1).T) > 16


@pytest.mark.parametrize(("output", "channels"), [
    ("shaded", len(PALETTE)), ("palette", len(PALETTE)), ("classes", len(PALETTE)),
    ("image", 3)])
def test_the_writer_blends_only_the_channels_the_output_is_drawn_from(
        class_model: Path, map_chips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        output: str, channels: int) -> None:
    """A map is drawn from the class probabilities, an image from the image bands: the
    writer's sums and what waits for it hold those alone (memory at wide scenes)."""
    made: list[int] = []

    class Recorded(BlendBuffer):
        def __init__(self, grid: WindowGrid, count: int) -> None:
            made.append(count)
            super().__init__(grid, count)

    def added(buffer: BlendBuffer, col: int, values: np.ndarray, weight: np.ndarray) -> None:
        assert values.shape[0] == channels
        BlendBuffer.add(buffer, col, values, weight)

    monkeypatch.setattr(pipeline, "BlendBuffer", Recorded)
    monkeypatch.setattr(Recorded, "add", added)
    translate_raster(map_chips.parent / "photo.tif", tmp_path / "out.tif", class_model,
                     output=output, **CPU)
    assert made == [channels]


@pytest.mark.parametrize("output", ["shaded", "palette", "classes", "image"])
def test_finish_takes_every_channel_of_translate_tiles_or_the_drawn_ones_alone(
        class_model: Path, output: str) -> None:
    translator = load_model(class_model, output=output, **CPU)
    tiles = torch.rand(1, 3, 64, 64) * 2 - 1
    every = translator.translate_tiles(tiles)[0].numpy()
    assert every.shape[0] == 3 + len(PALETTE)
    drawn = np.ascontiguousarray(every[translator.drawn])
    assert drawn.shape[0] == translator.drawn_bands == (3 if output == "image" else len(PALETTE))
    assert np.array_equal(translator.finish(every.copy()), translator.finish(drawn.copy()))
    if output == "shaded":
        for whole, alone in zip(translator.shade(every), translator.shade(drawn), strict=True):
            assert np.array_equal(whole, alone)


def test_palette_outputs_need_a_class_head(tmp_path: Path) -> None:
    path = save_model_file(tmp_path / "plain.pt", _plain_model())
    with pytest.raises(ConfigError, match="class head"):
        load_model(path, output="classes")
    assert load_model(path).output == "image"


def test_tta_is_the_mean_of_the_eight_transformed_passes(class_model: Path) -> None:
    plain = load_model(class_model)
    tta = load_model(class_model, tta=True)
    tiles = torch.rand(2, 3, 64, 64) * 2 - 1
    expected = torch.zeros_like(plain.translate_tiles(tiles))
    for k in range(4):
        for flip in (False, True):
            x = torch.rot90(tiles, k, (2, 3))
            x = x.flip(3) if flip else x
            y = plain.translate_tiles(x)
            y = y.flip(3) if flip else y
            expected += torch.rot90(y, -k, (2, 3))
    assert torch.allclose(tta.translate_tiles(tiles), expected / 8, atol=1e-6)
    # Class probabilities are averaged (then the most likely class is drawn).
    probabilities = tta.translate_tiles(tiles)[:, 3:]
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2, 64, 64), atol=1e-5)


def test_tta_is_the_model_files_default_unless_asked(class_model: Path, tmp_path: Path) -> None:
    model = read_model_file(class_model)
    assert model.architecture.tta is False  # the tiny preset's models: off
    assert build_configs("pix2pix", 3, 3, 256, preset="faithful")[0].tta is True
    averaged = save_model_file(tmp_path / "averaged.pt",
                               replace(model, architecture=replace(model.architecture, tta=True)))
    assert load_model(averaged).tta is True and load_model(averaged, tta=False).tta is False
    assert load_model(class_model).tta is False and load_model(class_model, tta=True).tta is True
    tiles = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(load_model(averaged).translate_tiles(tiles),
                       load_model(class_model, tta=True).translate_tiles(tiles))
    # translate writes what it did in the provenance tag, and a translator loaded one way
    # is refused for the other.
    rng = np.random.default_rng(1)
    scene = write_raster(tmp_path / "scene.tif", rng.integers(0, 255, (3, 96, 80), np.uint8))
    for tta, name in ((None, "auto"), (False, "off")):
        out = translate_raster(scene, tmp_path / f"{name}.tif", averaged, tta=tta, **CPU).output
        with rasterio.open(out) as src:
            assert json.loads(src.tags()["GEOGAN_OPTIONS"])["tta"] is (tta is None)
    with pytest.raises(ConfigError, match="tta=True"):
        translate_raster(scene, tmp_path / "x.tif", load_model(averaged), tta=False)


def test_translation_divides_the_training_weights_out_of_the_class_probabilities(
        class_model: Path) -> None:
    model = read_model_file(class_model)
    weights = torch.tensor(model.architecture.class_weights)
    assert not torch.allclose(weights, torch.ones_like(weights))
    calibrated = load_model(class_model)
    favoured = Translator(replace(model, architecture=replace(model.architecture,
                                                              class_weights=())))
    tiles = torch.rand(2, 3, 64, 64) * 2 - 1
    p = favoured.translate_tiles(tiles)[:, 3:]
    expected = p / weights.view(1, -1, 1, 1)
    expected = expected / expected.sum(dim=1, keepdim=True)
    out = calibrated.translate_tiles(tiles)
    assert torch.allclose(out[:, 3:], expected, atol=1e-5)
    assert torch.equal(out[:, :3], favoured.translate_tiles(tiles)[:, :3])  # image untouched


def test_translation_takes_the_label_smoothing_off_the_class_probabilities(
        class_model: Path, tmp_path: Path) -> None:
    """A head trained with smoothing ε learns (1 - ε) p + ε / K: translate gives back p,
    after the training weights are divided out, and the ε travels in the model file."""
    model = read_model_file(class_model)
    assert model.architecture.label_smoothing == 0.0
    eps, k = 0.3, model.architecture.classes
    smoothed = replace(model, architecture=replace(model.architecture, label_smoothing=eps))
    path = save_model_file(tmp_path / "smoothed.pt", smoothed)
    assert read_model_file(path).architecture.label_smoothing == eps
    tiles = torch.rand(2, 3, 64, 64) * 2 - 1
    plain = load_model(class_model).translate_tiles(tiles)
    out = load_model(path).translate_tiles(tiles)
    expected = (plain[:, 3:] - eps / k).clamp_min(0)
    expected = expected / expected.sum(dim=1, keepdim=True)
    assert torch.allclose(out[:, 3:], expected, atol=1e-6)
    assert torch.equal(out[:, :3], plain[:, :3])  # the image bands are left alone
    assert torch.equal(out[:, 3:].argmax(1), plain[:, 3:].argmax(1))  # and so is each class
    with pytest.raises(ConfigError, match="label smoothing"):
        replace(model.architecture, label_smoothing=1.0)


def test_training_with_label_smoothing_records_it_for_translation(
        map_chips: Path, tmp_path: Path, one_torch_thread: None) -> None:
    out = tmp_path / "m.pt"
    overrides: dict[str, Any] = {"steps": 2, "ngf": 4, "ndf": 4, "classes": "auto",
                                 "unet_levels": 5, "precision": "fp32", "label_smoothing": 0.1}
    train(map_chips, out, TrainOptions(preset="tiny", overrides=overrides, device="cpu"))
    assert read_model_file(out).architecture.label_smoothing == 0.1


def _plain_model() -> ModelFile:
    arch, _ = build_configs("pix2pix", 3, 3, 64, preset="tiny", overrides={"ngf": 4, "ndf": 4})
    torch.manual_seed(0)
    norm = BandNormalization((0.0,) * 3, (255.0,) * 3, "uint8", None)
    return ModelFile(architecture=arch,
                     generators={"a2b": build_generator(arch).state_dict()},
                     normalization={"a": norm, "b": norm}, training={"steps": 1})


def test_model_files_from_before_the_class_head_translate_identically(tmp_path: Path) -> None:
    """A file written before this change has none of the new architecture keys; it must
    build the paper's U-Net and translate to the same bytes as the same weights now."""
    model = _plain_model()
    today = save_model_file(tmp_path / "today.pt", model)
    payload = torch.load(today, weights_only=True)
    for key in ("unet_levels", "upsample", "palette", "class_names", "class_weights",
                "label_smoothing", "d_scales", "spectral_norm", "input_skip", "tta",
                "unsure_below", "decoder_blocks"):
        payload["architecture"].pop(key)
    older = tmp_path / "older.pt"
    torch.save(payload, older)
    assert read_model_file(older).architecture == model.architecture
    rng = np.random.default_rng(0)
    scene = write_raster(tmp_path / "scene.tif", rng.integers(0, 255, (3, 150, 130), np.uint8))
    outputs = [translate_raster(scene, tmp_path / f"{p.stem}.tif", p, **CPU).output
               for p in (older, today)]
    with rasterio.open(outputs[0]) as a, rasterio.open(outputs[1]) as b:
        assert np.array_equal(a.read(), b.read())
        assert (a.count, a.dtypes, a.transform) == (b.count, b.dtypes, b.transform)
    assert Translator(read_model_file(older)).output == "image"
