"""Several chip folders trained on as one: same model as one folder holding them all,
each folder's split kept, statistics pooled, mismatches refused naming the folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import ChipFolderError
from geogan.nn.model_file import read_model_file
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.training.chip_folder import open_chip_folder, read_chip
from geogan.training.folder_union import open_chip_folders
from geogan.training.loop import TrainOptions, train
from tests.helpers import TINY, pair_chips, pair_scene, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 paired 64-px chips of a learnable pair, no validation split."""
    tmp = tmp_path_factory.mktemp("union")
    return pair_chips(tmp, 256, 0)


def plain_folder(root: Path, source: Path, names: list[str]) -> Path:
    """An ArcGIS-layout folder (no geogan metadata) holding the named chips of ``source``."""
    for sub in ("images", "images2"):
        (root / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(source / sub / name, root / sub / name)
    return root


def test_two_folders_train_the_same_model_as_one_folder_holding_both(tmp_path, exported):
    names = sorted(p.name for p in (exported / "images").iterdir())
    first = plain_folder(tmp_path / "first", exported, names[:6])
    second = plain_folder(tmp_path / "second", exported, names[6:])
    both = plain_folder(tmp_path / "both", exported, names)
    options = TrainOptions(preset="tiny", overrides={**TINY, "steps": 4, "seed": 5},
                           device="cpu", val_fraction=0)
    train([first, second], tmp_path / "two.pt", options)
    train(both, tmp_path / "one.pt", options)
    two, one = read_model_file(tmp_path / "two.pt"), read_model_file(tmp_path / "one.pt")
    assert two.normalization == one.normalization
    for key, value in one.generators["a2b"].items():
        assert torch.equal(two.generators["a2b"][key], value), key
    record = two.training["chip_folders"]
    assert [(Path(r["path"]).name, r["train_chips"], r["val_chips"]) for r in record] == [
        ("first", 6, 0), ("second", 10, 0)]
    assert one.training["chip_folders"][0]["train_chips"] == 16


def test_each_folder_keeps_its_split_and_statistics_are_pooled(tmp_path):
    folders = []
    for k in range(2):
        a, b = pair_scene(tmp_path, 256)
        out = tmp_path / f"chips{k}"
        export_chips(a, b, out, ExportOptions(tile_size=64, val_fraction=0.25, seed=k,
                                              workers=1))
        folders.append(out)
    union = open_chip_folders(folders)
    alone = [open_chip_folder(f) for f in folders]
    for split in ("train", "val"):
        for domain in ("a", "b"):
            assert getattr(union, split)[domain] == tuple(
                c for f in alone for c in getattr(f, split)[domain])
    assert [p.train for p in union.parts] == [len(f.train["a"]) for f in alone]
    assert [p.val for p in union.parts] == [len(f.val["a"]) for f in alone]
    assert all(p.val > 0 for p in union.parts)
    accumulator = StatisticsAccumulator(3, "uint8")
    for chip in union.train["a"]:
        accumulator.update(*read_chip(chip))
    assert union.domains["a"].statistics == tuple(accumulator.result())


def test_folders_of_different_bands_are_refused_naming_the_folder(tmp_path, exported):
    names = sorted(p.name for p in (exported / "images").iterdir())
    good = plain_folder(tmp_path / "good", exported, names[:4])
    other = tmp_path / "four-bands"
    for sub, bands in (("images", 4), ("images2", 3)):
        (other / sub).mkdir(parents=True)
        for name in names[:4]:
            write_raster(other / sub / name, np.full((bands, 64, 64), 9, np.uint8))
    with pytest.raises(ChipFolderError, match=r"four-bands holds paired 4-band uint8 .* but "
                                              r".*good holds paired 3-band uint8"):
        open_chip_folders([good, other])
    with pytest.raises(ChipFolderError, match="given twice"):
        open_chip_folders([good, tmp_path / "good" / "." ])
