"""Repeat factor sampling: chips that hold a rare map class drawn more often."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import ConfigError
from geogan.nn.config import build_configs
from geogan.training import batches, loop
from geogan.training.chip_folder import read_chip
from geogan.training.class_palette import with_class_head
from geogan.training.dataset import epoch_keys
from geogan.training.folder_union import open_chip_folders
from geogan.training.loop import TrainOptions, train
from geogan.training.rare_repeats import chip_repeats, repeats_from_presence
from tests.helpers import write_map_chips, write_raster

BACKGROUND, ROAD, WATER = (232, 229, 222), (254, 254, 253), (177, 207, 254)


def test_each_chip_counts_the_largest_factor_of_the_classes_it_holds() -> None:
    held = np.zeros((10, 3), dtype=bool)
    held[:, 0] = True  # in every chip: factor 1
    held[0, 1] = True  # in 1 of 10: sqrt(0.9 / 0.1) = 3
    held[[0, 1], 2] = True  # in 2 of 10: sqrt(0.9 / 0.2) = 2.12, rounded to 2
    assert repeats_from_presence(held, 0.9) == (3, 2) + (1,) * 8
    # sqrt(0.5 / 0.1) = 2.24 and sqrt(0.5 / 0.2) = 1.58: rounded to 2 both.
    assert repeats_from_presence(held, 0.5) == (2, 2) + (1,) * 8
    # A class held by at least the threshold's share of the chips repeats nothing.
    assert repeats_from_presence(held, 0.1) == (1,) * 10


@pytest.fixture(scope="module")
def map_chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_map_chips(tmp_path_factory.mktemp("repeat-chips"))


def test_an_epoch_keeps_its_length_and_draws_each_pair_by_its_count(map_chips: Path) -> None:
    folder = open_chip_folders(map_chips, val_fraction=0.0)
    pairs = len(folder.train["a"])
    repeats = (4,) + (1,) * (pairs - 1)
    keys = epoch_keys(folder, 3, 7, True, repeats)
    assert len(keys) == pairs and all(a == b for a, b, _ in keys)
    assert keys == epoch_keys(folder, 3, 7, True, repeats)
    # Counted once each, the draw is the plain epoch's.
    assert epoch_keys(folder, 3, 7, True, (1,) * pairs) == epoch_keys(folder, 3, 7, True)
    drawn = Counter(a for epoch in range(400) for a, _, _ in epoch_keys(folder, epoch, 7, True,
                                                                        repeats))
    total = 400 * pairs
    expected_first = total * 4 / (pairs + 3)
    assert abs(drawn[0] - expected_first) < 0.1 * expected_first
    others = [drawn[i] for i in range(1, pairs)]
    assert abs(np.mean(others) - total / (pairs + 3)) < 0.1 * total / (pairs + 3)
    with pytest.raises(ValueError, match="one count per pair"):
        epoch_keys(folder, 0, 7, True, (1,) * (pairs + 1))


@pytest.fixture(scope="module")
def pond_chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen 64 px map chips: roads and background in each, water in the first alone."""
    folder = tmp_path_factory.mktemp("pond")
    rng = np.random.default_rng(3)
    drawn = np.empty((256, 256, 3), np.uint8)
    drawn[:] = BACKGROUND
    drawn[8::32, :] = ROAD
    drawn[9::32, :] = ROAD
    drawn[:, 20::32] = ROAD
    drawn[16:48, 16:48] = WATER
    photo = (drawn.astype(np.float64) * 0.6 + rng.normal(0, 8, drawn.shape)).clip(0, 255)
    a = write_raster(folder / "photo.tif", photo.astype(np.uint8).transpose(2, 0, 1))
    b = write_raster(folder / "map.tif", np.ascontiguousarray(drawn.transpose(2, 0, 1)))
    export_chips(a, b, folder / "chips", ExportOptions(tile_size=64, val_fraction=0.0, workers=1))
    return folder / "chips"


def test_the_chip_of_the_one_pond_counts_three_times(pond_chips: Path) -> None:
    folder = open_chip_folders(pond_chips, val_fraction=0.0)
    architecture, config = build_configs("pix2pix", 3, 3, 64, preset="faithful",
                                         overrides={"rare_repeat": 0.5})
    architecture = with_class_head(architecture, config, folder)
    assert architecture.palette and len(architecture.palette) == 3
    repeats = chip_repeats(folder, architecture, config, folder.domains["b"].normalization())
    ponds = [bool((read_chip(chip)[0] == np.array(WATER)[:, None, None]).all(0).any())
             for chip in folder.train["b"]]
    assert sum(ponds) == 1 and len(repeats or ()) == 16
    # Water in 1 of 16 chips: sqrt(0.5 * 16) = 2.83, rounded to 3.
    assert repeats == tuple(3 if pond else 1 for pond in ponds)
    off = build_configs("pix2pix", 3, 3, 64, preset="faithful")[1]
    assert chip_repeats(folder, architecture, off, folder.domains["b"].normalization()) is None


def test_a_training_draws_its_epochs_with_the_repeats_and_records_the_threshold(
        pond_chips: Path, tmp_path: Path, one_torch_thread: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    drawn_with: list[tuple[int, ...] | None] = []

    def recorded(*args: Any, **kwargs: Any) -> list[tuple[int, int, int]]:
        drawn_with.append(args[4] if len(args) > 4 else kwargs.get("repeats"))
        return epoch_keys(*args, **kwargs)

    for module in (batches, loop):
        monkeypatch.setattr(module, "epoch_keys", recorded)
    out = tmp_path / "m.pt"
    overrides = {"steps": 2, "ngf": 4, "ndf": 4, "classes": "auto", "unet_levels": 5,
                 "precision": "fp32", "rare_repeat": 0.5}
    train(pond_chips, out, TrainOptions(preset="tiny", overrides=overrides, device="cpu"))
    assert torch.load(out, weights_only=True)["training"]["config"]["rare_repeat"] == 0.5
    folder = open_chip_folders(pond_chips, val_fraction=0.0)
    architecture, config = build_configs("pix2pix", 3, 3, 64, preset="tiny", overrides=overrides)
    expected = chip_repeats(folder, with_class_head(architecture, config, folder), config,
                            folder.domains["b"].normalization())
    assert expected is not None and sorted(expected) == [1] * 15 + [3]
    # The training's epoch is drawn with the repeats; the epoch's length is counted, and
    # BatchNorm's final averages taken, over every chip once.
    assert [r for r in drawn_with if r is not None] == [expected] and drawn_with[-1] is None


def test_repeats_need_a_class_head(map_chips: Path, tmp_path: Path) -> None:
    overrides = {"steps": 1, "ngf": 4, "ndf": 4, "classes": "off", "rare_repeat": 0.5}
    with pytest.raises(ConfigError, match="needs a class head"):
        train(map_chips, tmp_path / "m.pt",
              TrainOptions(preset="tiny", overrides=overrides, device="cpu"))
    with pytest.raises(ConfigError, match="repeat threshold"):
        build_configs("pix2pix", 3, 3, 64, overrides={"rare_repeat": 1.5})
