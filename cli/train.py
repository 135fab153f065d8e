"""``geogan train``: fit Pix2Pix or CycleGAN on a chip folder and write the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.nn.config import (
    CLASS_MODES,
    DEFAULT_PRESET,
    GAN_LOSSES,
    MODEL_KINDS,
    PRECISIONS,
    PRESETS,
    UPSAMPLINGS,
)

from .options import ProgressBar, overwrite_opt, seed_opt


@click.command("train")
@click.argument("chips", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (e.g. m.pt).")
@click.option("--model", "kind", type=click.Choice(MODEL_KINDS), default=None,
              help="GAN to fit [default: pix2pix for paired chips, cyclegan for unpaired].")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=DEFAULT_PRESET,
              show_default=True,
              help="faithful: the recipe measured best on real aerial → map pairs (bounded "
                   "U-Net, class head and no discriminator for flat-colour maps, rotation/"
                   "scale jitter, DiffAugment, weight average; Pix2Pix only, CycleGAN gets "
                   "paper); paper: the published networks exactly; tiny: paper, narrow, for "
                   "CPU demos.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Passes over the training chips [default: the preset's, 200 / 20].")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimiser steps in all, instead of --epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Chips per step [default: 1, as in the papers].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate [default: 5e-4 faithful, else 2e-4], decayed to zero "
                   "from --decay-start on.")
@click.option("--decay-start", type=click.FloatRange(0, 1, max_open=True), default=None,
              metavar="SHARE",
              help="Share of the steps at the full learning rate before it decays "
                   "linearly to zero [default: 0.75 faithful, else 0.5, the papers'].")
@click.option("--beta1", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Adam's first beta, its momentum [default: 0.5, the papers'].")
@click.option("--beta2", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Adam's second beta: 0.99 averages the squared gradients over about the "
                   "last hundred steps [default: 0.99 faithful, else 0.999, the papers'].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="Decoupled weight decay (AdamW): each step shrinks the weights by "
                   "lr × this of themselves [default: 0, plain Adam, as in the papers].")
@click.option("--ngf", type=click.IntRange(min=1), default=None,
              help="Generator width [default: 64 paper, 16 tiny].")
@click.option("--ndf", type=click.IntRange(min=1), default=None,
              help="Discriminator width [default: 64 paper, 16 tiny].")
@click.option("--gan-loss", type=click.Choice(GAN_LOSSES), default=None,
              help="Adversarial loss [default: vanilla for pix2pix, lsgan for cyclegan].")
@click.option("--lambda-l1", type=click.FloatRange(min=0), default=None,
              help="Weight of Pix2Pix's L1 loss [default: 100].")
@click.option("--lambda-gan", type=click.FloatRange(min=0), default=None,
              help="Weight of Pix2Pix's adversarial loss [default: 1, but none for map "
                   "targets in faithful: see --map-discriminator]; 0 trains the U-Net on "
                   "L1 alone (no discriminator), a baseline.")
@click.option("--lambda-cycle", type=click.FloatRange(min=0), default=None,
              help="Weight of each CycleGAN cycle loss [default: 10].")
@click.option("--lambda-identity", type=click.FloatRange(min=0), default=None,
              help="CycleGAN identity loss as a fraction of --lambda-cycle [default: 0.5].")
@click.option("--augment/--no-augment", default=None,
              help="Random flips and 90° rotations, the same for both chips [default: on].")
@click.option("--rotate/--no-rotate", default=None,
              help="Rotate both chips by one random angle (any, not only 90°) each step.")
@click.option("--scale-jitter", type=click.FloatRange(1, 4), default=None, metavar="S",
              help="Zoom both chips by a random factor from 1/S to S [default: 1, none].")
@click.option("--crop-jitter/--no-crop-jitter", default=None,
              help="The paper's jitter: enlarge by 286/256 and crop a random tile.")
@click.option("--photometric", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Random brightness, contrast and band gains of the input only, up to "
                   "this strength (0.2: ±20 % contrast) [default: 0].")
@click.option("--colour", type=click.FloatRange(0, 1), default=None, metavar="S",
              help="Random saturation (×1±S) and hue (±S×60°) of the input only, so that "
                   "colour alone stops telling water from woods [default: 0].")
@click.option("--shadow", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Darken one soft-edged ellipse of the input (to 35-75 %) with this "
                   "probability per chip, as a shadow does, so that darkness alone stops "
                   "meaning water (for scenes without dark water) [default: 0].")
@click.option("--blur", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Blur the input by a Gaussian of 0.5-1.5 px with this probability per "
                   "chip, as a softer sensor or a scene read up from a coarser pixel size "
                   "is [default: 0].")
@click.option("--unsharp", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Sharpen the input by an unsharp mask (radius 0.5-2 px, amount 0.5-1.5) "
                   "with this probability per chip, as a vendor's sharpening does "
                   "[default: 0].")
@click.option("--cutmix", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Paste a rectangle of another pair of the batch into each pair with "
                   "this probability, into both chips alike (CutMix) [default: 0].")
@click.option("--augment-until", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="SHARE",
              help="Apply the random warps, CutMix and the input's jitter to this share of "
                   "the steps only; the last steps train on the chips as they are "
                   "[default: 1, all].")
@click.option("--diffaugment/--no-diffaugment", default=None,
              help="DiffAugment: the same random brightness, contrast, shift and cutout of "
                   "both halves of every pair the discriminator judges.")
@click.option("--ema", type=click.FloatRange(0, 1, max_open=True), default=None,
              metavar="DECAY", help="Keep an exponential moving average of the generator's "
                                    "weights (e.g. 0.999) and write it as the model.")
@click.option("--classes", type=click.Choice(CLASS_MODES), default=None,
              help="auto: when the target chips are a flat-colour map, learn its palette and "
                   "train a class head (map colours, class rasters); off: image only.")
@click.option("--lambda-ce", type=click.FloatRange(min=0), default=None,
              help="Weight of the class head's cross-entropy [default: 60 faithful, 1].")
@click.option("--class-balance", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Weight each class's cross-entropy by its pixel share to the power -P, so "
                   "rare classes (thin roads, ponds) are drawn [default: 0.25 faithful, 0].")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=None,
              metavar="EPS", help="Spread this share of each class pixel's cross-entropy "
                                  "target over all classes, so the head is never trained to "
                                  "be certain [default: 0].")
@click.option("--hard-pixels", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="SHARE", help="Average the class head's cross-entropy over this share "
                                    "of the pixels, those with the highest loss (online hard "
                                    "example mining) [default: 1, all].")
@click.option("--rare-repeat", type=click.FloatRange(0, 1), default=None, metavar="T",
              help="Draw the chips that hold a rare map class more often: a class held by "
                   "a share f < T of the training chips makes them count sqrt(T / f) "
                   "times, rounded (repeat factor sampling) [default: 0, off].")
@click.option("--class-edges/--no-class-edges", default=None,
              help="Train the class head on every map pixel, anti-aliased edges too (each "
                   "with its nearest palette colour, as palette scores snap a map), or "
                   "leave out those between two colours [default: left out].")
@click.option("--lambda-dice", type=click.FloatRange(min=0), default=None,
              help="Weight of the class head's soft Dice loss, which scores each class's "
                   "overlap as mIoU does [default: 0].")
@click.option("--lambda-lovasz", type=click.FloatRange(min=0), default=None,
              help="Weight of the class head's Lovász-softmax loss, a surrogate of 1 - IoU "
                   "itself; 0 turns it off [default: 30 faithful, else 0].")
@click.option("--lambda-cldice", type=click.FloatRange(min=0), default=None,
              help="Weight of the class head's soft clDice loss, which punishes a road "
                   "drawn in pieces for its breaks [default: 0].")
@click.option("--lovasz-per-image/--lovasz-pooled", default=None,
              help="Score the Lovász loss tile by tile and average, as an mIoU taken photo "
                   "by photo is, or over the batch's pixels pooled [default: per image "
                   "faithful, else pooled].")
@click.option("--deep-supervision", type=click.FloatRange(min=0), default=None, metavar="F",
              help="Weight, relative to --lambda-ce, of class heads on the U-Net decoder's "
                   "1/4, 1/8 and 1/16 levels, trained and not kept [default: 0].")
@click.option("--d-scales", type=click.IntRange(1, 4), default=None,
              help="Discriminators at full, half, quarter... resolution (pix2pixHD) "
                   "[default: 1].")
@click.option("--lambda-fm", type=click.FloatRange(min=0), default=None,
              help="Weight of pix2pixHD's discriminator feature-matching loss [default: 0].")
@click.option("--judge-classes/--no-judge-classes", default=None,
              help="With a class head, the discriminator judges the map it draws instead "
                   "of the image output [default: off].")
@click.option("--map-discriminator/--no-map-discriminator", default=None,
              help="With a class head (a flat-colour map target), train the discriminator "
                   "too; image targets always have one [default: off in faithful, whose "
                   "map is drawn from the class head, which the discriminator does not "
                   "judge; on otherwise, and whenever a discriminator setting such as "
                   "--ndf or --lambda-gan is given].")
@click.option("--spectral-norm/--no-spectral-norm", default=None,
              help="Spectral normalisation of the discriminator [default: off].")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None, metavar="P",
              help="Dropout in the U-Net's three innermost decoder blocks, which translate "
                   "--samples draws on [default: 0 faithful, 0.5 paper and tiny].")
@click.option("--unet-levels", type=click.IntRange(5, 10), default=None,
              help="Down-sampling levels of the U-Net [default: log2(tile) in paper, i.e. 8 "
                   "at 256 px]; fewer bound its receptive field.")
@click.option("--upsample", type=click.Choice(UPSAMPLINGS), default=None,
              help="U-Net decoder: transpose (paper) or resize (nearest + conv, no "
                   "checkerboard).")
@click.option("--input-skip", type=click.IntRange(min=0), default=None, metavar="CHANNELS",
              help="A full-resolution path of CHANNELS from the input to the U-Net's output, "
                   "so that edges follow the input pixel by pixel [default: 0, none].")
@click.option("--decoder-blocks", type=click.IntRange(min=0), default=None, metavar="N",
              help="End the N finest U-Net decoder levels but the outermost in a residual "
                   "block [default: 0, none: one convolution a level, as in the paper].")
@click.option("--mask-nodata/--no-mask-nodata", "masked", default=None,
              help="Leave nodata pixels out of every loss [default: on].")
@click.option("--val-every", type=click.IntRange(min=0), default=None, metavar="STEPS",
              help="Validate, preview and checkpoint every STEPS steps [default: each epoch].")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda",
              help="Where to train.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Arithmetic: auto picks bf16 where the GPU/CPU has it natively, else fp32 "
                   "(fp16 with loss scaling on older GPUs).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoints, log.jsonl and previews [default: <model>-train/ beside it].")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --checkpoint-dir.")
@click.option("--init-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start a new run from this checkpoint.pt (networks and optimisers) or "
                   "model file (generators), e.g. to fine-tune on new chips.")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also write TensorBoard event files (losses, validation "
                                  "metrics, learning rate, previews) to DIR at each "
                                  "validation; needs pip install 'geogan[tensorboard]'.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loading processes [default: 0 on a CPU, else half the cores, ≤ 4].")
@seed_opt
@overwrite_opt
def train_command(chips: tuple[Path, ...], output: Path, kind: str | None, preset: str, device: str,
                  checkpoint_dir: Path | None, resume: bool, init_from: Path | None,
                  tensorboard: Path | None, overwrite: bool, **overrides: Any) -> None:
    """Fit a GAN on CHIPS (folders from export-chips, or ArcGIS-exported chips).

    Several folders train as one: they must hold the same layout, band counts, data
    types and tile size; each keeps its own validation split, the value mapping comes
    from statistics pooled over all their training chips, and the model file records
    every folder and its chip counts.

    Paired chips (images/ + images2/) train Pix2Pix; unpaired ones (train_a/ + train_b/)
    train CycleGAN. The model file holds everything translate needs; the checkpoint
    folder holds checkpoints, a JSON-lines log and preview PNGs (input | output |
    target). Ctrl-C writes a checkpoint; run the same command with --resume to go on.

    Under torchrun (torchrun --nproc-per-node N -m geogan train ...) the N processes
    train together with DistributedDataParallel; only the first writes files.

    \b
    Examples:
      geogan train chips/ -o m.pt
      geogan train chips/ -o m.pt --preset tiny --steps 300
      geogan train ireland-chips/ finland-chips/ -o m.pt     # several folders as one
      geogan train chips/ -o m.pt --resume
      geogan train chips/ -o m.pt --tensorboard runs/first   # tensorboard --logdir runs
      torchrun --standalone --nproc-per-node 2 -m geogan train chips/ -o m.pt
    """
    from geogan.training.loop import TrainOptions, train  # imports torch: only when training

    options = TrainOptions(kind=kind, preset=preset, overrides=overrides, device=device,
                           checkpoint_dir=checkpoint_dir, resume=resume, overwrite=overwrite,
                           init_from=init_from, tensorboard=tensorboard)
    with ProgressBar("train", "step") as bar:
        report = train(list(chips), output, options, bar.steps)
    if report.rank != 0:  # under torchrun: the first process reports for all
        return
    processes = f", {report.world_size} processes" if report.world_size > 1 else ""
    final = report.final.get("eval") or {}
    quality = ", ".join(f"{k} {v:.4g}" for k, v in final.items()) or "no validation chips"
    click.echo(
        f"Trained {report.architecture.kind} ({report.config.batch_size}×"
        f"{report.architecture.tile_size}², {report.device}, {report.precision}"
        f"{processes}) for "
        f"{report.steps} steps in {report.seconds:.0f} s; validation: {quality}.\n"
        f"Wrote {report.model_path}; log and previews in {report.checkpoint_dir}."
    )
