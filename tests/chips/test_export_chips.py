"""export-chips: alignment, tiling, filters, split, statistics, registration, masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window, from_bounds

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import NoChipsError, NoOverlapError, OutputExistsError
from tests.helpers import smooth_field, write_raster


def load(out: Path) -> tuple[dict, list[dict]]:
    metadata = json.loads((out / "geogan-chips.json").read_text())
    index = json.loads((out / "index.geojson").read_text())
    return metadata, [f["properties"] for f in index["features"]]


def window_of(props: dict) -> Window:
    col, row, width, height = props["window"]
    return Window(col, row, width, height)


def test_input_chips_equal_input_windows_byte_for_byte(tmp_path, pair):
    a, b = pair
    out = tmp_path / "chips"
    report = export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0))
    assert report.exported == 16
    _, chips = load(out)
    with rasterio.open(a) as src:
        for props in chips:
            window = window_of(props)
            with rasterio.open(out / "images" / props["file"]) as chip:
                assert chip.crs == src.crs
                assert chip.transform == src.window_transform(window)
                assert chip.dtypes == src.dtypes
                np.testing.assert_array_equal(chip.read(), src.read(window=window))
            with rasterio.open(out / "images2" / props["file"]) as twin, rasterio.open(b) as bsrc:
                assert twin.transform == src.window_transform(window)
                np.testing.assert_array_equal(twin.read(), bsrc.read(window=window))


def test_additional_in_other_crs_and_resolution_matches_rasterio_reprojection(tmp_path, rng):
    """The target chip is the additional raster reprojected onto the chip's grid."""
    field = smooth_field(rng, (600, 600), 24).astype(np.float32) * 100
    a = write_raster(tmp_path / "a.tif", np.stack([field, field[::-1]]).astype(np.float32))
    # The additional raster: same place, in WGS 84 at a coarser resolution.
    with rasterio.open(a) as src:
        dst_transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds, resolution=2.5e-5
        )
        b_data = np.zeros((1, height, width), np.float32)
        reproject(field, b_data[0], src_transform=src.transform, src_crs=src.crs,
                  dst_transform=dst_transform, dst_crs="EPSG:4326",
                  resampling=Resampling.bilinear, dst_nodata=-9999)
    b = write_raster(tmp_path / "b.tif", b_data, crs="EPSG:4326", transform=dst_transform,
                     nodata=-9999)
    out = tmp_path / "chips"
    report = export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0, min_valid=0.5))
    assert report.resampling == "bilinear"
    assert report.exported >= 9
    _, chips = load(out)
    with rasterio.open(a) as src, rasterio.open(b) as bsrc:
        for props in chips:
            window = window_of(props)
            with rasterio.open(out / "images2" / props["file"]) as twin:
                assert twin.crs == src.crs
                assert twin.transform == src.window_transform(window)
                assert (twin.height, twin.width) == (128, 128)
                expected = np.full((128, 128), -9999, np.float32)
                reproject(rasterio.band(bsrc, 1), expected, dst_transform=twin.transform,
                          dst_crs=src.crs, resampling=Resampling.bilinear, dst_nodata=-9999)
                got = twin.read(1)
                both = (got != -9999) & (expected != -9999)
                assert both.mean() > 0.5
                # Same warp, evaluated in different blocks: equal to float precision.
                np.testing.assert_allclose(got[both], expected[both], atol=0.05)


def test_chip_counts_with_stride(tmp_path, pair):
    a, b = pair
    report = export_chips(a, b, tmp_path / "s128", ExportOptions(tile_size=128, val_fraction=0))
    assert report.candidates == 16
    report = export_chips(a, b, tmp_path / "s64",
                          ExportOptions(tile_size=128, stride=64, val_fraction=0))
    assert report.candidates == 49 and report.exported == 49
    assert len(list((tmp_path / "s64" / "images").glob("*.tif"))) == 49
    assert len(list((tmp_path / "s64" / "images2").glob("*.tif"))) == 49


