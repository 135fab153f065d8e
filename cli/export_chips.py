"""``geogan export-chips``: cut a raster pair into georeferenced training chips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rasterio.enums import Resampling

from geogan.chips.export import export_chips
from geogan.chips.layout import default_output
from geogan.chips.options import ExportOptions

from .options import ProgressBar, creation_options, overwrite_opt, seed_opt


@click.command("export-chips")
@click.argument("input_raster", metavar="INPUT", type=click.Path(dir_okay=False))
@click.argument("additional_raster", metavar="ADDITIONAL", type=click.Path(dir_okay=False))
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
@seed_opt
@creation_options
@overwrite_opt
def export_chips_command(
    input_raster: str, additional_raster: str, out_dir: str | None, tile_size: int,
    stride: int | None, min_valid: float, val_fraction: float, aoi: str | None,
    unpaired: bool, resampling: str | None, max_shift: float | None, seed: int,
    creation_options: dict[str, Any], overwrite: bool, resume: bool,
) -> None:
    """Cut INPUT and ADDITIONAL into aligned, georeferenced chips.

    ADDITIONAL is brought onto INPUT's grid (any CRS or resolution); chips are cut where
    both have data: images/ (input domain) and images2/ (target domain), one GeoTIFF
    per chip with the same name, plus geogan-chips.json (statistics) and index.geojson
    (footprints, split, valid fraction, estimated misregistration).

    The folder appears only when complete. An interrupted export (Ctrl-C: exit code
    130, or an error such as a full disk) keeps what it wrote in a hidden .NAME.partial
    folder beside it: the same command with --resume continues it.

    \b
    Examples:
      geogan export-chips sat.tif map.tif          # writes ./sat-chips/
      geogan export-chips sat.tif map.tif -o chips/ --tile-size 256 --stride 128
      geogan export-chips sat.tif map.tif -o chips/ --tile-size 256 --stride 128 --resume
    """
    options = ExportOptions(
        tile_size=tile_size, stride=stride, min_valid=min_valid, val_fraction=val_fraction,
        seed=seed, aoi=aoi, unpaired=unpaired, resampling=resampling, max_shift=max_shift,
        overwrite=overwrite, resume=resume,
        creation_options={k.upper(): v for k, v in creation_options.items()},
    )
    out = Path(out_dir) if out_dir is not None else default_output(input_raster)
    with ProgressBar("chips", "win") as progress:
        report = export_chips(input_raster, additional_raster, out, options, progress)
    click.echo(
        f"Wrote {report.exported} chip{'s' if report.mode == 'unpaired' else ' pairs'} "
        f"({report.train} train, {report.val} val) to {Path(report.out_dir)} in "
        f"{report.seconds:.1f} s; skipped {report.skipped_invalid} below --min-valid, "
        f"{report.skipped_shift} above --max-shift, {report.dropped_split} on split borders."
    )
