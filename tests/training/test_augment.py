"""Augmentation for overhead imagery: pairs, masks and classes move together (warps and
CutMix); the discriminator's augmentation treats both halves of a pair alike; weight
averages."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geogan.errors import ConfigError
from geogan.nn.config import build_configs
from geogan.training import augment, loop
from geogan.training.steps import Pix2PixTrainer
from geogan.training.weight_average import WeightAverage


def _batch(seed: int = 0, n: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, size, size, generator=gen) * 2 - 1
    return {
        "a": a,
        "b": 0.5 - a,  # a pixel-wise affine function of the input: commutes with the warp
        "mask_a": (a[:, :1] > 0).float(),
        "mask_b": (a[:, :1] > 0).float(),
        "mask_probe": a[:, :1].clone(),  # a value resampled the way masks are
        "classes": (a[:, 0] > 0).long(),
    }


@pytest.mark.parametrize("settings", [
    {"rotate": True, "scale_jitter": 1.0, "crop_jitter": False},
    {"rotate": False, "scale_jitter": 1.5, "crop_jitter": False},
    {"rotate": False, "scale_jitter": 1.0, "crop_jitter": True},
    {"rotate": True, "scale_jitter": 1.25, "crop_jitter": True},
])
def test_geometric_moves_chips_masks_and_classes_together(settings: dict[str, object]) -> None:
    batch = _batch()
    out = augment.geometric(batch, generator=torch.Generator().manual_seed(3),
                            **settings)  # type: ignore[arg-type]
    assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in batch.items()}
    assert not torch.equal(out["a"], batch["a"])  # something moved
    # The same warp for input and target: the target is still the function of the input.
    assert torch.allclose(out["b"], 0.5 - out["a"], atol=1e-5)
    # Masks and classes: nearest-neighbour samples of the same places, still 0/1 and ids.
    probe = out["mask_probe"]
    assert torch.equal(out["mask_a"], (probe > 0).float())
    assert torch.equal(out["mask_b"], out["mask_a"])
    assert torch.equal(out["classes"], (probe[:, 0] > 0).long())
    assert out["classes"].dtype == torch.int64


@pytest.mark.parametrize("n", [1, 3])
def test_geometric_gives_what_a_warp_of_each_entry_gives(n: int) -> None:
    # Entries are resampled stacked, one call per mode: bit for bit the separate warps.
    batch = _batch(n=n, size=48)
    batch["a"] = batch["a"].bfloat16()  # each entry keeps its own type
    batch["classes"][:, :4] = -100  # ignored pixels stay ignored
    out = augment.geometric(batch, rotate=True, scale_jitter=1.25, crop_jitter=True,
                            generator=torch.Generator().manual_seed(7))
    theta = augment.random_affine(n, rotate=True, scale_jitter=1.25, crop_jitter=True,
                                  generator=torch.Generator().manual_seed(7))
    assert list(out) == list(batch)
    for name, value in batch.items():
        if name == "classes":
            alone = augment.warp(value[:, None].float(), theta, "nearest")[:, 0].round().long()
        else:
            alone = augment.warp(value, theta, "nearest" if name.startswith("mask_")
                                 else "bilinear")
        assert out[name].dtype == value.dtype and torch.equal(out[name], alone), name
    assert (out["classes"] == -100).any()


def test_affine_draws_are_rotations_zooms_and_the_papers_crop() -> None:
    gen = torch.Generator().manual_seed(0)
    theta = augment.random_affine(64, rotate=True, scale_jitter=1.0, crop_jitter=False,
                                  generator=gen)
    linear = theta[:, :, :2]
    # Pure rotations: orthonormal, determinant 1, no shift; angles spread over the circle.
    assert torch.allclose(linear @ linear.transpose(1, 2), torch.eye(2).expand(64, 2, 2),
                          atol=1e-6)
    assert torch.allclose(torch.linalg.det(linear), torch.ones(64), atol=1e-6)
    assert torch.count_nonzero(theta[:, :, 2]) == 0
    angles = torch.atan2(linear[:, 1, 0], linear[:, 0, 0])
    assert angles.min() < -2 and angles.max() > 2
    crop = augment.random_affine(64, rotate=False, scale_jitter=1.0, crop_jitter=True,
                                 generator=gen)
    assert torch.allclose(crop[:, 0, 0], torch.full((64,), 256 / 286))
    reach = 1 - 256 / 286  # the crop stays inside the enlarged chip
    assert crop[:, :, 2].abs().max() <= reach + 1e-6
    zoom = augment.random_affine(256, rotate=False, scale_jitter=2.0, crop_jitter=False,
                                 generator=gen)[:, 0, 0]
    assert 0.5 - 1e-6 <= zoom.min() < 0.7 and 1.4 < zoom.max() <= 2.0 + 1e-6
    assert math.isclose(float(torch.log(zoom).mean()), 0.0, abs_tol=0.1)


def test_diff_augment_is_identical_for_both_halves_of_the_pair() -> None:
    gen = torch.Generator().manual_seed(1)
    half = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    out = augment.diff_augment(torch.cat([half, half], dim=1), torch.Generator().manual_seed(2))
    assert torch.equal(out[:, :3], out[:, 3:])
    assert not torch.equal(out[:, :3], half)
    # Cutout and the zero-filled shift blank some pixels of every sample, in all channels.
    blank = (out == 0).all(dim=1)  # (N, H, W)
    assert bool(blank.flatten(1).any(dim=1).all())
    # Differentiable: gradients reach the input.
    x = torch.cat([half, half], dim=1).requires_grad_(True)
    augment.diff_augment(x, torch.Generator().manual_seed(2)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(("option", "value", "bad", "message"), [
    ("photometric", 0.3, 1.0, "photometric jitter"),
    ("colour", 0.5, 1.5, "colour jitter"),
    ("shadow", 1.0, 1.5, "shadow probability"),
    ("blur", 1.0, 1.5, "blur probability"),
    ("unsharp", 1.0, 1.5, "unsharp-mask probability"),
])
def test_the_trainer_changes_the_input_only_and_refuses_bad_settings(
        option: str, value: float, bad: float, message: str) -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={"ngf": 4, "ndf": 4, option: value})
    batch = _batch(size=64)
    aug = Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")._augmented(batch)
    assert not torch.equal(aug["a"], batch["a"])
    assert aug["a"].min() >= -1 and aug["a"].max() <= 1
    for name in ("b", "mask_a", "mask_b", "classes"):
        assert torch.equal(aug[name], batch[name]), name
    with pytest.raises(ConfigError, match=message):
        build_configs("pix2pix", 3, 3, 64, overrides={option: bad})


def test_shadow_darkens_one_soft_ellipse_keeping_each_pixels_colour() -> None:
    # Brightness at least 0.2 above the low end, so that the gain is measured precisely.
    images = torch.rand(64, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 1.8 - 0.8
    out = augment.shadow(images, 1.0, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    # Brightness above the range's low end scales by one gain per pixel, the same for
    # every band: the colour stays, only the light falls, and never below the range.
    gain = (out + 1) / (images + 1)
    assert torch.allclose(gain, gain[:, :1].expand_as(gain), atol=1e-5)
    gain = gain[:, 0]
    assert float(gain.min()) >= augment.SHADOW_DARKEST - 1e-5 and float(gain.max()) <= 1 + 1e-6
    assert out.min() >= -1 and out.max() <= 1
    for g in gain:
        shaded = g < 1 - 1e-6
        # One shadow per chip whose darkest part is at the drawn strength, with a
        # fading rim: some pixels between the shadow's floor and full light.
        assert shaded.any()
        floor = float(g.min())
        assert augment.SHADOW_DARKEST - 1e-5 <= floor <= augment.SHADOW_LIGHTEST + 1e-5
        rim = shaded & (g > floor + 1e-3)
        assert rim.any()
        # An ellipse is convex: between two shaded pixels of a row, every pixel is shaded.
        for row in shaded:
            cols = row.nonzero()[:, 0]
            if len(cols):
                assert bool(row[cols.min():cols.max() + 1].all())


def test_shadow_probability_and_reproducibility() -> None:
    images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(augment.shadow(images, 0.0, torch.Generator().manual_seed(1)), images)
    out = augment.shadow(images, 0.5, torch.Generator().manual_seed(1))
    shaded = (out != images).flatten(1).any(1)
    assert 16 < int(shaded.sum()) < 48
    # The same generator state gives the same shadows (training stays reproducible).
    again = augment.shadow(images, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def _gaussian_blur(image: torch.Tensor, sigma: float,
                   widest: float = augment.BLUR_SIGMA[1]) -> torch.Tensor:
    """One (C, H, W) image blurred pixel by pixel from the definition: reflected edges,
    taps to 3 standard deviations of the widest blur, normalised weights."""
    radius = math.ceil(3 * widest)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-taps**2 / (2 * sigma**2))
    weights /= weights.sum()
    h, w = image.shape[1:]
    rows = (torch.arange(h)[:, None] + taps.long()[None]).abs()  # reflect at the top
    rows = torch.where(rows > h - 1, 2 * (h - 1) - rows, rows)  # and at the bottom
    cols = (torch.arange(w)[:, None] + taps.long()[None]).abs()
    cols = torch.where(cols > w - 1, 2 * (w - 1) - cols, cols)
    x = image.double()
    x = (x[:, rows] * weights[:, None]).sum(2)  # (C, H, K, W) summed over the taps
    return (x[:, :, cols] * weights).sum(-1).float()


def test_blur_is_a_gaussian_of_the_input_within_the_drawn_widths() -> None:
    images = torch.rand(6, 3, 24, 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = augment.blur(images, 1.0, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= -1 and out.max() <= 1
    # The sample's blur is a Gaussian whose width lies in the range (found by searching
    # it): every band alike, with reflected edges, and its values are a weighted mean.
    widths = torch.linspace(augment.BLUR_SIGMA[0], augment.BLUR_SIGMA[1], 201)
    for image, blurred in zip(images, out, strict=True):
        errors = [float((_gaussian_blur(image, float(s)) - blurred).abs().max()) for s in widths]
        best = min(range(len(widths)), key=errors.__getitem__)
        assert errors[best] < 2e-3, errors[best]
    # A constant image stays constant: the weights sum to one, also at the edges.
    flat = torch.full((2, 3, 9, 9), 0.25)
    assert torch.allclose(augment.blur(flat, 1.0, torch.Generator().manual_seed(2)), flat)


@pytest.mark.parametrize(("transform", "draws"), [
    (augment.blur, ("chosen", "sigma")),
    (augment.unsharp, ("chosen", "sigma", "amount")),
])
def test_input_filters_probability_reproducibility_and_a_fixed_number_of_draws(
        transform, draws) -> None:
    images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(transform(images, 0.0, torch.Generator().manual_seed(1)), images)
    out = transform(images, 0.5, torch.Generator().manual_seed(1))
    changed = (out != images).flatten(1).any(1)
    assert 16 < int(changed.sum()) < 48
    assert torch.equal(out, transform(images, 0.5, torch.Generator().manual_seed(1)))
    # Each call takes the same draws whichever samples it filters, so that the draws of
    # the steps after it do not depend on that choice.
    expected = torch.Generator().manual_seed(3)
    for _ in draws:
        torch.rand(len(images), generator=expected)
    after = torch.rand(4, generator=expected)
    for probability in (0.0, 0.5, 1.0):
        gen = torch.Generator().manual_seed(3)
        transform(images, probability, gen)
        assert torch.equal(torch.rand(4, generator=gen), after)
    # Tiles smaller than the filter's reach still come out the shape they went in.
    tiny = images[:2, :, :3, :3]
    assert transform(tiny, 1.0, torch.Generator().manual_seed(4)).shape == tiny.shape
    # The networks' channels-last layout is kept.
    last = images.contiguous(memory_format=torch.channels_last)
    out = transform(last, 0.5, torch.Generator().manual_seed(1))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, transform(images, 0.5, torch.Generator().manual_seed(1)))


def test_unsharp_is_an_unsharp_mask_clipped_to_each_bands_range() -> None:
    images = torch.rand(6, 3, 24, 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = augment.unsharp(images, 0.5, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    # The draws, in the documented order: which samples, then radii, then amounts.
    draws = torch.Generator().manual_seed(1)
    chosen = torch.rand(len(images), generator=draws) < 0.5
    sigma = torch.rand(len(images), generator=draws)
    amount = torch.rand(len(images), generator=draws)
    assert 0 < int(chosen.sum()) < len(images)
    for image, sharp, picked, s, a in zip(images, out, chosen, sigma, amount, strict=True):
        if not picked:
            assert torch.equal(sharp, image)
            continue
        s = augment.UNSHARP_SIGMA[0] + (augment.UNSHARP_SIGMA[1] - augment.UNSHARP_SIGMA[0]) * s
        a = augment.UNSHARP_AMOUNT[0] + (augment.UNSHARP_AMOUNT[1] - augment.UNSHARP_AMOUNT[0]) * a
        expected = image + a * (image - _gaussian_blur(image, float(s), augment.UNSHARP_SIGMA[1]))
        low = image.amin(dim=(1, 2), keepdim=True)
        high = image.amax(dim=(1, 2), keepdim=True)
        expected = torch.minimum(torch.maximum(expected, low), high)
        assert float((sharp - expected).abs().max()) < 2e-3
        # Sharpened: more of the image's power lies in its finest detail than before.
        detail = sharp[:, 1:, :] - sharp[:, :-1, :]
        assert float(detail.pow(2).mean()) > float((image[:, 1:] - image[:, :-1]).pow(2).mean())
    # A constant image stays constant.
    flat = torch.full((2, 3, 9, 9), 0.25)
    assert torch.allclose(augment.unsharp(flat, 1.0, torch.Generator().manual_seed(2)), flat)


def _grey_and_colour(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grey = images.mean(dim=1, keepdim=True)
    return grey, images - grey


def test_colour_keeps_each_pixels_grey_and_turns_its_colour_by_one_draw_per_chip() -> None:
    # Pixels away from the range's ends, so that nothing is clipped.
    images = torch.rand(32, 3, 12, 12, generator=torch.Generator().manual_seed(0)) * 0.6 - 0.3
    out = augment.colour(images, 0.8, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    grey, chroma = _grey_and_colour(images)
    out_grey, out_chroma = _grey_and_colour(out)
    assert torch.allclose(out_grey, grey, atol=1e-6)
    # One saturation per chip: every pixel's colour scaled alike, within [1 - S, 1 + S].
    ratio = out_chroma.norm(dim=1) / chroma.norm(dim=1)  # (N, H, W)
    scale = ratio.flatten(1).mean(1)
    assert torch.allclose(ratio, scale[:, None, None].expand_as(ratio), atol=1e-4)
    assert float(scale.min()) >= 0.2 - 1e-4 and float(scale.max()) <= 1.8 + 1e-4
    # One hue turn per chip around the grey axis: the same angle between every pixel's
    # colour before and after, within ±S × 60°, and the colour stays off the grey axis.
    cosine = (chroma * out_chroma).sum(1) / (chroma.norm(dim=1) * out_chroma.norm(dim=1))
    angle = torch.acos(cosine.clamp(-1, 1))  # (N, H, W)
    turn = angle.flatten(1).median(1).values
    assert torch.allclose(angle, turn[:, None, None].expand_as(angle), atol=2e-3)
    assert float(turn.max()) <= 0.8 * augment.COLOUR_HUE + 1e-3
    assert float(turn.max()) > 0.3 * augment.COLOUR_HUE  # turns are drawn, not only scales
    assert out_chroma.sum(dim=1).abs().max() < 1e-5
    # The same generator state gives the same colours (training stays reproducible).
    assert torch.equal(out, augment.colour(images, 0.8, torch.Generator().manual_seed(1)))


def test_colour_leaves_grey_and_single_band_chips_and_clips_to_the_range() -> None:
    gen = torch.Generator().manual_seed(0)
    grey = torch.rand(8, 1, 10, 10, generator=gen) * 2 - 1
    assert torch.equal(augment.colour(grey, 1.0, torch.Generator().manual_seed(1)), grey)
    rgb_grey = grey.expand(8, 3, 10, 10)
    assert torch.allclose(augment.colour(rgb_grey, 1.0, torch.Generator().manual_seed(1)),
                          rgb_grey, atol=1e-6)
    # Two bands: no hue to turn, the difference between the bands scaled per chip.
    two_bands = torch.rand(8, 2, 10, 10, generator=gen) * 0.8 - 0.4
    out = augment.colour(two_bands, 1.0, torch.Generator().manual_seed(1))
    assert torch.allclose(out.mean(1), two_bands.mean(1), atol=1e-6)
    scale = (out[:, 0] - out[:, 1]) / (two_bands[:, 0] - two_bands[:, 1])
    assert torch.allclose(scale, scale[:, :1, :1].expand_as(scale), atol=1e-3)
    assert float(scale.min()) >= 0 and float(scale.max()) <= 2
    vivid = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(16, 3, 4, 4)
    out = augment.colour(vivid, 1.0, torch.Generator().manual_seed(2))
    assert out.min() >= -1 and out.max() <= 1


def test_cutmix_pastes_one_rectangle_of_another_pair_into_every_entry() -> None:
    batch = _batch(n=4, size=48)
    out = augment.cutmix(batch, 1.0, torch.Generator().manual_seed(5))
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {
        k: (v.shape, v.dtype) for k, v in batch.items()}
    for i in range(4):
        changed = (out["a"][i] != batch["a"][i]).any(0)  # (H, W)
        rows, cols = changed.any(1).nonzero()[:, 0], changed.any(0).nonzero()[:, 0]
        # One rectangle, 10-50 % of the chip (random values: every pasted pixel differs).
        box = torch.zeros_like(changed)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert torch.equal(changed, box)
        assert 0.1 * 48 * 48 * 0.9 <= int(box.sum()) <= 0.5 * 48 * 48 * 1.1
        # Pasted from one other sample, the same place in every entry.
        sources = [j for j in range(4) if j != i
                   and torch.equal(out["a"][i][:, box], batch["a"][j][:, box])]
        assert len(sources) == 1
        j = sources[0]
        for name in ("b", "mask_a", "mask_b", "mask_probe", "classes"):
            expected = batch[name][i].clone()
            expected[..., box] = batch[name][j][..., box]
            assert torch.equal(out[name][i], expected), name
    assert torch.allclose(out["b"], 0.5 - out["a"])  # the pairs still match


def test_cutmix_leaves_single_chips_and_probability_zero_alone() -> None:
    gen = torch.Generator().manual_seed(0)
    one, batch = _batch(n=1), _batch(n=4)
    assert augment.cutmix(one, 1.0, gen) is one
    assert augment.cutmix(batch, 0.0, gen) is batch
    # With probability 0.5 some pairs of a large batch are mixed and some are not.
    big = _batch(n=64, size=16)
    out = augment.cutmix(big, 0.5, gen)
    mixed = (out["a"] != big["a"]).flatten(1).any(1)
    assert 10 < int(mixed.sum()) < 54


def test_trainer_mixes_pairs_when_configured_and_refuses_bad_probabilities() -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={"ngf": 4, "ndf": 4, "cutmix": 1.0,
                                            "batch_size": 3})
    batch = _batch(n=3, size=64)
    out = Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")._augmented(batch)
    assert not torch.equal(out["a"], batch["a"])
    assert torch.allclose(out["b"], 0.5 - out["a"])
    with pytest.raises(ConfigError, match="CutMix probability"):
        build_configs("pix2pix", 3, 3, 64, overrides={"cutmix": 1.5})
    with pytest.raises(ConfigError, match="batch size of 2 or more, not 1"):
        build_configs("pix2pix", 3, 3, 64, preset="paper", overrides={"cutmix": 0.5})



def test_the_last_steps_of_augment_until_train_on_the_chips_as_they_are() -> None:
    everything = {"rotate": True, "scale_jitter": 1.5, "crop_jitter": True, "cutmix": 1.0,
                  "photometric": 0.3, "colour": 0.5, "shadow": 1.0, "augment_until": 0.8,
                  "batch_size": 2}
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={"ngf": 4, "ndf": 4, **everything})
    trainer = Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")
    batch = _batch(size=64)
    draws = trainer.augment_rng.get_state()
    trainer.augmenting = False
    plain = trainer._augmented(batch)
    assert plain.keys() == batch.keys()
    assert all(torch.equal(plain[k], batch[k]) for k in batch)
    assert torch.equal(trainer.augment_rng.get_state(), draws)  # nothing drawn either
    trainer.augmenting = True
    warped = trainer._augmented(batch)
    assert all(not torch.equal(warped[k], batch[k]) for k in ("a", "b", "mask_a"))
    # The loop's rule: the first ceil(until × total) steps (from 0) are augmented.
    assert [loop.augmenting(s, 10, 0.8) for s in range(10)] == [True] * 8 + [False] * 2
    assert [loop.augmenting(s, 7, 0.5) for s in range(7)] == [True] * 4 + [False] * 3
    assert all(loop.augmenting(s, 10, 1.0) for s in range(12))
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="share of augmented steps"):
            build_configs("pix2pix", 3, 3, 64, overrides={"augment_until": bad})

def test_weight_average_follows_the_update_rule() -> None:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    average = WeightAverage(network, decay=0.9)
    # Warm-up: d = min(decay, (1 + n) / (10 + n)), so 0.1 at the first update, then more.
    assert average.current_decay() == pytest.approx(0.1)
    average.updates = 100
    assert average.current_decay() == pytest.approx(0.9)
    start = [p.detach().clone() for p in average.average.parameters()]
    with torch.no_grad():
        for p in network.parameters():
            p.add_(1.0)
        network[1].running_mean.fill_(5.0)
    average.update()
    assert average.updates == 101
    for before, now, target in zip(start, average.average.parameters(), network.parameters(),
                                   strict=True):
        assert torch.allclose(now, 0.9 * before + 0.1 * target.detach(), atol=1e-6)
        assert not now.requires_grad
    # Buffers are copied, not averaged (they are recomputed before the model is written).
    assert torch.equal(average.average[1].running_mean, torch.full((3,), 5.0))
    with pytest.raises(ValueError):
        WeightAverage(network, decay=1.0)


def test_trainer_keeps_averages_in_checkpoints_and_writes_them() -> None:
    arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={"ngf": 4, "ndf": 4, "ema": 0.5, "rotate": True,
                                            "diffaugment": True})
    trainer = Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")
    trainer.train_step(_batch(size=64))
    averaged = trainer.output_generators["a2b"]
    assert averaged is not trainer.generators["a2b"]
    state = trainer.state_dict()
    again = Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")
    again.load_state_dict(state)
    for mine, theirs in zip(again.output_generators["a2b"].state_dict().values(),
                            averaged.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(again.augment_rng.get_state(), trainer.augment_rng.get_state())
