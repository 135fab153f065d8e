"""pix2pixHD's recipes and the class losses: multi-scale discriminators, feature matching,
spectral normalisation, the class head's Dice, Lovász and clDice terms, and a
discriminator that judges the class head's drawing."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geogan.errors import ConfigError
from geogan.nn.config import build_configs
from geogan.nn.losses import (
    IGNORED_CLASS,
    expected_colours,
    feature_matching,
    masked_cldice,
    masked_dice,
    masked_lovasz,
    soft_skeleton,
)
from geogan.nn.networks import (
    MultiScaleDiscriminator,
    PatchDiscriminator,
    build_discriminator,
)
from geogan.training.steps import Pix2PixTrainer
from tests.helpers import TINY, batch

CPU = torch.device("cpu")
PALETTE = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))


def architecture(**overrides: Any) -> Any:
    return build_configs("pix2pix", 3, 3, 64, preset="tiny", overrides={**TINY, **overrides})[0]


def test_multi_scale_discriminator_judges_each_scale_with_its_own_patchgan() -> None:
    torch.manual_seed(0)
    arch = build_configs("pix2pix", 3, 3, 128, preset="tiny",
                         overrides={**TINY, "d_scales": 3})[0]
    network = build_discriminator(arch, 6)
    assert isinstance(network, MultiScaleDiscriminator) and len(network.scales) == 3
    x = torch.randn(2, 6, 128, 128)
    logits = network(x)
    assert [tuple(p.shape) for p in logits] == [(2, 1, 14, 14), (2, 1, 6, 6), (2, 1, 2, 2)]
    # The second scale is the first's PatchGAN design applied to the pair at half size.
    half = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert torch.allclose(logits[1], network.scales[1](half))
    assert not torch.equal(network.scales[0].model[0].weight, network.scales[1].model[0].weight)


def test_one_scale_is_the_paper_patchgan() -> None:
    assert type(build_discriminator(architecture(), 6)) is PatchDiscriminator


def test_the_coarsest_scale_must_still_fit_a_patchgan() -> None:
    with pytest.raises(ConfigError, match="discriminator scales"):
        architecture(d_scales=3)  # 64 px -> 16 px at the third scale


def test_features_end_with_the_logits_and_hold_every_activation() -> None:
    torch.manual_seed(0)
    network = build_discriminator(architecture(), 6)
    assert isinstance(network, PatchDiscriminator)
    x = torch.randn(1, 6, 64, 64)
    features = network.features(x)
    assert len(features) == network.model.__len__() // 3 + 1  # 4 LeakyReLUs + logits
    assert torch.equal(features[-1], network(x))


def test_spectral_norm_bounds_every_convolution_to_a_largest_singular_value_of_one() -> None:
    torch.manual_seed(0)
    network = build_discriminator(architecture(spectral_norm=True), 6)
    network.train()
    x = torch.randn(2, 6, 64, 64)
    for _ in range(30):  # power iterations converge while the network runs
        network(x)
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(hasattr(m, "parametrizations") for m in convolutions)
    for conv in convolutions:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.05)


def test_feature_matching_is_the_mean_l1_over_layers_without_the_logits() -> None:
    fake = [torch.zeros(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 3, 2, 2), torch.ones(1)]
    real = [torch.full((1, 2, 4, 4), 2.0), torch.full((1, 3, 2, 2), 4.0), torch.zeros(1)]
    loss = feature_matching(fake, real)
    assert float(loss.detach()) == pytest.approx((2.0 + 4.0) / 2)
    loss.backward()
    assert fake[0].grad is not None and float(fake[0].grad.abs().sum()) > 0


def test_dice_is_zero_for_a_perfect_answer_and_counts_rare_classes_alike() -> None:
    classes = torch.zeros(1, 8, 8, dtype=torch.long)
    classes[0, 0, 0] = 1  # one pixel of a rare class
    perfect = F.one_hot(classes, 3).permute(0, 3, 1, 2).float() * 50
    assert float(masked_dice(perfect, classes)) == pytest.approx(0.0, abs=1e-3)
    # Missing the one rare pixel costs about half the loss (2 classes present), although
    # it is one pixel in 64: cross-entropy would barely notice.
    missed = perfect.clone()
    missed[0, :, 0, 0] = torch.tensor([50.0, 0.0, 0.0])
    assert float(masked_dice(missed, classes)) == pytest.approx(0.5 * (1 - 1 / 2), abs=0.02)


def test_dice_leaves_ignored_pixels_out() -> None:
    classes = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 0] = 20.0
    logits[0, :, 0, 0] = torch.tensor([0.0, 20.0])  # wrong, but ignored
    classes[0, 0, 0] = IGNORED_CLASS
    assert float(masked_dice(logits, classes)) == pytest.approx(0.0, abs=1e-3)
    none = torch.full((1, 4, 4), IGNORED_CLASS, dtype=torch.long)
    loss = masked_dice(logits.requires_grad_(), none)
    assert float(loss.detach()) == 0.0
    loss.backward()


def jaccard_loss(predicted: torch.Tensor, classes: torch.Tensor, count: int) -> float:
    """Mean over the classes present in ``classes`` of 1 - IoU, counted pixel by pixel."""
    losses = []
    for k in range(count):
        target, drawn = classes == k, predicted == k
        if target.any():
            losses.append(1 - float((target & drawn).sum()) / float((target | drawn).sum()))
    return sum(losses) / len(losses)


def test_lovasz_is_the_mean_jaccard_loss_for_certain_predictions() -> None:
    generator = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 3, (2, 8, 8), generator=generator)
    predicted = torch.where(torch.rand(2, 8, 8, generator=generator) < 0.3,
                            torch.randint(0, 4, (2, 8, 8), generator=generator), classes)
    certain = F.one_hot(predicted, 4).permute(0, 3, 1, 2).float() * 60  # softmax: 0 or 1
    # Class 3 is drawn but in no target: like mIoU over the target's classes, it is not
    # averaged in, though its pixels count against the classes they miss.
    assert float(masked_lovasz(certain, classes)) == pytest.approx(
        jaccard_loss(predicted, classes, 4), abs=1e-5)
    assert float(masked_lovasz(F.one_hot(classes, 4).permute(0, 3, 1, 2).float() * 60,
                               classes)) == pytest.approx(0.0, abs=1e-6)


def test_lovasz_gradient_lowers_the_loss_and_leaves_ignored_pixels_out() -> None:
    classes = torch.zeros(1, 4, 4, dtype=torch.long)
    classes[0, :2] = 1
    logits = torch.zeros(1, 2, 4, 4, requires_grad=True)
    loss = masked_lovasz(logits, classes)
    loss.backward()
    assert logits.grad is not None
    step = logits.detach() - 10.0 * logits.grad
    assert float(masked_lovasz(step, classes)) < float(loss.detach())
    # A wrong pixel whose class is ignored changes nothing.
    sure = F.one_hot(classes, 2).permute(0, 3, 1, 2).float() * 60
    sure[0, :, 3, 3] = torch.tensor([0.0, 60.0])
    classes[0, 3, 3] = IGNORED_CLASS
    assert float(masked_lovasz(sure, classes)) == pytest.approx(0.0, abs=1e-6)
    none = torch.full((1, 4, 4), IGNORED_CLASS, dtype=torch.long)
    empty = masked_lovasz(logits, none)
    assert float(empty.detach()) == 0.0
    empty.backward()


def test_lovasz_per_image_is_the_mean_over_the_tiles_with_a_valid_pixel() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 8, 8, generator=generator)
    classes = torch.randint(0, 4, (3, 8, 8), generator=generator)
    classes[1, :6] = 0  # a tile of mostly one class: its rare classes weigh as much
    classes[2] = IGNORED_CLASS  # nothing to score: left out of the mean, not a zero
    each = [float(masked_lovasz(logits[i : i + 1], classes[i : i + 1])) for i in range(2)]
    assert float(masked_lovasz(logits, classes, per_image=True)) == pytest.approx(
        sum(each) / 2, abs=1e-6)
    pooled = float(masked_lovasz(logits, classes))
    assert pooled != pytest.approx(sum(each) / 2, abs=1e-3)  # pooled is another figure
    # Certain and right on every tile: no loss either way; a batch of ignored pixels: 0.
    sure = F.one_hot(classes.clamp_min(0), 4).permute(0, 3, 1, 2).float() * 60
    assert float(masked_lovasz(sure, classes, per_image=True)) == pytest.approx(0.0, abs=1e-6)
    assert float(masked_lovasz(logits[2:], classes[2:], per_image=True)) == 0.0


def road_map(width: int = 3) -> torch.Tensor:
    """(1, 32, 32) classes: background 0, a horizontal road (1) ``width`` rows wide and a
    vertical one two columns wide."""
    classes = torch.zeros(1, 32, 32, dtype=torch.long)
    classes[0, 14:14 + width] = 1
    classes[0, :, 5:7] = 1
    return classes


def certain(classes: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Logits whose softmax is 1 on ``classes`` and 0 elsewhere (to float32 rounding)."""
    return F.one_hot(classes.clamp_min(0), k).permute(0, 3, 1, 2).float() * 60


