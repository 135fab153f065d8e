"""The arcgis.learn-style workflow, end to end, on generated sample data.

    python examples/pix2pix_workflow.py --out workflow/            # about 3 minutes on 2 cores
    python examples/pix2pix_workflow.py --out /tmp/w --size 256 --tile 64 --steps 4   # seconds

1. sample data: a satellite image and its map (``geogan.sampledata.world``), and a second,
   held-out scene the model never sees;
2. export chips from the pair (``geogan.chips.export_chips``, as ``geogan export-chips``);
3. ``prepare_data`` → ``show_batch`` (``batch.png``);
4. ``Pix2Pix(data)`` → ``fit`` → ``show_results`` (``results.png``) → ``compute_metrics``;
5. ``save`` the model file (``m.pt``, what ``geogan train`` writes);
6. translate the held-out scene (``translated.tif``, on the scene's grid), score it against
   its map, and write ``scene.png``: input | translated | reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import rasterio

import geogan
from geogan import EvaluateOptions, ExportOptions, evaluate_rasters, export_chips, write_sample_pair
from geogan.raster.preview import downsample_for_preview, grid, to_display_rgb, write_png

TRAIN_SEED, SCENE_SEED = 1, 2
"""Seeds of the training pair and of the held-out scene: two different places."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for everything")
    parser.add_argument("--size", type=int, default=1024, help="training scene side, px")
    parser.add_argument("--scene-size", type=int, default=512, help="held-out scene side, px")
    parser.add_argument("--tile", type=int, default=256, help="chip side, px")
    parser.add_argument("--epochs", type=int, default=60, help="passes over the chips")
    parser.add_argument("--steps", type=int, default=None, help="steps instead of epochs")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. Sample data: a training pair, and a held-out scene with its reference map.
    pair = write_sample_pair(out / "data", "sat-map", size=args.size, seed=TRAIN_SEED,
                             overwrite=True)
    held_out = write_sample_pair(out / "held-out", "sat-map", size=args.scene_size,
                                 seed=SCENE_SEED, overwrite=True)

    # 2. Export chips (stride half a tile; a spatial validation split of 10 %).
    export_chips(pair.input_path, pair.target_path, out / "chips",
                 ExportOptions(tile_size=args.tile, stride=args.tile // 2, val_fraction=0.1,
                               overwrite=True))

    # 3. prepare_data and a look at the chips.
    data = geogan.prepare_data(out / "chips", seed=0)
    print(data)
    data.show_batch(rows=4).savefig(out / "batch.png", dpi=80)

    # 4. The model: the tiny preset, trained; its results and scores on the val chips.
    model = geogan.Pix2Pix(data, preset="tiny", device=args.device, work_dir=out / "work",
                           verbose=not args.quiet)
    model.fit(None if args.steps else args.epochs, steps=args.steps, checkpoint=False)
    model.show_results(rows=4).savefig(out / "results.png", dpi=80)
    metrics = model.compute_metrics()
    print("validation chips:", json.dumps(_rounded(metrics)))

    # 5. The model file, as `geogan train` writes it.
    model.save(out / "m.pt", overwrite=True)

    # 6. A whole scene the model never saw, on its own grid; scored against its map.
    translated = out / "translated.tif"
    model.translate(held_out.input_path, translated, overwrite=True)
    scores = evaluate_rasters(translated, held_out.target_path, EvaluateOptions(palette="auto"))
    print(f"held-out scene: PSNR {scores.mean.psnr:.1f} dB, SSIM {scores.mean.ssim:.2f}"
          + (f", {scores.palette.pixel_accuracy:.1%} of pixels in the right class"
             if scores.palette is not None else ""))
    panels = []
    for path in (held_out.input_path, translated, held_out.target_path):
        with rasterio.open(path) as dataset:
            panels.append(to_display_rgb(downsample_for_preview(dataset.read(), 512)))
    write_png(out / "scene.png", grid([panels], gutter=6, background=96))
    print(f"done in {time.perf_counter() - start:.0f} s: {out / 'm.pt'}, {translated}, "
          f"{out / 'batch.png'}, {out / 'results.png'}, {out / 'scene.png'}")


def _rounded(value: object) -> object:
    """Floats to 4 digits, in nested dicts too, for printing."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
