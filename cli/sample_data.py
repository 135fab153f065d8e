"""``geogan sample-data``: write a procedurally generated co-registered pair."""

from __future__ import annotations

from pathlib import Path

import click

from geogan.sampledata.render import write_sample_pair, write_sample_pairs
from geogan.sampledata.world import KINDS, MIN_SIZE

from .options import overwrite_opt, seed_opt


@click.command("sample-data", short_help="Write a generated co-registered raster pair.")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice([*KINDS, "all"]),
    default="sat-map",
    show_default=True,
    help="Domains of the pair; 'all' writes each kind into OUT_DIR/<kind>/.",
)
@click.option(
    "--size",
    type=click.IntRange(min=MIN_SIZE),
    default=512,
    show_default=True,
    help="Width and height in pixels.",
)
@seed_opt
@overwrite_opt
def sample_data_command(out_dir: Path, kind: str, size: int, seed: int, overwrite: bool) -> None:
    """Write a generated co-registered raster pair into OUT_DIR.

    The same procedural scene (terrain, river and lakes, woods, streets, buildings) is
    rendered into both domains on one UTM 33N grid: sat-map writes sat.tif and a
    flat-colour map.tif, dsm-imagery writes dsm.tif (metres, with nodata voids) and
    ortho.tif, sar-optical writes sar.tif (dB, with speckle) and optical.tif. The same
    --seed and --size always give the same pixels. Prints the paths written.
    """
    if kind == "all":
        pairs = write_sample_pairs(out_dir, KINDS, size=size, seed=seed, overwrite=overwrite)
    else:
        pairs = [write_sample_pair(out_dir, kind, size=size, seed=seed, overwrite=overwrite)]
    for pair in pairs:
        click.echo(pair.input_path)
        click.echo(pair.target_path)
