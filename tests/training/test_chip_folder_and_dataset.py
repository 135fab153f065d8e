"""Chip folders (geogan's and ArcGIS-style), keys, augmentation, masks and loading."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import ChipFolderError
from geogan.nn.normalization import BandNormalization
from geogan.training import dataset as dataset_module
from geogan.training.chip_folder import ChipFolder, open_chip_folder, read_chip
from geogan.training.dataset import ChipDataset, KeySampler, dihedral, epoch_keys, val_keys
from tests.helpers import smooth_field, write_raster

# Pixels of the paired scene where the input is nodata (0) or the target is NaN.
A_HOLE = (slice(10, 20), slice(10, 20))
B_HOLE = (slice(70, 80), slice(150, 160))


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """geogan chips of a 192×192 pair, tile 64: RGB uint8 (nodata 0) → float32 = 2 × red."""
    tmp = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(5)
    a = np.stack([smooth_field(rng, (192, 192), 16) for _ in range(3)]) * 249 + 1
    a = a.astype(np.uint8)
    a[(slice(None), *A_HOLE)] = 0
    b = a[:1].astype(np.float32) * 2
    b[(slice(None), *B_HOLE)] = np.nan
    write_raster(tmp / "a.tif", a, nodata=0)
    write_raster(tmp / "b.tif", b)
    options = ExportOptions(tile_size=64, val_fraction=0.2, min_valid=0.5, workers=1)
    export_chips(tmp / "a.tif", tmp / "b.tif", tmp / "chips", options)
    return tmp / "chips"


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """geogan unpaired chips, tile 64: 6 uint8 chips in a, 9 two-band uint16 chips in b."""
    tmp = tmp_path_factory.mktemp("unpaired")
    rng = np.random.default_rng(6)
    a = (smooth_field(rng, (128, 192), 16)[None] * 255).astype(np.uint8)
    b = (np.stack([smooth_field(rng, (192, 192), 8)] * 2) * 4000).astype(np.uint16)
    write_raster(tmp / "a.tif", a)
    write_raster(tmp / "b.tif", b)
    options = ExportOptions(tile_size=64, val_fraction=0.2, unpaired=True, workers=1)
    export_chips(tmp / "a.tif", tmp / "b.tif", tmp / "chips", options)
    return tmp / "chips"


def write_chips(folder: Path, chips: list[np.ndarray], *, suffix: str = ".tif",
                nodata: float | None = None) -> list[Path]:
    """Hand-made chips 000.tif, 001.tif, ... (GeoTIFF with a CRS, or PNG without)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(chips):
        path = folder / f"{i:03d}{suffix}"
        if suffix == ".tif":
            write_raster(path, data, nodata=nodata)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                count, height, width = data.shape
                with rasterio.open(path, "w", driver="PNG", width=width, height=height,
                                   count=count, dtype=data.dtype) as dst:
                    dst.write(data)
        paths.append(path)
    return paths


def numpy_percentiles(chips: list[np.ndarray], valid: list[np.ndarray]) -> np.ndarray:
    values = np.concatenate([c[:, v] for c, v in zip(chips, valid, strict=True)], axis=1)
    return np.percentile(values, [2, 98], axis=1)  # (2, C)


def uint8_identity_norms(folder: ChipFolder) -> tuple[BandNormalization, BandNormalization]:
    """a: 0..255 → [-1, 1]; b (= 2 × a's red) 0..510 → [-1, 1], so b's value equals a's."""
    return (folder.domains["a"].normalization(),
            BandNormalization((0.0,), (510.0,), "float32", None))


# --------------------------------------------------------------------------- geogan folders


def test_geogan_paired_folder_follows_metadata_and_index(paired):
    folder = open_chip_folder(paired)
    metadata = json.loads((paired / "geogan-chips.json").read_text())
    features = json.loads((paired / "index.geojson").read_text())["features"]
    assert (folder.mode, folder.paired, folder.source, folder.tile_size) == (
        "paired", True, "geogan", 64)
    for split in ("train", "val"):
        names = [f["properties"]["file"] for f in features if f["properties"]["split"] == split]
        assert names, split
        assert [p.name for p in getattr(folder, split)["a"]] == names
        assert [p.name for p in getattr(folder, split)["b"]] == names
        assert {p.parent.name for p in getattr(folder, split)["b"]} == {"images2"}
    a, b = folder.domains["a"], folder.domains["b"]
    assert (a.folder, a.bands, a.dtype, a.nodata) == ("images", 3, "uint8", 0.0)
    assert (b.folder, b.bands, b.dtype) == ("images2", 1, "float32")
    assert [s.to_dict() for s in b.statistics] == metadata["domains"]["b"]["statistics"]
    assert a.normalization().high == (255.0,) * 3


