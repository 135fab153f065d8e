"""Tests of the image metrics, with SSIM checked against a plain numpy float64 version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from geogan.evaluation.class_metrics import (
    palette_confusion,
    palette_scores,
    scores_from_confusion,
    snap_to_palette,
)
from geogan.evaluation.image_metrics import PSNR_CAP_DB, MetricMean, image_metrics, l1, psnr, ssim

SIZE = 32


def reference_ssim(
    x: NDArray[np.float64], y: NDArray[np.float64], valid: NDArray[np.bool_] | None = None
) -> NDArray[np.float64]:
    """Wang et al. SSIM written directly: every 11 x 11 window is cut out, weighted by the
    Gaussian, and its moments taken in two passes; (N, C, H, W) -> (N,)."""
    offsets = np.arange(11) - 5.0
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    weights = np.outer(g, g) / np.outer(g, g).sum()  # (11, 11)
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    wx = sliding_window_view(x, (11, 11), axis=(2, 3))  # (N, C, Ho, Wo, 11, 11)
    wy = sliding_window_view(y, (11, 11), axis=(2, 3))
    mx = (wx * weights).sum(axis=(-2, -1))  # (N, C, Ho, Wo)
    my = (wy * weights).sum(axis=(-2, -1))
    dx, dy = wx - mx[..., None, None], wy - my[..., None, None]
    vx = (dx * dx * weights).sum(axis=(-2, -1))
    vy = (dy * dy * weights).sum(axis=(-2, -1))
    cxy = (dx * dy * weights).sum(axis=(-2, -1))
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    if valid is None:
        return np.asarray(s.mean(axis=(1, 2, 3)))
    ok = np.asarray(sliding_window_view(valid, (11, 11), axis=(1, 2)).all(axis=(-2, -1)))
    ok = np.broadcast_to(ok[:, None], s.shape)  # (N, C, Ho, Wo)
    return np.array([s[i][ok[i]].mean() for i in range(len(s))])


def images(
    rng: np.random.Generator, n: int = 2, c: int = 3, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth-ish random targets in [-1, 1] and a noisy prediction of them."""
    coarse = rng.uniform(-0.8, 0.8, (n, c, SIZE // 4, SIZE // 4))
    target = torch.from_numpy(np.kron(coarse, np.ones((4, 4)))).float()  # (N, C, H, W)
    target = target + 0.05 * torch.from_numpy(rng.standard_normal(target.shape)).float()
    prediction = target + noise * torch.from_numpy(rng.standard_normal(target.shape)).float()
    return prediction.clamp(-1, 1), target.clamp(-1, 1)


def random_mask(rng: np.random.Generator, n: int = 2) -> torch.Tensor:
    """A (N, 1, H, W) 0/1 float mask: a valid block with an invalid corner and stripe."""
    mask = np.ones((n, 1, SIZE, SIZE), dtype=np.float32)
    mask[:, :, :6, :9] = 0
    mask[:, :, 20:22, :] = 0
    mask[:, :, rng.integers(0, SIZE, 5), rng.integers(0, SIZE, 5)] = 0
    return torch.from_numpy(mask)


@pytest.mark.parametrize("channels", [1, 4])
def test_identical_images_score_perfectly(rng: np.random.Generator, channels: int) -> None:
    _, target = images(rng, c=channels)
    scores = image_metrics(target.clone(), target)
    assert torch.equal(scores["l1"], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(scores["psnr"], torch.full((2,), PSNR_CAP_DB, dtype=torch.float64))
    assert torch.allclose(scores["ssim"], torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in scores.values())


@pytest.mark.parametrize("offset", [0.25, 0.5, 0.0625])
def test_constant_offset(offset: float) -> None:
    # Values on a dyadic grid, so x + offset is exact in float32.
    target = torch.linspace(-0.5, 0.25, 4).repeat(1, 3, SIZE, SIZE // 4)  # (1, 3, H, W)
    prediction = target + offset
    assert l1(prediction, target).item() == offset
    assert psnr(prediction, target).item() == pytest.approx(
        10 * math.log10(4 / offset**2), rel=1e-12
    )


@pytest.mark.parametrize("channels", [1, 4])
def test_ssim_matches_reference(rng: np.random.Generator, channels: int) -> None:
    prediction, target = images(rng, n=3, c=channels, noise=0.2)
    expected = reference_ssim(prediction.double().numpy(), target.double().numpy())
    got = ssim(prediction, target).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got < 1).all() and (got > 0).all()


def test_ssim_matches_reference_with_mask(rng: np.random.Generator) -> None:
    prediction, target = images(rng, n=2, c=3, noise=0.2)
    mask = random_mask(rng)
    valid = mask[:, 0].numpy() > 0.5
    expected = reference_ssim(prediction.double().numpy(), target.double().numpy(), valid)
    np.testing.assert_allclose(ssim(prediction, target, mask).numpy(), expected, atol=1e-5)


def test_ssim_is_symmetric_and_at_most_one(rng: np.random.Generator) -> None:
    prediction, target = images(rng, n=4, c=3, noise=0.5)
    forward, backward = ssim(prediction, target), ssim(target, prediction)
    np.testing.assert_allclose(forward.numpy(), backward.numpy(), rtol=0, atol=1e-12)
    assert (forward <= 1).all()
    # More noise, less similar.
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    assert (ssim((target + 0.1 * noise).clamp(-1, 1), target) > forward).all()


def test_masked_pixels_do_not_change_results(rng: np.random.Generator) -> None:
    prediction, target = images(rng, n=2, c=4)
    mask = random_mask(rng)
    before = image_metrics(prediction, target, mask)
    invalid = (mask == 0).expand_as(prediction)
    changed_prediction = prediction.masked_fill(invalid, float("nan"))
    changed_target = torch.where(invalid, torch.rand_like(target) * 100, target)
    after = image_metrics(changed_prediction, changed_target, mask)
    for name in before:
        np.testing.assert_allclose(after[name].numpy(), before[name].numpy(), rtol=0, atol=1e-12)
    # A bool mask is read the same way as a 0/1 float one.
    as_bool = image_metrics(prediction, target, mask.bool())
    for name in before:
        np.testing.assert_allclose(as_bool[name].numpy(), before[name].numpy(), rtol=0, atol=0)


def test_all_invalid_image_gives_nan_and_is_ignored_by_the_mean(
    rng: np.random.Generator,
) -> None:
    prediction, target = images(rng, n=2, c=3)
    mask = torch.ones(2, 1, SIZE, SIZE)
    mask[1] = 0
    scores = image_metrics(prediction, target, mask)
    for values in scores.values():
        assert not torch.isnan(values[0]) and torch.isnan(values[1])

    mean = MetricMean()
    mean.update(scores)
    mean.update(image_metrics(target, target))
    assert mean.counts() == {"l1": 3, "psnr": 3, "ssim": 3}
    result = mean.result()
    assert result["l1"] == pytest.approx(scores["l1"][0].item() / 3)
    assert result["psnr"] == pytest.approx((scores["psnr"][0].item() + 2 * PSNR_CAP_DB) / 3)
    assert result["ssim"] == pytest.approx((scores["ssim"][0].item() + 2) / 3)


def test_ssim_needs_a_whole_valid_window() -> None:
    # Valid pixels everywhere except a grid of holes closer than 11 pixels apart.
    target = torch.zeros(1, 1, SIZE, SIZE)
    mask = torch.ones(1, 1, SIZE, SIZE)
    mask[..., ::8, ::8] = 0
    assert torch.isnan(ssim(target, target, mask)).all()
    assert l1(target, target, mask).item() == 0


def test_metric_mean_when_empty() -> None:
    mean = MetricMean()
    result = mean.result()
    assert list(result) == ["l1", "psnr", "ssim"]
    assert all(math.isnan(v) for v in result.values())
    mean.update({"fid": torch.tensor([float("nan")]), "l1": torch.tensor([0.5, 1.5])})
    result = mean.result()
    assert result["l1"] == 1.0 and math.isnan(result["fid"])


def test_scores_ignore_autocast_and_low_precision_inputs(rng: np.random.Generator) -> None:
    prediction, target = images(rng, n=2, c=3, noise=0.2)
    expected = image_metrics(prediction, target)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = image_metrics(prediction, target)
    for name in expected:
        assert got[name].dtype == torch.float64
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=0, atol=0)


def test_bad_shapes_are_refused() -> None:
    a = torch.zeros(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="same shape"):
        l1(a, torch.zeros(1, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="mask"):
        psnr(a, a, torch.ones(1, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="N, C, H, W"):
        l1(a[0], a[0])


# --------------------------------------------------------------------------- map classes

PALETTE = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0)}


def paint(rows: list[str], noise: int = 0) -> NDArray[np.uint8]:
    """A (3, H, W) uint8 map from rows of class initials (k, w, r), each colour moved
    ``noise`` grey levels towards the middle, as a translated map's colours are."""
    colours = {"k": (0, 0, 0), "w": (255, 255, 255), "r": (255, 0, 0)}
    image = np.array([[colours[c] for c in row] for row in rows], dtype=np.int64)  # (H, W, 3)
    image = np.where(image > 127, image - noise, image + noise)
    return image.transpose(2, 0, 1).astype(np.uint8)


def test_snap_to_palette_picks_the_nearest_colour() -> None:
    image = paint(["kwr", "rwk"], noise=40)
    assert snap_to_palette(image, PALETTE).tolist() == [[0, 1, 2], [2, 1, 0]]
    # The same with the palette as an array.
    colours = np.array(list(PALETTE.values()))
    assert snap_to_palette(image, colours).tolist() == [[0, 1, 2], [2, 1, 0]]


def test_snap_to_palette_ties_go_to_the_colour_listed_first() -> None:
    grey = np.full((3, 1, 1), 127.5)  # half-way between black and white
    assert snap_to_palette(grey, {"black": (0, 0, 0), "white": (255, 255, 255)})[0, 0] == 0
    assert snap_to_palette(grey, {"white": (255, 255, 255), "black": (0, 0, 0)})[0, 0] == 0


def test_palette_scores_on_a_hand_made_map() -> None:
    reference = paint(["kkw", "wrr"])
    prediction = paint(["kww", "wrk"], noise=30)
    scores = palette_scores(prediction, reference, PALETTE)
    # rows = reference, columns = prediction: black 1 right, 1 as white; white 2 right;
    # red 1 right, 1 as black.
    assert scores.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert scores.accuracy == {"black": 0.5, "white": 1.0, "red": 0.5}
    assert scores.iou == pytest.approx({"black": 1 / 3, "white": 2 / 3, "red": 1 / 2})
    assert scores.pixel_accuracy == pytest.approx(4 / 6)
    assert scores.mean_iou == pytest.approx(0.5)
    assert scores.pixels == 6 and scores.classes == ("black", "white", "red")


def test_identical_maps_score_perfectly() -> None:
    reference = paint(["kwr", "rrw"])
    scores = palette_scores(reference, reference, PALETTE)
    assert scores.pixel_accuracy == 1.0 and scores.mean_iou == 1.0
    assert set(scores.accuracy.values()) == {1.0} and set(scores.iou.values()) == {1.0}


def test_class_absent_from_the_reference_is_none_and_left_out_of_the_mean() -> None:
    reference = paint(["kkw", "wkw"])  # no red
    prediction = paint(["kkw", "wrw"])  # one black pixel painted red
    scores = palette_scores(prediction, reference, PALETTE)
    assert scores.accuracy["red"] is None and scores.iou["red"] is None
    assert scores.accuracy["black"] == pytest.approx(2 / 3)  # the red pixel counts against
    assert scores.iou == pytest.approx({"black": 2 / 3, "white": 1.0, "red": None})
    assert scores.mean_iou == pytest.approx((2 / 3 + 1.0) / 2)
    assert scores.pixel_accuracy == pytest.approx(5 / 6)


def test_invalid_pixels_are_not_scored() -> None:
    reference = paint(["kkw", "wrr"])
    prediction = paint(["kww", "wrk"])
    valid = np.array([[True, False, True], [True, True, False]])  # hide the two mistakes
    scores = palette_scores(prediction, reference, PALETTE, valid)
    assert scores.pixels == 4 and scores.pixel_accuracy == 1.0 and scores.mean_iou == 1.0
    nothing = palette_scores(prediction, reference, PALETTE, np.zeros((2, 3), dtype=bool))
    assert nothing.pixels == 0
    assert math.isnan(nothing.pixel_accuracy) and math.isnan(nothing.mean_iou)
    assert set(nothing.accuracy.values()) == {None}


def test_confusion_matrices_of_windows_add_up_to_the_whole() -> None:
    reference = paint(["kkwr", "wrrk", "rwkw"])
    prediction = paint(["kwwr", "wrkk", "rkkw"], noise=20)
    whole = palette_confusion(prediction, reference, PALETTE)
    parts = sum(palette_confusion(prediction[:, rows], reference[:, rows], PALETTE)
                for rows in (slice(0, 1), slice(1, 3)))
    assert np.array_equal(parts, whole)
    names = list(PALETTE)
    expected = palette_scores(prediction, reference, PALETTE).to_dict()
    assert scores_from_confusion(parts, names).to_dict() == expected


def test_palette_scores_to_dict_is_plain() -> None:
    reference = paint(["kw"])
    values = palette_scores(reference, reference, PALETTE).to_dict()
    assert values["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert values["accuracy"] == {"black": 1.0, "white": 1.0, "red": None}


def test_palette_functions_refuse_bad_shapes() -> None:
    image = paint(["kw"])
    with pytest.raises(ValueError, match="3, H, W"):
        snap_to_palette(image[:2], PALETTE)
    with pytest.raises(ValueError, match="same shape"):
        palette_scores(image, paint(["kwk"]), PALETTE)
    with pytest.raises(ValueError, match="valid must be"):
        palette_scores(image, image, PALETTE, np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="confusion must be"):
        scores_from_confusion(np.zeros((2, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="palette"):
        snap_to_palette(image, np.zeros((0, 3)))
