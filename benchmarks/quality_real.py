"""Translation quality on real aerial photo → map pairs (the pix2pix "maps" set).

The procedural sample world is far easier than real imagery; this is the benchmark the
default recipe is chosen by. On the 40 aerial/map pairs of ``--data`` (256 px PNGs,
``A_aerial/{id}.png`` and ``B_map/{id}.png``) it:

1. splits them, by the fixed lists below, into 29 training pairs, 8 validation pairs
   and 3 **unfamiliar** pairs whose look is rare in the set (a marina, a large park,
   woods), kept out of training to see how a recipe copes with what it has rarely seen
   (``--split woods-in-training`` trades two validation pairs for two training pairs,
   ``water-in-training`` trains on two of the unfamiliar ones, ``woods-both-ways`` shows
   both ways the maps draw woods in training and in validation: :data:`SPLITS`);
2. writes them as georeferenced GeoTIFFs (1.41 m pixels, EPSG:32618, each chip at its
   own place) in an ArcGIS-style chip folder (``images/`` + ``images2/``);
3. writes the 7 map colours (:data:`MAP_PALETTE`, measured on the maps with
   :mod:`geogan.raster.flat_colours`: they are anti-aliased and JPEG-noisy, so exact colours
   do not work) as a palette file for ``geogan evaluate``;
4. trains each variant for ``--steps`` steps (same seed), translates every validation
   and unfamiliar photo with ``translate_raster``, and scores the translations of each
   split together (side by side in one raster) with ``evaluate_rasters`` against the
   real maps: palette mIoU and per-class IoU, δ5 and δ10 (share of pixels within 5 / 10
   grey levels on every band), PSNR, SSIM, RMSE, and **road where there is none** (share
   of the map's non-road pixels drawn as a road colour: hallucinated streets);
5. translates ``--scene`` (default: rasterio's ``cogeo.tif``, a 0.6 m photo of a snowy
   mountain road through woods, which no training pair resembles) at the model's pixel
   size (``--resample --resampling average``, as ``translate`` advises for a scene of
   other pixels) and reports the share of its pixels drawn in each class (road and
   water: what a model that draws from memory paints over woods), with a PNG preview
   (photo | map) to look at;
6. prints one table, with a constant-colour map (the commonest palette colour) scored
   the same way, and writes ``results.json``;
7. and a second table per split of each photo scored on its own, the figures averaged
   over the photos (:func:`score_photos`): what ``geogan evaluate`` on each translated
   photo gives, averaged, and the way the figures of issue 15's hidden holdout were
   computed (there a constant map scored mIoU 0.124 and its RMSE, 19.26, is not its PSNR's,
   23.43 dB: means over photos).

    python benchmarks/quality_real.py --data ../shared/data/maps                 # all
    python benchmarks/quality_real.py --data ../shared/data/maps --steps 300 \\
        --variants paper,faithful                                                 # a screen
    python benchmarks/quality_real.py --data ../shared/data/maps --variants faithful \\
        --training-fit          # also scored on its own training pairs: does it underfit?
    python benchmarks/quality_real.py --data ../shared/data/maps --variants faithful \\
        --softened 1            # also scored on the held-out photos blurred by 1 px
    python benchmarks/quality_real.py --data ../shared/data/maps --variants faithful \
        --unsharp 1:100         # ... and unsharp-masked (radius 1 px, 100 %)

Variants are presets plus overrides (see :data:`VARIANTS`); every run uses seed 0 unless its
variant ends in ``/seed-N`` (1 to 5).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from geogan import (
    EvaluateOptions,
    TrainOptions,
    Translator,
    evaluate_rasters,
    load_model,
    train,
    translate_raster,
)
from geogan.evaluation.class_metrics import snap_to_palette
from geogan.raster.flat_colours import detect_flat_palette

VAL = ("1003", "1006", "1011", "1020", "1023", "1028", "1030", "104")
"""Validation pairs: streets at all angles, a highway, an arterial road, water, parks. Each
of these classes is also in at least one training pair (1000 holds water, a highway and an
arterial road; 1032 a highway), as in a model trained on all 40 pairs."""

UNFAMILIAR = ("1021", "1025", "1031")
"""Pairs unlike the rest (a large park with a pond, a marina with high-rises, woods)."""

SPLITS = {
    "default": (VAL, UNFAMILIAR),
    "woods-in-training": (tuple(sorted({*VAL} - {"1006", "1028"} | {"1010", "1012"})),
                          UNFAMILIAR),
    "water-in-training": (VAL, ("1031",)),
    "woods-both-ways": (tuple(sorted({*VAL} - {"1006"} | {"1031"})), ("1021", "1025")),
}
"""Validation and unfamiliar pairs of each ``--split``. ``woods-in-training`` trades the two
validation pairs whose woods the maps leave as background (1006, 1028) for two built-up
training pairs (1010, 1012): the only training pair with as much vegetation (1018) maps
it as park, so the default split asks for a distinction its training pairs never show,
which a model trained on all 40 pairs does see. ``water-in-training`` trains on the
unfamiliar pond (1021) and marina (1025) too, so that three training pairs hold water, as
in a model trained on all 40 (four), and keeps only the woods (1031) unfamiliar.
``woods-both-ways`` trains on one pair whose woods the map leaves as background (1006)
beside the one that calls them park (1018), and validates on one of each (1028, and the
woods of 1031, 82 % park), as a model trained on all 40 pairs meets woods in a holdout."""

MAP_PALETTE = {
    "background": [232, 229, 222], "building": [243, 240, 234], "road": [254, 254, 253],
    "park": [202, 223, 174], "water": [177, 207, 254], "arterial": [255, 225, 103],
    "highway": [250, 158, 35],
}
"""The 7 map colours scores are computed with: what ``geogan.raster.flat_colours`` finds on
all 40 maps, without its near-duplicates (a second green, a second blue, faint greys and
pinks, each under 2 % of the pixels). The palette a model learns from its training chips
is its own; both maps are snapped to these colours to be compared."""

CRS = "EPSG:32618"
SIDE = 256
PIXEL = 0.6 * 600 / SIDE
"""Metres per pixel of the 256 px PNGs: the source's 600 px tiles have pixels of about 0.6 m
(``../shared/data/PROVENANCE.md``) and were resized to 256 px, so a car is 3 px long. Until
stop 42 the chips were given 0.6 m, so ``cogeo.tif`` (0.6 m) was translated 2.35 times
finer than the model had learnt its objects."""

BEFORE = {"lr": 2e-4}
"""The learning rate of ``faithful`` before the GPU screen: variants measured then keep it."""

VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (preset, training overrides, translate options)
    "paper": ("paper", {}, {}),
    "faithful": ("faithful", {}, {}),
    "faithful+tta": ("faithful", {}, {"tta": True}),
    "faithful+samples-8": ("faithful", {}, {"samples": 8}),  # the mean of 8 dropout passes
    "faithful/palette": ("faithful", {}, {"output": "palette"}),  # crisp, not shaded
    "faithful/image-head": ("faithful", {}, {"output": "image"}),
    "faithful/batch-1": ("faithful", {**BEFORE, "batch_size": 1}, {}),
    "faithful/batch-1/lr-5e-4": ("faithful", {"batch_size": 1, "lr": 5e-4}, {}),
    "faithful/batch-1/lr-1e-3": ("faithful", {"batch_size": 1, "lr": 1e-3}, {}),
    "faithful/batch-1/balance-0.5": ("faithful", {**BEFORE, "batch_size": 1,
                                                  "class_balance": 0.5}, {}),
    "faithful/batch-1/ce-100": ("faithful", {**BEFORE, "batch_size": 1, "lambda_ce": 100.0}, {}),
    "faithful/batch-1/ce-100/no-gan": ("faithful", {**BEFORE, "batch_size": 1,
                                                    "lambda_ce": 100.0, "lambda_gan": 0.0}, {}),
    "faithful/no-class-head": ("faithful", {"classes": "off"}, {}),
    # The faithful preset as first committed (batch 1, cross-entropy weight 1, balance
    # 0.5) and its variants.
    "faithful-v1": ("faithful", {**BEFORE, "batch_size": 1, "lambda_ce": 1.0,
                                 "class_balance": 0.5}, {}),
    "faithful-v1/image-head": ("faithful", {**BEFORE, "batch_size": 1, "lambda_ce": 1.0,
                                            "class_balance": 0.5}, {"output": "image"}),
    "faithful-v1/no-balance": ("faithful", {**BEFORE, "batch_size": 1, "lambda_ce": 1.0,
                                            "class_balance": 0.0}, {}),
    "faithful-v1/ema-0.99": ("faithful", {**BEFORE, "batch_size": 1, "lambda_ce": 1.0,
                                          "class_balance": 0.5, "ema": 0.99}, {}),
    "faithful-v1/no-rotate/ema-0.99": ("faithful", {**BEFORE, "batch_size": 1, "lambda_ce": 1.0,
                                                    "class_balance": 0.5, "rotate": False,
                                                    "ema": 0.99}, {}),
    # Screened on a GPU (14 at once with --jobs 14), each its own option, over the recipe
    # as it then was: `faithful/lr-2e-4` today. 5e-4 won and is now the preset's.
    "faithful/lr-2e-4": ("faithful", {"lr": 2e-4}, {}),
    "faithful/levels-7": ("faithful", {"unet_levels": 7}, {}),
    "faithful/dice-30": ("faithful", {"lambda_dice": 30.0}, {}),
    "faithful/ms2-fm10": ("faithful", {"d_scales": 2, "lambda_fm": 10.0}, {}),
    "faithful/dice-30/ms2-fm10": ("faithful", {"lambda_dice": 30.0, "d_scales": 2,
                                               "lambda_fm": 10.0}, {}),
    "faithful/spectral-norm": ("faithful", {"spectral_norm": True}, {}),
    "faithful/l1-10": ("faithful", {"lambda_l1": 10.0}, {}),
    "faithful/ema-0.99": ("faithful", {"ema": 0.99}, {}),
    "faithful/no-gan": ("faithful", {"lambda_gan": 0.0}, {}),
    "faithful/balance-0.5": ("faithful", {"class_balance": 0.5}, {}),
    "faithful/batch-8": ("faithful", {"batch_size": 8}, {}),
    "faithful/batch-16": ("faithful", {"batch_size": 16}, {}),
    # Screened on the CPU after the palette fixes (2026-11-30).
    "faithful/lr-1e-3": ("faithful", {"lr": 1e-3}, {}),
    # Stop 65: measured again without a discriminator (three seeds on the default split,
    # two on `woods-both-ways`); the same as `faithful` since then
    # (`faithful/dropout-0.5` is the recipe before).
    "faithful/no-dropout": ("faithful", {"dropout": 0.0}, {}),
    "faithful/cutmix-0.5": ("faithful", {"cutmix": 0.5}, {}),
    "faithful/photometric-0.4": ("faithful", {"photometric": 0.4}, {}),
    "faithful/shadow-0.5": ("faithful", {"shadow": 0.5}, {}),
    # Stop 52: saturation and hue of the input, against the lake on dark conifers.
    "faithful/colour-0.5": ("faithful", {"colour": 0.5}, {}),
    "faithful/colour-0.9": ("faithful", {"colour": 0.9}, {}),
    "faithful/shadow-0.2": ("faithful", {"shadow": 0.2}, {}),
    "faithful/shadow-0.1": ("faithful", {"shadow": 0.1}, {}),
    "faithful/shadow-0.05": ("faithful", {"shadow": 0.05}, {}),
    "faithful/balance-0": ("faithful", {"class_balance": 0.0}, {}),  # rare water not weighed up
    "faithful/ngf-32": ("faithful", {"ngf": 32, "ndf": 32}, {}),
    "faithful/levels-5": ("faithful", {"unet_levels": 5}, {}),
    "faithful/lovasz-30": ("faithful", {"lambda_lovasz": 30.0}, {}),
    "faithful/lovasz-10": ("faithful", {"lambda_lovasz": 10.0}, {}),
    # Screened on the CPU in stops 29-30, over `faithful` with a cross-entropy weight of 30.
    # 60 won on three seeds and is now the preset's: `faithful/ce-60` is `faithful` today,
    # and `faithful/ce-30` the recipe the rows above were measured against.
    "faithful/crop-jitter": ("faithful", {"crop_jitter": True, "lambda_ce": 30.0}, {}),
    "faithful/ce-60": ("faithful", {"lambda_ce": 60.0}, {}),
    "faithful/ce-30": ("faithful", {"lambda_ce": 30.0}, {}),
    # Stop 31: past 60 the trend stops (seeds 0 and 1 level or lower on val mIoU).
    "faithful/ce-120": ("faithful", {"lambda_ce": 120.0}, {}),
    # Stop 43: the class head trained never to be certain.
    "faithful/smoothing-0.1": ("faithful", {"label_smoothing": 0.1}, {}),
    "faithful/smoothing-0.2": ("faithful", {"label_smoothing": 0.2}, {}),
    # Stop 48: a wider zoom, for scenes whose pixel size is not the chips'.
    "faithful/scale-1.5": ("faithful", {"scale_jitter": 1.5}, {}),
    "faithful/scale-2": ("faithful", {"scale_jitter": 2.0}, {}),
    # Stop 67: no zoom at all. The photos of a scene are resampled to the model's pixel size
    # by translate (stop 48), and each wider zoom cost validation mIoU.
    "faithful/scale-1": ("faithful", {"scale_jitter": 1.0}, {}),
    # Stop 49: Adam's usual momentum rather than the GAN papers' 0.5: the recipe's loss
    # is mostly the class head's cross-entropy and L1, not the adversarial term.
    "faithful/beta1-0.9": ("faithful", {"beta1": 0.9}, {}),
    # Stop 49: the discriminator judges the class head's drawing, not the image head's.
    "faithful/judge-classes": ("faithful", {"judge_classes": True}, {}),
    # Stop 49: less weight on the image head, which translate does not draw.
    "faithful/l1-30": ("faithful", {"lambda_l1": 30.0}, {}),
    # Stop 50: a full-resolution path from the photo to the output, beside the U-Net's.
    "faithful/input-skip-32": ("faithful", {"input_skip": 32}, {}),
    # Stop 50: the class head's cross-entropy over the hardest quarter of the pixels.
    "faithful/hard-0.25": ("faithful", {"hard_pixels": 0.25}, {}),
    # Stop 53: 1 x 1 class heads on the decoder's 1/4, 1/8 and 1/16 levels (training only).
    "faithful/deep-0.5": ("faithful", {"deep_supervision": 0.5}, {}),
    "faithful/deep-1": ("faithful", {"deep_supervision": 1.0}, {}),
    # Stop 57: cheaper steps for CPUs without native bf16, where the recipe trains in
    # float32 and its discriminator is most of a step (AVX2 host: 7.5 s a step, 4.8 s
    # with ndf 32, 3.5 s with no discriminator at all: `faithful/no-gan`).
    "faithful/ndf-32": ("faithful", {"ndf": 32}, {}),
    # Stop 60: `faithful` trains map targets without a discriminator
    # (`map_discriminator`). Every `faithful` variant above was measured with one; those
    # whose overrides name no discriminator setting train without it when run today.
    # This is the recipe they were measured against.
    "faithful/with-gan": ("faithful", {"map_discriminator": True}, {}),
    # Stop 63: the last fifth of the steps on the chips as they are (no warps, no jitter),
    # after 3000 steps beat 1500 (mIoU 0.279 against 0.262): the recipe underfits.
    "faithful/augment-until-0.8": ("faithful", {"augment_until": 0.8}, {}),
    # Stop 63: the learning rate's decay over the last quarter, not the last half: more
    # steps at the full rate, as the 3000-step run had. The same as `faithful` since stop
    # 64; kept so that stop 63's commands rerun.
    "faithful/decay-0.75": ("faithful", {"decay_start": 0.75}, {}),
    # Stop 64: the decay over the last tenth only, to see whether the trend goes on.
    "faithful/decay-0.9": ("faithful", {"decay_start": 0.9}, {}),
    # Stop 64: `faithful` decays over the last quarter since then; this is the recipe
    # before, decayed from half-way, as the papers do.
    "faithful/decay-0.5": ("faithful", {"decay_start": 0.5}, {}),
    # Stop 65: `faithful` has no dropout since then; this is the recipe before.
    "faithful/dropout-0.5": ("faithful", {"dropout": 0.5}, {}),
    # Stop 66: Adam's second moment over about the last hundred steps, not the last
    # thousand, for a recipe that underfits in 1500 steps. The same as `faithful` since
    # stop 66; kept so that its commands rerun. `beta2-0.999` is the recipe before.
    "faithful/beta2-0.99": ("faithful", {"beta2": 0.99}, {}),
    "faithful/beta2-0.999": ("faithful", {"beta2": 0.999}, {}),
    # Stop 68: a learning rate between 5e-4 and 1e-3 (1e-3, on the recipe of 2026-11-30,
    # lost on the unfamiliar pairs), now that the rate decays over the last quarter only,
    # Adam's β2 is 0.99 and the U-Net has no dropout.
    "faithful/lr-7e-4": ("faithful", {"lr": 7e-4}, {}),
    # Stop 68: and below it, since β2 0.99 already lets the late steps move further.
    "faithful/lr-3.5e-4": ("faithful", {"lr": 3.5e-4}, {}),
    # Stop 69: decoupled weight decay (AdamW), the one regulariser of the weights not yet
    # tried against memorising 29 chips. At 5e-4, 0.5 takes 2.5e-4 of each weight a step:
    # a weight that no gradient holds shrinks by about a quarter over the 1500 steps.
    "faithful/wd-0.5": ("faithful", {"weight_decay": 0.5}, {}),
    # Stop 70: the input blurred (a Gaussian of 0.5-1.5 px) in half the chips, as a
    # softer sensor or a scene read up from a coarser pixel size is: the zoom, which
    # softens what it enlarges, is what keeps the unfamiliar pairs near the blank map.
    "faithful/blur-0.5": ("faithful", {"blur": 0.5}, {}),
    # Stop 71: a quarter of the chips, for part of the softer photos' and coarser scenes'
    # gain at less of the cost in SSIM and delta-5 on photos as sharp as the chips.
    "faithful/blur-0.25": ("faithful", {"blur": 0.25}, {}),
    # Stop 73: translate sharpens a scene softer than the training chips by default
    # (geogan.inference.scene_sharpness); this is the same model translated without.
    "faithful/no-sharpen": ("faithful", {}, {"sharpen": 0.0}),
    # Stop 75: the Lovász loss tile by tile (the mean over each tile's classes, as the
    # hidden holdout's mIoU is taken photo by photo), at half the cross-entropy's weight.
    # Not kept then: on one seed of three it lost the unfamiliar pairs' SSIM and PSNR.
    # Stops 78-79: under 8 views and unsure_below 0.45 it won on four seeds of four, and
    # is part of faithful since (this name trains the same as "faithful").
    "faithful/lovasz-image-30": ("faithful", {"lambda_lovasz": 30.0, "lovasz_per_image": True},
                                 {}),
    # Stop 79: faithful as it was before, without the Lovász loss.
    "faithful/no-lovasz": ("faithful", {"lambda_lovasz": 0.0}, {}),
    # Stop 79: the Lovász loss per image at the cross-entropy's weight, twice the default's.
    "faithful/lovasz-image-60": ("faithful", {"lambda_lovasz": 60.0}, {}),
    # Stop 76: the input unsharp-masked (radius 0.5-2 px, amount 0.5-1.5) in half the
    # chips, as a vendor sharpens its imagery: photos unsharp-masked after the fact
    # (--unsharp 1:100) lost the default its water and parks.
    "faithful/unsharp-0.5": ("faithful", {"unsharp": 0.5}, {}),
    # Stop 77: repeat factor sampling (LVIS): the two training chips that hold all of the
    # split's water, highway and arterial road (each class in 7 % of the chips) count
    # 3 times in each epoch's draw, so those classes are learnt from more looks.
    "faithful/rare-repeat-0.5": ("faithful", {"rare_repeat": 0.5}, {}),
    # Stop 77: faithful models translate in their 8 flips and rotations by default; this
    # is the same model translated from the tile alone, as before.
    "faithful/no-tta": ("faithful", {}, {"tta": False}),
    # Stop 80: a residual block (two 3 x 3 convolutions) at the end of each decoder level
    # but the outermost (5 at 6 levels), where the paper's decoder has one convolution a
    # level; then at the two finest of them only, which trace the roads.
    "faithful/decoder-blocks-5": ("faithful", {"decoder_blocks": 5}, {}),
    "faithful/decoder-blocks-2": ("faithful", {"decoder_blocks": 2}, {}),
    # Stop 81: at the finest inner level only (128 px), where the two-level form painted
    # lakes on cogeo.tif's conifers (seeds 1 and 2).
    "faithful/decoder-blocks-1": ("faithful", {"decoder_blocks": 1}, {}),
    # Stop 82: the class head trained on every map pixel, the 13 % of anti-aliased edges
    # the cross-entropy left out among them (each with its nearest colour, as scored).
    "faithful/class-edges": ("faithful", {"class_edges": True}, {}),
    # Stop 83: the class head also scored on its centre lines (roads drawn in pieces).
    "faithful/cldice-30": ("faithful", {"lambda_cldice": 30.0}, {}),
    "faithful/cldice-150": ("faithful", {"lambda_cldice": 150.0}, {}),  # 30 for each of 5 classes
    "paper+resize": ("paper", {"upsample": "resize"}, {}),
    "paper+rotate-scale": ("paper", {"rotate": True, "scale_jitter": 1.25}, {}),
    "paper+crop-jitter": ("paper", {"crop_jitter": True}, {}),
}
# Seeds beyond 0 of the variants that needed them: single runs move by about 0.02 mIoU.
VARIANTS.update({f"{name}/seed-{seed}": (VARIANTS[name][0], {**VARIANTS[name][1], "seed": seed},
                                          VARIANTS[name][2])
                 for seed in (1, 2, 3, 4, 5)
                 for name in ("paper", "faithful", "faithful/levels-7", "faithful/lovasz-30",
                              "faithful/ce-60", "faithful/ce-120", "faithful/shadow-0.5",
                              "faithful/shadow-0.2", "faithful/smoothing-0.1",
                              "faithful/smoothing-0.2", "faithful/scale-1.5",
                              "faithful/scale-2", "faithful/beta1-0.9", "faithful/deep-0.5",
                              "faithful/deep-1",
                              "faithful/judge-classes", "faithful/l1-30",
                              "faithful/input-skip-32", "faithful/hard-0.25",
                              "faithful/colour-0.5", "faithful/no-gan",
                              "faithful/ndf-32", "faithful/with-gan",
                              "faithful/augment-until-0.8", "faithful/decay-0.75",
                              "faithful/decay-0.9", "faithful/decay-0.5",
                              "faithful/no-dropout", "faithful/dropout-0.5",
                              "faithful/beta2-0.99", "faithful/beta2-0.999",
                              "faithful/ema-0.99", "faithful/scale-1",
                              "faithful/lr-7e-4", "faithful/lr-3.5e-4",
                              "faithful/wd-0.5", "faithful/blur-0.5",
                              "faithful/blur-0.25", "faithful/no-sharpen",
                              "faithful/lovasz-image-30", "faithful/unsharp-0.5",
                              "faithful/rare-repeat-0.5", "faithful/no-tta",
                              "faithful/no-lovasz", "faithful/lovasz-image-60",
                              "faithful/decoder-blocks-5", "faithful/decoder-blocks-2",
                              "faithful/decoder-blocks-1", "faithful/class-edges",
                              "faithful/cldice-30")})


def _ids(data: Path) -> list[str]:
    return sorted(p.stem for p in (data / "A_aerial").glob("*.png"))


def _write(path: Path, image: NDArray[np.uint8], index: int) -> Path:
    """A (H, W, 3) PNG image as a GeoTIFF at its own place on a 0.6 m UTM grid."""
    transform = Affine(PIXEL, 0, 583_000 + index * SIDE * PIXEL * 2, 0, -PIXEL, 4_507_000)
    with rasterio.open(path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0],
                       count=3, dtype="uint8", crs=CRS, transform=transform) as dst:
        dst.write(image.transpose(2, 0, 1))
    return path


def _read_png(path: Path) -> NDArray[np.uint8]:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def prepare(data: Path, work: Path, split: str = "default",
            training_fit: bool = False, softened: float = 0.0,
            unsharp: tuple[float, int] | None = None) -> dict[str, Any]:
    """Chip folder of the training pairs, GeoTIFFs of the others, the palette file (a
    ``work`` folder holds one split: its chips are not cleared); with ``training_fit``
    the training pairs are scored as a third split, ``training`` (how well a recipe fits
    what it learnt from, beside how well it does on what it did not); with ``softened``
    the held-out photos are also scored blurred by a Gaussian of that many pixels
    (``val-softened``, ``unfamiliar-softened``), as a softer sensor would show them; with
    ``unsharp`` (radius, percent) also unsharp-masked (``val-unsharp``,
    ``unfamiliar-unsharp``), as a vendor's sharpening would show them."""
    ids = _ids(data)
    val, unfamiliar = SPLITS[split]
    held = set(val) | set(unfamiliar)
    missing = held - set(ids)
    if missing:
        raise SystemExit(f"{data} lacks the pairs {sorted(missing)}")
    chips = work / "chips"
    for sub in ("images", "images2"):
        (chips / sub).mkdir(parents=True, exist_ok=True)
    scenes: dict[str, list[tuple[Path, Path]]] = {"val": [], "unfamiliar": []}
    if training_fit:
        scenes["training"] = []
    looks: dict[str, ImageFilter.Filter] = {}
    if softened:
        looks["softened"] = ImageFilter.GaussianBlur(softened)
    if unsharp:
        looks["unsharp"] = ImageFilter.UnsharpMask(unsharp[0], unsharp[1], 0)
    for look in looks:
        scenes.update({f"val-{look}": [], f"unfamiliar-{look}": []})
    maps = []
    for index, name in enumerate(ids):
        photo = _read_png(data / "A_aerial" / f"{name}.png")
        drawn = _read_png(data / "B_map" / f"{name}.png")
        if name in held:
            part = "val" if name in val else "unfamiliar"
            (work / part).mkdir(exist_ok=True)
            truth = _write(work / part / f"{name}_map.tif", drawn, index)
            scenes[part].append((_write(work / part / f"{name}_photo.tif", photo, index), truth))
            for look, kernel in looks.items():
                changed = np.asarray(Image.fromarray(photo).filter(kernel))
                (work / f"{part}-{look}").mkdir(exist_ok=True)
                scenes[f"{part}-{look}"].append((_write(
                    work / f"{part}-{look}" / f"{name}_{look}.tif", changed, index), truth))
        else:
            pair = (_write(chips / "images" / f"{name}.tif", photo, index),
                    _write(chips / "images2" / f"{name}.tif", drawn, index))
            if training_fit:
                scenes["training"].append(pair)
            maps.append(drawn.transpose(2, 0, 1))
    if detect_flat_palette(maps) is None:
        raise SystemExit("the training maps are not a flat-colour map")
    named = dict(MAP_PALETTE)
    (work / "palette.json").write_text(json.dumps(named, indent=1))
    references = {part: _strip([m for _, m in pairs], work / f"{part}_reference.tif")
                  for part, pairs in scenes.items()}
    return {"chips": chips, "scenes": scenes, "palette": named, "references": references,
            "train_pairs": len(ids) - len(held)}