def test_nodata_of_either_raster_counts_against_valid_fraction(tmp_path, scene):
    data = scene.copy()
    data[:, :200, :200] = 0  # nodata corner in the input
    a = write_raster(tmp_path / "a.tif", data, nodata=0)
    target = scene[:1].astype(np.float32)
    target[:, 448:, 448:] = np.nan  # NaN corner in the target, no nodata tag
    b = write_raster(tmp_path / "b.tif", target)
    out = tmp_path / "chips"
    report = export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0, min_valid=0.9))
    # Input corner: chip (0,0) all invalid, (0,1) and (1,0) 56 %, (1,1) 32 % invalid.
    # Target corner: chip (3,3) 25 % invalid.
    assert report.skipped_invalid == 5
    assert report.exported == 11
    assert json.loads((out / "geogan-chips.json").read_text())["counts"]["skipped_invalid"] == 5
    # Lowering the bar keeps (1,1) and (3,3).
    out = tmp_path / "low"
    report = export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0, min_valid=0.6))
    assert report.exported == 13
    _, chips = load(out)
    partial = {tuple(c["window"][:2]): c for c in chips if c["valid_fraction"] < 1}
    assert set(partial) == {(128, 128), (384, 384)}
    assert partial[(128, 128)]["valid_fraction"] == pytest.approx(1 - (72 * 72) / 128**2)
    assert partial[(384, 384)]["valid_fraction"] == pytest.approx(0.75)
    # Each partial chip pair carries the same mask, so training can ignore those pixels.
    for folder in ("images", "images2"):
        with rasterio.open(out / folder / partial[(128, 128)]["file"]) as chip:
            mask = chip.dataset_mask()
            assert (mask[:72, :72] == 0).all() and (mask[72:, :] == 255).all()
        with rasterio.open(out / folder / partial[(384, 384)]["file"]) as chip:
            mask = chip.dataset_mask()
            assert (mask[64:, 64:] == 0).all() and (mask[:64, :] == 255).all()


def test_aoi_clips_chips(tmp_path, pair):
    a, b = pair
    aoi = {  # the western half of the scene, in UTM 33N
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [{"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon",
            "coordinates": [[[500000, 4999488], [500256, 4999488], [500256, 5000000],
                             [500000, 5000000], [500000, 4999488]]]}}],
    }
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(aoi))
    out = tmp_path / "chips"
    report = export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0, aoi=path))
    assert report.exported == 8
    _, chips = load(out)
    assert all(c["window"][0] + 128 <= 256 for c in chips)


def test_aoi_in_wgs84_is_reprojected(tmp_path, pair):
    a, b = pair
    with rasterio.open(a) as src:
        from rasterio.warp import transform_bounds

        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    polygon = {"type": "Polygon", "coordinates": [[[west, south], [(west + east) / 2, south],
                                                   [(west + east) / 2, north], [west, north],
                                                   [west, south]]]}
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(polygon))
    report = export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=128, aoi=path,
                                                                  val_fraction=0, min_valid=0.99))
    assert 6 <= report.exported <= 8


def test_split_blocks_are_spatially_disjoint_and_seeded(tmp_path, rng):
    data = (smooth_field(rng, (640, 640), 32)[None] * 255).astype(np.uint8)
    a = write_raster(tmp_path / "a.tif", data)
    b = write_raster(tmp_path / "b.tif", 255 - data)
    options = ExportOptions(tile_size=64, stride=32, val_fraction=0.2, seed=7)
    report = export_chips(a, b, tmp_path / "c1", options)
    _, chips = load(tmp_path / "c1")
    val = [window_of(c) for c in chips if c["split"] == "val"]
    train = [window_of(c) for c in chips if c["split"] == "train"]
    assert len(val) == report.val and len(train) == report.train
    assert 0.12 <= report.val / report.exported <= 0.35
    for v in val:
        for t in train:
            overlap = (v.col_off < t.col_off + t.width and t.col_off < v.col_off + v.width
                       and v.row_off < t.row_off + t.height and t.row_off < v.row_off + v.height)
            assert not overlap, (v, t)
    # Chips on block borders were dropped, and their files too.
    assert report.dropped_split > 0
    assert len(list((tmp_path / "c1" / "images").glob("*.tif"))) == report.exported
    # Same seed, same split; another seed, another split.
    export_chips(a, b, tmp_path / "c2", options)
    assert load(tmp_path / "c2")[1] == chips
    export_chips(a, b, tmp_path / "c3", ExportOptions(tile_size=64, stride=32, val_fraction=0.2,
                                                      seed=8))
    assert [c["split"] for c in load(tmp_path / "c3")[1]] != [c["split"] for c in chips]


