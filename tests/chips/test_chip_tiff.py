"""Chip GeoTIFFs written from a template are GDAL's bytes: every file of an export equals
what GDAL alone, one chip after another, writes (chips, statistics, index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import geogan.chips.chip_tiff as chip_tiff
import geogan.chips.cutting as chips_module
import geogan.chips.export as export_module
from geogan.chips.chip_tiff import ChipEncoder
from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from tests.helpers import count_calls, smooth_field, write_raster


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def gdal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No template is ever learnt: every chip is written by GDAL."""
    monkeypatch.setattr(chip_tiff, "_learn", lambda *args: None)


def rasters(tmp_path: Path) -> dict[str, Path]:
    """Rasters of the kinds chips are cut from, 320² (not a multiple of the chips)."""
    rng = np.random.default_rng(5)
    base = smooth_field(rng, (320, 320), 16)
    rgb = (np.stack([base, smooth_field(rng, (320, 320), 8), 1 - base]) * 250).astype(np.uint8)
    with_hole = rgb.copy()
    with_hole[:, 40:90, 200:260] = 0  # nodata: chips with an internal mask
    values = (rgb.astype(np.float32).mean(axis=0, keepdims=True) - 90) * 3.5
    values[:, 150:170, :40] = np.nan
    classes = (rgb[:1] // 64).astype(np.uint8)
    signed = (rgb[:2].astype(np.int16) - 128) * 100
    folder = tmp_path / "rasters"
    folder.mkdir()
    described = write_raster(folder / "described.tif", rgb)
    with rasterio.open(described, "r+") as dataset:
        dataset.descriptions = ("red", "green", "blue")
    return {
        "rgb": write_raster(folder / "rgb.tif", rgb),
        # Band descriptions make GDAL rewrite each chip's directory after its pixels:
        # the origin is in the file twice.
        "described": described,
        "hole": write_raster(folder / "hole.tif", with_hole, nodata=0),
        "float": write_raster(folder / "float.tif", values),
        "classes": write_raster(folder / "classes.tif", classes, nodata=255),
        "signed": write_raster(folder / "signed.tif", signed, interleave="band"),
        "shifted": write_raster(folder / "shifted.tif", np.roll(rgb, (3, -2), axis=(1, 2)),
                                transform=Affine(0.5, 0, 500_000.0, 0, -0.5, 5_000_000.0)),
    }


CASES = {
    "rgb pair": ("rgb", "shifted", ExportOptions(tile_size=64)),
    "described bands": ("described", "shifted", ExportOptions(tile_size=64)),
    "nodata and float": ("hole", "float", ExportOptions(tile_size=48, min_valid=0.5)),
    "classes, unpaired": ("classes", "signed", ExportOptions(tile_size=64, unpaired=True,
                                                              stride=40)),
    "deflate": ("rgb", "classes", ExportOptions(
        tile_size=64, creation_options={"COMPRESS": "DEFLATE", "PREDICTOR": "2"})),
    "tiled blocks": ("signed", "rgb", ExportOptions(
        tile_size=64, creation_options={"TILED": "YES", "BLOCKXSIZE": "32",
                                        "BLOCKYSIZE": "32"})),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_equals_gdal_chip_by_chip(tmp_path, monkeypatch, case):
    sources = rasters(tmp_path)
    first, second, options = CASES[case]
    with monkeypatch.context() as patch:
        gdal_only(patch)
        serial = ExportOptions(**{**options.__dict__, "workers": 1})
        export_chips(sources[first], sources[second], tmp_path / "gdal", serial)
    with monkeypatch.context() as patch:
        calls = count_calls(patch, chips_module, "chip_bytes")
        export_chips(sources[first], sources[second], tmp_path / "fast", serial)
    expected = snapshot(tmp_path / "gdal")
    assert snapshot(tmp_path / "fast") == expected
    # Three worker processes, each with its own templates: the same bytes.
    export_chips(sources[first], sources[second], tmp_path / "pool",
                 ExportOptions(**{**options.__dict__, "workers": 3}))
    assert snapshot(tmp_path / "pool") == expected
    chips = sum(name.endswith(".tif") for name in expected)
    if case in ("rgb pair", "described bands"):
        assert calls["n"] == 2 * 2  # a template per layer, learnt and checked on two chips
    if case in ("deflate", "tiled blocks"):  # layouts it cannot template: GDAL writes all
        assert calls["n"] == chips


def gdal_bytes(compress: str | None = None) -> chip_tiff.GdalEncode:
    from rasterio.io import MemoryFile

    def encode(data: np.ndarray, valid: np.ndarray, transform: Affine) -> bytes:
        profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs="EPSG:32633",
                       transform=transform, interleave="pixel")
        if compress:
            profile["compress"] = compress
        with MemoryFile() as memory:
            with memory.open(**profile) as dst:
                dst.write(data)
            return memory.read()

    return encode


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "float64"])
def test_encoder_learns_checks_and_then_fills_the_template(dtype):
    rng = np.random.default_rng(0)
    encode = gdal_bytes()
    encoder = ChipEncoder(encode)
    valid = np.ones((32, 32), dtype=bool)
    for k in range(5):
        data = (rng.random((3, 32, 32)) * 200).astype(dtype)
        transform = Affine(2.0, 0, 300_000.0 + 64 * k, 0, -2.0, 4_000_000.0 - 7 * k)
        assert encoder.encode(data, valid, transform) == encode(data, valid, transform)
        assert encoder.templated == (k >= 1)


