"""``geogan demo``: export, train, translate and score the shipped sample data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from geogan.sampledata.world import KINDS

from .options import ProgressBar, overwrite_opt

if TYPE_CHECKING:  # geogan.api.demo imports torch: at run time only inside the command
    from geogan.api.demo import DemoReport, Quality


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("geogan-demo"), show_default=True,
              help="Folder for everything the demo writes.")
@click.option("--kind", type=click.Choice(KINDS), default=KINDS[0], show_default=True,
              help="Sample pair: satellite → map, DSM → orthophoto or SAR → optical.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Training steps [default: 1000 for sat-map, 2000 for the others; "
                   "under five minutes each on 2 CPU cores].")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda",
              help="Where to train and translate.")
@overwrite_opt
def demo_command(out_dir: Path, kind: str, steps: int | None, device: str,
                 overwrite: bool) -> None:
    """Run the whole job on the sample data and score it.

    Trains a tiny Pix2Pix on the northern three quarters of a sample scene (export
    chips, train), translates the whole scene into a GeoTIFF, and scores it against the
    reference on the held-out southern quarter and on the whole scene (PSNR, SSIM and,
    for maps, per-class accuracy and mean IoU). preview.png shows input | translated |
    reference; a red line marks where the held-out quarter starts.

    \b
    Examples:
      geogan demo
      geogan demo --kind sar-optical --out sar-demo
    """
    from geogan.api.demo import DemoProgress, run_demo  # imports torch: only when run

    with ProgressBar("chips", "win") as export_bar, ProgressBar("train", "step") as train_bar, \
            ProgressBar("translate", "win") as translate_bar:
        progress = DemoProgress(export=export_bar, train=train_bar.steps,
                                translate=translate_bar)
        report = run_demo(out_dir, kind=kind, steps=steps, device=device,
                          overwrite=overwrite, progress=progress)
    click.echo(_summary(report))


def _summary(report: DemoReport) -> str:
    """Where the files are, the quality table and the time taken."""
    source = "shipped" if report.sample_data_shipped else "generated"
    lines = [
        f"Demo {report.kind}: Pix2Pix ({report.recipe}, {report.tile_size}² tiles, "
        f"{report.steps} steps, "
        f"{report.device} {report.precision}) trained on rows 0–{report.held_out_row} of the "
        f"{report.width} × {report.height} scene, translated whole.",
        "",
        f"  input          {_path(report.input_path)}  ({source} sample data)",
        f"  reference      {_path(report.reference_path)}",
        f"  training area  {_path(report.train_area_path)}",
        f"  chips          {_path(report.chips_dir)}  ({report.chips_train + report.chips_val} "
        "pairs, from the training area only)",
        f"  model          {_path(report.model_path)}  (training log in "
        f"{_path(report.checkpoint_dir)})",
        f"  translated     {_path(report.translated_path)}",
        f"  preview        {_path(report.preview_path)}  (input | translated | reference; "
        "held-out area below the red line)",
        f"  figures        {_path(report.metrics_path)}",
        "",
        f"  {'':<22}{'held out':>10}{'whole scene':>14}",
        *_rows(report.held_out, report.whole),
        "",
        "The scene is procedural (generated terrain, roads and buildings), far easier than "
        "real imagery: these figures say the pipeline works, not how good a model trained on "
        "real data is (benchmarks/quality_real.py measures that).",
        "",
        f"Took {report.total_seconds:.0f} s: " + ", ".join(
            f"{stage} {seconds:.1f} s" for stage, seconds in report.seconds.items()) + ".",
    ]
    return "\n".join(lines)


def _rows(held_out: Quality, whole: Quality) -> list[str]:
    """The figures of both areas, one row per measure."""
    def row(name: str, a: float | None, b: float | None, fmt: str) -> str:
        cells = [("–" if v is None else format(v, fmt)) for v in (a, b)]
        return f"  {name:<22}{cells[0]:>10}{cells[1]:>14}"

    rows = [row("PSNR (dB)", held_out.psnr, whole.psnr, ".2f"),
            row("SSIM", held_out.ssim, whole.ssim, ".3f")]
    if held_out.palette is not None and whole.palette is not None:
        rows += [row("pixel accuracy", held_out.palette.pixel_accuracy,
                     whole.palette.pixel_accuracy, ".1%"),
                 row("mean IoU", held_out.palette.mean_iou, whole.palette.mean_iou, ".3f"),
                 "  accuracy per class:"]
        rows += [row(f"  {name}", held_out.palette.accuracy[name], whole.palette.accuracy[name],
                     ".1%") for name in whole.palette.classes]
    return rows


def _path(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it, else as it is."""
    try:
        return os.path.relpath(path) if path.is_absolute() and Path.cwd() in path.parents \
            else os.fspath(path)
    except ValueError:  # another drive
        return os.fspath(path)