def test_statistics_match_numpy_over_exported_valid_pixels(tmp_path, rng):
    data = (rng.random((2, 256, 256)) * 4000).astype(np.uint16)
    data[:, :40, :] = 0
    a = write_raster(tmp_path / "a.tif", data, nodata=0)
    target = rng.normal(-12, 3, (1, 256, 256)).astype(np.float32)
    b = write_raster(tmp_path / "b.tif", target)
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=64, min_valid=0.3, val_fraction=0))
    metadata, chips = load(out)
    values_a = []
    values_b = []
    for props in chips:
        with rasterio.open(out / "images" / props["file"]) as ca, \
                rasterio.open(out / "images2" / props["file"]) as cb:
            valid = ca.dataset_mask() > 0
            values_a.append(ca.read()[:, valid])
            values_b.append(cb.read()[:, valid])
    all_a = np.concatenate(values_a, axis=1)
    all_b = np.concatenate(values_b, axis=1)
    stats_a = metadata["domains"]["a"]["statistics"]
    stats_b = metadata["domains"]["b"]["statistics"]
    assert len(stats_a) == 2 and len(stats_b) == 1
    for band, stats in enumerate(stats_a):
        assert stats["min"] == all_a[band].min() and stats["max"] == all_a[band].max()
        assert stats["mean"] == pytest.approx(all_a[band].mean())
        assert stats["std"] == pytest.approx(all_a[band].std())
        assert stats["p2"] == pytest.approx(np.percentile(all_a[band], 2))
        assert stats["p98"] == pytest.approx(np.percentile(all_a[band], 98))
    assert stats_b[0]["mean"] == pytest.approx(all_b[0].mean(), rel=1e-5)
    assert stats_b[0]["p98"] == pytest.approx(np.percentile(all_b[0], 98), abs=0.05)
    assert metadata["domains"]["a"]["dtype"] == "uint16"
    assert metadata["domains"]["a"]["nodata"] == 0
    assert metadata["domains"]["b"]["dtype"] == "float32"


def test_metadata_describes_the_export(tmp_path, pair):
    a, b = pair
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128, stride=128, seed=3))
    metadata, chips = load(out)
    assert metadata["format"] == "geogan-chips" and metadata["version"] == 1
    assert metadata["mode"] == "paired"
    assert metadata["tile_size"] == 128 and metadata["stride"] == 128 and metadata["seed"] == 3
    assert metadata["grids"]["ab"]["crs"]["epsg"] == 32633
    assert metadata["domains"]["a"]["folder"] == "images"
    assert metadata["domains"]["b"]["folder"] == "images2"
    assert metadata["domains"]["a"]["source"] == str(a)
    assert metadata["domains"]["a"]["bands"] == 3
    index = json.loads((out / "index.geojson").read_text())
    assert index["crs"]["properties"]["name"].endswith("32633")
    feature = index["features"][0]
    with rasterio.open(out / "images" / feature["properties"]["file"]) as chip:
        left, bottom, right, top = chip.bounds
    xs = [p[0] for p in feature["geometry"]["coordinates"][0]]
    ys = [p[1] for p in feature["geometry"]["coordinates"][0]]
    assert (min(xs), min(ys), max(xs), max(ys)) == (left, bottom, right, top)
    assert {"id", "split", "window", "valid_fraction", "shift_x", "shift_y"} <= set(chips[0])


def test_registration_report_and_max_shift(tmp_path, rng):
    field = smooth_field(rng, (520, 520), 6)
    edges = (field > 0.5).astype(np.float32) + 0.3 * field
    a = write_raster(tmp_path / "a.tif", (edges[None, 4:516, 4:516] * 200).astype(np.uint8))
    # Target content sits 3 px to the right (and 0 down) of the same content in the input.
    b = write_raster(tmp_path / "b.tif", (1 - edges[None, 4:516, 1:513]).astype(np.float32))
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0))
    _, chips = load(out)
    shifts = np.array([[c["shift_x"], c["shift_y"]] for c in chips])
    np.testing.assert_allclose(np.median(shifts, axis=0), [3.0, 0.0], atol=0.3)
    report = export_chips(a, b, tmp_path / "loose", ExportOptions(tile_size=128, val_fraction=0,
                                                                  max_shift=5.0))
    assert report.skipped_shift == 0 and report.exported == 16
    with pytest.raises(NoChipsError, match=r"16 were misregistered by more than 1.0 px"):
        export_chips(a, b, tmp_path / "strict", ExportOptions(tile_size=128, max_shift=1.0))


