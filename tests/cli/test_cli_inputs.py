"""Inputs as users hold them, on the command line: URLs pass click's path checks, @lists
name scenes, and no raw Python warning reaches the terminal (``-v`` shows them)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

from geogan.cli.main import cli
from tests.helpers import save_model, serve_folder, textured, write_raster

FAST = ("--device", "cpu", "--precision", "fp32")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def no_geotransform(path: Path) -> Path:
    """A GeoTIFF without CRS or geotransform: rasterio warns (NotGeoreferencedWarning)
    whenever it is opened."""
    data = textured(np.random.default_rng(5), 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3,
                           dtype="uint8") as dst:
            dst.write(data)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "m.pt")


def test_a_url_scene_passes_the_command_lines_checks(tmp_path, model):
    (tmp_path / "www").mkdir()
    write_raster(tmp_path / "www" / "scene.tif", textured(np.random.default_rng(1), 3, 70, 80))
    with serve_folder(tmp_path / "www") as (url, _):
        code, _, stderr = run("-q", "translate", f"{url}/scene.tif", "-m", model,
                                   "-o", tmp_path / "out.tif", *FAST)
        assert code == 0, stderr
        code, _, stderr = run("-q", "translate", f"{url}/scene.tif?v=2", "-m", model,
                                   "--out-dir", tmp_path / "maps", *FAST)
        assert code == 0, stderr
        assert (tmp_path / "maps" / "scene.tif").exists()
        code, _, stderr = run("-q", "translate", f"{url}/missing.tif", "-m", model, "-o",
                              tmp_path / "none.tif", *FAST)
    assert code == 1 and stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert "404" in stderr and not (tmp_path / "none.tif").exists()


def test_scenes_from_a_list_file(tmp_path, model):
    rng = np.random.default_rng(2)
    for name in ("a", "b"):
        write_raster(tmp_path / f"{name}.tif", textured(rng, 3, 60, 60))
    (tmp_path / "scenes.txt").write_text("a.tif\n\n# not this one\nb.tif\n")
    code, stdout, stderr = run("-q", "translate", f"@{tmp_path / 'scenes.txt'}", "-m", model,
                               "--out-dir", tmp_path / "out", *FAST)
    assert code == 0, stderr
    assert "2 translated" in stdout
    code, _, stderr = run("-q", "translate", f"@{tmp_path / 'scenes.txt'}", "-m", model,
                          "-o", tmp_path / "one.tif", *FAST)
    assert code == 2 and "2 scenes need --out-dir" in stderr
    code, _, stderr = run("-q", "translate", f"@{tmp_path / 'none.txt'}", "-m", model,
                          "--out-dir", tmp_path / "x", *FAST)
    assert code == 1 and stderr.startswith("Error: cannot read the list"), stderr
    assert not (tmp_path / "x").exists()


def test_library_warnings_never_reach_the_terminal_as_they_are(tmp_path, model, caplog):
    """A raster without a geotransform makes rasterio warn on every open: translate says
    it in one Warning: line of its own, evaluate says nothing; the raw warnings are log
    records at the INFO level."""
    scene = no_geotransform(tmp_path / "plain.tif")
    with caplog.at_level("INFO", logger="geogan.warnings"):
        code, _, stderr = run("-q", "translate", scene, "-m", model, "-o",
                              tmp_path / "out.tif", *FAST)
    assert code == 0, stderr
    assert stderr.splitlines() == [f"Warning: {scene} has no CRS; its output will have none "
                                   "either"], stderr
    assert any("NotGeoreferencedWarning" in r.getMessage() for r in caplog.records)
    code, _, stderr = run("evaluate", tmp_path / "out.tif", no_geotransform(tmp_path / "q.tif"))
    assert code == 0 and stderr == "", stderr


@pytest.mark.slow
def test_verbose_shows_the_library_warnings(tmp_path, model):
    scene = no_geotransform(tmp_path / "plain.tif")
    command = [sys.executable, "-m", "geogan", "-v", "translate", str(scene), "-m", str(model),
               "-o", str(tmp_path / "out.tif"), *FAST]
    quiet = subprocess.run(command[:3] + command[4:], capture_output=True, text=True,
                           check=True)
    assert "NotGeoreferencedWarning" not in quiet.stderr
    assert sum(line.startswith("Warning: ") for line in quiet.stderr.splitlines()) == 1
    (tmp_path / "out.tif").unlink()
    verbose = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "INFO: NotGeoreferencedWarning" in verbose.stderr
