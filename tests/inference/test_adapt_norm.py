"""``adapt_norm``: BatchNorm's averages taken from the scene being translated (AdaBN)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torch.nn.modules.batchnorm import _BatchNorm

import geogan.inference.scene as scene_module
from geogan.errors import ConfigError
from geogan.inference.batch import translate_batch
from geogan.inference.scene import translate_raster
from geogan.inference.scene_norms import adapted_share, scene_statistics, spread
from geogan.inference.translator import Translator, load_model
from tests.helpers import CPU, TILE, UTM33, save_model, textured, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("adapt") / "m.pt")


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[list[np.ndarray]]:
    """The windows each translation of the test takes its statistics from."""
    windows_taken: list[list[np.ndarray]] = []

    def spy(translator: Translator, windows: list[np.ndarray],  # type: ignore[no-untyped-def]
            **options):
        windows_taken.append(list(windows))
        return scene_statistics(translator, windows, **options)

    monkeypatch.setattr(scene_module, "scene_statistics", spy)
    return windows_taken


def tiles(count: int, seed: int = 0) -> list[np.ndarray]:
    """Normalised (3, TILE, TILE) windows, each with its own brightness and contrast."""
    rng = np.random.default_rng(seed)
    return [np.clip(rng.uniform(-0.5, 0.5) + rng.uniform(0.2, 1.0)
                    * (textured(rng, 3, TILE, TILE) / 127.5 - 1), -1, 1).astype(np.float32)
            for _ in range(count)]


def adapted_by_hand(translator: Translator, tile: np.ndarray) -> torch.Tensor:
    """The generator run on ``tile`` with BatchNorm's averages set, by PyTorch's own
    train-mode update, to the statistics of that one tile."""
    generator = copy.deepcopy(translator.generator)
    norms = [m for m in generator.modules() if isinstance(m, _BatchNorm)]
    x = torch.from_numpy(tile)[None]
    with torch.no_grad():
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = 1.0  # the last batch's statistics
            norm.train()
        generator(x)
        generator.eval()
        out: torch.Tensor = generator(x)
    return out


def test_one_windows_averages_are_that_windows_statistics(model):
    translator = load_model(model, **CPU)
    tile = tiles(1)[0]
    with scene_statistics(translator, [tile]) as used:
        adapted = translator.translate_tiles(torch.from_numpy(tile)[None])
    assert used == 1
    torch.testing.assert_close(adapted, adapted_by_hand(translator, tile))
    assert not torch.allclose(adapted, translator.translate_tiles(torch.from_numpy(tile)[None]),
                              atol=1e-3)


def test_averages_are_the_mean_of_each_batchs_statistics_and_come_back_after(model):
    translator = load_model(model, **CPU)
    first = next(m for m in translator.generator.modules() if isinstance(m, _BatchNorm))
    before = {k: v.clone() for k, v in translator.generator.state_dict().items()}
    windows = tiles(5, seed=1)
    probe = torch.from_numpy(windows[0])[None]
    plain = translator.translate_tiles(probe)
    inputs: list[torch.Tensor] = []
    hook = first.register_forward_pre_hook(lambda _, args: inputs.append(args[0].detach()))
    with scene_statistics(translator, windows, batch_size=2) as used:
        hook.remove()
        mean, var = first.running_mean.clone(), first.running_var.clone()
        assert not first.training and not translator.generator.training
    assert used == 5 and [len(x) for x in inputs] == [2, 2, 1]
    torch.testing.assert_close(mean, torch.stack([x.mean((0, 2, 3)) for x in inputs]).mean(0))
    torch.testing.assert_close(var, torch.stack([x.var((0, 2, 3)) for x in inputs]).mean(0))
    after = translator.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert first.momentum == 0.1
    assert torch.equal(translator.translate_tiles(probe), plain)


def test_a_prior_moves_the_averages_that_share_of_the_way_and_back_after(model):
    translator = load_model(model, **CPU)
    norms = translator.batch_norms()

    def averages() -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(m.running_mean.clone(), m.running_var.clone()) for m in norms]

    before, windows = averages(), tiles(6, seed=2)
    with scene_statistics(translator, windows) as used:
        scene = averages()
    with scene_statistics(translator, windows, prior=2) as used_with_prior:
        moved = averages()
    assert used == used_with_prior == 6 and adapted_share(6, 2) == 0.75
    for (mean0, var0), (mean1, var1), (mean, var) in zip(before, scene, moved, strict=True):
        torch.testing.assert_close(mean, 0.75 * mean1 + 0.25 * mean0)
        torch.testing.assert_close(var, 0.75 * var1 + 0.25 * var0)
    assert all(torch.equal(a, b) for pair in zip(before, averages(), strict=True)
               for a, b in zip(*pair, strict=True))
    assert (adapted_share(0, 4), adapted_share(4, 4), adapted_share(5, 0)) == (0.0, 0.5, 1.0)


def test_no_window_leaves_the_model_files_averages(model):
    translator = load_model(model, **CPU)
    probe = torch.from_numpy(tiles(1)[0])[None]
    plain = translator.translate_tiles(probe)
    with scene_statistics(translator, []) as used:
        assert used == 0
        assert torch.equal(translator.translate_tiles(probe), plain)


def test_an_error_inside_still_restores_the_averages(model):
    translator = load_model(model, **CPU)
    probe = torch.from_numpy(tiles(1)[0])[None]
    plain = translator.translate_tiles(probe)
    with pytest.raises(RuntimeError), scene_statistics(translator, tiles(2)):
        raise RuntimeError("stop")
    assert torch.equal(translator.translate_tiles(probe), plain)


def test_a_generator_without_batch_norm_is_refused(tmp_path):
    translator = load_model(save_model(tmp_path / "cycle.pt", kind="cyclegan"), **CPU)
    assert not translator.has_batch_norm
    with pytest.raises(ConfigError, match="no BatchNorm"), \
            scene_statistics(translator, tiles(1)):
        pass
    scene = write_raster(tmp_path / "s.tif", textured(np.random.default_rng(0), 3, 80, 80))
    with pytest.raises(ConfigError, match="--adapt-norm needs a generator with BatchNorm"):
        translate_raster(scene, tmp_path / "out.tif", translator, adapt_norm=True)
    assert not (tmp_path / "out.tif").exists()


def test_a_one_window_scene_is_translated_with_its_own_statistics(model, tmp_path):
    data = textured(np.random.default_rng(3), 3, TILE, TILE)
    scene = write_raster(tmp_path / "s.tif", data)
    translator = load_model(model, **CPU)
    report = translate_raster(scene, tmp_path / "adapted.tif", translator, adapt_norm=True)
    assert report.windows_run == 1
    tile = translator.input_normalization.normalize(data)
    expected = translator.finish(adapted_by_hand(translator, tile)[0].numpy())
    with rasterio.open(report.output) as dst:
        written = dst.read()
        options = json.loads(dst.tags()["GEOGAN_OPTIONS"])
    assert options["adapt_norm"] is True
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
    # The translator is the model file's again: a plain translation is what it was.
    translate_raster(scene, tmp_path / "plain.tif", translator)
    translate_raster(scene, tmp_path / "fresh.tif", model, **CPU)
    with rasterio.open(tmp_path / "plain.tif") as a, rasterio.open(tmp_path / "fresh.tif") as b:
        plain = a.read()
        assert np.array_equal(plain, b.read())
        assert json.loads(a.tags()["GEOGAN_OPTIONS"])["adapt_norm"] == "auto"
    assert not np.array_equal(plain, written)


def test_a_large_scene_takes_its_statistics_from_wholly_valid_windows_spread_over_it(
        model, tmp_path, taken):
    rng = np.random.default_rng(4)
    data = textured(rng, 3, 1000, 1200)
    data[:, :300] = 0  # nodata along the top: windows there are not wholly valid
    scene = write_raster(tmp_path / "s.tif", data, nodata=0,
                         transform=Affine(10.0, 0.0, 400_000.0, 0.0, -10.0, 5_600_000.0))
    translate_raster(scene, tmp_path / "out.tif", model, adapt_norm=True, batch_size=5, **CPU)
    (windows,) = taken
    assert 32 <= len(windows) <= 64
    assert all(w.shape == (3, TILE, TILE) and (w != 0).all() for w in windows)
    # The same windows whatever the batch size.
    taken.clear()
    translate_raster(scene, tmp_path / "out2.tif", model, adapt_norm=True, batch_size=2, **CPU)
    assert all(np.array_equal(a, b) for a, b in zip(windows, taken[0], strict=True))
    with rasterio.open(tmp_path / "out.tif") as a, rasterio.open(tmp_path / "out2.tif") as b:
        assert np.array_equal(a.read(), b.read())
        assert (a.crs.to_string(), a.transform) == (UTM33, b.transform)


def test_windows_are_spread_from_first_to_last():
    starts = list(range(0, 100, 10))
    assert spread(starts, 20) == starts
    assert spread(starts, 10) == starts
    assert spread(starts, 3) == [0, 40, 90]  # index 4.5 rounds to even
    assert spread(starts, 2) == [0, 90]
    assert spread(starts, 1) == [50]


def test_a_mosaic_batch_refuses_it(model, tmp_path):
    scene = write_raster(tmp_path / "s.tif", textured(np.random.default_rng(0), 3, 80, 80))
    with pytest.raises(ConfigError, match="--mosaic and --adapt-norm"):
        translate_batch([str(scene)], tmp_path / "out", model, mosaic=True, adapt_norm=True,
                        **CPU)


def test_a_scene_without_a_wholly_valid_window_takes_its_partly_valid_ones(model, tmp_path,
                                                                           taken):
    data = textured(np.random.default_rng(6), 3, 150, 150)
    data[:, ::20, ::20] = 0  # a nodata pixel in every window
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    report = translate_raster(scene, tmp_path / "out.tif", model, adapt_norm=True, **CPU)
    (windows,) = taken
    assert len(windows) == report.windows_run  # a small scene: every window
    assert all((w == 0).all(axis=0).any() for w in windows)  # each with its nodata at 0