def test_categorical_target_is_resampled_with_nearest(tmp_path, rng):
    palette = np.array([[170, 211, 223], [200, 250, 200], [255, 255, 255], [240, 200, 150]],
                       np.uint8)
    classes = (smooth_field(rng, (256, 256), 16) * 3.99).astype(int)
    rgb = palette[classes].transpose(2, 0, 1)
    a = write_raster(tmp_path / "a.tif", rgb)
    b = write_raster(tmp_path / "b.tif", rgb,
                     transform=Affine(0.7, 0, 500_000.0, 0, -0.7, 5_000_000.0))
    out = tmp_path / "chips"
    report = export_chips(a, b, out, ExportOptions(tile_size=64, val_fraction=0, min_valid=0.5))
    assert report.resampling == "nearest"
    with rasterio.open(next((out / "images2").glob("*.tif"))) as chip:
        colours = {tuple(c) for c in chip.read().reshape(3, -1).T}
    assert colours <= {tuple(c) for c in palette}


def test_a_target_with_an_alpha_band_on_another_grid_is_warped_through_it(tmp_path, rng):
    """The target's own alpha band says where it has data, on its grid or warped onto the
    input's (where GDAL once refused the alpha band the warp would add)."""
    rgb = (np.stack([smooth_field(rng, (256, 256), 16) for _ in range(3)]) * 200 + 20
           ).astype(np.uint8)
    alpha = np.full((1, 256, 256), 255, np.uint8)
    alpha[0, :, :128] = 0  # the western half is transparent
    a = write_raster(tmp_path / "a.tif", rgb)
    reports = {}
    for name, pixel in (("same", 1.0), ("finer", 0.5)):
        b = write_raster(tmp_path / f"b-{name}.tif", np.concatenate([rgb, alpha]),
                         photometric="RGB", alpha="YES",
                         transform=Affine(pixel, 0, 500_000.0, 0, -pixel, 5_000_000.0))
        out = tmp_path / name
        reports[name] = export_chips(a, b, out, ExportOptions(tile_size=32, val_fraction=0,
                                                              min_valid=1.0))
        for path in (out / "images2").glob("*.tif"):  # east of the transparent half only
            with rasterio.open(path) as chip:
                assert chip.bounds.left >= 500_000.0 + 128 * pixel
                assert chip.count == 4 and chip.colorinterp[3] == ColorInterp.alpha
                assert (chip.read(4) == 255).all()
    assert reports["same"].exported == 32  # the eastern half of a 256² grid of 32² chips
    assert reports["finer"].exported == 8  # b covers 128 m: its eastern 64 m of a's grid


def test_unpaired_rasters_need_not_overlap(tmp_path, scene):
    a = write_raster(tmp_path / "a.tif", scene)
    b = write_raster(tmp_path / "b.tif", scene[:1, :256, :384],
                     crs="EPSG:32632", transform=Affine(2, 0, 300_000, 0, -2, 4_000_000))
    out = tmp_path / "chips"
    report = export_chips(a, b, out, ExportOptions(tile_size=128, unpaired=True, val_fraction=0))
    assert report.mode == "unpaired"
    assert len(list((out / "train_a").glob("*.tif"))) == 16
    assert len(list((out / "train_b").glob("*.tif"))) == 6
    metadata, chips = load(out)
    assert metadata["mode"] == "unpaired"
    assert metadata["grids"]["b"]["crs"]["epsg"] == 32632
    assert {c["domain"] for c in chips} == {"a", "b"}
    with rasterio.open(out / "train_b" / "000000000.tif") as chip:
        assert chip.crs.to_epsg() == 32632 and chip.count == 1


def test_no_overlap_names_both_footprints(tmp_path, scene):
    a = write_raster(tmp_path / "a.tif", scene)
    b = write_raster(tmp_path / "b.tif", scene,
                     transform=Affine(1, 0, 600_000, 0, -1, 5_000_000))
    message = r"a\.tif \(lon .*\) and .*b\.tif \(lon .*\) do not overlap"
    with pytest.raises(NoOverlapError, match=message):
        export_chips(a, b, tmp_path / "chips")
    assert not (tmp_path / "chips").exists()
    assert not list(tmp_path.glob(".chips*"))


