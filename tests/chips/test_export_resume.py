"""export-chips --resume: an interrupted export continues to exactly what an uninterrupted
one writes; the manifest never lists missing chips; other settings are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import geogan.chips.cutting as chips_module
import geogan.chips.export as export_module
import geogan.staging as staging_module
from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.cli.main import cli
from geogan.errors import (
    ExportInterrupted,
    InputError,
    OutputError,
    OutputExistsError,
    WorkerError,
)
from tests.helpers import count_calls, die, smooth_field, write_raster


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def interrupt_after(monkeypatch: pytest.MonkeyPatch, n: int) -> dict[str, int]:
    """Make the chip writer raise KeyboardInterrupt (what Ctrl-C does) after ``n`` chips."""
    real = chips_module.write_chip
    calls = {"n": 0}

    def writer(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(chips_module, "write_chip", writer)
    return calls


@pytest.mark.parametrize("unpaired", [False, True])
def test_interrupted_export_resumes_to_the_uninterrupted_result(tmp_path, pair, monkeypatch,
                                                               unpaired):
    a, b = pair
    options = ExportOptions(tile_size=64, stride=48, val_fraction=0.2, seed=3, workers=1,
                            unpaired=unpaired)
    reference = tmp_path / "reference"
    export_chips(a, b, reference, options)
    expected = snapshot(reference)
    files_in_all = sum(1 for name in expected if name.endswith(".tif"))

    out = tmp_path / "chips"
    stage = tmp_path / ".chips.partial"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 30)
        with pytest.raises(ExportInterrupted, match="--resume"):
            export_chips(a, b, out, options)
    assert not out.exists()
    kept = snapshot(stage)
    assert ".geogan-export.json" in kept
    # Only whole chips, and no manifest listing chips that are not there.
    assert "geogan-chips.json" not in kept and "index.geojson" not in kept
    written = sum(1 for name in kept if name.endswith(".tif"))
    assert 20 <= written <= 30
    assert not [name for name in kept if name.endswith(".partial")]

    with monkeypatch.context() as patch:
        writes = count_calls(patch, chips_module, "write_chip")
        report = export_chips(a, b, out, ExportOptions(**{**options.__dict__, "resume": True}))
    # The chips written before the interruption are not written again.
    dropped_files = report.dropped_split * (1 if unpaired else 2)
    # (+1: the interruption may have cut a pair between its two files, whose first file
    # is written again.)
    assert writes["n"] <= files_in_all + dropped_files - written + 1
    assert not stage.exists()
    assert snapshot(out) == expected  # chips byte for byte, statistics, split and index


@pytest.mark.parametrize("unpaired", [False, True])
def test_export_interrupted_in_worker_processes_resumes_to_the_same_result(
        tmp_path, pair, monkeypatch, unpaired):
    a, b = pair
    options = ExportOptions(tile_size=64, stride=48, val_fraction=0.2, seed=3, workers=2,
                            unpaired=unpaired)
    export_chips(a, b, tmp_path / "reference", options)
    expected = snapshot(tmp_path / "reference")
    monkeypatch.setattr(export_module, "RUN_WINDOWS", 3)  # small tasks: some never start

    def progress(done: int, total: int) -> None:  # Ctrl-C after the first run
        if done >= 3:
            raise KeyboardInterrupt

    out, stage = tmp_path / "chips", tmp_path / ".chips.partial"
    with pytest.raises(ExportInterrupted, match="--resume"):
        export_chips(a, b, out, options, progress)
    kept = snapshot(stage)
    written = sum(1 for name in kept if name.endswith(".tif"))
    assert 0 < written < sum(1 for name in expected if name.endswith(".tif"))
    assert not [name for name in kept if name.endswith(".partial")]  # runs finish whole
    export_chips(a, b, out, ExportOptions(**{**options.__dict__, "resume": True}))
    assert snapshot(out) == expected


def test_resume_refuses_other_settings_inputs_or_no_stage(tmp_path, pair, monkeypatch):
    a, b = pair
    out = tmp_path / "chips"
    with pytest.raises(InputError, match=r"no interrupted export .* to resume"):
        export_chips(a, b, out, ExportOptions(tile_size=64, resume=True))
    with monkeypatch.context() as patch:
        interrupt_after(patch, 5)
        with pytest.raises(ExportInterrupted):
            export_chips(a, b, out, ExportOptions(tile_size=64, workers=1))
    stage = snapshot(tmp_path / ".chips.partial")
    with pytest.raises(InputError, match="other --tile-size, --stride;"):
        export_chips(a, b, out, ExportOptions(tile_size=128, resume=True))
    with pytest.raises(InputError, match="other --co;"):
        export_chips(a, b, out, ExportOptions(tile_size=64, resume=True,
                                              creation_options={"COMPRESS": "DEFLATE"}))
    os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))  # the target raster changed
    with pytest.raises(InputError, match="other ADDITIONAL raster"):
        export_chips(a, b, out, ExportOptions(tile_size=64, resume=True))
    # Refusals leave the interrupted export as it was.
    assert snapshot(tmp_path / ".chips.partial") == stage
    # Without --resume, a rerun starts over.
    report = export_chips(a, b, out, ExportOptions(tile_size=64))
    assert report.exported == 64 and not (tmp_path / ".chips.partial").exists()


def test_cli_resume_errors_are_one_line(tmp_path, pair):
    a, b = pair
    result = CliRunner().invoke(cli, ["export-chips", str(a), str(b), "-o",
                                      str(tmp_path / "chips"), "--resume"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: there is no interrupted export")


def test_existing_output_survives_an_interrupted_overwrite(tmp_path, pair, monkeypatch):
    a, b = pair
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128))
    before = snapshot(out)
    with monkeypatch.context() as patch:
        interrupt_after(patch, 4)
        with pytest.raises(ExportInterrupted):
            export_chips(a, b, out, ExportOptions(tile_size=64, overwrite=True))
    assert snapshot(out) == before
    # Resuming the overwrite needs --overwrite again, then replaces the folder.
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_chips(a, b, out, ExportOptions(tile_size=64, resume=True))
    export_chips(a, b, out, ExportOptions(tile_size=64, overwrite=True, resume=True))
    assert json.loads((out / "geogan-chips.json").read_text())["tile_size"] == 64
    assert not (tmp_path / ".chips.partial").exists()


def test_write_error_keeps_the_stage_to_resume(tmp_path, pair, monkeypatch):
    a, b = pair
    options = ExportOptions(tile_size=64, val_fraction=0.2)
    export_chips(a, b, tmp_path / "reference", options)
    real = staging_module.write_whole
    calls = {"n": 0}

    def failing(path, content, what):
        calls["n"] += 1
        if calls["n"] == 40:
            raise OutputError(f"cannot write the {what} {path}: No space left")
        return real(path, content, what)

    out = tmp_path / "chips"
    with monkeypatch.context() as patch:
        patch.setattr(staging_module, "write_whole", failing)
        with pytest.raises(OutputError, match=r"No space left.*--resume"):
            export_chips(a, b, out, options)
    assert not out.exists() and (tmp_path / ".chips.partial").is_dir()
    export_chips(a, b, out, ExportOptions(**{**options.__dict__, "resume": True}))
    assert snapshot(out) == snapshot(tmp_path / "reference")


def test_ctrl_c_while_a_chip_is_written_leaves_no_half_written_file(tmp_path, monkeypatch):
    """KeyboardInterrupt between writing a file's temporary and renaming it (where a
    Ctrl-C during an export lands now and then) removes the temporary."""
    target = tmp_path / "chip.tif"

    def interrupted(source: object, destination: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(staging_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        staging_module.write_whole(target, b"pixels", "chip")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def big_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A pair large enough for an export to take a few seconds at tile 64, stride 16."""
    rng = np.random.default_rng(5)
    field = smooth_field(rng, (512, 512), 16)
    data = (np.stack([field, 1 - field]) * 250).astype(np.uint8)
    a = write_raster(tmp_path / "a.tif", data)
    b = write_raster(tmp_path / "b.tif", (data[:1] // 2 + 20).astype(np.uint8))
    return a, b


@pytest.mark.slow
def test_sigint_in_a_real_process_then_resume(tmp_path, big_pair):
    a, b = big_pair
    out, stage = tmp_path / "chips", tmp_path / ".chips.partial"
    args = [str(a), str(b), "-o", str(out), "--tile-size", "64", "--stride", "16",
            "--val-fraction", "0.1"]
    child = subprocess.Popen([sys.executable, "-m", "geogan", "-q", "export-chips", *args],
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(stage.glob("images2/*.tif"))) < 20:
            assert child.poll() is None, "the export ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: export interrupted") \
        and "--resume" in lines[0]
    assert not out.exists() and not (stage / "geogan-chips.json").exists()

    result = CliRunner().invoke(cli, ["-q", "export-chips", *args, "--resume"])
    assert result.exit_code == 0, result.stderr
    reference = tmp_path / "reference"
    export_chips(a, b, reference, ExportOptions(tile_size=64, stride=16, val_fraction=0.1))
    assert snapshot(out) == snapshot(reference)


def test_a_worker_that_dies_is_an_error_that_keeps_the_stage(tmp_path, pair, monkeypatch):
    a, b = pair
    monkeypatch.setattr(export_module, "cut_in_worker", die)
    with pytest.raises(WorkerError, match=r"stopped unexpectedly .*--resume"):
        export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=64, workers=2))
    assert (tmp_path / ".chips.partial" / ".geogan-export.json").exists()


