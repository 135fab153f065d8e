"""The export-chips command: output, exit codes and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geogan.cli.main import cli
from tests.helpers import write_raster


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_export_chips_writes_arcgis_layout(tmp_path, pair):
    a, b = pair
    out = tmp_path / "chips"
    code, stdout, _ = run("-q", "export-chips", str(a), str(b), "-o", str(out),
                          "--tile-size", "128", "--stride", "64", "--seed", "3")
    assert code == 0
    counts = json.loads((out / "geogan-chips.json").read_text())["counts"]
    assert counts["candidates"] == 49
    written = len(list((out / "images").glob("*.tif")))
    assert written + counts["dropped_split"] == 49
    assert f"Wrote {written} chip pairs" in stdout
    assert f"{counts['dropped_split']} on split borders" in stdout
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        p.name for p in (out / "images2").iterdir())


@pytest.mark.parametrize("tile", ["48", "96"])
def test_chips_no_model_can_train_on_are_written_with_a_warning(tmp_path, pair, tile):
    """Said at export, not one command later when train refuses them; other tools may
    want such chips, so they are written."""
    a, b = pair
    out = tmp_path / "chips"
    code, stdout, stderr = run("-q", "export-chips", str(a), str(b), "-o", str(out),
                               "--tile-size", tile)
    assert code == 0 and "Wrote " in stdout
    assert stderr.count("Warning:") == 1
    assert f"chips of {tile} px cannot train a geogan model" in stderr
    with rasterio.open(next((out / "images").glob("*.tif"))) as chip:
        assert chip.shape == (int(tile), int(tile))
    _, _, quiet = run("-q", "export-chips", str(a), str(b), "-o", str(tmp_path / "ok"),
                      "--tile-size", "128")
    assert "Warning" not in quiet


def test_unpaired_flag(tmp_path, pair):
    a, b = pair
    out = tmp_path / "chips"
    code, stdout, _ = run("-q", "export-chips", str(a), str(b), "-o", str(out), "--unpaired",
                          "--tile-size", "128")
    assert code == 0 and "Wrote 32 chips" in stdout
    assert (out / "train_a").is_dir() and (out / "train_b").is_dir()


def test_creation_options_are_passed_to_gdal(tmp_path, pair):
    a, b = pair
    out = tmp_path / "chips"
    code, _, _ = run("-q", "export-chips", str(a), str(b), "-o", str(out), "--tile-size", "128",
                     "--co", "compress=deflate")
    assert code == 0
    with rasterio.open(out / "images" / "000000000.tif") as chip:
        assert chip.compression.name == "deflate"


def _bad_inputs(tmp_path: Path, pair: tuple[Path, Path]) -> dict[str, tuple[list[str], str]]:
    a, b = pair
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    no_crs = write_raster(tmp_path / "nocrs.tif", np.zeros((1, 64, 64), np.uint8), crs=None)
    plain = tmp_path / "plain.png"  # no CRS and no transform: GDAL warns, geogan says it once
    with rasterio.open(plain, "w", driver="PNG", width=8, height=8, count=1, dtype="uint8") as png:
        png.write(np.zeros((1, 8, 8), np.uint8))
    far = write_raster(tmp_path / "far.tif", np.zeros((1, 300, 300), np.uint8),
                       transform=Affine(1, 0, 900_000, 0, -1, 5_000_000))
    complex_ = write_raster(tmp_path / "complex.tif", np.zeros((1, 64, 64), np.complex64))
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.tif").write_text("old")
    bad_aoi = tmp_path / "aoi.geojson"
    bad_aoi.write_text('{"type": "Point", "coordinates": [0, 0]}')
    out = str(tmp_path / "out")
    return {
        "missing": ([str(tmp_path / "nope.tif"), str(b), "-o", out], "no such file"),
        "not a raster": ([str(text), str(b), "-o", out], "not a raster"),
        "no crs": ([str(no_crs), str(b), "-o", out], "no coordinate reference system"),
        "plain png": ([str(plain), str(b), "-o", out], "no coordinate reference system"),
        "no overlap": ([str(a), str(far), "-o", out], "do not overlap"),
        "complex": ([str(a), str(complex_), "-o", out], "data type complex64"),
        "output exists": ([str(a), str(b), "-o", str(full)], "--overwrite"),
        "aoi without polygon": ([str(a), str(b), "-o", out, "--aoi", str(bad_aoi)], "no polygon"),
        "tile too large": ([str(a), str(b), "-o", out, "--tile-size", "4096"], "--tile-size"),
    }


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the PNG fixture
@pytest.mark.parametrize("case", ["missing", "not a raster", "no crs", "plain png", "no overlap",
                                  "complex",
                                  "output exists", "aoi without polygon", "tile too large"])
def test_bad_input_is_one_line_exit_1_nothing_written(tmp_path, pair, case):
    args, message = _bad_inputs(tmp_path, pair)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = run("export-chips", *args)
    assert code == 1, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message in lines[0]
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "output exists":
        assert (tmp_path / "full" / "old.tif").read_text() == "old"


@pytest.mark.parametrize("args", [
    ["--tile-size", "8"],
    ["--min-valid", "1.5"],
    ["--val-fraction", "1"],
    ["--resampling", "magic"],
    ["--co", "novalue"],
])
def test_bad_usage_exits_2(tmp_path, pair, args):
    a, b = pair
    code, _, _ = run("export-chips", str(a), str(b), "-o", str(tmp_path / "out"), *args)
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_default_output_is_input_stem_chips_and_a_rerun_refuses(tmp_path, pair, monkeypatch):
    a, b = pair
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, stdout, _ = run("-q", "export-chips", str(a), str(b), "--tile-size", "128")
    assert code == 0
    assert (work / "a-chips" / "geogan-chips.json").is_file()
    assert "to a-chips " in stdout
    before = sorted(p.name for p in (work / "a-chips" / "images").iterdir())
    code, _, stderr = run("-q", "export-chips", str(a), str(b), "--tile-size", "128")
    assert code == 1 and stderr.count("\n") == 1
    assert "a-chips exists and is not empty; pass --overwrite" in stderr
    assert sorted(p.name for p in (work / "a-chips" / "images").iterdir()) == before
    code, _, _ = run("-q", "export-chips", str(a), str(b), "--tile-size", "128", "--overwrite")
    assert code == 0


@pytest.mark.parametrize(("spec", "name"), [
    ("sat.tif", "sat-chips"), ("data/sat.vrt", "sat-chips"), ("@list.txt", "list-chips"),
    ("tiles/*.tif", "tiles-chips"), ("tiles/", "tiles-chips"), ("*.tif", "mosaic-chips"),
    ("pairs.csv", "pairs-chips"),
])
def test_default_output_names(spec, name):
    from geogan.chips.layout import default_output

    assert default_output(spec) == Path(name)


def test_debug_shows_the_traceback(tmp_path, pair):
    _, b = pair
    result = CliRunner().invoke(cli, ["--debug", "export-chips", str(tmp_path / "nope.tif"),
                                      str(b), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.exc_info is not None and result.exc_info[0].__name__ == "RasterNotFoundError"


def test_pairs_csv_default_output_and_report(tmp_path, pair, monkeypatch):
    a, b = pair
    other = write_raster(tmp_path / "small.tif", np.ones((3, 100, 100), np.uint8),
                         crs="EPSG:32632")
    other_b = write_raster(tmp_path / "small_b.tif", np.ones((1, 100, 100), np.float32),
                           crs="EPSG:32632")
    csv = tmp_path / "scenes.csv"
    csv.write_text(f"input,additional\n{a.name},{b.name}\n{other.name},{other_b.name}\n"
                   "missing.tif,b.tif\n")
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run("-q", "export-chips", "--pairs", str(csv), "--tile-size", "64",
                               "--val-pairs", "1", "--skip-bad-pairs")
    assert code == 0, stderr
    assert "of 2 pairs" in stdout and "to scenes-chips " in stdout
    assert "1 whole pair(s) held out" in stdout
    assert "Skipped 1 pair(s)" in stdout and "missing.tif: no such file" in stdout
    assert (tmp_path / "scenes-chips" / "images").is_dir()


@pytest.mark.parametrize("args", [
    [],  # neither INPUT/ADDITIONAL nor --pairs
    ["a.tif"],
    ["a.tif", "b.tif", "--pairs", "p.csv"],
    ["a.tif", "b.tif", "--val-pairs", "1"],
])
def test_pairs_usage_errors_exit_2(tmp_path, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run("export-chips", *args)
    assert code == 2 and "Error:" in stderr
