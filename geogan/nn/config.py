"""Typed configuration of the networks and of training, with named presets.

:class:`Architecture` says how to build the networks; it travels in the model file so
that ``translate`` needs no flags. :class:`TrainConfig` says how to fit them; it is kept
in the checkpoints and in the model file's training record. Both are plain frozen
dataclasses of ints, floats and strings, so that ``dataclasses.asdict`` gives a value
``torch.load(..., weights_only=True)`` accepts.

Presets are small named sets of values: ``faithful`` (the default) is the recipe chosen by
measurement on real aerial photo → map pairs, ``paper`` follows the papers exactly, ``tiny``
keeps the paper's structure with narrow layers for CPU demos and tests; any value can be
overridden.
This module imports neither torch nor numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from geogan.errors import ConfigError

MODEL_KINDS = ("pix2pix", "cyclegan")
"""Pix2Pix needs paired chips; CycleGAN learns from unpaired ones."""

GENERATORS_BY_KIND = {"pix2pix": "unet", "cyclegan": "resnet"}
NORMS_BY_KIND = {"pix2pix": "batch", "cyclegan": "instance"}
GAN_LOSSES_BY_KIND = {"pix2pix": "vanilla", "cyclegan": "lsgan"}

GAN_LOSSES = ("vanilla", "lsgan")
UPSAMPLINGS = ("transpose", "resize")
CLASS_MODES = ("off", "auto")
OUTPUTS = ("auto", "image", "shaded", "palette", "classes")
"""What translate writes: ``image`` (the image head), ``shaded`` (the most likely class's
colour, tinted toward the other likely classes where the model is unsure; see
:mod:`geogan.inference.class_colours`), ``palette`` (crisp colours of the most likely
class) or ``classes`` (the class index); ``auto`` is ``shaded`` for models with a class
head, else ``image``."""
NORMS = ("batch", "instance")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

MIN_TILE_SIZE = 64
MAX_TILE_SIZE = 1024


def check_kind_fits_chips(kind: str, paired: bool, chips: object, hint: str) -> None:
    """Refuse Pix2Pix on unpaired chips (the one place that says so).

    Args:
        kind: ``pix2pix`` or ``cyclegan``.
        paired: Whether the chips are paired.
        chips: The chip folder, for the message.
        hint: What to do instead, for the message (each caller names its own way).

    Raises:
        ConfigError: If ``kind`` is ``pix2pix`` and the chips are unpaired.
    """
    if kind == "pix2pix" and not paired:
        raise ConfigError(f"Pix2Pix needs paired chips (images/ and images2/), but {chips} "
                          f"holds unpaired chips; {hint}")


MIN_DISCRIMINATOR_SIZE = 32
"""Smallest side a PatchGAN's coarsest scale may see (3 layers: 2 x 2 logits)."""