def test_geogan_unpaired_folder(unpaired):
    folder = open_chip_folder(unpaired)
    assert (folder.mode, folder.paired, folder.source) == ("unpaired", False, "geogan")
    features = json.loads((unpaired / "index.geojson").read_text())["features"]
    for domain, sub in (("a", "train_a"), ("b", "train_b")):
        for split in ("train", "val"):
            names = [f["properties"]["file"] for f in features
                     if f["properties"]["domain"] == domain and f["properties"]["split"] == split]
            chips = getattr(folder, split)[domain]
            assert [p.name for p in chips] == names and {p.parent.name for p in chips} == {sub}
    assert len(folder.train["a"]) + len(folder.val["a"]) == 6
    assert len(folder.train["b"]) + len(folder.val["b"]) == 9
    assert folder.domains["b"].bands == 2 and folder.domains["b"].dtype == "uint16"


def test_newer_format_version_is_refused(paired, tmp_path):
    copy = shutil.copytree(paired, tmp_path / "chips")
    metadata = json.loads((copy / "geogan-chips.json").read_text())
    metadata["version"] = 99
    (copy / "geogan-chips.json").write_text(json.dumps(metadata))
    with pytest.raises(ChipFolderError, match=r"newer geogan.*version 99.*upgrade"):
        open_chip_folder(copy)


def test_listed_chip_missing_is_named(paired, tmp_path):
    copy = shutil.copytree(paired, tmp_path / "chips")
    victim = sorted((copy / "images2").glob("*.tif"))[1]
    victim.unlink()
    with pytest.raises(ChipFolderError, match=rf"1 chip\(s\) listed .* missing.*{victim.name}"):
        open_chip_folder(copy)


# --------------------------------------------------------------------------- ArcGIS folders