def test_existing_output_is_kept_without_overwrite(tmp_path, pair):
    a, b = pair
    out = tmp_path / "chips"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_chips(a, b, out, ExportOptions(tile_size=128))
    assert (out / "keep.txt").read_text() == "mine"
    export_chips(a, b, out, ExportOptions(tile_size=128, overwrite=True))
    assert not (out / "keep.txt").exists()
    assert (out / "geogan-chips.json").exists()


def test_area_smaller_than_a_tile(tmp_path, pair):
    a, b = pair
    with pytest.raises(NoChipsError, match="smaller than one 1024-pixel tile"):
        export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=1024))


def test_failure_midway_leaves_nothing(tmp_path, pair, monkeypatch):
    import geogan.chips.cutting as chips_module

    a, b = pair
    calls = {"n": 0}
    real = chips_module.write_chip

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(chips_module, "write_chip", failing)
    with pytest.raises(OSError):
        export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=128))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_any_dtype_and_band_count(tmp_path, rng, dtype):
    data = (rng.random((5, 192, 192)) * 100).astype(dtype)
    a = write_raster(tmp_path / "a.tif", data)
    b = write_raster(tmp_path / "b.tif", data[:2])
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=64, val_fraction=0))
    with rasterio.open(out / "images" / "000000000.tif") as chip:
        assert chip.count == 5 and chip.dtypes[0] == dtype
        np.testing.assert_array_equal(chip.read(), data[:, :64, :64])
    with rasterio.open(out / "images2" / "000000000.tif") as chip:
        assert chip.count == 2 and chip.dtypes[0] == dtype


def test_offset_grids_are_read_without_warping(tmp_path, scene):
    """Same CRS and pixel size, origins a whole number of pixels apart: exact copies."""
    a = write_raster(tmp_path / "a.tif", scene)
    b = write_raster(tmp_path / "b.tif", scene[:, 100:, 37:],
                     transform=Affine(1, 0, 500_037.0, 0, -1, 4_999_900.0))
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128, val_fraction=0))
    _, chips = load(out)
    with rasterio.open(a) as src:
        for props in chips:
            window = window_of(props)
            assert window.col_off >= 37 and window.row_off >= 100
            with rasterio.open(out / "images2" / props["file"]) as twin:
                np.testing.assert_array_equal(twin.read(), src.read(window=window))
                bounds = src.window_bounds(window)
                assert from_bounds(*bounds, transform=twin.transform).width == 128


def test_footprint_partly_outside_the_other_crs(tmp_path, rng):
    """A global WGS 84 raster cannot be projected whole into a geostationary view: the
    exporter falls back to the part that can be, instead of failing."""
    geos = ("+proj=geos +h=35785831 +lon_0=-75 +sweep=x +datum=WGS84 +units=m +no_defs")
    data = (rng.random((1, 300, 300)) * 255).astype(np.uint8)
    a = write_raster(tmp_path / "a.tif", data, crs=geos,
                     transform=Affine(3000, 0, -450_000, 0, -3000, 450_000))
    world = (rng.random((1, 180, 360)) * 255).astype(np.uint8)
    b = write_raster(tmp_path / "b.tif", world, crs="EPSG:4326",
                     transform=Affine(1, 0, -180, 0, -1, 90))
    report = export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=64, val_fraction=0))
    assert report.exported == 16


def test_missing_parent_folders_are_created(tmp_path, pair):
    a, b = pair
    out = tmp_path / "new" / "deeper" / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128))
    assert (out / "geogan-chips.json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["chips"]


def test_window_partly_outside_the_source_is_padded_as_invalid(tmp_path, scene):
    """Grids whose origins differ by rounding can put a chip's last pixels past the
    additional raster's edge: those pixels are zero and invalid, the rest exact."""
    from geogan.chips.plan import Layer

    path = write_raster(tmp_path / "b.tif", scene)
    with rasterio.open(path) as src:
        layer = Layer("b", "images2", str(path), src, src.crs, offset=(0, 10))
        data, valid = layer.read(src, Window(0, 0, 64, 64))  # source columns -10..53
        np.testing.assert_array_equal(data[:, :, 10:], scene[:, :64, :54])
        assert (data[:, :, :10] == 0).all()
        assert not valid[:, :10].any() and valid[:, 10:].all()
        inside, inside_valid = layer.read(src, Window(20, 0, 64, 64))
        np.testing.assert_array_equal(inside, scene[:, :64, 10:74])
        assert inside_valid.all()