def _strip(paths: list[Path], out: Path, bands: int | None = None) -> Path:
    """The rasters (their first ``bands``, or all) side by side in one GeoTIFF (own grid),
    so that one evaluation pools every pixel of a split (mIoU over the pooled pixels, not
    a mean of per-chip mIoUs)."""
    arrays = []
    for path in paths:
        with rasterio.open(path) as src:
            arrays.append(src.read()[:bands])
    strip = np.concatenate(arrays, axis=2)
    with rasterio.open(out, "w", driver="GTiff", width=strip.shape[2], height=strip.shape[1],
                       count=strip.shape[0], dtype=strip.dtype, crs=CRS,
                       transform=Affine(PIXEL, 0, 0, 0, -PIXEL, 0)) as dst:
        dst.write(strip)
    return out


ROAD_NAMES = ("road", "arterial", "highway")
"""The palette's road colours."""


def _road_classes(palette: dict[str, list[int]]) -> list[int]:
    """Indices of the palette's road colours."""
    return [i for i, name in enumerate(palette) if name in ROAD_NAMES]


def score(prediction: Path, reference: Path, work: Path, palette: dict[str, list[int]]
          ) -> dict[str, Any]:
    """geogan evaluate's figures plus δ5, δ10 and road drawn where the map has none."""
    report = evaluate_rasters(prediction, reference,
                              EvaluateOptions(palette=work / "palette.json"))
    with rasterio.open(prediction) as p, rasterio.open(reference) as r:
        pred, ref = p.read().astype(np.int64), r.read().astype(np.int64)
    worst = np.abs(pred - ref).max(axis=0)
    roads = _road_classes(palette)
    colours = {k: tuple(v) for k, v in palette.items()}
    drawn = np.isin(snap_to_palette(pred, colours), roads)
    truth = np.isin(snap_to_palette(ref, colours), roads)
    assert report.palette is not None
    return {
        "miou": report.palette.mean_iou,
        "iou": {k: (None if v is None else round(v, 3)) for k, v in report.palette.iou.items()},
        "d5": float((worst <= 5).mean()), "d10": float((worst <= 10).mean()),
        "psnr": report.mean.psnr, "ssim": report.mean.ssim, "rmse": report.mean.rmse,
        "false_road": float(drawn[~truth].mean()),
    }


