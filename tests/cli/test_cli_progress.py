"""``geogan --progress json`` (or GEOGAN_PROGRESS=json): one JSON object a line on stderr."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.cli.progress import JsonLines
from tests.helpers import save_model, textured, write_raster


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    return result.exit_code, result.stdout, result.stderr


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Every stderr line, each of which must be a progress object."""
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert lines and all(set(line) >= {"progress", "unit", "done", "total", "fraction"}
                         for line in lines), stderr
    return lines


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_export_chips_writes_json_progress_lines_and_its_summary_as_ever(tmp_path, pair, how):
    args = ["export-chips", *pair, "-o", tmp_path / "chips", "--tile-size", 64]
    if how == "flag":
        code, stdout, stderr = run(["--progress", "json", *args])
    else:
        code, stdout, stderr = run(args, env={"GEOGAN_PROGRESS": "json"})
    assert code == 0, stderr
    assert stdout.startswith("Wrote ")
    lines = json_lines(stderr)
    assert {line["progress"] for line in lines} == {"chips"}
    assert [line["done"] for line in lines] == sorted(line["done"] for line in lines)
    assert lines[-1]["done"] == lines[-1]["total"] and lines[-1]["fraction"] == 1.0


def test_translate_reports_from_its_worker_threads(tmp_path, one_torch_thread):
    model = save_model(tmp_path / "m.pt")
    scene = write_raster(tmp_path / "s.tif", textured(np.random.default_rng(0), 3, 150, 170))
    code, _, stderr = run(["--progress", "json", "translate", scene, "--model", model,
                           "-o", tmp_path / "out.tif", "--device", "cpu"])
    assert code == 0, stderr
    lines = json_lines(stderr)
    assert {line["progress"] for line in lines} == {"translate"}
    assert lines[-1]["unit"] == "win" and lines[-1]["fraction"] == 1.0


@pytest.mark.parametrize("args", [["--progress", "none"], ["-q", "--progress", "json"]])
def test_none_and_quiet_write_no_progress(tmp_path, pair, args):
    code, stdout, stderr = run([*args, "export-chips", *pair, "-o", tmp_path / "c",
                                "--tile-size", 64])
    assert (code, stderr) == (0, "")
    assert stdout.startswith("Wrote ")


def test_errors_stay_one_plain_line(tmp_path):
    code, _, stderr = run(["--progress", "json", "export-chips", tmp_path / "nope.tif",
                           tmp_path / "nope2.tif", "-o", tmp_path / "c"])
    assert code == 1 and stderr.startswith("Error: ") and stderr.count("\n") == 1


def test_an_unknown_mode_is_a_usage_error():
    code, _, stderr = run(["--progress", "xml", "info", "--help"])
    assert code == 2 and "'xml' is not one of 'bar', 'json', 'none'" in stderr


def test_a_bar_writes_at_most_a_line_per_mille_and_always_its_end():
    out = io.StringIO()
    with redirect_stderr(out):
        lines = JsonLines("train", "step")
        for step in range(1, 20_001):
            lines.update(step, 20_000, postfix={"g_l1": 0.123456} if step % 2 else None)
        lines.update(5, 6, start=4)  # a resumed run: where it started from
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(written) == 1001 + 1  # per-mille 0 to 1000, then the resumed run
    assert written[-2] == {"progress": "train", "unit": "step", "done": 20_000,
                           "total": 20_000, "fraction": 1.0}
    assert written[0]["losses"] == {"g_l1": 0.1235}
    assert written[-1]["start"] == 4 and written[-1]["fraction"] == 0.8333


def test_cli_reference_documents_the_progress_mode():
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "--progress json" in text and "GEOGAN_PROGRESS" in text
