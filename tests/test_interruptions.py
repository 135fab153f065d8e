"""Every command, interrupted for real: a write failure (a file size limit set in the child
process) and Ctrl-C (SIGINT sent mid-run). The previous good output survives byte for
byte, no file under a real name is partial, and no temporary is left behind (export-chips
keeps its hidden stage folder on purpose: ``--resume`` continues from it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from tests.helpers import save_model, smooth_field, textured, write_raster

#: Runs the command line with a file size limit: argv = [limit in bytes, geogan arguments].
#: SIGXFSZ is ignored so that a write past the limit fails with EFBIG instead of killing.
LIMITED = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "sys.argv = ['geogan'] + sys.argv[2:]\n"
    "from geogan.cli.main import main\n"
    "main()\n"
)

pytestmark = pytest.mark.slow

TRAIN_FAST = ("--preset", "tiny", "--ngf", "4", "--ndf", "4", "--workers", "0",
              "--precision", "fp32", "--device", "cpu")
TRANSLATE_FAST = ("--device", "cpu", "--precision", "fp32")


def geogan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geogan", "-q", *args], capture_output=True,
                          text=True, timeout=120)


def geogan_limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), "-q", *args],
                          capture_output=True, text=True, timeout=120)


def interrupt(args: list[str], ready: Callable[[], bool], after: float = 0.0) -> tuple[int, str]:
    """Run ``geogan -q ARGS``, send SIGINT once ``ready()`` (then ``after`` seconds), and
    return the exit code and stderr."""
    child = subprocess.Popen([sys.executable, "-m", "geogan", "-q", *args],
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not ready():
            assert child.poll() is None, "the command ended before it could be interrupted"
            assert time.monotonic() < deadline, "the command showed no progress"
            time.sleep(0.005)
        time.sleep(after)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=90)
    finally:
        child.kill()
        child.wait()
    return child.returncode, stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def partials(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial" in p.name)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


# --------------------------------------------------------------------------- export-chips


@pytest.fixture
def export_pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(9)
    field = smooth_field(rng, (512, 512), 16)
    data = (np.stack([field, 1 - field, field * field]) * 250).astype(np.uint8)
    a = write_raster(tmp_path / "a.tif", data)
    b = write_raster(tmp_path / "b.tif", data[:1] // 2 + 30)
    return a, b


def test_export_write_failure_keeps_old_output_and_a_resumable_stage(tmp_path, export_pair):
    a, b = export_pair
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128))
    before = snapshot(out)
    args = [str(a), str(b), "-o", str(out), "--tile-size", "64", "--overwrite"]
    done = geogan_limited(8000, "export-chips", *args)  # a chip is 12 kB
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "cannot write the chip" in line and "--resume" in line
    assert snapshot(out) == before
    stage = tmp_path / ".chips.partial"
    assert partials(stage) == [] and not (stage / "geogan-chips.json").exists()
    # Every chip in the stage is whole: the stage resumes to a complete export.
    assert geogan("export-chips", *args, "--resume").returncode == 0
    assert not stage.exists()
    export_chips(a, b, tmp_path / "reference", ExportOptions(tile_size=64))
    assert snapshot(out) == snapshot(tmp_path / "reference")
    assert partials(tmp_path) == []


def test_export_sigint_keeps_old_output(tmp_path, export_pair):
    a, b = export_pair
    out = tmp_path / "chips"
    export_chips(a, b, out, ExportOptions(tile_size=128))
    before = snapshot(out)
    stage = tmp_path / ".chips.partial"
    code, stderr = interrupt(
        ["export-chips", str(a), str(b), "-o", str(out), "--tile-size", "64", "--stride", "16",
         "--overwrite"],
        lambda: len(list(stage.glob("images2/*.tif"))) >= 5,
    )
    assert code == 130
    assert "--resume" in one_error_line(stderr)
    assert snapshot(out) == before
    assert partials(stage) == [] and not (stage / "geogan-chips.json").exists()


# --------------------------------------------------------------------------- train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A chip folder and a model trained on it (with its checkpoint folder beside it)."""
    from tests.helpers import pair_chips

    tmp = tmp_path_factory.mktemp("interrupt-train")
    pair_chips(tmp, 192, 0.3)
    model = tmp / "m.pt"
    done = geogan("train", str(tmp / "chips"), "-o", str(model), "--steps", "2", *TRAIN_FAST)
    assert done.returncode == 0, done.stderr
    return tmp / "chips", model


