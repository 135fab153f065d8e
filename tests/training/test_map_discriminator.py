"""map_discriminator: faithful trains map targets without a discriminator, image targets with.

A map model's output is drawn from its class head, which the discriminator does not judge;
image targets (SAR → optical) keep it, and so does anyone who asks for one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.nn.config import DISCRIMINATOR_SETTINGS, TrainConfig, build_configs
from geogan.training.class_palette import without_map_discriminator
from geogan.training.loop import LOG_NAME, TrainOptions, TrainReport, train
from tests.helpers import MAP_PALETTE, pair_chips, write_map_chips

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL: dict[str, Any] = {"steps": 2, "ngf": 4, "unet_levels": 5, "batch_size": 2,
                         "precision": "fp32", "val_every": 1}


def losses(report: TrainReport) -> list[dict[str, float]]:
    """The losses of each step the run logged (log.jsonl)."""
    lines = (report.checkpoint_dir / LOG_NAME).read_text().splitlines()
    return [json.loads(line)["losses"] for line in lines]


def configs(preset: str = "faithful", kind: str = "pix2pix",
            **overrides: Any) -> TrainConfig:
    return build_configs(kind, 3, 3, 64, preset=preset, overrides=overrides)[1]


def test_only_faithful_drops_the_map_discriminator_and_older_records_keep_it() -> None:
    assert configs().map_discriminator is False
    assert configs("paper").map_discriminator is True
    assert configs("tiny").map_discriminator is True
    assert configs(kind="cyclegan").map_discriminator is True  # faithful is Pix2Pix only
    assert TrainConfig.from_dict({"lambda_gan": 1.0}).map_discriminator is True


@pytest.mark.parametrize("setting", sorted(DISCRIMINATOR_SETTINGS))
def test_a_discriminator_setting_given_keeps_the_discriminator(setting: str) -> None:
    value = {"ndf": 32, "n_layers": 3, "gan_loss": "lsgan", "lambda_gan": 1.0, "d_scales": 2,
             "lambda_fm": 10.0, "judge_classes": True, "spectral_norm": True,
             "diffaugment": True}[setting]
    assert configs(**{setting: value}).map_discriminator is True
    assert configs(**{setting: value, "map_discriminator": False}).map_discriminator is False
    assert configs(**{setting: None}).map_discriminator is False  # None: not given


def test_the_adversarial_loss_is_dropped_only_for_a_class_head_without_it() -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="faithful")
    headed = replace(arch, palette=MAP_PALETTE)
    assert without_map_discriminator(headed, config).lambda_gan == 0.0
    assert without_map_discriminator(arch, config) is config  # image target
    kept = build_configs("pix2pix", 3, 3, 64, preset="faithful",
                         overrides={"map_discriminator": True})[1]
    assert without_map_discriminator(headed, kept) is kept


def test_faithful_trains_a_map_without_and_an_image_with_its_discriminator(
        tmp_path: Path) -> None:
    maps = train(write_map_chips(tmp_path), tmp_path / "map.pt",
                 TrainOptions(preset="faithful", overrides=SMALL, device="cpu"))
    assert maps.architecture.palette
    assert maps.config.lambda_gan == 0.0 and not maps.config.map_discriminator
    assert {logged["d_real"] for logged in losses(maps)} == {0.0}
    photo_chips = pair_chips(tmp_path, size=128, out=tmp_path / "photo-chips")
    photos = train(photo_chips, tmp_path / "photo.pt",
                   TrainOptions(preset="faithful", overrides=SMALL, device="cpu"))
    assert not photos.architecture.palette
    assert photos.config.lambda_gan == 1.0
    assert all(logged["d_real"] > 0 for logged in losses(photos))


def test_the_cli_option() -> None:
    assert "--map-discriminator" in CliRunner().invoke(cli, ["train", "--help"]).stdout
