"""The evaluate command: the tables, --json, one-line errors (exit 1) and usage errors (2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.evaluation.image_metrics import PSNR_CAP_DB
from tests.helpers import smooth_field, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PALETTE = {"land": [232, 229, 222], "water": [163, 204, 255]}


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["evaluate", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli-evaluate")
    rng = np.random.default_rng(5)
    truth = np.zeros((3, 80, 96), np.uint8)
    water = smooth_field(rng, (80, 96), 16) > 0.5
    for band in range(3):
        truth[band] = np.where(water, PALETTE["water"][band], PALETTE["land"][band])
    noisy = np.clip(truth.astype(np.int16) + rng.integers(-30, 31, truth.shape), 0, 255)
    (tmp / "palette.json").write_text(json.dumps(PALETTE))
    (tmp / "bad.json").write_text('{"land": "green"}')
    return {
        "pred": write_raster(tmp / "pred.tif", noisy.astype(np.uint8)),
        "truth": write_raster(tmp / "truth.tif", truth),
        "one_band": write_raster(tmp / "one.tif", truth[:1]),
        "far": write_raster(tmp / "far.tif", truth, transform=None, crs="EPSG:32618"),
        "palette": tmp / "palette.json",
        "bad_palette": tmp / "bad.json",
    }


def test_tables_for_people(files):
    code, stdout, stderr = run(files["pred"], files["truth"], "--palette", files["palette"],
                               "--tile", 64)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == f"{files['pred']} vs {files['truth']}"
    header = next(i for i, line in enumerate(lines) if line.startswith("band "))
    assert lines[header].split() == ["band", "L1", "RMSE", "PSNR", "dB", "SSIM"]
    rows = [line.split() for line in lines[header + 1:header + 5]]
    assert [row[:-4] for row in rows] == [["band", "1"], ["band", "2"], ["band", "3"], ["mean"]]
    assert any(line.split()[:1] == ["land"] for line in lines)
    assert any(line.startswith("pixel accuracy ") and "mean IoU" in line for line in lines)
    assert any(line.startswith("seam score (tile 64, overlap 16, cosine, scene lattice, "
                               "from options)") for line in lines)


def test_json_for_machines(files):
    code, stdout, stderr = run(files["pred"], files["truth"], "--palette", "auto", "--json")
    assert code == 0, stderr
    document = json.loads(stdout)  # one document, nothing else on stdout
    assert set(document) >= {"bands", "mean", "palette", "seams", "pixels", "data_range"}
    assert [band["band"] for band in document["bands"]] == [1, 2, 3]
    assert set(document["mean"]) == {"band", "name", "l1", "rmse", "psnr", "ssim"}
    assert document["palette"]["classes"] == ["#e8e5de", "#a3ccff"] or document["palette"][
        "classes"] == ["#a3ccff", "#e8e5de"]
    assert document["palette_source"] == "detected" and document["seams"] is None
    code, stdout, _ = run(files["truth"], files["truth"], "--json")
    assert json.loads(stdout)["mean"]["psnr"] == PSNR_CAP_DB


@pytest.mark.parametrize(("which", "extra", "message"), [
    ("one_band", (), "has 3 band(s) but"),
    ("one_band", (), "`rio stack --bidx 1..1 "),
    ("far", (), "do not overlap"),
    ("truth", ("--palette", "bad_palette"), "palette file"),
    ("truth", ("--palette", "missing.json"), "no such file"),
])
def test_one_line_errors_exit_1(files, which, extra, message):
    args = [files.get(v, v) for v in extra]
    code, stdout, stderr = run(files["pred"], files[which], *args)
    assert code == 1, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr and "Traceback" not in stderr
    assert stdout == ""


def test_band_count_hint_selects_from_the_raster_with_more_bands(files):
    code, _, stderr = run(files["one_band"], files["truth"])
    assert code == 1, stderr
    assert f"`rio stack --bidx 1..1 {files['truth']} selected.tif`" in stderr


@pytest.mark.parametrize("args", [
    ("--resampling", "magic"),
    ("--data-range", "0"),
    ("--tile", "1"),
    ("--blend", "fancy"),
    ("--overlap", "-3"),
])
def test_usage_errors_exit_2(files, args):
    code, _, stderr = run(files["pred"], files["truth"], *args)
    assert code == 2, stderr


def test_a_missing_argument_is_a_usage_error(files):
    assert run(files["pred"])[0] == 2
