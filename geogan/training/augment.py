"""Augmentation of training batches for overhead imagery, on tensors.

Overhead scenes have no "up": streets run at every angle and objects come at every
scale, while 36 chips show only a few of each. These transforms make a few chips teach
more, and they keep the pairs aligned:

* :func:`geometric` warps the input, the target, their masks and the target's class map
  by one random rotation, zoom and shift per sample, the same for all of them (bilinear
  for values, nearest for masks and classes; reflection fills the corners).
* :func:`photometric` changes brightness, contrast and band gains of the **input only**:
  a map should not change because the photo was taken in other light.
* :func:`colour` changes the saturation and hue of the **input only**: the few chips
  show water, woods and parks in a few colours each, and a model that tells them apart
  by colour alone paints dark snowy conifers as a lake. On the real maps pairs it made
  that lake smaller but not gone, and cost the dark water it rightly drew (stop 52 in
  ``benchmarks/README.md``), so no preset uses it.
* :func:`shadow` darkens one soft-edged ellipse of the **input only**, as the shadow of
  a cloud, a tower or a hill does: a map does not change in the shade, so darkness alone
  must not say "water".
* :func:`blur` softens the **input only** by a Gaussian of a random width, as a
  coarser sensor, haze, motion or a photo read up from a coarser pixel size does: the
  map does not change, so the model must not need the chips' own sharpness to draw it.
* :func:`unsharp` sharpens the **input only** by an unsharp mask of a random radius and
  amount, as a vendor's sharpening does: on the real maps pairs a photo unsharp-masked
  after the fact lost a model its water and parks, which it had learnt to tell by their
  smoothness.
* :func:`cutmix` pastes a rectangle of another pair of the batch into a pair (CutMix, Yun
  et al. 2019), into the input, the target, their masks and the class map alike: new
  neighbourhoods for the few chips there are.
* :func:`diff_augment` is DiffAugment (Zhao et al. 2020) for the discriminator: the same
  differentiable brightness, contrast, translation and cutout for every channel of the
  (input, output) pair it judges, and for real and fake pairs alike, so that it cannot
  memorise a handful of chips.

Every draw comes from the ``torch.Generator`` passed in, so training stays reproducible
and resumable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CROP_JITTER_ZOOM = 286 / 256
"""The paper's random jitter: resize 256 px chips to 286 px and crop 256 px at random."""


