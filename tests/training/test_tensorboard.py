"""TensorBoard event files of a training run (TrainOptions.tensorboard, --tensorboard)."""

from __future__ import annotations

import io
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import geogan.training.loop as train_module
from geogan.cli.main import cli
from geogan.errors import ConfigError, TrainingInterrupted
from geogan.training.loop import TrainOptions, TrainProgress, train
from geogan.training.tensorboard_log import TensorBoardLog
from tests.helpers import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def events(folder: Path) -> Any:
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    board = accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    return board


def scalar_steps(board: Any, tag: str) -> list[int]:
    return [event.step for event in board.Scalars(tag)]


def options(tmp_path: Path, **overrides: Any) -> TrainOptions:
    return TrainOptions(preset="tiny", overrides={**TINY, **overrides}, device="cpu",
                        checkpoint_dir=tmp_path / "run", tensorboard=tmp_path / "tb",
                        overwrite=True)


def test_each_validation_writes_losses_metrics_lr_and_the_preview(chips, tmp_path):
    pytest.importorskip("tensorboard")
    report = train(chips, tmp_path / "m.pt", options(tmp_path, steps=4, val_every=2))

    board = events(tmp_path / "tb")
    tags = board.Tags()
    losses = {f"loss/{name}" for name in ("d_real", "d_fake", "g_gan", "g_l1")}
    assert losses | {"val/l1", "val/psnr", "val/ssim", "lr"} <= set(tags["scalars"])
    for tag in tags["scalars"]:
        assert scalar_steps(board, tag) == [2, 4], tag
    assert [event.value for event in board.Scalars("val/l1")] == pytest.approx(
        [h["l1"] for h in report.history])
    assert board.Scalars("lr")[0].value == pytest.approx(2e-4)
    assert tags["images"] == ["preview"]
    previews = board.Images("preview")
    assert [image.step for image in previews] == [2, 4]
    # The grid of previews/step-NNNNNNN.png, pixel for pixel (the last PNG is replaced by
    # the eval-mode preview of the finished model).
    image = pytest.importorskip("PIL.Image")
    for event in previews[:-1]:
        png = tmp_path / "run" / "previews" / f"step-{event.step:07d}.png"
        with image.open(io.BytesIO(event.encoded_image_string)) as shown, image.open(png) as grid:
            assert shown.size == grid.size == (3 * 64 + 2 * 4, 4 * 64 + 3 * 4)
            assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(grid.convert("RGB")))


def test_a_resumed_run_continues_the_curves_and_the_writer_is_closed_on_ctrl_c(
        chips, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.setattr(train_module, "LOSS_SYNC_STEPS", 1)
    closed: list[int] = []
    close = TensorBoardLog.close
    monkeypatch.setattr(TensorBoardLog, "close", lambda self: (closed.append(1), close(self)))

    def ctrl_c_at_3(progress: TrainProgress) -> None:
        if progress.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    # An earlier run in the same folder: a new run replaces its curves.
    train(chips, tmp_path / "m.pt", options(tmp_path, steps=2, val_every=1))
    with pytest.raises(TrainingInterrupted):
        train(chips, tmp_path / "m.pt", options(tmp_path, steps=6, val_every=2), ctrl_c_at_3)
    assert len(closed) == 2
    assert scalar_steps(events(tmp_path / "tb"), "loss/g_l1") == [2, 3]
    train(chips, tmp_path / "m.pt", replace(options(tmp_path, steps=6, val_every=2), resume=True))
    assert len(closed) == 3
    assert scalar_steps(events(tmp_path / "tb"), "loss/g_l1") == [2, 3, 4, 6]


def test_without_tensorboard_one_error_says_what_to_install_before_training(
        chips, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'geogan\[tensorboard\]'"):
        train(chips, tmp_path / "m.pt", options(tmp_path, steps=2))
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()

    result = CliRunner().invoke(cli, [
        "train", str(chips), "-o", str(tmp_path / "m.pt"), "--tensorboard", str(tmp_path / "tb"),
        "--preset", "tiny", "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --tensorboard needs the tensorboard package: pip install 'geogan[tensorboard]'"]
    assert not (tmp_path / "m-train").exists()


def test_the_command_writes_event_files(chips, tmp_path):
    pytest.importorskip("tensorboard")
    result = CliRunner().invoke(cli, [
        "-q", "train", str(chips), "-o", str(tmp_path / "m.pt"), "--tensorboard",
        str(tmp_path / "tb"), "--preset", "tiny", "--steps", "2", "--ngf", "8", "--ndf", "8",
        "--workers", "0", "--precision", "fp32", "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    assert scalar_steps(events(tmp_path / "tb"), "loss/g_l1") == [2]
