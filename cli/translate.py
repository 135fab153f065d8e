"""``geogan translate``: scenes of any size through a trained model, into GeoTIFFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geogan.grids.windows import BLENDS, LATTICES
from geogan.inference.batching import CPU_BATCH, MAX_AUTO_BATCH
from geogan.inference.unsure_blur import DEFAULT_SIGMA
from geogan.nn.config import OUTPUTS, PRECISIONS
from geogan.raster.resolution import RESAMPLINGS
from geogan.raster.sharpness import MAX_SIGMA

from .options import ProgressBar, creation_options, overwrite_opt, seed_opt


@click.command("translate")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-m", "--model", "model_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Model file written by `geogan train`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="GeoTIFF to write, for one scene [default: ./<scene>-<model>.tif].")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the outputs of many scenes (<scene>.tif each); scenes whose "
                   "output exists are skipped, so a rerun resumes.")
@click.option("--mosaic", is_flag=True,
              help="With --out-dir: scenes on one pixel grid are translated as the mosaic "
                   "they form (each reads context from its neighbours: no seams along the "
                   "joins); each output stays on its own scene's grid.")
@click.option("--overlap", type=click.IntRange(min=0), default=None, metavar="PX",
              help="Pixels neighbouring windows share [default: a quarter of the tile].")
@click.option("--blend", type=click.Choice(BLENDS), default=BLENDS[0], show_default=True,
              help="How overlapping windows are blended (none = centre crop).")
@click.option("--lattice", type=click.Choice(LATTICES), default=LATTICES[0], show_default=True,
              help="Where windows start: grid = on multiples of the step of the CRS's pixel "
                   "grid (a crop or a neighbouring tile gets the same pixels; scenes without "
                   "a CRS or rotated use scene); scene = from the scene's first pixel.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=f"Windows per generator call [default: {CPU_BATCH} on a CPU; on a GPU as "
                   f"many as a quarter of its free memory holds, {CPU_BATCH} to "
                   f"{MAX_AUTO_BATCH}].")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Generator arithmetic; auto = bf16 where the device has it natively.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b",
              show_default=True, help="b2a: a CycleGAN model's target domain back to the input's.")
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="K", help="K >= 2: K passes with dropout on; writes their mean and a "
                                "per-pixel standard-deviation band (uncertainty).")
@click.option("--tta/--no-tta", default=None,
              help="Test-time augmentation: average the 8 flips and rotations of every "
                   "window (8 times the work; steadier lines) [default: as the model file "
                   "says: on for faithful models].")
@click.option("--output-kind", "output_kind", type=click.Choice(OUTPUTS), default="auto",
              show_default=True,
              help="Models with a class head: shaded (the most likely class's colour, "
                   "tinted where the model is unsure, never into another class; what auto "
                   "gives them), palette (crisp colours of the most likely class), classes "
                   "(one uint8 class band with a colour table: a land-cover raster) or image "
                   "(the image head). Others: image.")
@click.option("--unsure-blur", "unsure_blur", type=click.FloatRange(min=0),
              default=DEFAULT_SIGMA,
              show_default=True, metavar="PX",
              help="Shaded maps: blur the pixels the model is unsure of (tinted past their "
                   "class colour, the class at odds under --unsure-below) by a Gaussian of PX "
                   "pixels, so that they take the colour around them instead of speckling; "
                   "0 draws each pixel on its own.")
@click.option("--unsure-below", "unsure_below", type=click.FloatRange(0, 1), default=None,
              metavar="P",
              help="Shaded maps: a pixel tinted past its class colour is unsure (blurred) "
                   "when its class has odds under P [default: as the model file says: "
                   "0.45 for faithful models, 0.5 for others].")
@click.option("--resample/--no-resample", default=None,
              help="Translate at the model's pixel size (a WarpedVRT of the scene), then "
                   "warp the result back onto the scene's grid. Default: only a scene whose "
                   "pixels are more than 1.25 x finer than the model's, or 1.25-2 x "
                   "coarser; --no-resample translates every scene at its own pixel size.")
@click.option("--resampling", type=click.Choice(RESAMPLINGS), default=None,
              help="How a resampled scene is warped, and image and shaded outputs back "
                   "(class and palette outputs come back by nearest neighbour). Default: "
                   "average to read a finer scene down, lanczos to read a coarser one up, "
                   "bilinear to bring outputs back.")
@click.option("--adapt-norm/--no-adapt-norm", "adapt_norm", default=None,
              help="BatchNorm normalises with statistics of up to 64 windows spread over "
                   "the scene instead of the training chips' (AdaBN), for a scene unlike "
                   "them (another place, sensor or season). Default: only a scene whose "
                   "values are far from the training chips' (the warning says so), part "
                   "of the way (n windows: n / (n + 4)); --adapt-norm all the way on any "
                   "scene (a small or uniform one, all woods or water, can come out "
                   "worse); --no-adapt-norm never. Pix2Pix models only.")
@click.option("--sharpen", default="auto", show_default=True, metavar="auto|off|PX",
              callback=lambda _ctx, _param, value: _sharpen(value),
              help="Take PX pixels of Gaussian blur out of every window (a Wiener filter) "
                   "before the model sees it, for a scene softer than the training chips "
                   "(another sensor, haze, a coarser scene read up), which a model draws "
                   "as smooth areas (water, on an aerial map). auto: by the blur the scene "
                   "measures over the training chips, beyond 0.5 px (scenes as sharp as "
                   "the chips are left as they are; models trained before this was "
                   "recorded, and --mosaic scenes, are never measured); off: never.")
@click.option("--strict", is_flag=True,
              help="A scene whose pixel size or values are far from the training chips' "
                   "is an error (exit 1, nothing written), not a warning.")
@click.option("--cluster", default=None, metavar="ADDRESS|local:N",
              help="With --out-dir: one task per scene on the Dask scheduler at ADDRESS "
                   "(tcp://host:8786), or on N worker processes of this machine (local:N). "
                   "Needs pip install 'geogan[distributed]'.")
@seed_opt
@creation_options
@click.option("--cog", is_flag=True, help="Write Cloud Optimised GeoTIFFs with overviews.")
@overwrite_opt
@click.pass_context
def translate_command(ctx: click.Context, scenes: tuple[str, ...], model_path: Path,
                      output: Path | None, out_dir: Path | None, mosaic: bool,
                      overlap: int | None,
                      blend: str, lattice: str, batch_size: int | None, device: str, precision: str,
                      direction: str, samples: int, tta: bool | None, output_kind: str,
                      unsure_blur: float, unsure_below: float | None,
                      resample: bool | None, resampling: str | None, adapt_norm: bool | None,
                      sharpen: float | None, strict: bool, cluster: str | None, seed: int,
                      creation_options: dict[str, Any], cog: bool, overwrite: bool) -> None:
    """Translate SCENES with a trained model into georeferenced GeoTIFFs.

    SCENES are rasters GDAL reads (GeoTIFFs, VRTs...), URLs (https://, s3://,
    /vsicurl/...), @list.txt files of them (one a line) or quoted globs. Each output has
    its scene's CRS, transform and size and the model's bands and data type; nodata stays
    nodata. Windows of the model's tile size overlap and are blended,
    so there are no seams; the scene is streamed, so its size is not limited by memory.

    \b
    Examples:
      geogan translate big_scene.tif --model m.pt -o big_map.tif
      geogan translate scenes/*.tif --model m.pt --out-dir maps/ --cog
      geogan translate tiles/*.tif --model m.pt --out-dir maps/ --mosaic
      geogan translate scenes/*.tif --model m.pt --out-dir maps/ --cluster local:4
      geogan translate scene.tif --model m.pt -o landcover.tif --output-kind classes
    """
    from geogan.raster.io import scene_stem
    from geogan.raster.mosaic import scene_list

    if output is not None and out_dir is not None:
        raise click.UsageError("give -o/--output (one scene) or --out-dir (many), not both")
    scenes = tuple(scene_list(scenes))  # @scenes.txt and quoted globs
    if len(scenes) > 1 and out_dir is None:
        raise click.UsageError(f"{len(scenes)} scenes need --out-dir; -o names one output")
    if cluster is not None and out_dir is None:
        raise click.UsageError("--cluster translates into --out-dir; give one")
    if mosaic and out_dir is None:
        raise click.UsageError("--mosaic translates a batch into --out-dir; give one")
    from geogan.inference.batch import translate_batch  # torch loads here
    from geogan.inference.scene import translate_raster

    options: dict[str, Any] = {
        "overlap": overlap, "blend": blend, "lattice": lattice, "batch_size": batch_size,
        "device": device,
        "precision": precision, "direction": direction, "samples": samples, "seed": seed,
        "creation_options": {k.upper(): v for k, v in creation_options.items()},
        "cog": cog, "overwrite": overwrite, "tta": tta, "output": output_kind,
        "unsure_blur": unsure_blur, "unsure_below": unsure_below,
        "resample": resample, "resampling": resampling, "strict": strict,
        "adapt_norm": adapt_norm, "sharpen": sharpen,
    }
    if out_dir is None:
        target = output or Path(f"{scene_stem(scenes[0])}-{model_path.stem}.tif")
        with ProgressBar("translate", "win") as progress:
            report = translate_raster(scenes[0], target, model_path, progress=progress,
                                      **options)
        click.echo(f"Wrote {report.output} ({report.width} x {report.height}, {report.bands} "
                   f"{report.dtype} band{'s' if report.bands > 1 else ''}; {report.windows_run} "
                   f"of {report.windows} windows on {report.device} {report.precision}"
                   f"{'; ' + report.resampled if report.resampled else ''}"
                   f"{'; ' + report.adapted if report.adapted else ''}"
                   f"{'; ' + report.sharpened if report.sharpened else ''}) in "
                   f"{report.seconds:.1f} s.")
        return
    with ProgressBar("scenes", "scene") as scene_bar, ProgressBar("translate", "win") as bar:
        batch = translate_batch(scenes, out_dir, model_path, cluster=cluster, mosaic=mosaic,
                                progress=None if cluster else bar, scene_progress=scene_bar,
                                **options)
    for failure in batch.failures:
        where = "" if failure.source in failure.message else f"{failure.source}: "
        click.echo(f"Error: {where}{failure.message}", err=True)
    resampled = sum(1 for o in batch.outcomes if o.report is not None and o.report.resampled)
    at_model = f" ({resampled} at the model's pixel size)" if resampled else ""
    click.echo(f"{batch.count('done')} translated{at_model}, {batch.count('skipped')} skipped "
               f"(output exists), {batch.count('failed')} failed, into {out_dir} in "
               f"{batch.seconds:.1f} s.")
    if batch.failures:
        ctx.exit(1)


def _sharpen(value: str) -> float | None:
    """``--sharpen``: None for auto, 0 for off, else the pixels of blur to take out."""
    if value == "auto":
        return None
    if value == "off":
        return 0.0
    try:
        sigma = float(value)
    except ValueError:
        raise click.BadParameter(f"use auto, off or a blur in pixels, not {value!r}") from None
    if not 0 <= sigma <= MAX_SIGMA:
        raise click.BadParameter(f"takes 0 to {MAX_SIGMA:g} px of blur out, not {value}")
    return sigma
