"""Tests of geogan.sampledata.world and ``geogan sample-data``: generated pairs and their promises.

Every raster is generated into ``tmp_path`` at a small size, so the file runs in seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.errors import InputError, OutputExistsError
from geogan.raster.palette import palette_from_tags
from geogan.sampledata.render import write_sample_pair, write_sample_pairs
from geogan.sampledata.world import (
    CLASS_NAMES,
    DSM_NODATA,
    FILE_NAMES,
    KINDS,
    MAP_PALETTE,
    PIXEL_SIZE,
    generate_scene,
)

# kind: (input dtype, input bands, input nodata, input band descriptions)
EXPECTED_INPUT = {
    "sat-map": ("uint8", 3, None, ("red", "green", "blue")),
    "dsm-imagery": ("float32", 1, DSM_NODATA, ("elevation",)),
    "sar-optical": ("float32", 1, None, ("VV",)),
}


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read()


@pytest.fixture(scope="module")
def all_kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """One 256 x 256 pair of every kind, from one scene (seed 3)."""
    out = tmp_path_factory.mktemp("pairs")
    pairs = write_sample_pairs(out, KINDS, size=256, seed=3)
    return {pair.kind: (pair.input_path, pair.target_path) for pair in pairs}


# --------------------------------------------------------------------------------------
# Determinism


def test_scene_is_deterministic_per_seed() -> None:
    first, again, other = generate_scene(128, 7), generate_scene(128, 7), generate_scene(128, 8)
    for name in ("elevation", "classes", "building_height", "roof"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert not np.array_equal(first.classes, other.classes)
    assert not np.array_equal(first.elevation, other.elevation)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_writes_same_pixels(tmp_path: Path, kind: str) -> None:
    first = write_sample_pair(tmp_path / "a", kind, size=96, seed=5)
    again = write_sample_pair(tmp_path / "b", kind, size=96, seed=5)
    other = write_sample_pair(tmp_path / "c", kind, size=96, seed=6)
    for role in ("input_path", "target_path"):
        pixels = read(getattr(first, role))
        assert np.array_equal(pixels, read(getattr(again, role)))
        assert not np.array_equal(pixels, read(getattr(other, role)))


# --------------------------------------------------------------------------------------
# Format and georeferencing


@pytest.mark.parametrize("kind", KINDS)
def test_pair_format_and_shared_grid(all_kinds: dict[str, tuple[Path, Path]], kind: str) -> None:
    input_path, target_path = all_kinds[kind]
    assert (input_path.name, target_path.name) == FILE_NAMES[kind]
    dtype, count, nodata, descriptions = EXPECTED_INPUT[kind]
    with rasterio.open(input_path) as source, rasterio.open(target_path) as target:
        assert source.crs.to_epsg() == 32633
        assert source.transform.a == PIXEL_SIZE[kind]
        assert source.transform.e == -PIXEL_SIZE[kind]
        assert (source.dtypes[0], source.count, source.nodata) == (dtype, count, nodata)
        assert source.descriptions == descriptions
        assert (target.dtypes[0], target.count, target.nodata) == ("uint8", 3, None)
        assert target.descriptions == ("red", "green", "blue")
        # one grid for both
        assert target.crs == source.crs
        assert target.transform == source.transform
        assert (target.width, target.height) == (source.width, source.height) == (256, 256)
        for dataset in (source, target):
            assert dataset.compression is not None
            assert dataset.compression.value == "DEFLATE"
            assert dataset.block_shapes[0] == (256, 256)
            predictor = dataset.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"]
            assert predictor == ("3" if dataset.dtypes[0] == "float32" else "2")


def test_only_the_pair_is_left_in_the_folder(tmp_path: Path) -> None:
    write_sample_pair(tmp_path, "dsm-imagery", size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dsm.tif", "ortho.tif"]


def test_origin_moves_with_the_seed(tmp_path: Path) -> None:
    a = write_sample_pair(tmp_path / "a", "sat-map", size=64, seed=0)
    b = write_sample_pair(tmp_path / "b", "sat-map", size=64, seed=1)
    with rasterio.open(a.input_path) as first, rasterio.open(b.input_path) as second:
        assert first.transform != second.transform


# --------------------------------------------------------------------------------------
# Content of each kind


def test_map_is_flat_palette_with_every_class(tmp_path: Path) -> None:
    pair = write_sample_pair(tmp_path, "sat-map", size=512, seed=0)
    rgb = read(pair.target_path).reshape(3, -1).T  # (pixels, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    assert {tuple(int(v) for v in c) for c in colours} == set(MAP_PALETTE.values())
    assert counts.min() > 0.005 * rgb.shape[0]  # every class is more than a speck
    with rasterio.open(pair.target_path) as dataset:
        palette = palette_from_tags(dataset.tags())
    assert palette == MAP_PALETTE
    assert tuple(palette) == CLASS_NAMES


def test_map_matches_scene_classes(tmp_path: Path) -> None:
    pair = write_sample_pair(tmp_path, "sat-map", size=128, seed=2)
    lut = np.array(list(MAP_PALETTE.values()), np.uint8)
    expected = np.moveaxis(lut[generate_scene(128, 2).classes], -1, 0)
    assert np.array_equal(read(pair.target_path), expected)


def test_palette_from_tags_rejects_other_rasters() -> None:
    with pytest.raises(InputError, match="GEOGAN_PALETTE"):
        palette_from_tags({})
    with pytest.raises(InputError, match="not a palette"):
        palette_from_tags({"GEOGAN_PALETTE": "[1, 2]"})


def test_photo_is_textured_not_flat(all_kinds: dict[str, tuple[Path, Path]]) -> None:
    photo = read(all_kinds["sat-map"][0])
    classes = generate_scene(256, 3).classes
    for index in range(len(CLASS_NAMES)):
        pixels = photo[:, classes == index]
        assert pixels.std(axis=1).max() > 2.0, CLASS_NAMES[index]


def test_dsm_heights_and_small_nodata(all_kinds: dict[str, tuple[Path, Path]]) -> None:
    dsm = read(all_kinds["dsm-imagery"][0])[0]
    void = dsm == DSM_NODATA
    assert 0 < void.mean() < 0.03
    valid = dsm[~void]
    assert np.isfinite(valid).all()
    assert 150.0 < valid.min() and valid.max() < 700.0
    # buildings stand above the bare terrain
    scene = generate_scene(256, 3)
    building = (scene.building_height > 0) & ~void
    assert np.all(dsm[building] > scene.elevation[building] + 2.0)


def test_sar_backscatter_is_plausible_db(all_kinds: dict[str, tuple[Path, Path]]) -> None:
    with rasterio.open(all_kinds["sar-optical"][0]) as dataset:
        sar = dataset.read(1)
        assert dataset.units == ("dB",)
    assert np.isfinite(sar).all()
    assert -40.0 <= sar.min() and sar.max() <= 25.0
    classes = generate_scene(256, 3).classes
    median = {name: np.median(sar[classes == i]) for i, name in enumerate(CLASS_NAMES)}
    assert median["water"] < -18 < median["land"] < median["vegetation"] < median["building"]
    assert sar[classes == CLASS_NAMES.index("vegetation")].std() > 2.0  # speckle


# --------------------------------------------------------------------------------------
# Refusals and bad arguments


def test_existing_output_is_refused_and_kept(tmp_path: Path) -> None:
    pair = write_sample_pair(tmp_path, "sat-map", size=64, seed=1)
    pair.target_path.unlink()
    pair.input_path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_sample_pair(tmp_path, "sat-map", size=64, seed=1)
    assert pair.input_path.read_bytes() == b"precious"
    assert not pair.target_path.exists()  # nothing of the pair was written
    write_sample_pair(tmp_path, "sat-map", size=64, seed=1, overwrite=True)
    assert read(pair.input_path).shape == (3, 64, 64)


def test_pairs_check_every_kind_before_writing(tmp_path: Path) -> None:
    (tmp_path / "sar-optical").mkdir()
    (tmp_path / "sar-optical" / "optical.tif").write_bytes(b"x")
    with pytest.raises(OutputExistsError):
        write_sample_pairs(tmp_path, KINDS, size=64)
    assert not (tmp_path / "sat-map").exists()


@pytest.mark.parametrize(
    ("kind", "size", "seed"),
    [("maps", 64, 0), ("sat-map", 63, 0), ("sat-map", 64, -1), ("sat-map", 64.0, 0)],
)
def test_bad_arguments_raise_input_error(tmp_path: Path, kind: str, size: int, seed: int) -> None:
    with pytest.raises(InputError):
        write_sample_pair(tmp_path, kind, size=size, seed=seed)
    assert list(tmp_path.iterdir()) == []


def test_sample_data_does_not_import_torch() -> None:
    code = "import sys, geogan.cli.sample_data\nassert 'torch' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------
# Command line


def test_cli_writes_pair_and_prints_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["sample-data", str(out), "--kind", "dsm-imagery", "--size", "64", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out / "dsm.tif"), str(out / "ortho.tif")]
    with rasterio.open(out / "dsm.tif") as dataset:
        assert dataset.shape == (64, 64)


def test_cli_kind_all_writes_every_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["sample-data", str(tmp_path), "--kind", "all", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    for kind, names in FILE_NAMES.items():
        for name in names:
            assert (tmp_path / kind / name).is_file()
    assert len(result.stdout.splitlines()) == 2 * len(KINDS)


def test_cli_default_kind_is_sat_map(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path), "--size", "64"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "sat.tif"]


@pytest.mark.parametrize("args", [["--kind", "maps"], ["--size", "32"]])
def test_cli_bad_argument_exits_2(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path), *args])
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_cli_existing_output_exits_1_with_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["sample-data", str(tmp_path), "--size", "64"]
    assert runner.invoke(cli, args).exit_code == 0
    before = (tmp_path / "sat.tif").read_bytes()
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ") and "--overwrite" in lines[0]
    assert (tmp_path / "sat.tif").read_bytes() == before
    assert runner.invoke(cli, [*args, "--overwrite"]).exit_code == 0
