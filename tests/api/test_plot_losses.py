"""GANModel.plot_losses: the last fit's log.jsonl as curves against the step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import geogan
from geogan.api.learn import GANModel
from geogan.errors import ConfigError
from tests.helpers import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def fitted(chips: Path, tmp_path_factory: pytest.TempPathFactory) -> GANModel:
    """A Pix2Pix fitted for 4 steps, validating every 2: two lines of log."""
    model = geogan.Pix2Pix(geogan.prepare_data(chips, seed=3), device="cpu", verbose=False,
                           work_dir=tmp_path_factory.mktemp("work"), val_every=2, **TINY)
    model.fit(steps=4)
    return model


def test_plot_losses_draws_every_loss_and_metric_against_the_step(fitted, tmp_path):
    figure_class = pytest.importorskip("matplotlib.figure").Figure
    log = fitted.history
    assert [line["step"] for line in log] == [2, 4]

    figure = fitted.plot_losses()

    assert isinstance(figure, figure_class)
    losses_axes, val_axes, psnr_axes = figure.axes
    names = list(log[0]["losses"])
    assert {"d_real", "d_fake", "g_gan", "g_l1"} <= set(names)
    assert [line.get_label() for line in losses_axes.get_lines()] == names
    for line, name in zip(losses_axes.get_lines(), names, strict=True):
        assert list(line.get_xdata()) == [2, 4]
        assert list(line.get_ydata()) == [entry["losses"][name] for entry in log]
    assert losses_axes.get_ylabel() == "loss" and "run-1" in losses_axes.get_title()
    assert [line.get_label() for line in val_axes.get_lines()] == ["l1", "ssim"]
    assert [line.get_label() for line in psnr_axes.get_lines()] == ["psnr"]
    assert list(psnr_axes.get_lines()[0].get_ydata()) == [entry["val"]["psnr"] for entry in log]
    assert val_axes.get_xlabel() == "step" and val_axes.get_ylabel() == "L1, SSIM"
    assert psnr_axes.get_ylabel() == "PSNR (dB)"
    legend = val_axes.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["l1", "ssim", "psnr"]
    figure.savefig(tmp_path / "losses.png")
    assert (tmp_path / "losses.png").stat().st_size > 0


def test_plot_losses_before_any_log_is_a_config_error(chips, fitted, tmp_path):
    data = geogan.prepare_data(chips)
    with pytest.raises(ConfigError, match=r"no training log yet.*call fit\(\) first"):
        geogan.Pix2Pix(data, **TINY).plot_losses()
    with pytest.raises(ConfigError, match="no training log yet"):
        geogan.GANModel.from_model(fitted.model_path, verbose=False).plot_losses()
    # A fit stopped before its first validation: its log.jsonl is empty.
    model = geogan.Pix2Pix(data, verbose=False, work_dir=tmp_path, **TINY)
    model._run_dir = tmp_path / "run-1"
    model._run_dir.mkdir()
    (model._run_dir / "log.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"no training log yet in .*log\.jsonl"):
        model.plot_losses()


def test_plot_losses_without_matplotlib_says_what_to_install(fitted, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'geogan\[plot\]'"):
        fitted.plot_losses()