def test_arcgis_paired_tif_folder_computes_statistics_like_numpy(tmp_path):
    rng = np.random.default_rng(1)
    chips_a = [rng.integers(100, 5000, (2, 32, 32)).astype(np.uint16) for _ in range(12)]
    chips_b = [rng.normal(10, 3, (1, 32, 32)).astype(np.float32) for _ in range(12)]
    chips_b[3][0, :5, :7] = -1.0  # nodata
    chips_b[4][0, 0, 0] = np.nan
    write_chips(tmp_path / "images", chips_a)
    write_chips(tmp_path / "images2", chips_b, nodata=-1.0)
    (tmp_path / "images" / "000.tif.aux.xml").write_text("<PAMDataset/>")
    (tmp_path / "map.txt").write_text("images/000.tif images2/000.tif\n")
    calls: list[tuple[int, int]] = []
    folder = open_chip_folder(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert (folder.mode, folder.source, folder.tile_size) == ("paired", "arcgis", 32)
    assert len(folder.train["a"]) == 11 and len(folder.val["a"]) == 1
    assert [p.name for p in folder.train["a"]] == [p.name for p in folder.train["b"]]
    assert calls[-1] == (24, 24)
    assert folder.domains["b"].nodata == -1.0 and folder.domains["a"].nodata is None

    train = [int(p.stem) for p in folder.train["a"]]
    valid_a = [np.ones((32, 32), bool)] * len(train)
    valid_b = [np.isfinite(chips_b[i][0]) & (chips_b[i][0] != -1) for i in train]
    for domain, chips, valid in (("a", chips_a, valid_a), ("b", chips_b, valid_b)):
        expected = numpy_percentiles([chips[i] for i in train], valid)
        statistics = folder.domains[domain].statistics
        np.testing.assert_allclose([s.p2 for s in statistics], expected[0], rtol=1e-6)
        np.testing.assert_allclose([s.p98 for s in statistics], expected[1], rtol=1e-6)
    assert folder.domains["b"].statistics[0].count == sum(v.sum() for v in valid_b)

    again = open_chip_folder(tmp_path)
    assert again.val == folder.val
    vals = {open_chip_folder(tmp_path, seed=s).val["a"] for s in range(6)}
    assert len(vals) > 1  # the draw depends on the seed
    assert open_chip_folder(tmp_path, val_fraction=0).val["a"] == ()


def test_arcgis_png_folder_and_small_folders_keep_no_val(tmp_path):
    rng = np.random.default_rng(2)
    chips_a = [rng.integers(0, 256, (3, 32, 32), dtype=np.uint8) for _ in range(9)]
    chips_b = [rng.integers(0, 256, (1, 32, 32), dtype=np.uint8) for _ in range(9)]
    write_chips(tmp_path / "images", chips_a, suffix=".png")
    write_chips(tmp_path / "images2", chips_b, suffix=".png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NotGeoreferencedWarning for PNG chips
        folder = open_chip_folder(tmp_path)
        data, valid = read_chip(folder.train["a"][0])
    assert folder.mode == "paired" and folder.domains["a"].dtype == "uint8"
    assert len(folder.train["a"]) == 9 and folder.val["a"] == ()  # fewer than 10 chips
    assert data.shape == (3, 32, 32) and valid.all()
    expected = numpy_percentiles(chips_a, [np.ones((32, 32), bool)] * 9)
    np.testing.assert_allclose([s.p98 for s in folder.domains["a"].statistics], expected[1])


def test_arcgis_unpaired_folder_with_trainA_names(tmp_path):
    rng = np.random.default_rng(3)
    write_chips(tmp_path / "trainA", [rng.random((1, 16, 16), np.float32) for _ in range(10)])
    write_chips(tmp_path / "trainB", [rng.random((4, 16, 16), np.float32) for _ in range(20)])
    folder = open_chip_folder(tmp_path, val_fraction=0.1)
    assert folder.mode == "unpaired" and folder.source == "arcgis"
    assert (len(folder.train["a"]), len(folder.val["a"])) == (9, 1)
    assert (len(folder.train["b"]), len(folder.val["b"])) == (18, 2)
    assert folder.domains["b"].bands == 4
    assert val_keys(folder) == [(0, 0, 0)]


# --------------------------------------------------------------------------- errors


def test_missing_folder(tmp_path):
    with pytest.raises(ChipFolderError, match=r"does not exist.*geogan export-chips"):
        open_chip_folder(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(ChipFolderError, match="is empty"):
        open_chip_folder(tmp_path)


def test_neither_layout_names_the_expected_sub_folders(tmp_path):
    (tmp_path / "labels").mkdir()
    with pytest.raises(ChipFolderError, match=r"images/ and images2/.*train_a/ and train_b/"):
        open_chip_folder(tmp_path)


def test_no_training_chips(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images2").mkdir()
    with pytest.raises(ChipFolderError, match="no training chips"):
        open_chip_folder(tmp_path)


def test_unmatched_pair_names(tmp_path):
    chips = [np.zeros((1, 16, 16), np.uint8)] * 3
    write_chips(tmp_path / "images", chips)
    paths = write_chips(tmp_path / "images2", chips)
    paths[2].rename(paths[2].with_name("x.tif"))
    with pytest.raises(ChipFolderError, match=r"1 chip\(s\) of .*images have no chip .*002.tif"):
        open_chip_folder(tmp_path)


def test_band_counts_that_differ_name_both_chips(tmp_path):
    chips = [np.ones((1, 16, 16), np.uint8)] * 4
    write_chips(tmp_path / "images", chips)
    write_chips(tmp_path / "images2", [*chips[:3], np.ones((2, 16, 16), np.uint8)])
    with pytest.raises(ChipFolderError, match=r"003.tif does not agree with .*000.tif.*2 band"):
        open_chip_folder(tmp_path)


def test_chips_must_be_square(tmp_path):
    write_chips(tmp_path / "images", [np.ones((1, 16, 24), np.uint8)])
    write_chips(tmp_path / "images2", [np.ones((1, 16, 24), np.uint8)])
    with pytest.raises(ChipFolderError, match="square"):
        open_chip_folder(tmp_path)


# --------------------------------------------------------------------------- keys


def test_epoch_keys_are_seeded_per_epoch_and_cover_each_pair_once(paired):
    folder = open_chip_folder(paired)
    n = len(folder.train["a"])
    keys = epoch_keys(folder, epoch=3, seed=11, augment=True)
    assert keys == epoch_keys(folder, epoch=3, seed=11, augment=True)
    assert keys != epoch_keys(folder, epoch=4, seed=11, augment=True)
    assert keys != epoch_keys(folder, epoch=3, seed=12, augment=True)
    assert sorted(k[0] for k in keys) == list(range(n))
    assert all(a == b and 0 <= t < 8 for a, b, t in keys)
    plain = epoch_keys(folder, epoch=3, seed=11, augment=False)
    assert [k[:2] for k in plain] == [k[:2] for k in keys] and {k[2] for k in plain} == {0}
    assert all(type(v) is int for k in keys for v in k)
    assert val_keys(folder) == [(i, i, 0) for i in range(len(folder.val["a"]))]


def test_unpaired_epoch_keys_last_the_longer_domain(unpaired):
    folder = open_chip_folder(unpaired)
    n_a, n_b = len(folder.train["a"]), len(folder.train["b"])
    assert n_b > n_a
    keys = epoch_keys(folder, epoch=0, seed=0, augment=False)
    assert len(keys) == n_b
    assert sorted(k[0] for k in keys[:n_a]) == list(range(n_a))  # a's permutation, cycled
    assert [k[0] for k in keys[n_a:]] == [k[0] for k in keys[: n_b - n_a]]
    assert all(0 <= k[1] < n_b for k in keys)
    n_val_b = len(folder.val["b"])
    assert val_keys(folder) == [(i, i % n_val_b, 0) for i in range(len(folder.val["a"]))]


def test_dihedral_gives_the_eight_distinct_symmetries():
    x = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    results = [dihedral(x, t) for t in range(8)]
    assert all(r.flags.c_contiguous for r in results)
    np.testing.assert_array_equal(results[0], x)
    np.testing.assert_array_equal(results[1], np.rot90(x, 1, axes=(1, 2)))
    np.testing.assert_array_equal(results[4], x[:, :, ::-1])
    group = {np.rot90(f, k, axes=(1, 2)).tobytes() for f in (x, x[:, ::-1]) for k in range(4)}
    assert {r.tobytes() for r in results} == group and len(group) == 8
    with pytest.raises(ValueError):
        dihedral(x, 8)


# --------------------------------------------------------------------------- dataset


def test_both_chips_of_a_pair_get_the_same_transform(paired):
    folder = open_chip_folder(paired)
    dataset = ChipDataset(folder, "train", *uint8_identity_norms(folder))
    base = dataset[(2, 2, 0)]
    torch.testing.assert_close(base["b"][0], base["a"][0] * base["mask_a"][0])
    for t in range(8):
        sample = dataset[(2, 2, t)]
        assert set(sample) == {"a", "b", "mask_a", "mask_b"}
        assert sample["a"].dtype == torch.float32 and sample["a"].shape == (3, 64, 64)
        assert sample["mask_a"].shape == (1, 64, 64)
        # b is a function of a pixel by pixel: that holds after the transform too.
        torch.testing.assert_close(sample["b"][0], sample["a"][0])
        for name in sample:
            expected = dihedral(base[name].numpy(), t)
            np.testing.assert_array_equal(sample[name].numpy(), expected)


def test_nodata_of_either_chip_is_masked_in_both(paired):
    folder = open_chip_folder(paired)
    seen = 0
    for split in ("train", "val"):
        seen += check_masks(folder, split)
    assert seen >= 2  # the input's nodata hole and the target's NaN hole


def check_masks(folder: ChipFolder, split: str) -> int:
    dataset = ChipDataset(folder, split, *uint8_identity_norms(folder))
    seen = 0
    chips = getattr(folder, split)
    for i, (path_a, path_b) in enumerate(zip(chips["a"], chips["b"], strict=True)):
        with rasterio.open(path_a) as src:
            a = src.read()
        with rasterio.open(path_b) as src:
            b = src.read()
        invalid = (a == 0).all(axis=0) | np.isnan(b[0])
        sample = dataset[(i, i, 0)]
        assert torch.equal(sample["mask_a"], sample["mask_b"])
        np.testing.assert_array_equal(sample["mask_a"][0].numpy(), (~invalid).astype(np.float32))
        if invalid.any():
            seen += 1
            assert (sample["a"][:, torch.from_numpy(invalid)] == 0).all()
            assert (sample["b"][:, torch.from_numpy(invalid)] == 0).all()
        assert torch.isfinite(sample["b"]).all()
    return seen


def test_unpaired_masks_are_each_chips_own(tmp_path):
    chip_a = np.full((1, 16, 16), 10, np.uint8)
    chip_a[0, :4] = 0
    write_chips(tmp_path / "train_a", [chip_a], nodata=0)
    write_chips(tmp_path / "train_b", [np.full((1, 16, 16), 5, np.uint8)], nodata=0)
    folder = open_chip_folder(tmp_path)
    norm_a, norm_b = (folder.domains[d].normalization() for d in "ab")
    sample = ChipDataset(folder, "train", norm_a, norm_b)[(0, 0, 0)]
    assert sample["mask_a"][0, :4].sum() == 0 and sample["mask_a"][0, 4:].min() == 1
    assert sample["mask_b"].min() == 1
    assert (sample["a"][0, :4] == 0).all()


def test_dataloader_batches_do_not_depend_on_workers(paired):
    folder = open_chip_folder(paired)
    norm_a, norm_b = (folder.domains[d].normalization() for d in "ab")
    dataset = pickle.loads(pickle.dumps(ChipDataset(folder, "train", norm_a, norm_b)))
    assert len(dataset) == len(folder.train["a"])
    keys = epoch_keys(folder, epoch=1, seed=0, augment=True)
    sampler = KeySampler(keys)
    assert len(sampler) == len(keys) and list(sampler) == keys
    batches = [
        list(DataLoader(dataset, batch_size=2, sampler=KeySampler(keys), num_workers=w))
        for w in (0, 2)
    ]
    assert len(batches[0]) == len(batches[1]) == (len(keys) + 1) // 2
    for one, two in zip(*batches, strict=True):
        assert one["a"].shape[1:] == (3, 64, 64)
        for name in one:
            assert torch.equal(one[name], two[name])


def test_dataset_refuses_wrong_split_or_band_count(paired):
    folder = open_chip_folder(paired)
    norm_a, norm_b = (folder.domains[d].normalization() for d in "ab")
    with pytest.raises(ValueError, match="split"):
        ChipDataset(folder, "test", norm_a, norm_b)
    with pytest.raises(ValueError, match="domain b has 3 band"):
        ChipDataset(folder, "train", norm_a, norm_a)


def test_kept_chips_are_read_once_and_give_the_same_samples(paired, monkeypatch):
    folder = open_chip_folder(paired)
    norms = uint8_identity_norms(folder)
    keys = [(i, i, t) for t in (0, 5) for i in range(len(folder.train["a"]))]
    expected = [ChipDataset(folder, "train", *norms)[key] for key in keys]
    reads = count_reads(monkeypatch)
    kept = ChipDataset(folder, "train", *norms, cache_bytes=2**30)
    for key, sample in zip(keys, expected, strict=True):
        got = kept[key]
        for name in sample:
            assert torch.equal(got[name], sample[name])
    # Each chip of either domain was read from its file once, then from memory.
    assert sorted(reads) == sorted({*reads}) and len(reads) == 2 * len(folder.train["a"])


def test_chips_beyond_the_cache_budget_are_read_each_time(paired, monkeypatch):
    folder = open_chip_folder(paired)
    reads = count_reads(monkeypatch)
    one_chip = 3 * 64 * 64 + 64 * 64  # uint8 pixels and a boolean mask
    dataset = ChipDataset(folder, "train", *uint8_identity_norms(folder), cache_bytes=one_chip)
    for _ in range(3):
        dataset[(0, 0, 0)]
        dataset[(1, 1, 0)]
    # The first chip read (a of pair 0) fills the budget; everything else is re-read.
    assert reads.count(str(folder.train["a"][0])) == 1
    assert reads.count(str(folder.train["b"][0])) == 3
    assert reads.count(str(folder.train["a"][1])) == 3
    no_cache = ChipDataset(folder, "train", *uint8_identity_norms(folder))
    reads.clear()
    no_cache[(0, 0, 0)]
    no_cache[(0, 0, 0)]
    assert len(reads) == 4


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the dataset reads from disk from now on, in order."""
    reads: list[str] = []
    real_read = dataset_module.read_chip

    def counting_read(path):
        reads.append(str(path))
        return real_read(path)

    monkeypatch.setattr(dataset_module, "read_chip", counting_read)
    return reads
