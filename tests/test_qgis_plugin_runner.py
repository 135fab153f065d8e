"""The QGIS plugin's QGIS-free half (``geogan_processing.geogan_cli``) against this geogan:
finding and checking the executable, its help, a run's progress, errors and cancel, and
the plugin's choices against the CLI's. The plugin inside QGIS is tested by
``qgis_plugin/tests`` (run by ``.ci/run`` under QGIS's own Python); neither the library nor
the CLI ever imports the plugin (``tests/test_architecture.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from geogan.nn.config import OUTPUTS, PRESETS
from tests.helpers import save_model, textured, write_raster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qgis_plugin"))
from geogan_processing import geogan_cli  # the plugin is no package of ours

GEOGAN = str(Path(sys.executable).with_name("geogan"))


def recording() -> tuple[geogan_cli.Handlers, dict[str, list[object]]]:
    seen: dict[str, list[object]] = {"progress": [], "info": [], "warning": []}
    handlers = geogan_cli.Handlers(
        progress=lambda percent, line: seen["progress"].append(percent),
        info=seen["info"].append, warning=seen["warning"].append)
    return handlers, seen


def test_the_plugins_choices_are_the_clis():
    assert geogan_cli.PRESETS == tuple(PRESETS)
    assert geogan_cli.OUTPUT_KINDS == tuple(OUTPUTS)


def test_a_run_reports_progress_to_100_and_its_summary(tmp_path, pair):
    handlers, seen = recording()
    result = geogan_cli.run(GEOGAN, ["export-chips", *map(str, pair), "-o",
                                     str(tmp_path / "chips"), "--tile-size", "64"], handlers)
    assert (result.returncode, result.canceled, result.errors) == (0, False, [])
    assert seen["progress"][-1] == 100.0 and seen["progress"] == sorted(seen["progress"])
    assert result.stdout[0].startswith("Wrote ") and result.stdout[0] in seen["info"]
    assert str(seen["info"][0]).startswith("geogan export-chips ")


def test_an_error_is_geogans_one_line_message(tmp_path):
    result = geogan_cli.run(GEOGAN, ["translate", str(tmp_path / "nope.tif"), "--model",
                                     str(tmp_path / "m.pt"), "-o", str(tmp_path / "o.tif")],
                            recording()[0])
    assert result.returncode == 1 and len(result.errors) == 1
    assert "m.pt does not exist" in result.error_message()
    assert not result.error_message().startswith("Error:")


def test_cancel_sends_sigint_and_geogan_leaves_nothing(tmp_path):
    model = save_model(tmp_path / "m.pt")
    scene = write_raster(tmp_path / "big.tif", textured(np.random.default_rng(3), 3, 1024, 1024))
    out = tmp_path / "out"
    out.mkdir()
    handlers, seen = recording()
    handlers.canceled = lambda: bool(seen["progress"])  # as soon as work reports
    result = geogan_cli.run(GEOGAN, ["translate", str(scene), "--model", str(model), "-o",
                                     str(out / "map.tif"), "--device", "cpu"], handlers)
    assert result.canceled and result.returncode == 130, result
    assert "Interrupted." in seen["info"]
    assert os.listdir(out) == []


def test_a_missing_or_old_geogan_is_a_message_saying_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(geogan_cli.GeoganNotUsable, match="does not exist or cannot be run"):
        geogan_cli.find_executable(str(tmp_path / "geogan"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(geogan_cli.GeoganNotUsable, match="no geogan executable on PATH"):
        geogan_cli.find_executable("")
    old = tmp_path / "old-geogan"
    old.write_text("#!/bin/sh\necho 'geogan, version 0.0.9'\n")
    old.chmod(0o755)
    with pytest.raises(geogan_cli.GeoganNotUsable, match=r"geogan 0\.0\.9, too old"):
        geogan_cli.check(str(old))
    assert geogan_cli.find_executable(GEOGAN) == GEOGAN
    geogan_cli.check(GEOGAN)


def test_help_is_the_commands_own(capsys):
    from click.testing import CliRunner

    from geogan.cli.main import cli

    expected = CliRunner().invoke(cli, ["train", "--help"], prog_name="geogan",
                                  terminal_width=80).stdout
    text = geogan_cli.help_text(GEOGAN, "train")
    assert text.splitlines()[:3] == expected.replace("\b\n", "").splitlines()[:3]
    assert "--preset" in text and "\b" not in text


def test_help_as_html_keeps_every_option_and_example():
    text = geogan_cli.help_text(GEOGAN, "translate")
    page = geogan_cli.help_html(text)
    assert page.startswith("<p><code>Usage: geogan translate [OPTIONS] SCENES...</code></p>")
    assert "<h3>Options</h3>" in page
    assert "geogan translate big_scene.tif --model m.pt -o big_map.tif\n" in page
    for option in ("--model FILE", "--overlap PX", "--output-kind", "--cog", "--overwrite"):
        assert f"<code>{option}" in page or f"<code>-m, {option}" in page, option
    assert page.count("<p><code>-") == text.count("\n  -")
