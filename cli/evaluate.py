"""``geogan evaluate``: how close a translated raster is to a reference, in numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from geogan.grids.windows import BLENDS

from .options import ProgressBar

RESAMPLINGS = ("nearest", "bilinear", "cubic", "average", "mode")  # geogan.evaluation.rasters's


@click.command("evaluate")
@click.argument("prediction", type=click.Path(dir_okay=False))
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--palette", default=None, metavar="auto|FILE",
              help="Score classes of a flat-colour map: auto (the reference's GEOGAN_PALETTE "
                   "tag, else its few flat colours) or a JSON file {\"class\": [r, g, b], ...}.")
@click.option("--mask", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="AOI.geojson", help="Score only inside these polygons (any CRS the "
                                          "GeoJSON declares; WGS 84 by default).")
@click.option("--resampling", type=click.Choice(RESAMPLINGS), default=None,
              help="For a reference on another grid [default: nearest with --palette or a "
                   "categorical reference, else bilinear].")
@click.option("--data-range", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="D", help="Value range of PSNR and SSIM [default: 255 for uint8, else "
                                "the reference's valid max - min].")
@click.option("--tile", type=click.IntRange(min=2), default=None, metavar="PX",
              help="Tile size translate used, for the seam score [default: the "
                   "prediction's GEOGAN_TILE_SIZE tag; no seam score without either].")
@click.option("--overlap", type=click.IntRange(min=0), default=None, metavar="PX",
              help="Overlap translate used [default: from the tags, else a quarter tile].")
@click.option("--blend", type=click.Choice(BLENDS), default=None,
              help="Blend translate used [default: from the tags, else cosine].")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document instead of tables (PSNR capped at 100 dB, "
                   "undefined values as null).")
def evaluate_command(prediction: str, reference: str, palette: str | None, mask: Path | None,
                     resampling: str | None, data_range: float | None, tile: int | None,
                     overlap: int | None, blend: str | None, as_json: bool) -> None:
    """Compare PREDICTION (e.g. a translated scene) with REFERENCE (the ground truth).

    The reference is read onto the prediction's grid (reprojected when needed); pixels
    that are nodata, masked or NaN in either, or outside --mask, are ignored. Prints L1,
    RMSE, PSNR and SSIM per band and their mean; with --palette, per-class accuracy and
    IoU, pixel accuracy and mean IoU after snapping pixels to the nearest palette colour;
    when the tile size is known, the seam score (mean gradient across translate's window
    boundaries over the mean elsewhere; 1.0 = no seams).

    \b
    Examples:
      geogan evaluate translated.tif map.tif --palette auto
      geogan evaluate translated.tif truth.tif --mask held-out.geojson --json
      geogan evaluate out.tif ref_3857.tif --resampling cubic --tile 256 --overlap 64
    """
    from geogan.evaluation.rasters import EvaluateOptions, evaluate_rasters  # torch loads here

    options = EvaluateOptions(palette=palette, mask=mask, resampling=resampling,
                              data_range=data_range, tile=tile, overlap=overlap, blend=blend)
    with ProgressBar("evaluate", "block") as progress:
        report = evaluate_rasters(prediction, reference, options, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo("\n".join(_tables(report)))


def _number(value: float | None, fmt: str = ".4g") -> str:
    """A table cell: ``-`` for undefined (None, NaN), ``inf``/``-inf`` for infinities."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def _tables(report: Any) -> list[str]:
    """The report as aligned text tables, for people."""
    grid = report.grid if report.resampling is None else f"{report.grid} ({report.resampling})"
    lines = [f"{report.prediction} vs {report.reference}",
             f"grid {report.width} x {report.height}, reference {grid}; {report.pixels} pixels "
             f"scored; data range {report.data_range:g} ({report.data_range_source})", ""]
    width = max([len(b.name) for b in report.bands] + [4])
    lines.append(f"{'band':<{width}}  {'L1':>10}  {'RMSE':>10}  {'PSNR dB':>8}  {'SSIM':>7}")
    for scores in (*report.bands, report.mean):
        lines.append(f"{scores.name:<{width}}  {_number(scores.l1):>10}  "
                     f"{_number(scores.rmse):>10}  {_number(scores.psnr, '.2f'):>8}  "
                     f"{_number(scores.ssim, '.4f'):>7}")
    palette = report.palette
    if palette is not None:
        width = max([len(c) for c in palette.classes] + [5])
        lines += ["", f"classes ({report.palette_source})",
                  f"{'class':<{width}}  {'accuracy':>8}  {'IoU':>6}  {'pixels':>10}"]
        reference_pixels = palette.confusion.sum(axis=1)
        for index, name in enumerate(palette.classes):
            pixels = int(reference_pixels[index])
            lines.append(f"{name:<{width}}  {_number(palette.accuracy[name], '.3f'):>8}  "
                         f"{_number(palette.iou[name], '.3f'):>6}  {pixels:>10}")
        lines.append(f"pixel accuracy {_number(palette.pixel_accuracy, '.4f')}, "
                     f"mean IoU {_number(palette.mean_iou, '.4f')}")
    seams = report.seams
    if seams is not None:
        lines += ["", f"seam score (tile {seams.tile}, overlap {seams.overlap}, {seams.blend}, "
                      f"{seams.lattice} lattice, from {seams.source}): prediction "
                      f"{_number(seams.prediction, '.3f')}, reference "
                      f"{_number(seams.reference, '.3f')} (1.0 = no seams)"]
    return lines