def test_the_soft_skeleton_of_a_crisp_road_is_its_centre_line() -> None:
    onehot = F.one_hot(road_map(3), 2).permute(0, 3, 1, 2).float()
    skeleton = soft_skeleton(onehot, iterations=3)[0, 1]
    assert torch.all((skeleton == 0) | (skeleton == 1))
    line = skeleton[:, 12:]  # right of the vertical road: the horizontal one alone
    assert line.sum(dim=1).nonzero().flatten().tolist() == [15]  # its middle row, whole
    assert torch.all(line[15] == 1)
    assert torch.all(skeleton <= onehot[0, 1])  # inside the road


def test_cldice_sees_a_break_that_area_losses_hardly_see() -> None:
    classes = road_map(3)
    assert float(masked_cldice(certain(classes), classes)) == pytest.approx(0.0, abs=1e-6)
    broken, thinner = classes.clone(), classes.clone()
    broken[0, 14:17, 18:21] = 0  # 9 road pixels lost: the horizontal road cut in two
    thinner[0, 14, 12:] = 0  # 20 road pixels lost from its edge, unbroken
    thinner[0, 16, 12:] = 0
    for drawn, expected in ((broken, "cut"), (thinner, "whole")):
        cldice = float(masked_cldice(certain(drawn), classes))
        dice = float(masked_dice(certain(drawn), classes))
        assert (cldice > dice) == (expected == "cut"), (expected, cldice, dice)
    assert float(masked_cldice(certain(thinner), classes)) == pytest.approx(0.0, abs=1e-6)


