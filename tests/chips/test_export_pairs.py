"""export-chips over many scenes: --pairs pairs.csv (each pair on its own grid and CRS,
statistics pooled, split within pairs or of whole pairs, bad rows, resume) and sides
given as mosaics of tiles (byte for byte the chips of the uncut raster)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geogan.chips.export import export_chips, export_pairs
from geogan.chips.options import ExportOptions
from geogan.errors import ExportInterrupted, InputError, RasterNotFoundError
from geogan.raster.band_stats import StatisticsAccumulator
from geogan.raster.mosaic import MosaicError
from tests.helpers import smooth_field, write_raster

ZONES = ("EPSG:32629", "EPSG:32635", "EPSG:32633")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def scene(tmp: Path, name: str, crs: str, size: int, seed: int) -> tuple[Path, Path]:
    """A 2-band float32 'SAR' and 4-band uint16 'optical' pair on one grid in ``crs``."""
    rng = np.random.default_rng(seed)
    transform = Affine(10.0, 0.0, 400_000.0 + 5_000 * seed, 0.0, -10.0, 6_000_000.0)
    sar = np.stack([smooth_field(rng, (size, size), 8) * -20 for _ in range(2)])
    optical = np.stack([smooth_field(rng, (size, size), 8) * 3000 for _ in range(4)])
    a = write_raster(tmp / f"{name}_s1.tif", sar.astype(np.float32), crs=crs,
                     transform=transform)
    b = write_raster(tmp / f"{name}_s2.tif", optical.astype(np.uint16), crs=crs,
                     transform=transform)
    return a, b


@pytest.fixture
def pairs_csv(tmp_path: Path) -> Path:
    """Three pairs in three UTM zones: 120 × 120 pixels (4 chips of 64 at stride 32 each)."""
    data = tmp_path / "scenes"
    data.mkdir()
    rows = ["input,additional"]
    for k, crs in enumerate(ZONES):
        a, b = scene(data, f"s{k}", crs, 120, k)
        rows.append(f"scenes/{a.name},scenes/{b.name}")
    csv = tmp_path / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


OPTIONS = ExportOptions(tile_size=64, stride=32, workers=2)


def test_each_pair_on_its_own_grid_and_crs_with_pooled_statistics(tmp_path, pairs_csv):
    out = tmp_path / "chips"
    report = export_pairs(pairs_csv, out, ExportOptions(**{**OPTIONS.__dict__, "val_pairs": 1}))
    assert (report.pairs, report.exported, report.held_out_pairs) == (3, 12, 1)
    metadata = json.loads((out / "geogan-chips.json").read_text())
    index = json.loads((out / "index.geojson").read_text())
    assert "crs" not in index  # pairs in several CRSs: the index is in WGS 84
    assert [p["split"] for p in metadata["pairs"]].count("held-out") == 1
    by_pair = {p["pair"]: p for p in metadata["pairs"]}
    accumulators = [StatisticsAccumulator(2, "float32"), StatisticsAccumulator(4, "uint16")]
    for feature in index["features"]:
        props = feature["properties"]
        pair = by_pair[props["pair"]]
        assert props["file"].startswith(f"p{props['pair']:04d}-")
        assert props["split"] == ("val" if pair["split"] == "held-out" else "train")
        col, row, width, height = props["window"]
        for folder, source, accumulator in zip(("images", "images2"), ("a", "b"),
                                               accumulators, strict=True):
            with rasterio.open(out / folder / props["file"]) as chip, \
                    rasterio.open(pair["sources"][source][0]) as src:
                window = Window(col, row, width, height)
                assert chip.crs == src.crs == ZONES[props["pair"] - 1]
                assert chip.transform == window_transform(window, src.transform)
                data = chip.read()
                assert np.array_equal(data, src.read(window=window))
                accumulator.update(data)
    for domain, accumulator in zip("ab", accumulators, strict=True):
        expected = [s.to_dict() for s in accumulator.result()]
        assert metadata["domains"][domain]["statistics"] == expected


def test_pairs_too_small_for_a_block_go_whole_to_one_side(tmp_path, pairs_csv):
    report = export_pairs(pairs_csv, tmp_path / "chips",
                          ExportOptions(**{**OPTIONS.__dict__, "val_fraction": 0.2}))
    assert (report.whole_pairs_val, report.whole_pairs_train) == (1, 2)
    assert (report.train, report.val, report.dropped_split) == (8, 4, 0)
    metadata = json.loads((tmp_path / "chips" / "geogan-chips.json").read_text())
    assert sorted(p["split"] for p in metadata["pairs"]) == [
        "whole-train", "whole-train", "whole-val"]


def test_a_large_pair_is_split_in_blocks_within_itself(tmp_path):
    rows = []
    for k, size in enumerate((400, 120)):
        a, b = scene(tmp_path, f"s{k}", ZONES[k], size, k)
        rows.append(f"{a.name},{b.name}")
    csv = tmp_path / "pairs.csv"
    csv.write_text("\n".join(rows))  # no header
    report = export_pairs(csv, tmp_path / "chips", OPTIONS)
    metadata = json.loads((tmp_path / "chips" / "geogan-chips.json").read_text())
    first, second = metadata["pairs"]
    assert first["split"] == "blocks" and first["val"] > 0 and first["train"] > 0
    assert second["split"] in ("whole-train", "whole-val")
    assert report.pairs == 2


def test_a_bad_row_stops_the_export_naming_it_unless_skipped(tmp_path, pairs_csv):
    text = pairs_csv.read_text() + "scenes/gone.tif,scenes/s0_s2.tif\n"
    pairs_csv.write_text(text)
    out = tmp_path / "chips"
    with pytest.raises(RasterNotFoundError, match=r"pairs.csv row 5 \(scenes/gone.tif, .*"
                                                  r"no such file.*--skip-bad-pairs"):
        export_pairs(pairs_csv, out, OPTIONS)
    assert not out.exists() and not (tmp_path / ".chips.partial").exists()
    report = export_pairs(pairs_csv, out,
                          ExportOptions(**{**OPTIONS.__dict__, "skip_bad_pairs": True}))
    assert report.pairs == 3 and len(report.skipped_pairs) == 1
    assert report.skipped_pairs[0].startswith("row 5: ")
    skipped = json.loads((out / "geogan-chips.json").read_text())["skipped_pairs"]
    assert [s["row"] for s in skipped] == [5]


def test_pairs_of_other_bands_are_refused(tmp_path, pairs_csv):
    a = write_raster(tmp_path / "scenes" / "rgb.tif", np.ones((3, 80, 80), np.uint8))
    pairs_csv.write_text(pairs_csv.read_text() + f"scenes/{a.name},scenes/{a.name}\n")
    with pytest.raises(InputError, match=r"row 5 .*INPUT has 3 uint8 band.* first pair's has "
                                         r"2 float32"):
        export_pairs(pairs_csv, tmp_path / "chips", OPTIONS)


def test_interrupted_pairs_export_resumes_byte_identical(tmp_path, pairs_csv, monkeypatch):
    options = ExportOptions(**{**OPTIONS.__dict__, "val_fraction": 0.3})
    export_pairs(pairs_csv, tmp_path / "reference", options)
    expected = snapshot(tmp_path / "reference")

    def progress(done: int, total: int) -> None:  # Ctrl-C in the second pair
        if done > total * 2 // 3:
            raise KeyboardInterrupt

    with pytest.raises(ExportInterrupted):  # in two worker processes
        export_pairs(pairs_csv, tmp_path / "chips", options, progress)
    assert (tmp_path / ".chips.partial" / "images").is_dir()
    export_pairs(pairs_csv, tmp_path / "chips", ExportOptions(**{**options.__dict__,
                                                                 "resume": True}))
    assert snapshot(tmp_path / "chips") == expected


# --------------------------------------------------------------------------- mosaics


def cut(path: Path, folder: Path, parts: int = 3) -> list[Path]:
    """``path`` cut into ``parts`` × ``parts`` GeoTIFF tiles (uneven sizes) in ``folder``."""
    folder.mkdir()
    tiles = []
    with rasterio.open(path) as src:
        cols = np.linspace(0, src.width, parts + 1).astype(int)
        rows = np.linspace(0, src.height, parts + 1).astype(int)
        for i in range(parts):
            for j in range(parts):
                window = Window(cols[j], rows[i], cols[j + 1] - cols[j], rows[i + 1] - rows[i])
                profile = dict(src.profile, width=int(window.width),
                               height=int(window.height),
                               transform=src.window_transform(window))
                tile = folder / f"tile_{i}{j}.tif"
                with rasterio.open(tile, "w", **profile) as dst:
                    dst.write(src.read(window=window))
                    dst.descriptions = src.descriptions
                tiles.append(tile)
    return tiles


@pytest.mark.parametrize("nodata", [None, -9999.0])
def test_two_mosaics_of_3x3_tiles_give_the_chips_of_the_uncut_pair(tmp_path, nodata):
    rng = np.random.default_rng(4)
    a = write_raster(tmp_path / "a.tif", (np.stack([smooth_field(rng, (200, 230), 8)
                                                    for _ in range(3)]) * 250).astype(np.uint8))
    values = (smooth_field(rng, (200, 230), 8)[None] * 40).astype(np.float32)
    if nodata is not None:
        values[:, :20, :30] = nodata
    b = write_raster(tmp_path / "b.tif", values, nodata=nodata)
    options = ExportOptions(tile_size=64, stride=48, val_fraction=0.2, seed=2, workers=2)
    export_chips(a, b, tmp_path / "uncut", options)
    tiles_a = cut(a, tmp_path / "tiles_a")
    cut(b, tmp_path / "tiles_b")
    listing = tmp_path / "a_tiles.txt"
    listing.write_text("\n".join(f"tiles_a/{t.name}" for t in tiles_a) + "\n")
    export_chips(f"@{listing}", str(tmp_path / "tiles_b" / "*.tif"), tmp_path / "tiled",
                 options)
    uncut, tiled = snapshot(tmp_path / "uncut"), snapshot(tmp_path / "tiled")
    chips = {k: v for k, v in uncut.items() if k.endswith(".tif")}
    assert chips and chips == {k: v for k, v in tiled.items() if k.endswith(".tif")}
    for name in ("geogan-chips.json",):
        meta_u, meta_t = json.loads(uncut[name]), json.loads(tiled[name])
        for domain in "ab":
            assert meta_u["domains"][domain]["statistics"] == \
                meta_t["domains"][domain]["statistics"]
        assert len(meta_t["domains"]["a"]["tiles"]) == 9
    assert uncut["index.geojson"] == tiled["index.geojson"]


def test_gaps_between_tiles_are_not_valid_pixels(tmp_path):
    rng = np.random.default_rng(5)
    a = write_raster(tmp_path / "a.tif", (np.stack([smooth_field(rng, (192, 192), 8)
                                                    for _ in range(3)]) * 250).astype(np.uint8))
    tiles = cut(a, tmp_path / "tiles")
    tiles[4].unlink()  # the middle tile is missing
    report = export_chips(tmp_path / "tiles", a, tmp_path / "chips",
                          ExportOptions(tile_size=64, val_fraction=0, workers=1))
    assert report.exported == 8 and report.skipped_invalid == 1


def test_tiles_in_other_crss_are_refused_suggesting_pairs(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    write_raster(folder / "t1.tif", np.ones((1, 64, 64), np.uint8))
    write_raster(folder / "t2.tif", np.ones((1, 64, 64), np.uint8), crs="EPSG:32632")
    b = write_raster(tmp_path / "b.tif", np.ones((1, 64, 64), np.uint8))
    with pytest.raises(MosaicError, match=r"tiles of INPUT are not in one CRS: .*t1.tif is in "
                                          r"EPSG:32633 and .*t2.tif in EPSG:32632;.*--pairs"):
        export_chips(folder, b, tmp_path / "chips", ExportOptions(tile_size=32))
    assert not (tmp_path / "chips").exists() and not (tmp_path / ".chips.partial").exists()


def test_a_row_of_pairs_csv_may_name_mosaics(tmp_path):
    a, b = scene(tmp_path, "big", ZONES[0], 150, 1)
    cut(a, tmp_path / "sar_tiles")
    cut(b, tmp_path / "opt_tiles")
    c, d = scene(tmp_path, "other", ZONES[1], 100, 2)
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"sar_tiles/,opt_tiles/*.tif\n{c.name},{d.name}\n")
    report = export_pairs(csv, tmp_path / "chips", ExportOptions(tile_size=64, workers=1))
    alone = export_chips(a, b, tmp_path / "alone", ExportOptions(tile_size=64, workers=1))
    metadata = json.loads((tmp_path / "chips" / "geogan-chips.json").read_text())
    assert len(metadata["pairs"][0]["sources"]["a"]) == 9
    assert metadata["pairs"][0]["train"] + metadata["pairs"][0]["val"] == alone.exported
    assert report.pairs == 2


def test_a_side_of_100_tiles_gives_the_chips_of_the_uncut_raster(tmp_path):
    rng = np.random.default_rng(6)
    a = write_raster(tmp_path / "a.tif", (np.stack([smooth_field(rng, (160, 160), 8)
                                                    for _ in range(3)]) * 250).astype(np.uint8))
    cut(a, tmp_path / "tiles", parts=10)
    options = ExportOptions(tile_size=32, stride=24, val_fraction=0.2, workers=2)
    export_chips(a, a, tmp_path / "uncut", options)
    export_chips(tmp_path / "tiles", a, tmp_path / "tiled", options)
    uncut, tiled = snapshot(tmp_path / "uncut"), snapshot(tmp_path / "tiled")
    assert {k: v for k, v in uncut.items() if k.endswith(".tif")} == {
        k: v for k, v in tiled.items() if k.endswith(".tif")}


def test_unpaired_pairs_chip_each_raster_with_the_pair_prefix(tmp_path, pairs_csv):
    report = export_pairs(pairs_csv, tmp_path / "chips",
                          ExportOptions(**{**OPTIONS.__dict__, "unpaired": True}))
    assert report.mode == "unpaired" and report.pairs == 3
    names = sorted(p.name for p in (tmp_path / "chips" / "train_b").iterdir())
    assert len(names) == 12 and names[0] == "p0001-000000000.tif"
