"""``geogan info``: what a model file holds, without running any code from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command("info")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_command(model: Path, as_json: bool) -> None:
    """Describe MODEL: networks, bands, value mapping, output type, training record.

    \b
    Example:
      geogan info m.pt
    """
    from geogan.nn.model_file import describe_model, read_model_file  # imports torch

    description = describe_model(read_model_file(model))
    if as_json:
        click.echo(json.dumps(description, indent=2))
        return
    click.echo(_format(model, description))


def _pixel_size(trained_on: Any) -> str:
    """The training chips' pixel size, or why it is unknown."""
    from geogan.nn.data_profile import DataProfile

    size = DataProfile.from_dict(trained_on).pixel_size
    if size is not None:
        return size.label()
    return "unknown (training chips without a CRS, or a model file from before it was kept)"


def _sharpness(trained_on: Any) -> str:
    """The input chips' spectral slope, which translate measures scenes against."""
    from geogan.nn.data_profile import DataProfile

    slope = DataProfile.from_dict(trained_on).domain_sharpness("a")
    if slope is None:
        return ("unknown (a model file from before it was kept: translate sharpens or "
                "softens no scene)")
    return (f"spectral slope {slope:.2f} (translate sharpens a scene that measures softer "
            "than the chips, and softens one that measures sharper)")


def _format(path: Path, d: dict[str, Any]) -> str:
    arch, training = d["architecture"], d["training"]
    lines = [
        f"{path}: geogan model file version {d['version']}",
        f"  model        {arch['kind']}: {arch['generator']} generator(s) "
        f"{', '.join(d['directions'])}, ngf {arch['ngf']}, {arch['norm']} norm, "
        f"{d['parameters']:,} parameters per direction",
        f"  bands        {arch['in_bands']} → {arch['out_bands']}",
    ]
    if arch["generator"] == "unet":
        levels = arch.get("unet_levels") or "log2(tile)"
        skip = arch.get("input_skip") or 0
        dropout = arch.get("dropout") or 0
        blocks = arch.get("decoder_blocks") or 0
        lines.append(f"  U-Net        {levels} levels, {arch.get('upsample', 'transpose')} "
                     "upsampling, " + (f"dropout {dropout:g}" if dropout else "no dropout")
                     + (f", a full-resolution input path of {skip} channels" if skip else "")
                     + (f", a residual block in {blocks} decoder level(s)" if blocks else ""))
    if arch.get("palette"):
        colours = ", ".join(arch.get("class_names") or [str(c) for c in arch["palette"]])
        lines.append(f"  class head   {len(arch['palette'])} classes: {colours}")
    lines += [
        "  translate    " + ("each window in its 8 flips and rotations, averaged (--no-tta: "
                             "once)" if arch.get("tta") else "each window once (--tta: in its 8 "
                             "flips and rotations, averaged)"),
    ]
    if arch.get("palette"):
        from geogan.inference.class_colours import UNSURE_BELOW  # files from before the key

        below = arch.get("unsure_below", UNSURE_BELOW)
        lines.append(f"  shading      pixels whose class has odds under {below:g}, tinted past "
                     "its colour, blurred (--unsure-below)")
    lines += [
        f"  tile size    {d['tile_size']} × {d['tile_size']}",
        f"  output       {d['output']['dtype']}, nodata {d['output']['nodata']}",
        f"  pixel size   {_pixel_size(d.get('trained_on'))}",
        f"  sharpness    {_sharpness(d.get('trained_on'))}",
    ]
    for role, norm in d["normalization"].items():
        ranges = ", ".join(f"{lo:g}…{hi:g}" for lo, hi in zip(norm["low"], norm["high"],
                                                                 strict=True))
        lines.append(f"  domain {role}     {norm['dtype']}, [{ranges}] → [-1, 1]")
    if training:
        lines.append(f"  trained      {training.get('steps')} steps ({training.get('epochs')} "
                     f"epochs), seed {training.get('seed')}, {training.get('device')} "
                     f"{training.get('precision')}, {training.get('created')}")
        lines.append(f"  chips        {training.get('chips')} ({training.get('train_chips')} "
                     f"train, {training.get('val_chips')} val)")
        folders = training.get("chip_folders") or []
        if len(folders) > 1:
            lines[-1] = f"  chips        {len(folders)} folders ({training.get('train_chips')} " \
                        f"train, {training.get('val_chips')} val)"
            lines += [f"    {f.get('path')} ({f.get('train_chips')} train, {f.get('val_chips')} "
                      "val)" for f in folders]
        final = (training.get("final") or {}).get("eval") or {}
        if final:
            lines.append("  validation   " + ", ".join(f"{k} {v:.4g}" for k, v in final.items()))
        versions = training.get("versions") or {}
        lines.append("  versions     " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return "\n".join(lines)
