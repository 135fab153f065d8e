"""The losses: values by hand, weighting by valid fraction, zero weights, precision."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from geogan.errors import ConfigError
from geogan.nn.losses import (
    GAN_LOSSES,
    IGNORED_CLASS,
    LSGANLoss,
    VanillaGANLoss,
    cross_entropy_without_sync,
    gan_loss,
    hardest_cross_entropy,
    masked_cross_entropy,
    masked_l1,
    patch_weights,
)

LOGITS = [0.0, 2.0, -1.0, 3.0]


def logits(requires_grad: bool = False) -> Tensor:
    """[[0, 2], [-1, 3]] as a (1, 1, 2, 2) discriminator output."""
    return torch.tensor(LOGITS).reshape(1, 1, 2, 2).requires_grad_(requires_grad)


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-6, abs=1e-7)


# --- GAN losses -----------------------------------------------------------------------

def test_vanilla_is_bce_with_logits_by_hand() -> None:
    loss = gan_loss("vanilla")
    real = sum(math.log(1 + math.exp(-x)) for x in LOGITS) / 4  # -log sigmoid(x)
    fake = sum(math.log(1 + math.exp(x)) for x in LOGITS) / 4  # -log(1 - sigmoid(x))
    assert loss(logits(), True).item() == approx(real)
    assert loss(logits(), False).item() == approx(fake)
    assert real == approx((math.log(2) + softplus(-2) + softplus(1) + softplus(-3)) / 4)


def test_lsgan_is_mean_squared_error_by_hand() -> None:
    loss = gan_loss("lsgan")
    assert loss(logits(), True).item() == approx((1 + 1 + 4 + 4) / 4)
    assert loss(logits(), False).item() == approx((0 + 4 + 1 + 9) / 4)


def test_weight_gives_weighted_mean() -> None:
    weight = torch.tensor([[0.5, 1.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    vanilla = gan_loss("vanilla")(logits(), True, weight)
    assert vanilla.item() == approx((0.5 * math.log(2) + softplus(-2)) / 1.5)
    lsgan = gan_loss("lsgan")(logits(), False, weight)
    assert lsgan.item() == approx((0.5 * 0 + 4) / 1.5)


@pytest.mark.parametrize("name", ["vanilla", "lsgan"])
@pytest.mark.parametrize("real", [True, False])
def test_all_ones_weight_equals_plain_mean(name: str, real: bool) -> None:
    prediction = torch.randn(3, 1, 5, 5)
    loss = gan_loss(name)
    weighted = loss(prediction, real, torch.ones(3, 1, 5, 5))
    torch.testing.assert_close(weighted, loss(prediction, real))
    # A weight broadcast over the batch, and a constant weight, give the same.
    torch.testing.assert_close(loss(prediction, real, torch.full((1, 1, 5, 5), 0.3)), weighted)


@pytest.mark.parametrize("name", ["vanilla", "lsgan"])
def test_zero_weight_gives_zero_with_a_gradient_path(name: str) -> None:
    prediction = logits(requires_grad=True)
    value = gan_loss(name)(prediction, True, torch.zeros(1, 1, 2, 2))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert prediction.grad is not None and not prediction.grad.any()


@pytest.mark.parametrize("name", ["vanilla", "lsgan"])
def test_gan_loss_is_float32_for_bf16_logits_and_under_autocast(name: str) -> None:
    prediction = logits().to(torch.bfloat16)
    loss = gan_loss(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(prediction, True, torch.ones(1, 1, 2, 2))
    assert value.dtype == torch.float32 and value.ndim == 0
    assert value.item() == pytest.approx(loss(logits(), True).item(), rel=1e-6)


def test_gan_loss_gradient_pushes_logits_the_right_way() -> None:
    prediction = logits(requires_grad=True)
    gan_loss("vanilla")(prediction, True).backward()
    assert prediction.grad is not None and (prediction.grad < 0).all()  # raise "real" logits


def test_gan_loss_registry() -> None:
    assert set(GAN_LOSSES) == {"vanilla", "lsgan"}
    assert isinstance(gan_loss("vanilla"), VanillaGANLoss)
    assert isinstance(gan_loss("lsgan"), LSGANLoss)
    with pytest.raises(ConfigError, match="vanilla, lsgan"):
        gan_loss("wgan")


# --- masked L1 ------------------------------------------------------------------------

def test_masked_l1_by_hand() -> None:
    prediction = torch.tensor([[[1.0, -2.0], [3.0, 0.5]],
                               [[0.0, 4.0], [-1.0, 2.0]]]).unsqueeze(0)  # (1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    assert masked_l1(prediction, target).item() == approx((1 + 2 + 3 + 0.5 + 0 + 4 + 1 + 2) / 8)
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)  # top row valid
    assert masked_l1(prediction, target, mask).item() == approx((1 + 2 + 0 + 4) / 4)


def test_masked_l1_with_full_mask_equals_mean() -> None:
    prediction, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    full = masked_l1(prediction, target, torch.ones(2, 1, 8, 8))
    torch.testing.assert_close(full, (prediction - target).abs().mean())
    torch.testing.assert_close(masked_l1(prediction, target), full)


def test_masked_l1_ignores_values_under_nodata() -> None:
    prediction, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    mask = torch.ones(2, 1, 8, 8)
    mask[:, :, :, 4:] = 0
    changed = target.clone()
    changed[:, :, :, 4:] = 1000.0
    torch.testing.assert_close(masked_l1(prediction, changed, mask),
                               masked_l1(prediction, target, mask))
    torch.testing.assert_close(masked_l1(prediction, target, mask),
                               (prediction - target)[..., :4].abs().mean())


def test_masked_l1_zero_mask_gives_zero_with_a_gradient_path() -> None:
    prediction = torch.randn(1, 2, 4, 4, requires_grad=True)
    value = masked_l1(prediction, torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
    assert value.item() == 0.0
    value.backward()
    assert prediction.grad is not None and not prediction.grad.any()


def test_masked_l1_is_float32_for_bf16_inputs() -> None:
    prediction = torch.randn(1, 2, 4, 4).to(torch.bfloat16)
    value = masked_l1(prediction, torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 4))
    assert value.dtype == torch.float32 and value.ndim == 0


# --- patch weights --------------------------------------------------------------------

def half_mask(size: int = 8) -> Tensor:
    """(1, 1, size, size), valid in the left half."""
    mask = torch.zeros(1, 1, size, size)
    mask[..., : size // 2] = 1
    return mask


def test_patch_weights_are_valid_fractions() -> None:
    mask = half_mask(8)
    assert patch_weights(mask, (2, 2)).tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]
    assert patch_weights(mask, (1, 1)).item() == 0.5
    # 8 -> 3 cells: columns 0-2, 2-5 and 5-7; the middle one is half valid.
    assert patch_weights(mask, (3, 3)).tolist() == [[[[1.0, 0.5, 0.0]] * 3]]


def test_patch_weights_for_a_256_px_chip_and_30_x_30_logits() -> None:
    mask = half_mask(256).expand(2, 1, 256, 256)
    weights = patch_weights(mask, torch.Size([30, 30]))
    assert weights.shape == (2, 1, 30, 30) and weights.dtype == torch.float32
    assert (weights[..., :14] == 1).all() and (weights[..., 16:] == 0).all()
    assert weights.sum().item() == pytest.approx(2 * 30 * 15)  # symmetric about the middle
    assert (patch_weights(torch.ones(1, 1, 256, 256), (30, 30)) == 1).all()


def test_patch_weights_make_nodata_patches_count_for_nothing() -> None:
    prediction = torch.randn(1, 1, 2, 2)
    prediction[..., 1] = 1000.0  # over nodata: must not matter
    weight = patch_weights(half_mask(8), prediction.shape[-2:])
    value = gan_loss("lsgan")(prediction, True, weight)
    assert value.item() == approx(((prediction[..., 0] - 1) ** 2).mean().item())


def test_patch_weights_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="N, 1, H, W"):
        patch_weights(torch.ones(8, 8), (2, 2))
    with pytest.raises(ValueError, match="h, w"):
        patch_weights(torch.ones(1, 1, 8, 8), (2, 2, 2))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_gpu_cross_entropy_equals_the_masked_one_without_a_sync(
        weighted: bool, smoothing: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 5, generator=generator)
    classes = torch.randint(0, 4, (2, 5, 5), generator=generator)
    classes[0, :2] = IGNORED_CLASS
    weight = torch.tensor([0.5, 1.0, 2.0, 0.5]) if weighted else None
    assert torch.allclose(cross_entropy_without_sync(logits, classes, weight, smoothing),
                          masked_cross_entropy(logits, classes, weight, smoothing), atol=1e-6)
    none = torch.full_like(classes, IGNORED_CLASS)
    assert float(cross_entropy_without_sync(logits, none, weight, smoothing)) == 0.0


def test_label_smoothing_spreads_the_target_over_every_class_and_skips_ignored_pixels() -> None:
    """Each counted pixel's target is 1 - ε on its class and ε / K on each class, every
    class's term weighted as that class, over the weights of the pixels' own classes."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 4, 4, generator=generator)
    classes = torch.randint(0, 3, (1, 4, 4), generator=generator)
    classes[0, 0] = IGNORED_CLASS
    logits[0, :, 0] = 1e4  # whatever the ignored row holds must not count
    weight = torch.tensor([1.0, 3.0, 0.5])
    eps = 0.2
    log_p = torch.log_softmax(logits, 1)[0]  # (K, H, W)
    total = counted = 0.0
    for y, x in zip(*torch.nonzero(classes[0] != IGNORED_CLASS, as_tuple=True), strict=True):
        k = int(classes[0, y, x])
        target = torch.full((3,), eps / 3)
        target[k] += 1 - eps
        total += float(-(target * weight * log_p[:, y, x]).sum())
        counted += float(weight[k])
    assert float(masked_cross_entropy(logits, classes, weight, eps)) == approx(total / counted)
    # Certain, right logits no longer cost nothing: the head is kept from certainty.
    sure = torch.nn.functional.one_hot(classes.clamp_min(0), 3).permute(0, 3, 1, 2) * 50.0
    assert float(masked_cross_entropy(sure, classes, None, 0.0)) == approx(0.0)
    assert float(masked_cross_entropy(sure, classes, None, eps)) > 1.0


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_pixel_as_hard_pixels_is_the_masked_cross_entropy(weighted: bool,
                                                                 smoothing: float) -> None:
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 5, 5, generator=generator)
    classes = torch.randint(0, 4, (2, 5, 5), generator=generator)
    classes[1, 3:] = IGNORED_CLASS
    weight = torch.tensor([0.5, 1.0, 2.0, 0.5]) if weighted else None
    assert torch.equal(hardest_cross_entropy(logits, classes, 1.0, weight, smoothing),
                       masked_cross_entropy(logits, classes, weight, smoothing))


