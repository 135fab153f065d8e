"""translate's memory bounds change no byte: rows de-normalised and normalised a few at a
time, and a GDAL block cache that holds only a few block rows, write the same file as
whole strips and a cache that holds everything."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import geogan.inference.output_file as output_file
import geogan.inference.pipeline as engine
from geogan.inference.scene import translate_raster
from geogan.inference.strips import Strips, move_up
from geogan.inference.translator import load_model, pad_to_tile
from geogan.raster.io import can_be_missing, missing
from tests.helpers import CPU, MAP_PALETTE, save_model, textured, write_raster


def scenes(tmp_path: Path) -> dict[str, tuple[Path, Path, dict[str, Any]]]:
    """(scene, model, options) of the kinds of output the writer makes."""
    rng = np.random.default_rng(9)
    rgb = textured(rng, 3, 300, 700)
    rgb[:, 40:90, 100:260] = 0  # nodata: masked and nodata output pixels
    values = textured(rng, 1, 260, 500).astype(np.float32) * 3.0 + 50.0
    values[:, 10:40, 10:60] = np.nan
    return {
        "rgb, nodata": (write_raster(tmp_path / "rgb.tif", rgb, nodata=0),
                        save_model(tmp_path / "rgb.pt", out_nodata=0), {}),
        "rgb, mask": (write_raster(tmp_path / "mask.tif", rgb, nodata=0),
                      save_model(tmp_path / "mask.pt"), {"batch_size": 3}),
        "float, samples": (write_raster(tmp_path / "float.tif", values),
                           save_model(tmp_path / "float.pt", "pix2pix", 1, 2,
                                      in_dtype="float32", out_dtype="float32",
                                      out_nodata=-9999.0),
                           {"samples": 2, "blend": "linear", "overlap": 24}),
        "map, shaded and blurred": (write_raster(tmp_path / "photo.tif", rgb, nodata=0),
                                    save_model(tmp_path / "map.pt", palette=MAP_PALETTE,
                                               class_scale=3000.0, out_nodata=0), {}),
    }


@pytest.mark.parametrize("case", ["rgb, nodata", "rgb, mask", "float, samples",
                                  "map, shaded and blurred"])
def test_small_chunks_and_a_small_block_cache_write_the_same_bytes(tmp_path, monkeypatch,
                                                                   case):
    scene, model, options = scenes(tmp_path)[case]
    translator = load_model(model, **CPU)
    whole = translate_raster(scene, tmp_path / "whole.tif", translator, **options).output
    with monkeypatch.context() as patch:
        patch.setattr(engine, "_CHUNK_VALUES", 1000)  # a row or two at a time
        patch.setattr(output_file, "GDAL_CACHE_MIN_BYTES", 2**20)  # blocks evicted early
        patch.setattr(output_file, "GDAL_CACHE_BYTES", 2**20)
        small = translate_raster(scene, tmp_path / "small.tif", translator, **options).output
    assert small.read_bytes() == whole.read_bytes()


def test_the_block_cache_grows_with_the_width_only(tmp_path):
    import rasterio

    profile = {"width": 0, "count": 3, "dtype": "uint8", "blockysize": 256}
    sizes = {}
    for name, (height, width) in {"narrow": (512, 512), "wide": (512, 16384),
                                  "wide and tall": (8192, 16384)}.items():
        path = write_raster(tmp_path / f"{name}.tif", np.zeros((3, height, width), np.uint8),
                            tiled=True, blockxsize=256, blockysize=256)
        with rasterio.open(path) as dataset:
            sizes[name] = output_file.block_cache_bytes(dataset, {**profile, "width": width})
    assert sizes["narrow"] == output_file.GDAL_CACHE_MIN_BYTES
    # Two block rows of the scene and two of the output: 4 × 16384 × 256 × 3 bytes.
    assert sizes["wide"] == sizes["wide and tall"] == 4 * 16384 * 256 * 3


@pytest.mark.parametrize(("by", "count"), [(6, 2), (4, 4), (2, 6), (3, 5), (8, 0)])
@pytest.mark.parametrize("axis", [0, 1])
def test_moving_rows_up_needs_no_copy_of_them(by, count, axis):
    """The reader's strips move their kept rows to the top in place: the values of a
    copy, with no temporary of the moved rows (along the second axis too, where the rows
    of every band interleave in memory)."""
    shape = (3, 8, 4096) if axis == 1 else (8, 4096)
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    before = array.copy()
    tracemalloc.start()
    move_up(array, by, count, axis)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rows = [slice(None)] * array.ndim
    moved, source, rest = list(rows), list(rows), list(rows)
    moved[axis], source[axis] = slice(0, count), slice(by, by + count)
    rest[axis] = slice(count, None)
    np.testing.assert_array_equal(array[tuple(moved)], before[tuple(source)])
    np.testing.assert_array_equal(array[tuple(rest)], before[tuple(rest)])
    assert peak < 4096 * 4  # less than one row of one channel


def test_translations_share_the_heaps_and_wide_ones_also_map_large_blocks(tmp_path,
                                                                          monkeypatch):
    """Every translation lets its threads share the C heaps that exist (no slower, and the
    generator threads no longer each keep a forward's activations); only a scene whose
    strip would be large in float32 maps its large blocks as well, which costs page faults."""
    scene, model, options = scenes(tmp_path)["rgb, nodata"]
    translator = load_model(model, **CPU)
    calls: list[str] = []
    monkeypatch.setattr(engine, "share_heap", lambda: calls.append("share"))
    monkeypatch.setattr(engine, "bound_heap", lambda: calls.append("bound"))
    for wide_from in (2**40, 2**10):  # strips narrower, then wider
        monkeypatch.setattr(engine, "_WIDE_STRIP_BYTES", wide_from)
        translate_raster(scene, tmp_path / "out.tif", translator, overwrite=True, **options)
    assert calls == ["share", "bound"]


@pytest.mark.parametrize("case", ["rgb, nodata", "float, samples", "small"])
def test_the_reader_keeps_the_values_as_read_and_normalises_each_tile(tmp_path, case):
    """The reader's strip holds the raster's own values (a byte each for 8-bit imagery,
    not float32's four), and each tile it cuts is what normalising the whole strip gave:
    missing values and invalid pixels at 0, padded by reflection where the scene is
    smaller than a tile."""
    if case == "small":
        scene = write_raster(tmp_path / "small.tif",
                             textured(np.random.default_rng(3), 3, 40, 50), nodata=0)
        model = save_model(tmp_path / "small.pt")
    else:
        scene, model, _ = scenes(tmp_path)[case]
    translator = load_model(model, **CPU)
    tile = translator.tile_size
    with rasterio.open(scene) as dataset:
        bands = list(range(1, dataset.count + 1))
        region = Window(0, 0, dataset.width, dataset.height)
        strips = Strips(dataset, bands, translator, region, tile)
        for row_off in sorted({0, max(0, dataset.height - tile), min(48, dataset.height // 2)}):
            height = min(tile, dataset.height - row_off)
            strip, valid = strips.read(row_off, height)
            assert strips.buffer.dtype == dataset.dtypes[0]
            assert strips.buffer.shape == (dataset.count, tile, dataset.width)
            raw = dataset.read(window=Window(0, row_off, dataset.width, height))
            assert np.array_equal(strip, raw, equal_nan=True)
            expected = translator.input_normalization.normalize(raw)
            if can_be_missing(raw.dtype, dataset.nodata):
                expected[missing(raw, dataset.nodata)] = 0.0
            expected *= valid
            expected = pad_to_tile(expected, tile)
            for col_off in sorted({0, max(0, dataset.width - tile)}):
                got = strips.tile(strip, valid, col_off)
                assert got.shape == (dataset.count, tile, tile) and got.dtype == np.float32
                assert np.array_equal(got, expected[:, :tile, col_off:col_off + tile])