def test_cldice_gradient_lowers_the_loss_and_leaves_ignored_pixels_out() -> None:
    classes = road_map(3)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2, 32, 32, generator=generator).requires_grad_()
    loss = masked_cldice(logits, classes)
    loss.backward()
    assert logits.grad is not None
    step = logits.detach() - 50.0 * logits.grad
    assert float(masked_cldice(step, classes)) < float(loss.detach())
    ignored = classes.clone()
    ignored[0, 14:17, 18:21] = IGNORED_CLASS  # the break lies where no loss looks
    broken = classes.clone()
    broken[0, 14:17, 18:21] = 0
    assert float(masked_cldice(certain(broken), ignored)) == pytest.approx(
        float(masked_cldice(certain(classes), ignored)), abs=1e-6)
    none = torch.full((1, 32, 32), IGNORED_CLASS, dtype=torch.long)
    empty = masked_cldice(logits, none)
    assert float(empty.detach()) == 0.0
    empty.backward()


@pytest.mark.parametrize("overrides", [
    {"d_scales": 2, "lambda_fm": 10.0},
    {"d_scales": 2, "lambda_fm": 10.0, "diffaugment": True},
    {"spectral_norm": True},
    {"lambda_dice": 1.0},
    {"lambda_lovasz": 1.0},
    {"lambda_lovasz": 1.0, "lovasz_per_image": True},
    {"lambda_cldice": 1.0},
    {"label_smoothing": 0.1},
    {"judge_classes": True},
    {"hard_pixels": 0.25},
    {"input_skip": 4},
    {"decoder_blocks": 1},
    {"class_edges": True},
])
def test_pix2pix_trains_with_each_recipe_and_logs_its_losses(overrides: dict[str, Any]) -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={**TINY, "lr": 2e-3, **overrides})
    if {"lambda_dice", "lambda_lovasz", "lambda_cldice", "label_smoothing", "judge_classes",
            "hard_pixels", "class_edges"} & overrides.keys():
        arch = type(arch)(**{**arch.to_dict(), "palette": PALETTE})
    torch.manual_seed(0)
    colours = torch.tensor(PALETTE) if arch.palette else None
    trainer = Pix2PixTrainer(arch, config, CPU, "fp32", class_colours=colours)
    data = trainer.to_device(batch())
    losses = [trainer.train_step(data) for _ in range(10)]
    if "lambda_fm" in overrides:  # D learns too, so its features need not get closer
        assert all(torch.isfinite(loss["g_fm"]) and loss["g_fm"] > 0 for loss in losses)
    for term in ("dice", "lovasz", "cldice"):
        if f"lambda_{term}" in overrides:
            assert float(losses[-1][f"g_{term}"]) < float(losses[0][f"g_{term}"])
    if "label_smoothing" in overrides or "hard_pixels" in overrides:
        assert float(losses[-1]["g_ce"]) < float(losses[0]["g_ce"])
        with pytest.raises(ConfigError, match="label smoothing"):
            build_configs("pix2pix", 3, 3, 64, overrides={"label_smoothing": 1.0})
    if overrides.get("lovasz_per_image"):
        with pytest.raises(ConfigError, match="needs a Lovász weight"):
            build_configs("pix2pix", 3, 3, 64, preset="paper",
                          overrides={"lovasz_per_image": True})
    if "hard_pixels" in overrides:
        with pytest.raises(ConfigError, match="hard pixels"):
            build_configs("pix2pix", 3, 3, 64, overrides={"hard_pixels": 0.0})
    assert float(losses[-1]["g_l1"]) < float(losses[0]["g_l1"])