def test_constant_chips_teach_nothing_and_compression_is_left_to_gdal():
    encode = gdal_bytes()
    encoder = ChipEncoder(encode)
    valid = np.ones((32, 32), dtype=bool)
    blank = np.zeros((3, 32, 32), np.uint8)
    for k in range(3):  # zeros run into the header's: their place is not known
        transform = Affine(1.0, 0, 1000.0 + 100 * k, 0, -1.0, 5000.0)
        assert encoder.encode(blank, valid, transform) == encode(blank, valid, transform)
    assert not encoder.templated
    rng = np.random.default_rng(1)
    for k in range(3):
        data = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
        encoder.encode(data, valid, Affine(1.0, 0, 1000.0 + 50 * k, 0, -1.0, 5000.0))
    assert encoder.templated

    compressed = ChipEncoder(gdal_bytes("deflate"))
    for k in range(4):
        data = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
        transform = Affine(1.0, 0, 1000.0 + 50 * k, 0, -1.0, 5000.0)
        assert compressed.encode(data, valid, transform) == gdal_bytes("deflate")(
            data, valid, transform)
    assert not compressed.templated


def test_default_export_cuts_here_while_its_workers_start(tmp_path, pair, monkeypatch):
    """By default a large grid goes to worker processes, and this process cuts the first
    runs of windows while they start: the same files as one process (a uint8 input, whose
    statistics are histograms, and a float32 target, whose are not)."""
    a, b = pair
    options = ExportOptions(tile_size=32, stride=24, val_fraction=0.2)  # 441 windows
    export_chips(a, b, tmp_path / "one", ExportOptions(**{**options.__dict__, "workers": 1}))
    here = count_calls(monkeypatch, chips_module.WindowCutter, "cut")
    submitted = count_calls(monkeypatch, export_module.ProcessPoolExecutor, "submit")
    monkeypatch.setattr(export_module, "MAX_WORKERS", 2)
    monkeypatch.setattr(export_module._Workers, "ready", lambda self: here["n"] >= 3)
    export_chips(a, b, tmp_path / "default", options)
    assert snapshot(tmp_path / "default") == snapshot(tmp_path / "one")
    runs = -(-441 // export_module.RUN_WINDOWS)
    assert here["n"] == 3 and submitted["n"] == 2 + runs - 3  # (2: the workers' start calls)
