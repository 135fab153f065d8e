"""examples/pix2pix_workflow.py runs end to end on tiny sample data."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pix2pix_workflow.py"


def test_the_pix2pix_workflow_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "workflow"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out), "--size", "128", "--scene-size", "128",
         "--tile", "64", "--steps", "4", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ChipData(Pix2Pix" in result.stdout and "validation chips:" in result.stdout
    assert "held-out scene: PSNR" in result.stdout
    assert result.stderr == ""  # --quiet: no progress bars, and no warnings

    with rasterio.open(out / "held-out" / "sat.tif") as scene, \
            rasterio.open(out / "translated.tif") as translated:
        assert translated.crs == scene.crs and translated.transform == scene.transform
        assert translated.shape == scene.shape and translated.count == 3
    assert (out / "m.pt").is_file()
    for name in ("batch.png", "results.png", "scene.png"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(out / name) as png:
                assert png.driver == "PNG" and png.count >= 3 and min(png.shape) > 100