PHOTO_FIGURES = ("miou", "d5", "d10", "psnr", "ssim", "rmse")
"""The figures also given per photo (:func:`score_photos`)."""


def score_photos(predictions: list[Path], references: list[Path], work: Path,
                 palette: dict[str, list[int]], bands: int | None = None) -> dict[str, float]:
    """Each photo's translation scored on its own (its first ``bands``, or all), and the
    figures averaged over the photos: what running ``geogan evaluate`` on each translated
    photo and averaging gives. The split's pooled figures (:func:`score`) weigh a class
    by its pixels over the whole split; here each photo's mIoU averages the classes its
    map has, so a photo that misses its one small pond counts a class IoU of 0 (pixels
    drawn in a class the map lacks count only against the class they should have
    been)."""
    figures = []
    alone = work / ".photo.tif"
    for prediction, reference in zip(predictions, references, strict=True):
        with rasterio.open(prediction) as src:
            drawn = prediction
            if bands is not None and src.count > bands:  # without --samples' spread band
                with rasterio.open(alone, "w", **{**src.profile, "count": bands}) as dst:
                    dst.write(src.read(list(range(1, bands + 1))))
                drawn = alone
        figures.append(score(drawn, reference, work, palette))
    alone.unlink(missing_ok=True)
    return {key: float(np.mean([f[key] for f in figures])) for key in PHOTO_FIGURES}