def test_train_write_failure_keeps_old_model_and_checkpoint(trained):
    chips, model = trained
    checkpoints = model.with_name("m-train")
    before, saved = model.read_bytes(), snapshot(checkpoints)
    checkpoint_files = {k: v for k, v in saved.items() if k.endswith(".pt")}
    assert checkpoint_files
    limit = min(len(before), *map(len, checkpoint_files.values())) // 2
    done = geogan_limited(limit, "train", str(chips), "-o", str(model), "--steps", "2",
                          "--overwrite", *TRAIN_FAST)
    assert done.returncode == 1
    assert model.read_bytes() == before
    after = snapshot(checkpoints)
    assert {k: after.get(k) for k in checkpoint_files} == checkpoint_files
    assert partials(model.parent) == []


def test_train_write_failure_is_one_error_line(trained, tmp_path):
    chips, model = trained
    limit = len(model.read_bytes()) // 2
    done = geogan_limited(limit, "train", str(chips), "-o", str(tmp_path / "m.pt"),
                          "--steps", "2", *TRAIN_FAST)
    assert done.returncode == 1
    one_error_line(done.stderr)


def test_train_sigint_keeps_old_model(trained):
    chips, model = trained
    before = model.read_bytes()
    log = model.with_name("m-train") / "log.jsonl"
    assert log.stat().st_size > 0
    code, stderr = interrupt(
        ["train", str(chips), "-o", str(model), "--steps", "100000", "--overwrite",
         *TRAIN_FAST],
        lambda: log.stat().st_size == 0,  # the new run has started its log
        after=1.0,
    )
    assert code == 130, stderr
    assert "--resume" in one_error_line(stderr)
    assert model.read_bytes() == before
    assert partials(model.parent) == []


# --------------------------------------------------------------------------- translate


@pytest.fixture
def translation(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A model, a scene, and the scene's good translation."""
    model = save_model(tmp_path / "m.pt")
    scene = write_raster(tmp_path / "scene.tif", textured(np.random.default_rng(3), 3, 256, 256))
    out = tmp_path / "out" / "scene_translated.tif"
    done = geogan("translate", str(scene), "--model", str(model), "-o", str(out),
                  *TRANSLATE_FAST)
    assert done.returncode == 0, done.stderr
    return model, scene, out


def test_translate_write_failure_keeps_old_output(translation):
    model, scene, out = translation
    before = out.read_bytes()
    other = write_raster(scene.with_name("other.tif"),
                         textured(np.random.default_rng(4), 3, 256, 256))
    done = geogan_limited(len(before) // 2, "translate", str(other), "--model", str(model),
                          "-o", str(out), "--overwrite", *TRANSLATE_FAST)
    assert partials(out.parent) == []
    assert out.read_bytes() == before
    assert done.returncode == 1
    one_error_line(done.stderr)


def test_translate_sigint_keeps_old_output(translation, tmp_path):
    model, _, out = translation
    before = out.read_bytes()
    with rasterio.open(out) as src:
        assert src.read().any()
    big = write_raster(tmp_path / "big.tif", textured(np.random.default_rng(5), 3, 2048, 2048))
    code, stderr = interrupt(
        ["translate", str(big), "--model", str(model), "-o", str(out), "--overwrite",
         *TRANSLATE_FAST],
        lambda: bool(partials(out.parent)),  # the temporary output exists: work has begun
        after=0.2,
    )
    assert code == 130, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
    assert partials(out.parent) == []
    assert sorted(os.listdir(out.parent)) == [out.name]