def test_hard_pixels_average_the_highest_weighted_losses_over_their_own_weights() -> None:
    """Of 8 pixels, 2 ignored (whatever their logits), the hardest quarter (2 pixels) by
    weighted loss: their weighted losses over their classes' weights."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 3, 2, 4, generator=generator) * 3
    classes = torch.randint(0, 3, (1, 2, 4), generator=generator)
    classes[0, 0, :2] = IGNORED_CLASS
    logits[0, :, 0, :2] = torch.tensor([50.0, -50.0, -50.0])[:, None]  # a huge loss if counted
    weight = torch.tensor([1.0, 2.0, 0.5])
    log_p = torch.log_softmax(logits, 1)[0]
    losses = []
    for y, x in zip(*torch.nonzero(classes[0] != IGNORED_CLASS, as_tuple=True), strict=True):
        k = int(classes[0, y, x])
        losses.append((float(-weight[k] * log_p[k, y, x]), float(weight[k])))
    losses.sort(reverse=True)
    expected = (losses[0][0] + losses[1][0]) / (losses[0][1] + losses[1][1])
    assert float(hardest_cross_entropy(logits, classes, 0.25, weight)) == approx(expected)
    # Fewer classed pixels than the share asks for: the unclassed ones weigh nothing.
    everything = sum(loss for loss, _ in losses) / sum(w for _, w in losses)
    assert float(hardest_cross_entropy(logits, classes, 0.9, weight)) == approx(everything)


def test_hard_pixels_give_a_zero_with_a_gradient_path_when_no_pixel_has_a_class() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    none = torch.full((1, 4, 4), IGNORED_CLASS)
    loss = hardest_cross_entropy(logits, none, 0.5)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert logits.grad is not None


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_hard_pixels_refuse_a_share_outside_0_to_1(share: float) -> None:
    with pytest.raises(ConfigError, match="hard pixels"):
        hardest_cross_entropy(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long),
                              share)
