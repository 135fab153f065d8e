"""lambda_gan: 0 trains the Pix2Pix U-Net on L1 alone (the baseline of benchmarks/quality.py)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.errors import ConfigError
from geogan.nn.config import TrainConfig, build_configs
from geogan.training.steps import Pix2PixTrainer
from tests.helpers import TINY, batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(lambda_gan: float) -> Pix2PixTrainer:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={**TINY, "lambda_gan": lambda_gan})
    torch.manual_seed(0)
    return Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")


def test_lambda_gan_zero_skips_the_discriminator_and_keeps_the_loss_keys():
    trainer = make(0.0)
    data = trainer.to_device(batch())
    d_before = {k: v.clone() for k, v in trainer.discriminators["b"].state_dict().items()}
    g_before = {k: v.clone() for k, v in trainer.generators["a2b"].state_dict().items()}
    losses = trainer.train_step(data)
    assert set(losses) == {"d_real", "d_fake", "g_gan", "g_l1"}
    assert float(losses["d_real"]) == float(losses["d_fake"]) == float(losses["g_gan"]) == 0.0
    assert float(losses["g_l1"]) > 0
    d_after = trainer.discriminators["b"].state_dict()
    assert all(torch.equal(d_before[k], d_after[k]) for k in d_before)
    g_after = trainer.generators["a2b"].state_dict()
    assert any(not torch.equal(g_before[k], g_after[k]) for k in g_before)


def test_lambda_gan_weights_the_adversarial_term():
    """The first generator update of λ_GAN = 1 and of a larger weight differ; the same
    weight gives the same step (the weighting is the only change)."""
    first, steps = [], []
    for weight in (1.0, 1.0, 5.0):
        trainer = make(weight)  # seeds torch: the same initial weights and dropout draws
        first.append(trainer)
        steps.append(trainer.train_step(trainer.to_device(batch())))
    assert float(steps[0]["g_gan"]) == float(steps[1]["g_gan"]) > 0
    weights = [t.generators["a2b"].state_dict() for t in first]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_lambda_gan_is_validated_defaulted_and_a_cli_option():
    assert TrainConfig().lambda_gan == 1.0
    assert TrainConfig.from_dict({"lambda_l1": 50.0}).lambda_gan == 1.0  # older records
    with pytest.raises(ConfigError, match="negative"):
        TrainConfig(lambda_gan=-1.0)
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert "--lambda-gan" in result.stdout
    assert CliRunner().invoke(cli, ["train", "chips", "-o", "m.pt", "--lambda-gan",
                                    "-1"]).exit_code == 2
