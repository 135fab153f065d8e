"""BatchNorm's averages from the scene (AdaBN), on held-out photos made unlike the chips.

Takes a model that ``quality_real.py`` trained (its ``--work`` folder holds the validation
and unfamiliar pairs and the palette file) and puts each split's photos side by side as
one scene (8 city photos: 11 windows; park, marina and woods: 4), as they are and changed
the way another sensor, season or atmosphere changes a photo: darker, hazier, another
gamma, a warm or cool cast, more contrast. Each is translated with ``translate``'s
``adapt_norm`` off, on its own (the default: only a scene whose values the check finds
far from the training chips', part of the way) and on (all the way), and scored against
the maps with ``geogan evaluate``, as ``quality_real.py`` scores. "far" says whether the
values check flagged the scene; on a scene it does not flag, the default is "off" to the
byte. ``--scene`` adds the share of an unfamiliar raster (no map) drawn in each colour::

    python benchmarks/quality_real.py --data ../shared/data/maps --variants faithful \\
        --work quality-real
    python benchmarks/adapt_norm.py --work quality-real --model quality-real/faithful.pt \\
        --scene ../shared/data/geotiff/rasterio/cogeo.tif
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from quality_real import _strip, score

from geogan import load_model, translate_raster
from geogan.errors import GeoganWarning
from geogan.evaluation.class_metrics import snap_to_palette
from geogan.inference.translator import Translator

Change = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def _grey(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return x.mean(axis=0, keepdims=True)


CHANGES: dict[str, Change] = {
    "as it is": lambda x: x,
    "darker × 0.6": lambda x: x * 0.6,
    "darker × 0.45": lambda x: x * 0.45,
    "haze (0.7 x + 70)": lambda x: x * 0.7 + 70,
    "gamma 1.6": lambda x: 255 * (x / 255) ** 1.6,
    "warm cast": lambda x: x * np.array([1.2, 1.0, 0.75])[:, None, None],
    "cool cast": lambda x: x * np.array([0.8, 1.0, 1.2])[:, None, None],
    "contrast × 1.6": lambda x: (x - x.mean()) * 1.6 + x.mean(),
}
"""How each scene is changed, on 0–255 values (then rounded and clipped)."""

MODES = {"off": False, "default": None, "on": True}
"""``adapt_norm`` values compared."""


def translate(scene: Path, out: Path, translator: Translator, adapt_norm: bool | None,
              **options: Any) -> tuple[Path, bool, str]:
    """The output, whether the values check flagged the scene, and how it was adapted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = translate_raster(scene, out, translator, overwrite=True,
                                  adapt_norm=adapt_norm, **options)
    far = any(issubclass(w.category, GeoganWarning) and "far from the training" in
              str(w.message) for w in caught)
    return report.output, far, report.adapted


def changed_splits(work: Path, translator: Translator, out: Path) -> list[dict[str, Any]]:
    """Every split × change × mode, scored."""
    palette = json.loads((work / "palette.json").read_text())
    rows = []
    for split in ("val", "unfamiliar"):
        photos = sorted((work / split).glob("*_photo.tif"))
        maps = sorted((work / split).glob("*_map.tif"))
        reference = _strip(maps, out / f"{split}_reference.tif")
        with rasterio.open(_strip(photos, out / f"{split}_photos.tif")) as src:
            profile, data = src.profile, src.read().astype(np.float64)
        for index, (change, apply) in enumerate(CHANGES.items()):
            scene = out / f"{split}_{index}.tif"
            with rasterio.open(scene, "w", **profile) as dst:
                dst.write(np.clip(np.rint(apply(data)), 0, 255).astype(np.uint8))
            for mode, value in MODES.items():
                output, far, adapted = translate(scene, out / f"{split}_{index}_{mode}.tif",
                                                 translator, value)
                rows.append({"split": split, "change": change, "mode": mode, "far": far,
                             "adapted": adapted,
                             **score(output, reference, work, palette)})
    return rows


def scene_shares(scene: Path, work: Path, translator: Translator, out: Path
                 ) -> dict[str, dict[str, float]]:
    """Mode → share of ``scene`` drawn in each palette colour (at the model's pixel size)."""
    palette = json.loads((work / "palette.json").read_text())
    colours = {k: tuple(v) for k, v in palette.items()}
    shares = {}
    for mode, value in MODES.items():
        output, _, adapted = translate(scene, out / f"scene_{mode}.tif", translator, value,
                                       resample=True, resampling="average")
        with rasterio.open(output) as dst:
            classes = snap_to_palette(dst.read()[:translator.out_bands], colours)
        shares[mode] = {name: round(float((classes == i).mean()), 3)
                        for i, name in enumerate(palette)}
        shares[mode]["adapted"] = adapted  # type: ignore[assignment]
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="a quality_real.py --work folder")
    parser.add_argument("--model", type=Path, required=True, help="a model it trained")
    parser.add_argument("--scene", type=Path, help="an unfamiliar raster without a map")
    parser.add_argument("--out", type=Path, help="where the rasters go [WORK/adapt-norm]")
    args = parser.parse_args()
    out = args.out or args.work / "adapt-norm"
    out.mkdir(parents=True, exist_ok=True)
    translator = load_model(args.model, device="auto", precision="auto")
    rows = changed_splits(args.work, translator, out)
    print("| split | change | far | adapt_norm | mIoU | δ5 | δ10 | PSNR | SSIM | RMSE | adapted |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['split']} | {r['change']} | {'yes' if r['far'] else ''} | {r['mode']} | "
              f"{r['miou']:.3f} | {r['d5']:.3f} | {r['d10']:.3f} | {r['psnr']:.2f} | "
              f"{r['ssim']:.3f} | {r['rmse']:.2f} | {r['adapted']} |")
    flagged = [(a, b) for a, b in zip(rows[::3], rows[1::3], strict=True) if a["far"]]
    better = sum(b["miou"] > a["miou"] and b["ssim"] >= a["ssim"] for a, b in flagged)
    print(f"\nflagged scenes: {len(flagged)}; the default over off on both mIoU and SSIM: "
          f"{better}")
    result: dict[str, Any] = {"rows": rows}
    if args.scene is not None:
        result["scene"] = scene_shares(args.scene, args.work, translator, out)
        for mode, shares in result["scene"].items():
            print(f"{args.scene.name}, {mode}: {shares}")
    (out / "results.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