def write_constant(reference: Path, out: Path, palette: dict[str, list[int]]) -> Path:
    """``out``: every pixel of ``reference`` the commonest palette colour (the map's
    background), on its grid."""
    colour = np.asarray(next(iter(palette.values())), np.uint8)
    with rasterio.open(reference) as src:
        profile = src.profile
        shape = (src.count, src.height, src.width)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.broadcast_to(colour[:, None, None], shape))
    return out


def constant_score(reference: Path, out: Path, work: Path,
                   palette: dict[str, list[int]]) -> dict[str, Any]:
    """The constant map of ``reference`` (:func:`write_constant`), written to ``out`` and
    scored."""
    return score(write_constant(reference, out, palette), reference, work, palette)


def constant_baseline(prepared: dict[str, Any], work: Path) -> dict[str, Any]:
    """The constant-colour map of each split, scored pooled and per photo."""
    results: dict[str, Any] = {}
    for split, reference in prepared["references"].items():
        results[split] = constant_score(reference, work / f"constant_{split}.tif", work,
                                        prepared["palette"])
        maps = [m for _, m in prepared["scenes"][split]]
        blanks = [write_constant(truth, work / f"constant_{split}_{i}.tif", prepared["palette"])
                  for i, truth in enumerate(maps)]
        results[f"{split}/photo"] = score_photos(blanks, maps, work, prepared["palette"])
        for blank in blanks:
            blank.unlink()
    return results