def test_faithful_scores_the_lovasz_loss_per_image_and_a_weight_of_0_turns_both_off() -> None:
    _, faithful = build_configs("pix2pix", 3, 3, 64, preset="faithful")
    assert (faithful.lambda_lovasz, faithful.lovasz_per_image) == (30.0, True)
    _, off = build_configs("pix2pix", 3, 3, 64, preset="faithful",
                           overrides={"lambda_lovasz": 0.0, "lovasz_per_image": None})
    assert (off.lambda_lovasz, off.lovasz_per_image) == (0.0, False)
    _, pooled = build_configs("pix2pix", 3, 3, 64, preset="faithful",
                              overrides={"lovasz_per_image": False})
    assert (pooled.lambda_lovasz, pooled.lovasz_per_image) == (30.0, False)
    with pytest.raises(ConfigError, match="needs a Lovász weight"):  # asked for: refused
        build_configs("pix2pix", 3, 3, 64, preset="faithful",
                      overrides={"lambda_lovasz": 0.0, "lovasz_per_image": True})
    _, paper = build_configs("pix2pix", 3, 3, 64, preset="paper")
    assert (paper.lambda_lovasz, paper.lovasz_per_image) == (0.0, False)


def test_feature_matching_pairs_share_one_diffaugment_draw() -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={**TINY, "d_scales": 2, "lambda_fm": 10.0,
                                            "diffaugment": True})
    trainer = Pix2PixTrainer(arch, config, CPU, "fp32")
    data = batch()
    # A generator that returns the target exactly: the real and the generated pair are the
    # same, and so must be everything the discriminator sees of them.
    _, loss = trainer._feature_matching(data["a"], data["b"], data["b"])
    assert float(loss.detach()) == 0.0


def test_expected_colours_are_the_palette_averaged_by_the_class_probabilities() -> None:
    colours = torch.tensor([[-1.0, 0.0, 1.0], [1.0, 1.0, -1.0], [0.0, -1.0, 0.5]])
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1, 0, 0] = 80.0  # certain: exactly the colour of class 1
    logits[0, :, 1, 1] = torch.tensor([0.0, float(torch.log(torch.tensor(3.0))), -80.0])
    drawn = expected_colours(logits, colours)
    assert drawn.shape == (1, 3, 2, 2)
    assert torch.allclose(drawn[0, :, 0, 0], colours[1])
    assert torch.allclose(drawn[0, :, 0, 1], colours.mean(0))  # equal logits: the mean
    assert torch.allclose(drawn[0, :, 1, 1], 0.25 * colours[0] + 0.75 * colours[1], atol=1e-6)


@pytest.mark.parametrize("judge_classes", [False, True])
def test_the_discriminator_judges_the_drawn_map_only_when_asked(judge_classes: bool) -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={**TINY, "judge_classes": judge_classes})
    arch = type(arch)(**{**arch.to_dict(), "palette": PALETTE})
    torch.manual_seed(0)
    trainer = Pix2PixTrainer(arch, config, CPU, "fp32", class_colours=torch.tensor(PALETTE))
    data = batch()
    data["mask_a"][:, :, :8] = 0  # nodata rows: zero in whatever the discriminator sees
    outputs: list[torch.Tensor] = []
    judged: list[torch.Tensor] = []
    trainer.generators["a2b"].register_forward_hook(
        lambda _m, _i, out: outputs.append(out.detach()))
    trainer.discriminators["b"].register_forward_pre_hook(
        lambda _m, args: judged.append(args[0].detach()))
    trainer.train_step(trainer.to_device(data))
    output, mask = outputs[0], data["mask_a"]
    expected = (expected_colours(output[:, 3:], torch.tensor(PALETTE)) if judge_classes
                else output[:, :3]) * mask
    fakes = [pair for pair in judged if not torch.equal(pair[:, 3:], data["b"] * mask)]
    assert len(judged) == 3 and len(fakes) == 2  # D's update (fake, real), G's update
    for pair in fakes:
        assert torch.allclose(pair[:, :3], data["a"] * mask)
        assert torch.allclose(pair[:, 3:], expected, atol=1e-6)