def _on(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` (drawn on the CPU) on ``device``. To a GPU it goes through pinned
    memory without blocking: a copy from ordinary memory waits for all queued GPU work,
    and a step makes a dozen of them."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _boxes(top: Tensor, left: Tensor, rows: Tensor, cols: Tensor, height: int,
           width: int) -> Tensor:
    """(N, H, W) masks, True inside each sample's rectangle (its top-left corner and
    size, (N,) integers each)."""
    r = torch.arange(height)[None, :, None]
    c = torch.arange(width)[None, None, :]
    return ((r >= top[:, None, None]) & (r < (top + rows)[:, None, None])
            & (c >= left[:, None, None]) & (c < (left + cols)[:, None, None]))


def random_affine(n: int, *, rotate: bool, scale_jitter: float, crop_jitter: bool,
                  generator: torch.Generator) -> Tensor:
    """Random affine sampling matrices (N, 2, 3) for :func:`torch.nn.functional.affine_grid`.

    Args:
        n: Samples.
        rotate: Draw the angle uniformly in [0, 2π) (else 0).
        scale_jitter: Zoom drawn log-uniformly in [1 / s, s] (1: none).
        crop_jitter: Zoom in by :data:`CROP_JITTER_ZOOM` and shift by a random amount
            that keeps the crop inside the enlarged chip (the paper's jitter).
        generator: Source of the draws.

    Returns:
        Matrices that map output coordinates to input coordinates in [-1, 1] units.
    """
    angle = _uniform(n, 0.0, 2 * math.pi, generator) if rotate else torch.zeros(n)
    log_s = math.log(scale_jitter)
    zoom = torch.exp(_uniform(n, -log_s, log_s, generator))
    shift = torch.zeros(n, 2)
    if crop_jitter:
        zoom = zoom * CROP_JITTER_ZOOM
        reach = 1.0 - 1.0 / CROP_JITTER_ZOOM  # how far the crop may move, in [-1, 1] units
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * reach
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin, cos, shift[:, 1]
    return theta


def warp(images: Tensor, theta: Tensor, mode: str = "bilinear") -> Tensor:
    """Resample ``images`` (N, C, H, W) by the affine matrices ``theta`` (N, 2, 3),
    reflecting at the borders; ``mode`` is ``bilinear`` for values, ``nearest`` for
    masks and class indices."""
    return _sample(images, _grid(theta, images), mode)


def _grid(theta: Tensor, images: Tensor) -> Tensor:
    """The sampling grid of ``theta`` for images shaped like ``images``."""
    return F.affine_grid(_on(theta.float(), images.device), list(images.shape),
                         align_corners=False)


def _sample(images: Tensor, grid: Tensor, mode: str) -> Tensor:
    out = F.grid_sample(images.float(), grid, mode=mode, padding_mode="reflection",
                        align_corners=False)
    return out.to(images.dtype)


def geometric(batch: dict[str, Tensor], *, rotate: bool, scale_jitter: float,
              crop_jitter: bool, generator: torch.Generator) -> dict[str, Tensor]:
    """The batch with one random warp per sample applied to every entry alike.

    Entries named ``mask_*`` and ``classes`` are resampled by nearest neighbour (masks
    stay 0/1, class indices stay indices); the others bilinearly. ``classes`` is
    (N, H, W) integer; the rest (N, C, H, W).
    """
    planes = {name: value[:, None] if name == "classes" else value
              for name, value in batch.items()}  # (N, C, H, W) each
    first = next(iter(planes.values()))
    theta = random_affine(first.shape[0], rotate=rotate, scale_jitter=scale_jitter,
                          crop_jitter=crop_jitter, generator=generator)
    # One grid and one resampling per mode, the entries stacked along the channels: the
    # same values as a warp of each entry, for a fifth of the calls.
    grid = _grid(theta, first)
    out: dict[str, Tensor] = {}
    for mode, names in (("bilinear", [k for k in planes if not _nearest(k)]),
                        ("nearest", [k for k in planes if _nearest(k)])):
        if not names:
            continue
        stacked = _sample(torch.cat([planes[k].float() for k in names], 1), grid, mode)
        parts = torch.split(stacked, [planes[k].shape[1] for k in names], 1)
        for name, part in zip(names, parts, strict=True):
            if name == "classes":
                out[name] = part[:, 0].round().long()
            else:
                out[name] = part.to(batch[name].dtype)
    return {name: out[name] for name in batch}


def _nearest(name: str) -> bool:
    """Whether an entry holds masks or class indices, resampled by nearest neighbour."""
    return name == "classes" or name.startswith("mask_")


def photometric(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Random brightness, contrast and per-band gain of normalised images (N, C, H, W),
    each up to ``strength`` (0.2: ±20 % contrast, ±10 % of the range in brightness,
    ±5 % per band), clipped to [-1, 1]."""
    n, c = images.shape[:2]
    device = images.device
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * strength
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * strength / 2
    gain = 1 + (torch.rand(n, c, 1, 1, generator=generator) * 2 - 1) * strength / 4
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    out = (images - mean) * _on(contrast * gain, device) + mean + _on(brightness, device)
    return out.clamp(-1.0, 1.0)


COLOUR_HUE = math.pi / 3
"""The largest hue rotation, at strength 1: 60 degrees around the grey axis."""


def colour(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Random saturation and hue of normalised images (N, C, H, W), up to ``strength``,
    clipped to [-1, 1].

    Each pixel is split into its mean over the bands (its grey level, which is kept) and
    the rest (its colour). The colour is scaled by a factor drawn from
    [1 - ``strength``, 1 + ``strength``] (at 1 some chips come out grey) and, for three
    bands, rotated around the grey axis by an angle drawn from ±``strength`` ×
    :data:`COLOUR_HUE`. With one band there is no colour, and the images are returned
    as they are.
    """
    n, c = images.shape[:2]
    if c < 2:
        return images
    device = images.device
    saturation = 1 + (torch.rand(n, generator=generator) * 2 - 1) * strength
    angle = (torch.rand(n, generator=generator) * 2 - 1) * strength * COLOUR_HUE
    grey = images.mean(dim=1, keepdim=True)
    chroma = images - grey
    if c == 3:
        # Rotation about u = (1, 1, 1) / √3 of a vector v orthogonal to it (Rodrigues):
        # cos θ v + sin θ (u × v), with u × v = (b - g, r - b, g - r) / √3.
        r, g, b = chroma.unbind(1)
        across = torch.stack((b - g, r - b, g - r), 1) / math.sqrt(3)
        cos = _on((torch.cos(angle) * saturation).view(n, 1, 1, 1), device).to(images.dtype)
        sin = _on((torch.sin(angle) * saturation).view(n, 1, 1, 1), device).to(images.dtype)
        chroma = chroma * cos + across * sin
    else:
        chroma = chroma * _on(saturation.view(n, 1, 1, 1), device).to(images.dtype)
    return (grey + chroma).clamp(-1.0, 1.0)


SHADOW_DARKEST = 0.35
"""The darkest a shadow makes its ellipse: this fraction of the pixels' brightness."""

SHADOW_LIGHTEST = 0.75
"""The lightest shadow: this fraction of the brightness."""


def shadow(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Normalised images (N, C, H, W) in [-1, 1] with, in each sample chosen with
    ``probability``, one soft-edged ellipse darkened.

    Inside the ellipse every band's brightness (the distance above -1, the low end of
    the range) is multiplied by one factor drawn from [:data:`SHADOW_DARKEST`,
    :data:`SHADOW_LIGHTEST`], so texture and colour stay and only the light falls; the
    factor fades back to 1 over the outer fifth of the radius. The ellipse's centre lies
    anywhere in the chip, its semi-axes are 15–60 % of the side, its angle any.
    """
    n, _, height, width = images.shape
    chosen = (torch.rand(n, generator=generator) < probability).float()
    centre = torch.rand(n, 2, generator=generator)  # (row, col) as fractions of the side
    axes = _uniform(n * 2, 0.15, 0.6, generator).view(n, 2)
    angle = torch.rand(n, generator=generator) * math.pi
    factor = _uniform(n, SHADOW_DARKEST, SHADOW_LIGHTEST, generator)
    rows = ((torch.arange(height) + 0.5) / height)[None, :, None] - centre[:, 0, None, None]
    cols = ((torch.arange(width) + 0.5) / width)[None, None, :] - centre[:, 1, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    along = (cols * cos + rows * sin) / axes[:, 0, None, None]
    across = (rows * cos - cols * sin) / axes[:, 1, None, None]
    radius = torch.sqrt(along ** 2 + across ** 2)  # (N, H, W): 1 on the ellipse's edge
    inside = ((1.0 - radius) / 0.2).clamp(0.0, 1.0)
    inside = inside * inside * (3 - 2 * inside)  # smoothstep: no hard edge to learn
    gain = 1 - (1 - factor)[:, None, None] * inside * chosen[:, None, None]
    gain = _on(gain[:, None].to(images.dtype), images.device)
    return (images + 1) * gain - 1


BLUR_SIGMA = (0.5, 1.5)
"""The range, in pixels, of the standard deviation of :func:`blur`'s Gaussian."""


def blur(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Normalised images (N, C, H, W) with each sample chosen with ``probability``
    blurred by a Gaussian whose standard deviation is drawn from :data:`BLUR_SIGMA`.

    The blur is separable, the same for every band of a sample, with reflected edges;
    each pixel becomes a weighted mean of its neighbours, so values stay in range, and
    the result keeps the input's memory layout. The draws are taken for every sample,
    chosen or not, so that a batch's draws do not depend on which samples were chosen.
    """
    n = images.shape[0]
    chosen = torch.rand(n, generator=generator) < probability
    sigma = _uniform(n, BLUR_SIGMA[0], BLUR_SIGMA[1], generator)
    if not bool(chosen.any()):
        return images
    blurred = _gaussian(images, sigma, BLUR_SIGMA[1]).to(images.dtype)
    # The input first: the result takes its layout (channels-last for the networks).
    return torch.where(_on(~chosen, images.device)[:, None, None, None], images, blurred)


UNSHARP_SIGMA = (0.5, 2.0)
"""The range, in pixels, of the standard deviation of :func:`unsharp`'s Gaussian (the
mask's radius, as PIL and GIMP give it)."""

UNSHARP_AMOUNT = (0.5, 1.5)
"""The range of :func:`unsharp`'s amount: the share of the detail added back (1: 100 %)."""


def unsharp(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Normalised images (N, C, H, W) with each sample chosen with ``probability``
    sharpened by an unsharp mask: ``x + amount * (x - gaussian(x))``, its radius drawn
    from :data:`UNSHARP_SIGMA` and its amount from :data:`UNSHARP_AMOUNT`.

    The mask is the same for every band of a sample, with reflected edges, and the
    result is clipped to each band's range over the sample, as a sharpened 8-bit photo
    is clipped to its type's. The draws are taken for every sample, chosen or not, and
    the result keeps the input's memory layout.
    """
    n = images.shape[0]
    chosen = torch.rand(n, generator=generator) < probability
    sigma = _uniform(n, UNSHARP_SIGMA[0], UNSHARP_SIGMA[1], generator)
    amount = _uniform(n, UNSHARP_AMOUNT[0], UNSHARP_AMOUNT[1], generator)
    if not bool(chosen.any()):
        return images
    x = images.float()
    amount = _on(amount, images.device)[:, None, None, None]
    sharp = x + amount * (x - _gaussian(x, sigma, UNSHARP_SIGMA[1]))
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    sharp = torch.minimum(torch.maximum(sharp, low), high).to(images.dtype)
    return torch.where(_on(~chosen, images.device)[:, None, None, None], images, sharp)


def _gaussian(images: Tensor, sigma: Tensor, widest: float) -> Tensor:
    """(N, C, H, W) float32: each sample blurred by a Gaussian of its ``sigma`` (N,)
    pixels, every band alike, separable, with reflected edges, reaching three
    standard deviations of ``widest`` (or as far as the tile allows)."""
    n, c, height, width = images.shape
    radius = min(math.ceil(3 * widest), height - 1, width - 1)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))  # (N, K)
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    kernels = _on(kernels.repeat_interleave(c, dim=0), images.device)  # one per band
    x = images.float().reshape(1, n * c, height, width)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernels[:, None, :, None], groups=n * c)  # along the rows
    x = F.conv2d(x, kernels[:, None, None, :], groups=n * c)  # along the columns
    return x.view(n, c, height, width)


def cutmix(batch: dict[str, Tensor], probability: float,
           generator: torch.Generator) -> dict[str, Tensor]:
    """The batch with, in each sample chosen with ``probability``, one rectangle replaced
    by the same rectangle of another sample of the batch, in every entry alike.

    The rectangle covers a uniformly drawn 10–50 % of the chip, its sides drawn in the
    chip's aspect within ×/÷ 2, at a uniformly drawn place inside the chip; the sample it
    comes from is drawn among the others. A batch of one is returned as it is. Entries are
    (N, C, H, W) or, for ``classes``, (N, H, W).
    """
    first = next(iter(batch.values()))
    n, height, width = first.shape[0], first.shape[-2], first.shape[-1]
    if n < 2 or probability <= 0:
        return batch
    chosen = torch.rand(n, generator=generator) < probability
    source = (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n
    area = _uniform(n, 0.1, 0.5, generator)
    aspect = torch.exp(_uniform(n, -math.log(2), math.log(2), generator))
    rows = (height * torch.sqrt(area * aspect)).clamp(1, height).long()
    cols = (width * torch.sqrt(area / aspect)).clamp(1, width).long()
    top = (torch.rand(n, generator=generator) * (height - rows + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - cols + 1)).long()
    box = _on(_boxes(top, left, rows, cols, height, width) & chosen[:, None, None],
              first.device)
    source = _on(source, first.device)
    return {name: torch.where(box[:, None] if value.dim() == 4 else box, value[source], value)
            for name, value in batch.items()}


def diff_augment(pairs: Tensor, generator: torch.Generator) -> Tensor:
    """DiffAugment of what the discriminator sees: (N, C, H, W) with the input and output
    bands stacked; the same draw for every channel of a sample, differentiable.

    Brightness ±0.25, contrast ×[0.5, 1.5], a translation of up to 1/8 of the side
    (zero-filled) and one cutout square of half the side.
    """
    n, _, height, width = pairs.shape
    device = pairs.device
    brightness = _on(torch.rand(n, 1, 1, 1, generator=generator) - 0.5, device) * 0.5
    contrast = _on(torch.rand(n, 1, 1, 1, generator=generator) + 0.5, device)
    mean = pairs.mean(dim=(1, 2, 3), keepdim=True)
    x = (pairs + brightness - mean) * contrast + mean
    # Translation: each sample moves by its own whole-pixel shift, zero-filled.
    dy = torch.randint(-(height // 8), height // 8 + 1, (n,), generator=generator)
    dx = torch.randint(-(width // 8), width // 8 + 1, (n,), generator=generator)
    rows = (torch.arange(height)[None, :] - dy[:, None])  # (N, H): source row per output row
    cols = (torch.arange(width)[None, :] - dx[:, None])
    inside = (((rows >= 0) & (rows < height))[:, :, None]
              & ((cols >= 0) & (cols < width))[:, None, :])  # (N, H, W)
    rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    index = _on(rows[:, :, None] * width + cols[:, None, :], device)  # (N, H, W)
    flat = x.flatten(2)  # (N, C, H*W)
    x = flat.gather(2, index.flatten(1)[:, None].expand(-1, x.shape[1], -1)).view_as(x)
    # Cutout: a square of half the side at a random place.
    ch, cw = height // 2, width // 2
    top = torch.randint(0, height - ch + 1, (n,), generator=generator)
    left = torch.randint(0, width - cw + 1, (n,), generator=generator)
    cut = _boxes(top, left, torch.full((n,), ch), torch.full((n,), cw), height, width)
    keep = _on(inside & ~cut, device).to(x.dtype)[:, None]  # (N, 1, H, W)
    return x * keep


__all__ = ["BLUR_SIGMA", "COLOUR_HUE", "CROP_JITTER_ZOOM", "SHADOW_DARKEST", "SHADOW_LIGHTEST",
           "UNSHARP_AMOUNT", "UNSHARP_SIGMA", "blur", "colour", "cutmix", "diff_augment",
           "geometric", "photometric", "random_affine", "shadow", "unsharp", "warp"]