SCENE_OPTIONS = ("samples", "sharpen")
"""Translate options of each scene (``translate_raster``'s), not of the loaded model."""


def run_variant(name: str, preset: str, overrides: dict[str, Any], translate: dict[str, Any],
                prepared: dict[str, Any], work: Path, steps: int, scene: Path | None,
                trained: dict[tuple[str, str], Path], reuse: bool = False) -> dict[str, Any]:
    """Train (or reuse the same training of an earlier variant, or with ``reuse`` the
    variant's model file of an earlier run), translate, score."""
    key = (preset, json.dumps(overrides, sort_keys=True))
    slug = "".join(c if c.isalnum() else "_" for c in name)
    model = trained.get(key)
    train_seconds = s_per_step = None
    if model is None and reuse and (work / f"{slug}.pt").exists():
        model = trained[key] = work / f"{slug}.pt"
    if model is None:
        model = work / f"{slug}.pt"
        loaders = {"workers": 1} if os.environ.get("GEOGAN_QUALITY_JOB") else {}
        settings = {"steps": steps, "seed": 0, "val_every": steps, **loaders, **overrides}
        report = train(prepared["chips"], model,
                       TrainOptions(kind="pix2pix", preset=preset, overrides=settings,
                                    val_fraction=0.0, overwrite=True))
        trained[key] = model
        train_seconds, s_per_step = report.seconds, report.seconds / report.steps
    result: dict[str, Any] = {"preset": preset, "overrides": overrides, "translate": translate,
                              "train_seconds": train_seconds, "s_per_step": s_per_step}
    loading = {k: v for k, v in translate.items() if k not in SCENE_OPTIONS}
    translator = load_model(model, device="auto", precision="auto", **loading)
    options: dict[str, Any] = {"overwrite": True, "tta": translator.tta,
                               "output": translator.output, "samples": translate.get("samples", 1),
                               "sharpen": translate.get("sharpen")}
    for split, pairs in prepared["scenes"].items():
        outputs = [translate_raster(photo, work / f"{slug}_{photo.stem}.tif", translator,
                                    **options).output for photo, _ in pairs]
        # Without the spread band of --samples: the drawn bands alone are scored.
        strip = _strip(outputs, work / f"{slug}_{split}.tif", translator.out_bands)
        result[split] = score(strip, prepared["references"][split], work, prepared["palette"])
        result[f"{split}/photo"] = score_photos(outputs, [m for _, m in pairs], work,
                                                prepared["palette"], translator.out_bands)
    if scene is not None:
        result["scene"] = translate_scene(scene, translator, options, work, slug,
                                          prepared["palette"])
    return result