@pytest.mark.parametrize("workers", [2, 0], ids=["two workers", "default: started beside"])
def test_an_export_whose_workers_cannot_start_cuts_the_chips_itself(tmp_path, pair, monkeypatch,
                                                                    workers):
    """Whether the export waits for its workers (a number given) or starts them in a
    thread while it cuts windows itself (the default), processes that cannot start leave
    every window to this process: the same files."""
    a, b = pair
    options = ExportOptions(tile_size=64, stride=48, val_fraction=0.2, seed=3, workers=workers)
    export_chips(a, b, tmp_path / "one", ExportOptions(**{**options.__dict__, "workers": 1}))

    class NoProcesses(export_module.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "ProcessPoolExecutor", NoProcesses)
    monkeypatch.setattr(export_module, "POOL_MIN_WINDOWS", 1)
    monkeypatch.setattr(export_module, "MAX_WORKERS", 2)
    export_chips(a, b, tmp_path / "here", options)
    assert snapshot(tmp_path / "here") == snapshot(tmp_path / "one")


def test_an_unexpected_error_starting_the_workers_beside_is_raised(tmp_path, pair, monkeypatch):
    """An error other than "cannot start a process" in the starting thread is not lost:
    the export raises it, and keeps nothing it might not trust."""
    a, b = pair

    class Broken(export_module.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            raise RuntimeError("broken start")

    monkeypatch.setattr(export_module, "ProcessPoolExecutor", Broken)
    monkeypatch.setattr(export_module, "POOL_MIN_WINDOWS", 1)
    monkeypatch.setattr(export_module, "MAX_WORKERS", 2)
    monkeypatch.setattr(export_module, "RUN_WINDOWS", 1)  # many runs: one meets the error
    with pytest.raises(RuntimeError, match="broken start"):
        export_chips(a, b, tmp_path / "chips", ExportOptions(tile_size=64, stride=16))
    assert not (tmp_path / ".chips.partial").exists()
