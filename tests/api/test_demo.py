"""``geogan demo``: the whole job on the sample data, run for a few steps only."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

from geogan.api import demo
from geogan.api.demo import (
    BOUNDARY_COLOUR,
    PREVIEW_BACKGROUND,
    PREVIEW_GAP,
    STAGES,
    DemoReport,
    Quality,
    run_demo,
)
from geogan.cli.main import cli
from geogan.errors import InputError, OutputExistsError
from geogan.sampledata.world import MAP_PALETTE

pytestmark = pytest.mark.slow

STEPS = 3


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def sat_map(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The CLI's demo on the sat-map pair: (out folder, stdout)."""
    out = tmp_path_factory.mktemp("demo") / "sat-map"
    code, stdout, stderr = run("-q", "demo", "--out", str(out), "--steps", str(STEPS),
                               "--device", "cpu")
    assert code == 0, stderr
    return out, stdout


@pytest.fixture(scope="module")
def dsm(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    """The library's demo on the DSM pair, generated again as if installed from a wheel."""
    out = tmp_path_factory.mktemp("demo") / "dsm"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "sample_data_folder", lambda: out / "no-sample-data")
        return run_demo(out, kind="dsm-imagery", steps=STEPS, device="cpu")


def read_png(path: Path) -> np.ndarray:
    """A PNG's pixels (3, H, W), without the warning that a PNG has no georeferencing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as png:
            return png.read()


def check_quality(quality: Quality, palette: bool) -> None:
    assert math.isfinite(quality.psnr) and 0 < quality.psnr <= 100
    assert math.isfinite(quality.ssim) and -1 <= quality.ssim <= 1
    assert quality.pixels > 0
    assert (quality.palette is not None) == palette
    if quality.palette is not None:
        assert 0 <= quality.palette.pixel_accuracy <= 1
        assert 0 <= quality.palette.mean_iou <= 1
        assert quality.palette.classes == tuple(MAP_PALETTE)
        assert all(v is None or 0 <= v <= 1 for v in quality.palette.accuracy.values())
        assert quality.palette.pixels == quality.pixels


def check_same_grid(translated: Path, reference: Path) -> None:
    with rasterio.open(translated) as out, rasterio.open(reference) as ref:
        assert out.crs == ref.crs
        assert out.transform == ref.transform
        assert (out.width, out.height) == (ref.width, ref.height)
        assert out.count == ref.count and out.dtypes == ref.dtypes


def check_preview(path: Path, held_out_row: int, height: int) -> None:
    """Three panels side by side, split by gaps, each crossed by the boundary line."""
    image = read_png(path)  # (3, H, W)
    _, rows, columns = image.shape
    panel = (columns - 2 * PREVIEW_GAP) // 3
    assert panel * 3 + 2 * PREVIEW_GAP == columns and panel <= 512 and rows == panel
    for gap in (panel, 2 * panel + PREVIEW_GAP):
        assert (image[:, :, gap:gap + PREVIEW_GAP] == PREVIEW_BACKGROUND).all()
    line = held_out_row * rows // height
    for left in (0, panel + PREVIEW_GAP, 2 * (panel + PREVIEW_GAP)):
        assert image[:, line, left:left + panel].T.tolist() == [list(BOUNDARY_COLOUR)] * panel
        assert image[:, line + 4, left:left + panel].T.tolist() != [list(BOUNDARY_COLOUR)] * panel


def test_sat_map_demo_writes_everything(sat_map: tuple[Path, str]) -> None:
    out, _ = sat_map
    for name in ("train-area.geojson", "m.pt", "translated.tif", "preview.png", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "chips" / "geogan-chips.json").is_file()
    figures = json.loads((out / "metrics.json").read_text())
    assert figures["kind"] == "sat-map" and figures["steps"] == STEPS
    assert figures["sample_data_shipped"] is True
    assert (figures["width"], figures["height"], figures["held_out_row"]) == (1024, 1024, 768)
    assert set(figures["seconds"]) == set(STAGES)
    check_same_grid(out / "translated.tif", Path(figures["reference_path"]))
    check_preview(out / "preview.png", 768, 1024)


def test_sat_map_demo_scores_classes(sat_map: tuple[Path, str]) -> None:
    out, _ = sat_map
    figures = json.loads((out / "metrics.json").read_text())
    for area in ("held_out", "whole"):
        quality = figures[area]
        assert math.isfinite(quality["psnr"]) and -1 <= quality["ssim"] <= 1
        palette = quality["palette"]
        assert list(palette["accuracy"]) == list(MAP_PALETTE)
        assert 0 <= palette["pixel_accuracy"] <= 1 and 0 <= palette["mean_iou"] <= 1
    assert figures["whole"]["pixels"] == 1024 * 1024
    assert figures["held_out"]["pixels"] == 256 * 1024


def test_training_never_sees_the_held_out_quarter(sat_map: tuple[Path, str]) -> None:
    out, _ = sat_map
    with rasterio.open(out / "translated.tif") as scene:
        held_out_top = scene.xy(768, 0, offset="ul")[1]
    index = json.loads((out / "chips" / "index.geojson").read_text())
    assert index["features"]
    for feature in index["features"]:
        lowest = min(y for x, y in feature["geometry"]["coordinates"][0])
        assert lowest >= held_out_top
    area = json.loads((out / "train-area.geojson").read_text())
    assert area["crs"]["properties"]["name"] == "EPSG:32633"


def test_cli_prints_paths_figures_and_time(sat_map: tuple[Path, str]) -> None:
    out, stdout = sat_map
    for name in ("translated.tif", "preview.png", "m.pt", "chips", "metrics.json"):
        assert str(out / name) in stdout, name
    for label in ("PSNR", "SSIM", "pixel accuracy", "mean IoU", "water", "held out",
                  "whole scene", "Took"):
        assert label in stdout, label


def test_cli_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, stdout, stderr = run("demo", "--out", str(tmp_path), "--steps", "1")
    assert code == 1 and stdout == ""
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert "--overwrite" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_cli_refuses_an_unknown_kind(tmp_path: Path) -> None:
    code, _, stderr = run("demo", "--out", str(tmp_path / "x"), "--kind", "summer-winter")
    assert code == 2 and "summer-winter" in stderr
    assert not (tmp_path / "x").exists()


def test_dsm_demo_from_regenerated_sample_data(dsm: DemoReport) -> None:
    assert not dsm.sample_data_shipped
    assert dsm.input_path == dsm.out_dir / "data" / "dsm.tif"
    assert (dsm.width, dsm.height, dsm.tile_size, dsm.held_out_row) == (512, 512, 128, 384)
    assert dsm.chips_train > 0 and dsm.steps == STEPS
    shipped = demo.SAMPLE_PAIRS["dsm-imagery"]
    with rasterio.open(dsm.input_path) as generated:
        assert (generated.width, generated.tags()["GEOGAN_SEED"]) == (shipped[0], str(shipped[1]))
    check_same_grid(dsm.translated_path, dsm.reference_path)
    check_preview(dsm.preview_path, dsm.held_out_row, dsm.height)
    check_quality(dsm.held_out, palette=False)
    check_quality(dsm.whole, palette=False)
    assert set(dsm.seconds) == set(STAGES) and dsm.total_seconds > 0


def test_dsm_nodata_is_left_out_of_the_scores(dsm: DemoReport) -> None:
    with rasterio.open(dsm.translated_path) as out:
        invalid = int((out.read_masks(1) == 0).sum())
    assert invalid > 0  # the DSM's voids stay nodata in the translation
    assert dsm.whole.pixels == dsm.width * dsm.height - invalid


def test_run_demo_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown sample kind"):
        run_demo(tmp_path / "a", kind="summer-winter")
    with pytest.raises(InputError, match="at least 1"):
        run_demo(tmp_path / "b", steps=0)
    with pytest.raises(InputError, match="unknown device"):
        run_demo(tmp_path / "d", device="tpu")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    with pytest.raises(OutputExistsError):
        run_demo(tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_preview_panels_show_grey_for_a_dsm(dsm: DemoReport) -> None:
    image = read_png(dsm.preview_path).astype(int)  # (3, H, W)
    panel = (image.shape[2] - 2 * PREVIEW_GAP) // 3
    dsm_panel = image[:, : dsm.held_out_row - 8, :panel]  # above the boundary line
    assert np.array_equal(dsm_panel[0], dsm_panel[1]) and np.array_equal(dsm_panel[1],
                                                                          dsm_panel[2])
    assert dsm_panel.std() > 10  # stretched, not flat