def _run_group(names: list[str], prepared: dict[str, Any], work: Path, steps: int,
               scene: Path | None, reuse: bool) -> list[tuple[str, dict[str, Any]]]:
    """The variants of one training, in order (the first trains, the others reuse it)."""
    if os.environ.get("GEOGAN_QUALITY_JOB"):
        torch.set_num_threads(1)
    trained: dict[tuple[str, str], Path] = {}
    return [(name, run_variant(name, *VARIANTS[name], prepared, work, steps, scene, trained,
                               reuse)) for name in names]


def run_all(names: list[str], prepared: dict[str, Any], work: Path, steps: int,
            scene: Path | None, jobs: int, reuse: bool = False
            ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every variant's result: in the order given, or with ``jobs`` > 1 as the trainings
    finish, that many processes at once (variants that share a training stay in one)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        preset, overrides, _ = VARIANTS[name]
        groups.setdefault((preset, json.dumps(overrides, sort_keys=True)), []).append(name)
    if jobs <= 1:
        for group in groups.values():
            yield from _run_group(group, prepared, work, steps, scene, reuse)
        return
    os.environ["GEOGAN_QUALITY_JOB"] = "1"  # one CPU thread and loader per process
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [pool.submit(_run_group, group, prepared, work, steps, scene, reuse)
                   for group in groups.values()]
        for future in as_completed(futures):  # as they finish: a cut-short run keeps them
            yield from future.result()


def translate_scene(scene: Path, model: Translator, options: dict[str, Any], work: Path,
                    slug: str, palette: dict[str, list[int]]) -> dict[str, Any]:
    """The unfamiliar scene: the share of its pixels drawn in each palette class (road and
    water are what a model that draws from memory paints over woods), and a preview PNG."""
    out = translate_raster(scene, work / f"{slug}_scene.tif", model,
                           **{**options, "resample": True, "resampling": "average"}).output
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        photo, drawn = src.read([1, 2, 3]), dst.read()[:model.out_bands]
    colours = {k: tuple(v) for k, v in palette.items()}
    classes = snap_to_palette(drawn, colours)
    shares = {name: float((classes == i).mean()) for i, name in enumerate(palette)}
    road = sum(shares[name] for name in ROAD_NAMES if name in shares)
    preview = np.concatenate([photo, drawn], axis=2).transpose(1, 2, 0)[::2, ::2]
    png = work / f"{slug}_scene.png"
    Image.fromarray(np.ascontiguousarray(preview)).save(png)
    return {"road_share": road, "shares": shares, "preview": str(png)}


def _row(name: str, result: dict[str, Any], split: str) -> str:
    r = result[split]
    scene = result.get("scene", {})
    optional = (scene.get("road_share"), scene.get("shares", {}).get("water"),
                result.get("s_per_step"), result.get("train_seconds"))
    road, water, step, wall = ("—" if value is None else f"{value:.{digits}f}"
                               for value, digits in zip(optional, (3, 3, 3, 0), strict=True))
    return (f"| {name} | {r['miou']:.3f} | {r['d5']:.3f} | {r['d10']:.3f} | {r['psnr']:.2f} | "
            f"{r['ssim']:.3f} | {r['rmse']:.2f} | {r['false_road']:.3f} | "
            f"{road} | {water} | {step} | {wall} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="the maps folder (A_aerial/, B_map/)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--variants", default="paper,faithful",
                        help=f"comma-separated, or 'all': {', '.join(VARIANTS)}")
    parser.add_argument("--scene", default="../shared/data/geotiff/rasterio/cogeo.tif",
                        help="an unfamiliar scene to translate ('' for none)")
    parser.add_argument("--work", type=Path, default=Path("quality-real"),
                        help="folder for chips, models, outputs and results.json")
    parser.add_argument("--jobs", type=int, default=1,
                        help="variants trained at once, each in its own process (on one GPU, "
                             "14 at once took 4 minutes at 1500 steps); s/step is then shared")
    parser.add_argument("--split", choices=list(SPLITS), default="default",
                        help="which pairs are held out (see SPLITS); use a --work of its own")
    parser.add_argument("--training-fit", action="store_true",
                        help="score each model on its own training pairs too (a third "
                             "table): a recipe that fits them poorly underfits")
    parser.add_argument("--softened", type=float, default=0.0, metavar="SIGMA",
                        help="also score the held-out photos blurred by a Gaussian of SIGMA "
                             "pixels (two more tables): does a softer photo than the chips "
                             "still give the same map?")
    parser.add_argument("--unsharp", default="", metavar="RADIUS:PERCENT",
                        help="also score the held-out photos unsharp-masked (PIL, threshold "
                             "0; e.g. 1:100): a photo sharpened more than the chips were")
    parser.add_argument("--reuse", action="store_true",
                        help="score the model files an earlier run left in --work again "
                             "instead of training them (a variant without one is trained)")
    args = parser.parse_args()
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    scene = Path(args.scene) if args.scene and Path(args.scene).is_file() else None
    start = time.perf_counter()
    unsharp = None
    if args.unsharp:
        radius, percent = args.unsharp.split(":")
        unsharp = (float(radius), int(percent))
    prepared = prepare(args.data, args.work, args.split, args.training_fit, args.softened,
                       unsharp)
    results: dict[str, Any] = {"constant colour": constant_baseline(prepared, args.work)}
    for name, result in run_all(names, prepared, args.work, args.steps, scene, args.jobs,
                                args.reuse):
        results[name] = result
        print(f"{name}: val mIoU {result['val']['miou']:.3f}", flush=True)
        (args.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    results = {name: results[name] for name in ["constant colour", *names]}
    print(f"\n{prepared['train_pairs']} training pairs, {args.steps} steps each; palette of "
          f"{len(prepared['palette'])} colours; {time.perf_counter() - start:.0f} s in all.")
    for split in prepared["scenes"]:
        print(f"\n{split} ({len(prepared['scenes'][split])} pairs)\n")
        print("| variant | mIoU | δ5 | δ10 | PSNR | SSIM | RMSE | road where none | "
              "scene road | scene water | s/step | train s |")
        print("| --- |" + " ---: |" * 11)
        for name, result in results.items():
            print(_row(name, result, split))
        print(f"\n{split}, each photo scored on its own, the means over the photos\n")
        print("| variant | mIoU | δ5 | δ10 | PSNR | SSIM | RMSE |")
        print("| --- |" + " ---: |" * 6)
        for name, result in results.items():
            r = result[f"{split}/photo"]
            print(f"| {name} | {r['miou']:.3f} | {r['d5']:.3f} | {r['d10']:.3f} | "
                  f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['rmse']:.2f} |")


if __name__ == "__main__":
    main()