@dataclass(frozen=True)
class Architecture:
    """How to build the networks of one model.

    Attributes:
        kind: ``pix2pix`` or ``cyclegan``.
        in_bands: Bands of domain A (the input of translate).
        out_bands: Bands of domain B (the output of translate).
        tile_size: Side of the square tiles the model sees, a power of two from 64 to
            1024. The U-Net has ``log2(tile_size)`` down-sampling levels (8 at 256), so
            its bottleneck is 1 x 1.
        generator: Generator registry name: ``unet`` (Pix2Pix) or ``resnet`` (CycleGAN).
        ngf: Filters of the generator's first layer (64 in the papers).
        ndf: Filters of the discriminator's first layer (64 in the papers).
        n_layers: Strided layers of the PatchGAN discriminator; 3 gives 70 x 70 patches.
        norm: ``batch`` (Pix2Pix) or ``instance`` (CycleGAN).
        dropout: Dropout probability in the three innermost decoder blocks of the
            U-Net (0.5 in the paper); in the ResNet blocks (0 in the paper).
        resnet_blocks: Residual blocks of the ResNet generator (9 at 256 px).
        unet_levels: Down-sampling levels of the U-Net; 0 (the paper) takes
            ``log2(tile_size)``, a 1 x 1 bottleneck whose receptive field is the whole
            tile. Fewer levels bound what each output pixel sees (6 levels: 190 px), so
            the network traces the input instead of drawing a remembered layout.
        upsample: How the U-Net's decoder doubles the size: ``transpose`` (the paper's
            4 x 4 transposed convolution) or ``resize`` (nearest-neighbour resize, then a
            3 x 3 convolution: no checkerboard texture).
        input_skip: Channels of the U-Net's full-resolution path from the input to the
            output (0: none, the paper, whose output is decoded from a half-resolution
            grid): two 3 x 3 convolutions whose result is added to the decoder's, so that
            the output's edges can follow the input's pixel by pixel.
        decoder_blocks: U-Net decoder levels, from the second finest inward, that end in a
            residual block (0: none, the paper, whose decoder has one convolution a level).
        palette: Colours of the target domain's classes, one tuple of band values per
            class, when the target is a flat-colour map; the generator then also
            predicts a class per pixel and ``translate`` can write crisp palette
            colours or a class band. Empty: no class head.
        class_names: Names of the palette's classes (same order), for the colour table.
        class_weights: The cross-entropy weight each class was trained with (same
            order; empty: equal weights). Training weighs rare classes up so that the
            head learns them at all, which also inflates their probabilities;
            translation divides them out again, so that each pixel gets its most
            probable class.
        label_smoothing: The label smoothing ε the class head was trained with (0:
            none). Such a head learns ``(1 - ε) p + ε / K`` for each class's
            probability ``p``; translation takes the ``ε / K`` off again, so that the
            map is drawn from the same probabilities as a head trained without it.
        d_scales: PatchGAN discriminators, each at half the resolution of the one
            before (pix2pixHD's multi-scale discriminator); 1 is the paper's single one.
        spectral_norm: Spectral normalisation of every discriminator convolution.
        tta: Whether ``translate`` averages each window's 8 flips and rotations unless
            told otherwise (its ``--tta/--no-tta``). ``faithful`` models do: on the
            real aerial → map pairs it raised every figure of two trainings (validation
            mIoU per photo +0.007 on each, SSIM +0.006, the unfamiliar pairs' SSIM
            +0.003) for 8 times the generator's work. False in files written before it.
        unsure_below: Odds of the most likely class under which ``translate`` counts a
            pixel of a shaded map *unsure*, and blurs it among its neighbours, unless told
            otherwise (its ``--unsure-below``; see
            :mod:`geogan.inference.class_colours`). 0.5 (less than even odds) in files
            written before it; ``faithful`` models blur fewer pixels (0.45): on the real
            aerial → map pairs, averaged over the 8 views, their maps keep the SSIM of
            a blank map on unfamiliar scenes with less blur, and a blurred pixel that
            leaves its class costs mIoU where the class was right (blurring fewer raised
            validation mIoU per photo by 0.005-0.006 on each of four trainings).
    """

    kind: str
    in_bands: int
    out_bands: int
    tile_size: int = 256
    generator: str = "unet"
    ngf: int = 64
    ndf: int = 64
    n_layers: int = 3
    norm: str = "batch"
    dropout: float = 0.5
    resnet_blocks: int = 9
    unet_levels: int = 0
    upsample: str = "transpose"
    input_skip: int = 0
    decoder_blocks: int = 0
    palette: tuple[tuple[float, ...], ...] = ()
    class_names: tuple[str, ...] = ()
    class_weights: tuple[float, ...] = ()
    label_smoothing: float = 0.0
    d_scales: int = 1
    spectral_norm: bool = False
    tta: bool = False
    unsure_below: float = 0.5  # geogan.inference.class_colours.UNSURE_BELOW

    def __post_init__(self) -> None:
        # Model files store tuples as lists: keep the dataclass hashable and comparable.
        object.__setattr__(self, "palette", tuple(tuple(float(v) for v in c)
                                                  for c in self.palette))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"unknown model kind {self.kind!r}; use one of {_names(MODEL_KINDS)}")
        if self.in_bands < 1 or self.out_bands < 1:
            raise ConfigError("a model needs at least one input and one output band")
        if not is_valid_tile_size(self.tile_size):
            raise ConfigError(
                f"tile size {self.tile_size} is not a power of two from {MIN_TILE_SIZE} to "
                f"{MAX_TILE_SIZE}; export chips with --tile-size 256 (or 64, 128, 512, 1024)"
            )
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; use one of {_names(NORMS)}")
        for name in ("ngf", "ndf", "n_layers", "resnet_blocks", "d_scales"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.upsample not in UPSAMPLINGS:
            raise ConfigError(f"unknown upsampling {self.upsample!r}; use one of "
                              f"{_names(UPSAMPLINGS)}")
        for name in ("input_skip", "decoder_blocks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be at least 0, not {getattr(self, name)}")
            if getattr(self, name) and self.generator != "unet":
                raise ConfigError(f"{name} is part of the U-Net generator; the "
                                  f"{self.generator} generator has none")
        if self.unet_levels and not 5 <= self.unet_levels <= int(math.log2(self.tile_size)):
            raise ConfigError(f"the U-Net needs 5 to {int(math.log2(self.tile_size))} levels "
                              f"at {self.tile_size} px, not {self.unet_levels}")
        if self.decoder_blocks >= self.unet_depth:
            raise ConfigError(f"a U-Net of {self.unet_depth} levels has {self.unet_depth - 1} "
                              f"decoder levels for blocks, not {self.decoder_blocks}")
        if self.tile_size >> (self.d_scales - 1) < MIN_DISCRIMINATOR_SIZE:
            raise ConfigError(f"{self.d_scales} discriminator scales shrink a {self.tile_size} "
                              f"px tile below {MIN_DISCRIMINATOR_SIZE} px; use fewer")
        if any(len(c) != self.out_bands for c in self.palette):
            raise ConfigError(f"every palette colour needs {self.out_bands} band value(s)")
        if self.palette and len(self.palette) < 2:
            raise ConfigError("a palette needs at least two classes")
        if self.class_names and len(self.class_names) != len(self.palette):
            raise ConfigError("give one class name per palette colour")
        if self.class_weights and (len(self.class_weights) != len(self.palette)
                                   or min(self.class_weights) <= 0):
            raise ConfigError("give one positive class weight per palette colour")
        _check_label_smoothing(self.label_smoothing)
        check_unsure_below(self.unsure_below)

    @property
    def unet_depth(self) -> int:
        """Down-sampling levels of the U-Net: ``unet_levels``, else ``log2(tile_size)``."""
        return self.unet_levels or int(math.log2(self.tile_size))

    @property
    def classes(self) -> int:
        """Classes of the class head (0: none)."""
        return len(self.palette)

    @property
    def directions(self) -> tuple[str, ...]:
        """Generators a model holds: ``a2b``, and ``b2a`` for CycleGAN."""
        return ("a2b", "b2a") if self.kind == "cyclegan" else ("a2b",)

    def bands(self, direction: str) -> tuple[int, int]:
        """(input, output) bands of the generator of ``direction``."""
        return (self.in_bands, self.out_bands) if direction == "a2b" else (
            self.out_bands, self.in_bands)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in the model file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Architecture:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored."""
        return _from_dict(cls, d)


@dataclass(frozen=True)
class TrainConfig:
    """How to fit a model.

    Attributes:
        batch_size: Chips (or chip pairs) per step; 1 in both papers.
        epochs: Passes over the training chips; ignored when ``steps`` is set.
        steps: Optimiser steps in all, instead of ``epochs``.
        lr: Adam learning rate, constant for the first ``decay_start`` of training,
            then decayed linearly to zero.
        decay_start: Share of the steps at the full learning rate before its linear
            decay (0.5, the papers'; 0.75 in ``faithful``; less than 1).
        beta1: Adam's first beta (0.5 in the papers).
        beta2: Adam's second beta (0.999 in the papers; 0.99 in ``faithful``, whose
            1500 steps are short for a second moment averaged over a thousand).
        weight_decay: Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): each step
            shrinks every weight by ``lr * weight_decay`` of itself, apart from the
            gradient's update. 0 (the papers') is plain Adam.
        gan_loss: ``vanilla`` (BCE with logits) or ``lsgan`` (least squares).
        lambda_l1: Weight of the L1 loss of Pix2Pix.
        lambda_gan: Weight of the adversarial loss of the Pix2Pix generator (1 in the
            paper). 0 trains the same U-Net on L1 alone, with no discriminator update: the
            baseline ``benchmarks/quality.py`` compares Pix2Pix with.
        lambda_cycle: Weight of each cycle-consistency loss of CycleGAN.
        lambda_identity: Weight of CycleGAN's identity loss, as a fraction of
            ``lambda_cycle`` (0.5 in the paper); only used when both domains have the
            same number of bands.
        pool_size: Past fakes each CycleGAN discriminator draws from (50).
        augment: Random flips and 90-degree rotations, the same for both chips.
        rotate: Rotation by any angle (overhead imagery has no up), the same for both
            chips and their masks; reflection fills the corners.
        scale_jitter: Largest random zoom factor (1: none); zooms in and out up to it.
        crop_jitter: The paper's random jitter: enlarge by 286/256 and take a random
            crop of the tile size, the same for both chips.
        photometric: Strength of random brightness, contrast and per-band gain on the
            input only (0: none; 0.2 changes contrast by up to 20 %).
        colour: Strength of random saturation and hue of the input only (0: none; 0.5
            scales each chip's colours by 0.5 to 1.5 and turns their hue by up to 30
            degrees), so that colour alone stops telling water from woods.
        shadow: Probability that a chip's input gets one soft-edged ellipse darkened to
            35–75 % of its brightness (0: never): shadows of clouds and towers, which do
            not change the map.
        blur: Probability that a chip's input is blurred by a Gaussian of 0.5–1.5 px
            (0: never), as a coarser or softer sensor, haze, or a scene read up from a
            coarser pixel size blurs it: the map does not change.
        unsharp: Probability that a chip's input is sharpened by an unsharp mask of a
            0.5–2 px radius and an amount of 0.5–1.5 (0: never), as a vendor sharpens
            its imagery: the map does not change.
        cutmix: Probability that a chip pair gets a rectangle of another pair of the
            batch pasted into it, into the input, target, masks and classes alike
            (CutMix; 0: never). Needs a batch size of two or more.
        augment_until: Share of the steps that the random warps (``rotate``,
            ``scale_jitter``, ``crop_jitter``), ``cutmix`` and the input's
            ``photometric``, ``colour``, ``shadow``, ``blur`` and ``unsharp`` jitter
            apply to (1: all). The last steps then train on the chips as they are, flips
            and right-angle rotations aside (which resample nothing): the network ends on
            photos like those it will translate, sharp and at their own scale, as YOLOX
            ends without its mosaics.
        diffaugment: Differentiable augmentation of what the discriminator sees
            (brightness, contrast, translation, cutout), identical for the input and
            output halves of each pair, for real and fake pairs alike (Zhao et al. 2020).
        ema: Decay of an exponential moving average of the generator's weights, which
            is what the model file keeps (0: the last weights, as the paper).
        classes: ``off``, or ``auto``: when the target chips are a flat-colour map, learn
            its palette and train a class head beside the image output.
        lambda_ce: Weight of the class head's cross-entropy (pixels between palette
            colours, such as anti-aliased edges, are left out unless ``class_edges``).
            Against ``lambda_l1``'s 100 the head needs tens to shape the shared layers: on
            real aerial → map pairs, 30 raised the mIoU from 0.14 to 0.18, and
            ``faithful``'s 60 beat 30 on each of three seeds (benchmarks/quality_real.py).
        class_edges: Train the class head on every target pixel, each with its nearest
            palette colour's class (anti-aliased edges too, as palette scores snap a map)
            instead of leaving out those between two colours.
        class_balance: Each class's cross-entropy is weighted by its share of the target
            pixels to the power ``-class_balance`` (0: equal weights; 0.5: a class 100
            times rarer weighs 10 times more), so that thin roads and small ponds are
            drawn at all.
        label_smoothing: Share of each class pixel's cross-entropy target spread evenly
            over all the classes (0: none), so the head is trained never to be certain:
            a small training set is otherwise learnt with a confidence its other
            scenes do not bear out (Szegedy et al. 2016).
        hard_pixels: Share of the pixels, those with the highest loss, the class head's
            cross-entropy averages over (1: all of them; 0.25: the hardest quarter, online
            hard example mining), so that what the head already draws right stops
            outweighing the thin roads, outlines and rare classes it gets wrong.
        lambda_dice: Weight of the class head's soft Dice loss (0: none), which scores
            each class's overlap as the palette mIoU does.
        rare_repeat: Repeat factor sampling's threshold ``t`` (0: off): chips holding a
            class that fewer than this share of the training chips hold are drawn up
            to ``sqrt(t / share)`` times as often (:mod:`geogan.training.rare_repeats`).
            Needs a class head.
        lambda_lovasz: Weight of the class head's Lovász-softmax loss (0: none), a convex
            surrogate of 1 - IoU itself, on every other row and column (its cost is a
            sort of the pixels per class); 30, half the cross-entropy's, in ``faithful``.
        lovasz_per_image: Score the Lovász-softmax loss tile by tile and average, as an
            mIoU taken photo by photo is, instead of over the batch's pixels pooled (as
            ``faithful`` does). A ``lambda_lovasz`` of 0 given to :func:`build_configs`
            turns this off too unless it is given as well.
        lambda_cldice: Weight of the class head's soft clDice loss (0: none), which
            scores how much of each class's centre lines the drawing covers and keeps
            inside, so that a road drawn in pieces is punished for its breaks.
        deep_supervision: Weight, relative to ``lambda_ce``, of the cross-entropy of 1 x 1
            class heads on the U-Net decoder's 1/4, 1/8 and 1/16 levels (0: none), trained
            and left out of the model file, so that the coarse levels, where context
            decides a class, learn the classes (:mod:`geogan.training.deep_supervision`);
            on the real maps pairs it drew parks better but not the map: no preset uses it.
        lambda_fm: Weight of pix2pixHD's feature-matching loss: the generator matches
            the discriminator's activations on real pairs (0: none, as the paper).
        judge_classes: With a class head, the discriminator judges what the head draws
            (each pixel's palette colours averaged by its class probabilities) instead
            of the image output, so that the drawn map, not only the image nobody
            draws, is held to the look of real maps (Luc et al. 2016).
        map_discriminator: Whether a Pix2Pix with a class head (a flat-colour map
            target) trains its discriminator. False trains such a model on L1 and the
            class head's losses alone, as ``lambda_gan`` 0 would, and leaves image
            targets (SAR → optical, DSM → imagery) their discriminator: ``translate``
            draws a map model's output from its class head, which the discriminator does
            not judge, so it adds little there (on real maps pairs, within the seeds'
            spread) for half of a float32 step's time. Any discriminator setting given
            explicitly (see :data:`DISCRIMINATOR_SETTINGS`) keeps it.
        masked: Leave nodata pixels (in either chip) out of every loss.
        val_every: Validate every this many steps; 0 validates once per epoch.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (CUDA only).
        seed: Fixes initialisation, data order, augmentation and dropout.
        workers: DataLoader worker processes; 0 loads in the training process; ``None``
            chooses: 0 on a CPU (a worker competes with the training threads: 0.34 s a
            paper Pix2Pix step on 2 cores without, 0.38–0.42 s with one), else half the
            CPU cores, at most 4.
    """

    batch_size: int = 1
    epochs: int = 200
    steps: int | None = None
    lr: float = 2e-4
    decay_start: float = 0.5
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    gan_loss: str = "vanilla"
    lambda_l1: float = 100.0
    lambda_gan: float = 1.0
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    augment: bool = True
    masked: bool = True
    val_every: int = 0
    precision: str = "auto"
    seed: int = 0
    workers: int | None = None
    rotate: bool = False
    scale_jitter: float = 1.0
    crop_jitter: bool = False
    photometric: float = 0.0
    colour: float = 0.0
    shadow: float = 0.0
    blur: float = 0.0
    unsharp: float = 0.0
    cutmix: float = 0.0
    augment_until: float = 1.0
    diffaugment: bool = False
    ema: float = 0.0
    classes: str = "off"
    lambda_ce: float = 1.0
    class_edges: bool = False
    class_balance: float = 0.0
    label_smoothing: float = 0.0
    hard_pixels: float = 1.0
    lambda_dice: float = 0.0
    rare_repeat: float = 0.0
    lambda_lovasz: float = 0.0
    lovasz_per_image: bool = False
    lambda_cldice: float = 0.0
    deep_supervision: float = 0.0
    lambda_fm: float = 0.0
    judge_classes: bool = False
    map_discriminator: bool = True

    def __post_init__(self) -> None:
        if self.gan_loss not in GAN_LOSSES:
            raise ConfigError(
                f"unknown GAN loss {self.gan_loss!r}; use one of {_names(GAN_LOSSES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; use one of {_names(PRECISIONS)}")
        if self.batch_size < 1 or self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ConfigError("batch size, epochs and steps must be at least 1")
        if self.lr <= 0:
            raise ConfigError(f"the learning rate must be positive, not {self.lr}")
        if not 0.0 <= self.decay_start < 1.0:
            raise ConfigError(f"the learning rate's decay must start in [0, 1) of the steps, "
                              f"not {self.decay_start}")
        if min(self.lambda_l1, self.lambda_gan, self.lambda_cycle, self.lambda_identity) < 0:
            raise ConfigError("loss weights must not be negative")
        if self.lovasz_per_image and not self.lambda_lovasz:
            raise ConfigError("the Lovász loss per image needs a Lovász weight "
                              "(--lambda-lovasz); without one there is no such loss")
        if self.pool_size < 0 or (self.workers or 0) < 0 or self.val_every < 0 or self.seed < 0:
            raise ConfigError("pool size, workers, val-every and seed must not be negative")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ConfigError(f"Adam's betas must be in [0, 1), not {self.beta1} and "
                              f"{self.beta2}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight decay must not be negative, not {self.weight_decay}")
        if not 1.0 <= self.scale_jitter <= 4.0:
            raise ConfigError(f"scale jitter must be from 1 to 4, not {self.scale_jitter}")
        if not 0.0 <= self.photometric < 1.0:
            raise ConfigError(f"photometric jitter must be in [0, 1), not {self.photometric}")
        for name, share in (("colour jitter", self.colour),
                            ("the shadow probability", self.shadow),
                            ("the blur probability", self.blur),
                            ("the unsharp-mask probability", self.unsharp),
                            ("the CutMix probability", self.cutmix)):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], not {share}")
        if self.cutmix > 0 and self.batch_size < 2:
            raise ConfigError("CutMix pastes from another pair of the batch: it needs a batch "
                              f"size of 2 or more, not {self.batch_size}")
        if not 0.0 < self.augment_until <= 1.0:
            raise ConfigError(f"the share of augmented steps must be in (0, 1], not "
                              f"{self.augment_until}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"the EMA decay must be in [0, 1), not {self.ema}")
        if self.classes not in CLASS_MODES:
            raise ConfigError(f"unknown classes mode {self.classes!r}; use one of "
                              f"{_names(CLASS_MODES)}")
        if min(self.lambda_ce, self.lambda_dice, self.lambda_lovasz, self.lambda_cldice,
               self.deep_supervision, self.lambda_fm) < 0:
            raise ConfigError("loss weights must not be negative")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ConfigError(f"class balance must be in [0, 1], not {self.class_balance}")
        _check_label_smoothing(self.label_smoothing)
        if not 0.0 <= self.rare_repeat <= 1.0:
            raise ConfigError(f"the rare-class repeat threshold must be in [0, 1], not "
                              f"{self.rare_repeat}")
        if not 0.0 < self.hard_pixels <= 1.0:
            raise ConfigError(f"the share of hard pixels must be in (0, 1], not "
                              f"{self.hard_pixels}")

    @property
    def geometric(self) -> bool:
        """Whether batches are warped by a random rotation, zoom or crop."""
        return self.rotate or self.scale_jitter > 1.0 or self.crop_jitter

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in checkpoints and the training record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored."""
        return _from_dict(cls, d)


PRESETS: dict[str, dict[str, Any]] = {
    # Chosen on real aerial photo -> map pairs (benchmarks/quality_real.py): draws what
    # the photo shows instead of a remembered street grid. Pix2Pix only; CycleGAN models
    # get the paper's settings under this name (see PIX2PIX_ONLY_PRESETS).
    # Its learning rate decays over the last quarter of the steps, not the last half: in
    # 1500 steps the recipe underfits (3000 steps score higher); five trainings so decayed
    # each gained 0.04-0.18 dB of PSNR. For the same reason it has no dropout: on five
    # trainings delta-5 and SSIM rose on each. Adam's second moment averages over about the
    # last hundred steps (beta2 0.99): on five trainings validation PSNR rose on each
    # (+0.004 to +0.29 dB). Its models are translated in their 8 flips and rotations by
    # default (``tta``: validation mIoU per photo +0.007 on two trainings), and count a
    # pixel unsure (and blur it) under odds of 0.45 (``unsure_below``: +0.005-0.006 on
    # four, the unfamiliar pairs' SSIM staying above the blank map's). The class head also
    # learns from the Lovász-softmax loss, tile by tile (``lambda_lovasz`` 30,
    # ``lovasz_per_image``), a surrogate of 1 - IoU taken as the holdout's mIoU is, photo
    # by photo: on four trainings validation mIoU per photo rose by 0.005-0.015 on each
    # (mean 0.349 -> 0.358), the unfamiliar pairs' by 0.007-0.018 on three of four.
    "faithful": {"ngf": 64, "ndf": 64, "epochs": 200, "batch_size": 4, "lr": 5e-4,
                 "decay_start": 0.75, "beta2": 0.99, "dropout": 0.0, "unet_levels": 6,
                 "upsample": "resize", "classes": "auto", "rotate": True, "scale_jitter": 1.25,
                 "photometric": 0.2, "lambda_ce": 60.0, "class_balance": 0.25,
                 "diffaugment": True, "ema": 0.999, "map_discriminator": False, "tta": True,
                 "unsure_below": 0.45, "lambda_lovasz": 30.0, "lovasz_per_image": True},
    # Isola et al. 2017 and Zhu et al. 2017, at 256 x 256.
    "paper": {"ngf": 64, "ndf": 64, "epochs": 200},
    # The same structure, a sixteenth of the arithmetic: minutes on a laptop CPU.
    "tiny": {"ngf": 16, "ndf": 16, "epochs": 20},
}
"""Named presets: values that differ from the dataclass defaults."""

DEFAULT_PRESET = "faithful"
"""The preset of ``geogan train`` when none is given."""

PIX2PIX_ONLY_PRESETS = {"faithful": "paper"}
"""Presets measured on paired data only, and what a CycleGAN model gets instead."""

DISCRIMINATOR_SETTINGS = frozenset({"ndf", "n_layers", "gan_loss", "lambda_gan", "d_scales",
                                    "lambda_fm", "judge_classes", "spectral_norm",
                                    "diffaugment"})
"""Settings that only shape the discriminator: giving one explicitly keeps it for map
targets (``map_discriminator``) unless ``map_discriminator`` is given too."""


def build_configs(kind: str, in_bands: int, out_bands: int, tile_size: int, *,
                  preset: str = DEFAULT_PRESET,
                  overrides: Mapping[str, Any] | None = None) -> tuple[Architecture, TrainConfig]:
    """Architecture and training configuration of a preset with overrides applied.

    The kind chooses the generator, the norm and the GAN loss the paper used; the
    preset then sets widths, length and the recipe (a Pix2Pix-only preset gives other
    kinds the preset of :data:`PIX2PIX_ONLY_PRESETS`); ``overrides`` (a value of ``None`` means "not
    given") win over both, and one of :data:`DISCRIMINATOR_SETTINGS` also sets
    ``map_discriminator``. A key of either dataclass may be overridden.

    Raises:
        ConfigError: For an unknown preset, an unknown key or a bad value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; use one of {_names(PRESETS)}")
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; use one of {_names(MODEL_KINDS)}")
    values: dict[str, Any] = {
        "generator": GENERATORS_BY_KIND[kind],
        "norm": NORMS_BY_KIND[kind],
        "gan_loss": GAN_LOSSES_BY_KIND[kind],
        "dropout": 0.5 if kind == "pix2pix" else 0.0,
    }
    if kind != "pix2pix":
        preset = PIX2PIX_ONLY_PRESETS.get(preset, preset)
    values.update(PRESETS[preset])
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if DISCRIMINATOR_SETTINGS & given.keys() and "map_discriminator" not in given:
        values["map_discriminator"] = True  # asked for a discriminator: train one
    if given.get("lambda_lovasz") == 0 and "lovasz_per_image" not in given:
        values["lovasz_per_image"] = False  # no Lovász loss left to score tile by tile
    values.update(given)
    arch_keys = {f.name for f in fields(Architecture)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - arch_keys - train_keys
    if unknown:
        raise ConfigError(f"unknown setting(s) {_names(sorted(unknown))}")
    arch = Architecture(kind=kind, in_bands=in_bands, out_bands=out_bands, tile_size=tile_size,
                        **{k: v for k, v in values.items()
                           if k in arch_keys and k not in {"kind", "in_bands", "out_bands",
                                                           "tile_size"}})
    train = TrainConfig(**{k: v for k, v in values.items() if k in train_keys})
    return arch, train


def is_valid_tile_size(size: int) -> bool:
    """Whether ``size`` is a power of two from 64 to 1024."""
    return MIN_TILE_SIZE <= size <= MAX_TILE_SIZE and size & (size - 1) == 0


_Config = TypeVar("_Config", Architecture, TrainConfig)


def _from_dict(cls: type[_Config], d: Mapping[str, Any]) -> _Config:
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError as error:
        raise ConfigError(f"incomplete {cls.__name__} settings: {error}") from None


def _check_label_smoothing(eps: float) -> None:
    """Both configs hold ε: the one training uses, and the one translate takes off again."""
    if not 0.0 <= eps < 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), not {eps}")


def check_unsure_below(odds: float) -> None:
    """Raise :class:`ConfigError` unless ``odds`` can bound a most likely class's
    probability: 0 (no pixel is unsure) to 1 (every pixel shaded past the exact radius)."""
    if not 0.0 <= odds <= 1.0:
        raise ConfigError(f"the odds under which a pixel is unsure must be in [0, 1], "
                          f"not {odds}")


def _names(names: Any) -> str:
    return ", ".join(str(n) for n in names)


__all__ = ["DEFAULT_PRESET", "DISCRIMINATOR_SETTINGS", "PRESETS", "Architecture",
           "TrainConfig", "build_configs", "check_unsure_below", "is_valid_tile_size"]
