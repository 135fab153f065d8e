"""Deep supervision: class heads on the U-Net decoder's coarser levels, trained beside the
generator, kept in checkpoints and left out of the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from geogan.nn.config import build_configs
from geogan.nn.losses import IGNORED_CLASS, masked_cross_entropy
from geogan.nn.model_file import read_model_file
from geogan.nn.networks import UNetGenerator
from geogan.training.checkpoints import read_checkpoint
from geogan.training.deep_supervision import DecoderHeads, deep_supervision_loss
from geogan.training.loop import TrainOptions, train
from geogan.training.steps import Pix2PixTrainer
from tests.helpers import TINY, batch, write_map_chips

CPU = torch.device("cpu")
PALETTE = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def trainer(**overrides: Any) -> Pix2PixTrainer:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={**TINY, "unet_levels": 5, **overrides})
    arch = type(arch)(**{**arch.to_dict(), "palette": PALETTE})
    torch.manual_seed(0)
    return Pix2PixTrainer(arch, config, CPU, "fp32", class_colours=torch.tensor(PALETTE))


def test_each_head_reads_its_decoder_level_and_leaves_the_output_unchanged() -> None:
    torch.manual_seed(0)
    generator = UNetGenerator(3, 3, depth=5, ngf=4, classes=2).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    before = generator(x)
    heads = DecoderHeads(generator, levels=(1, 2, 3, 4, 9))
    assert heads.levels == (1, 2, 3, 4)  # level 9 is not in a U-Net of depth 5
    with heads.capture() as levels:
        after = generator(x)
    assert torch.equal(before, after)
    assert sorted(levels) == [1, 2, 3, 4]
    logits = heads(levels)
    for k, level_logits in logits.items():
        assert level_logits.shape == (2, 2, 64 // 2**k, 64 // 2**k)
        assert levels[k].shape[1] == generator.channels[k]
    generator(x)  # outside the block nothing is kept
    with heads.capture() as later:
        pass
    assert later == {}


def test_heads_need_a_class_head_and_a_level_inside_the_u_net() -> None:
    with pytest.raises(ValueError, match="class head"):
        DecoderHeads(UNetGenerator(3, 3, depth=5, ngf=4))
    with pytest.raises(ValueError, match="none of the levels"):
        DecoderHeads(UNetGenerator(3, 3, depth=5, ngf=4, classes=2), levels=(0, 5))


def test_the_loss_is_each_level_s_resized_cross_entropy_finer_levels_weighing_more() -> None:
    classes = torch.randint(0, 3, (2, 16, 16))
    classes[0, :4] = IGNORED_CLASS
    logits = {k: torch.randn(2, 3, 16 // 2**k, 16 // 2**k) for k in (2, 3)}
    per_level = {k: masked_cross_entropy(
        F.interpolate(v, size=(16, 16), mode="bilinear", align_corners=False), classes)
        for k, v in logits.items()}
    expected = (per_level[2] / 4 + per_level[3] / 8) / (1 / 4 + 1 / 8)
    assert float(deep_supervision_loss(logits, classes)) == pytest.approx(float(expected))
    # A level already certain of the target's class adds nothing.
    certain = {2: torch.tensor([-50.0, 50.0, -50.0]).view(1, 3, 1, 1).expand(2, 3, 4, 4)}
    assert float(deep_supervision_loss(certain, torch.ones(2, 16, 16, dtype=torch.long))
                 ) == pytest.approx(0.0, abs=1e-6)


def test_training_lowers_the_heads_loss_and_leaves_the_other_networks_as_without() -> None:
    plain, deep = trainer(), trainer(deep_supervision=0.5)
    assert plain.decoder_heads == {} and "h" not in plain.optimizers
    assert set(deep.networks()) == {"g_a2b", "d_b", "h_a2b"}
    # The heads are drawn after every other network: those start from the same weights.
    for name, module in plain.networks().items():
        for mine, theirs in zip(module.state_dict().values(),
                                deep.networks()[name].state_dict().values(), strict=True):
            assert torch.equal(mine, theirs)
    data = deep.to_device(batch())
    losses = [deep.train_step(data) for _ in range(10)]
    assert "g_deep" not in plain.train_step(plain.to_device(batch()))
    assert float(losses[-1]["g_deep"]) < float(losses[0]["g_deep"])
    # A U-Net without a class head, or a run without the weight, has no heads.
    assert trainer(deep_supervision=0.0).decoder_heads == {}


def test_a_checkpoint_without_heads_warm_starts_a_run_with_them() -> None:
    deep = trainer(deep_supervision=0.5, lr=2e-3)
    fresh_heads = {k: v.clone() for k, v in deep.decoder_heads["a2b"].state_dict().items()}
    plain = trainer(lr=2e-3)
    plain.train_step(plain.to_device(batch()))
    deep.load_state_dict(plain.state_dict())
    for name in ("g_a2b", "d_b"):
        for mine, theirs in zip(deep.networks()[name].state_dict().values(),
                                plain.networks()[name].state_dict().values(), strict=True):
            assert torch.equal(mine, theirs)
    for key, value in deep.decoder_heads["a2b"].state_dict().items():
        assert torch.equal(value, fresh_heads[key])
    deep.train_step(deep.to_device(batch()))  # and it trains on


def test_checkpoints_keep_the_heads_and_the_model_file_does_not(tmp_path: Path) -> None:
    chips = write_map_chips(tmp_path)
    overrides = {"steps": 3, "ngf": 4, "ndf": 4, "classes": "auto", "unet_levels": 5,
                 "deep_supervision": 0.5, "precision": "fp32", "workers": 0}
    out = tmp_path / "m.pt"
    train(chips, out, TrainOptions(preset="tiny", overrides=overrides, device="cpu",
                                   checkpoint_dir=tmp_path / "run"))
    model = read_model_file(out)
    assert model.training["config"]["deep_supervision"] == 0.5
    assert all(not key.startswith("heads") for key in model.generators["a2b"])
    state = read_checkpoint(next((tmp_path / "run").rglob("*.pt")), CPU, "")
    assert set(state["trainer"]["networks"]) == {"g_a2b", "d_b", "h_a2b"}
    assert "h" in state["trainer"]["optimizers"]
    # The run resumes from its checkpoint, heads and their optimiser included.
    train(chips, out, TrainOptions(preset="tiny", overrides=overrides, device="cpu",
                                   checkpoint_dir=tmp_path / "run", resume=True))
    assert read_model_file(out).generators["a2b"].keys() == model.generators["a2b"].keys()
