"""``geogan export-chips``: cut a raster pair into georeferenced training chips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rasterio.enums import Resampling

from geogan.chips.export import export_chips, export_pairs
from geogan.chips.layout import default_output
from geogan.chips.options import ExportOptions
from geogan.nn.config import MAX_TILE_SIZE, MIN_TILE_SIZE, is_valid_tile_size

from .options import ProgressBar, creation_options, overwrite_opt, seed_opt


@click.command("export-chips")
@click.argument("input_raster", metavar="INPUT", required=False, type=click.Path())
@click.argument("additional_raster", metavar="ADDITIONAL", required=False, type=click.Path())
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False), default=None,
              metavar="CSV", help="Export the independent pairs this CSV lists (input,additional "
                                  "a row, relative to it) into one folder, instead of INPUT "
                                  "and ADDITIONAL.")
@click.option("--val-pairs", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --pairs: hold out N whole pairs (drawn with --seed) as the validation "
                   "split, instead of blocks within each pair.")
@click.option("--skip-bad-pairs", is_flag=True,
              help="With --pairs: leave out (and count) pairs that fail instead of stopping.")
@click.option("-o", "--output", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Chip folder to create [default: ./<INPUT stem>-chips/].")
@click.option("--tile-size", type=click.IntRange(min=16), default=256, show_default=True,
              help="Chip side in pixels.")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              help="Step between chips in pixels [default: the tile size, no overlap].")
@click.option("--min-valid", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Skip chips with a smaller share of valid (non-nodata, in-footprint) pixels.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Share of chips in the validation split (spatial blocks).")
@click.option("--aoi", type=click.Path(dir_okay=False),
              help="GeoJSON polygon(s) to clip to, in the CRS the file declares (WGS 84 if none).")
@click.option("--unpaired", is_flag=True,
              help="Chip each raster on its own into train_a/ and train_b/ (CycleGAN).")
@click.option("--resampling", type=click.Choice([r.name for r in Resampling]), default=None,
              help="Resampling of the additional raster onto the input's grid "
                   "[default: nearest for palette/categorical rasters, else bilinear].")
@click.option("--max-shift", type=click.FloatRange(min=0), default=None, metavar="PX",
              help="Drop chip pairs whose estimated misregistration exceeds PX pixels.")
@click.option("--resume", is_flag=True,
              help="Continue an export that was interrupted (Ctrl-C or an error) with the same "
                   "inputs and settings, keeping the chips it had written.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N",
              help="Processes cutting chips: 0 = one per CPU core (at most 8; small exports "
                   "stay in one); 1 = one process. The chips are the same whatever N.")
@seed_opt
@creation_options
@overwrite_opt
def export_chips_command(
    input_raster: str | None, additional_raster: str | None, pairs_file: str | None,
    val_pairs: int | None, skip_bad_pairs: bool, out_dir: str | None, tile_size: int,
    stride: int | None, min_valid: float, val_fraction: float, aoi: str | None,
    unpaired: bool, resampling: str | None, max_shift: float | None, seed: int,
    creation_options: dict[str, Any], overwrite: bool, resume: bool, workers: int,
) -> None:
    """Cut INPUT and ADDITIONAL into aligned, georeferenced chips.

    ADDITIONAL is brought onto INPUT's grid (any CRS or resolution); chips are cut where
    both have data: images/ (input domain) and images2/ (target domain), one GeoTIFF
    per chip with the same name, plus geogan-chips.json (statistics) and index.geojson
    (footprints, split, valid fraction, estimated misregistration).

    Each side may be one raster, a folder, a quoted glob, a VRT or @list.txt (a path a
    line): its files become one mosaic (they must share a CRS and pixel size). Scenes in
    different places or CRSs go in a CSV instead: --pairs pairs.csv, one
    input,additional pair a row, each chipped on its own grid into the one folder.

    The folder appears only when complete. An interrupted export (Ctrl-C: exit code
    130, or an error such as a full disk) keeps what it wrote in a hidden .NAME.partial
    folder beside it: the same command with --resume continues it.

    \b
    Examples:
      geogan export-chips sat.tif map.tif          # writes ./sat-chips/
      geogan export-chips sat.tif map.tif -o chips/ --tile-size 256 --stride 128
      geogan export-chips sat.tif map.tif -o chips/ --tile-size 256 --stride 128 --resume
      geogan export-chips "dsm/*.tif" ortho/ -o chips/       # two tiled deliveries
      geogan export-chips --pairs scenes.csv --val-pairs 1   # writes ./scenes-chips/
    """
    if pairs_file is not None and (input_raster or additional_raster):
        raise click.UsageError("give INPUT and ADDITIONAL, or --pairs CSV, not both.")
    if pairs_file is None and not (input_raster and additional_raster):
        raise click.UsageError("give INPUT and ADDITIONAL (or --pairs CSV).")
    if pairs_file is None and (val_pairs is not None or skip_bad_pairs):
        raise click.UsageError("--val-pairs and --skip-bad-pairs need --pairs CSV.")
    options = ExportOptions(
        tile_size=tile_size, stride=stride, min_valid=min_valid, val_fraction=val_fraction,
        seed=seed, aoi=aoi, unpaired=unpaired, resampling=resampling, max_shift=max_shift,
        overwrite=overwrite, resume=resume, val_pairs=val_pairs, skip_bad_pairs=skip_bad_pairs,
        workers=workers, creation_options={k.upper(): v for k, v in creation_options.items()},
    )
    named = pairs_file if pairs_file is not None else input_raster
    assert named is not None
    out = Path(out_dir) if out_dir is not None else default_output(named)
    with ProgressBar("chips", "win") as progress:
        if pairs_file is not None:
            report = export_pairs(pairs_file, out, options, progress)
        else:
            assert input_raster is not None and additional_raster is not None
            report = export_chips(input_raster, additional_raster, out, options, progress)
    pairs = f" of {report.pairs} pairs" if pairs_file is not None else ""
    click.echo(
        f"Wrote {report.exported} chip{'s' if report.mode == 'unpaired' else ' pairs'}{pairs} "
        f"({report.train} train, {report.val} val) to {Path(report.out_dir)} in "
        f"{report.seconds:.1f} s; skipped {report.skipped_invalid} below --min-valid, "
        f"{report.skipped_shift} above --max-shift, {report.dropped_split} on split borders."
    )
    if report.held_out_pairs:
        click.echo(f"Validation: {report.held_out_pairs} whole pair(s) held out (--val-pairs).")
    if report.whole_pairs_train or report.whole_pairs_val:
        small = report.whole_pairs_train + report.whole_pairs_val
        click.echo(f"Split: {small} pair(s) too small for a validation block of their own went "
                   f"whole to one side: {report.whole_pairs_val} to validation, "
                   f"{report.whole_pairs_train} to training.")
    if report.skipped_pairs:
        click.echo(f"Skipped {len(report.skipped_pairs)} pair(s) (--skip-bad-pairs):")
        for reason in report.skipped_pairs:
            click.echo(f"  {reason}")
    if not is_valid_tile_size(tile_size):  # said now, not when train refuses them
        click.echo(f"Warning: chips of {tile_size} px cannot train a geogan model (its tile "
                   f"sizes are powers of two from {MIN_TILE_SIZE} to {MAX_TILE_SIZE}); they "
                   "can still serve other tools", err=True)
