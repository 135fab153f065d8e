"""Translation quality of Pix2Pix against the same U-Net trained on L1 alone.

On generated sat-map sample data (``geogan.sampledata.world``, fixed seeds) it:

1. writes a training pair (1024², seed 1, as ``geogan demo`` uses) and a held-out pair
   (a different scene: 768², seed 7) that training never sees;
2. exports 256-pixel chips of the training pair at stride 128 (no validation split);
3. trains (a) the ``tiny`` Pix2Pix preset and (b) the same U-Net with ``lambda_gan = 0``
   (L1 loss only, no discriminator), with the same seed, data order and step budget, on
   the CPU;
4. translates the held-out satellite scene with each model;
5. scores each translation against the held-out map with ``geogan.evaluation.rasters`` (palette from
   the map's ``GEOGAN_PALETTE`` tag): per-class accuracy, mean IoU, SSIM, PSNR, and the
   seam score; and an edge-sharpness figure.

**Edge sharpness** = mean gradient magnitude of the prediction over the mean gradient
magnitude of the reference, both taken on the reference's class boundaries (pixels whose
right or lower neighbour belongs to another class). The gradient of a pixel is the vector
of its forward differences in x and y over all bands, in grey levels. 1.0: edges as crisp
as the map's; below 1: blurred edges (what an L1-only model is known for, as it predicts
the mean of what it is unsure of). It is printed with the ratio of (a) to (b).

    python benchmarks/quality.py                  # 3000 steps per model, ~6 minutes on 2 cores
    python benchmarks/quality.py --steps 6000     # longer training, ~12 minutes
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray

from geogan import (
    EvaluateOptions,
    EvaluationReport,
    ExportOptions,
    TrainOptions,
    evaluate_rasters,
    export_chips,
    train,
    translate_raster,
    write_sample_pair,
)
from geogan.evaluation.class_metrics import snap_to_palette
from geogan.raster.palette import palette_from_tags

TILE = 256
TRAIN_SCENE = (1024, 1)  # (size, seed): the demo's sat-map pair
HELD_OUT_SCENE = (768, 7)


def edge_sharpness(prediction: NDArray[Any], reference: NDArray[Any],
                   palette: dict[str, tuple[int, int, int]]) -> float:
    """Mean gradient magnitude of ``prediction`` over that of ``reference`` on the
    reference's class boundaries (see the module docstring)."""
    classes = snap_to_palette(reference, palette)  # (H, W)
    boundary = np.zeros(classes.shape, dtype=bool)
    boundary[:-1, :-1] = ((classes[:-1, :-1] != classes[1:, :-1])
                          | (classes[:-1, :-1] != classes[:-1, 1:]))

    def magnitude(image: NDArray[Any]) -> NDArray[np.float64]:
        x = image.astype(np.float64)  # (C, H, W)
        gy = x[:, 1:, :-1] - x[:, :-1, :-1]  # (C, H-1, W-1)
        gx = x[:, :-1, 1:] - x[:, :-1, :-1]
        out = np.zeros(classes.shape)
        out[:-1, :-1] = np.sqrt((gx**2 + gy**2).sum(axis=0))
        return out

    return float(magnitude(prediction)[boundary].mean() / magnitude(reference)[boundary].mean())


def run_model(name: str, chips: Path, scene: Path, reference: Path, out: Path, steps: int,
              lambda_gan: float) -> dict[str, Any]:
    """Train, translate the held-out scene and score it; figures and seconds."""
    start = time.perf_counter()
    overrides = {"steps": steps, "seed": 0, "lambda_gan": lambda_gan, "val_every": steps}
    trained = train(chips, out / f"{name}.pt",
                    TrainOptions(kind="pix2pix", preset="tiny", overrides=overrides,
                                 device="cpu", overwrite=True))
    train_seconds = time.perf_counter() - start
    translated = translate_raster(scene, out / f"{name}.tif", trained.model_path,
                                  device="cpu", overwrite=True).output
    report = evaluate_rasters(translated, reference, EvaluateOptions(palette="auto"))
    with rasterio.open(translated) as src:
        prediction = src.read()
    with rasterio.open(reference) as src:
        target = src.read()
        palette = palette_from_tags(src.tags())
    return {"report": report, "sharpness": edge_sharpness(prediction, target, palette),
            "train_seconds": train_seconds, "seconds": time.perf_counter() - start,
            "precision": trained.precision, "steps": trained.steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per model")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads [default: torch's own choice]")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geogan-quality-") as folder:
        out = Path(folder)
        train_pair = write_sample_pair(out / "train", "sat-map", size=TRAIN_SCENE[0],
                                       seed=TRAIN_SCENE[1])
        held_out = write_sample_pair(out / "held-out", "sat-map", size=HELD_OUT_SCENE[0],
                                     seed=HELD_OUT_SCENE[1])
        export_chips(train_pair.input_path, train_pair.target_path, out / "chips",
                     ExportOptions(tile_size=TILE, stride=TILE // 2, val_fraction=0.0))
        results = {
            "pix2pix": run_model("pix2pix", out / "chips", held_out.input_path,
                                 held_out.target_path, out, args.steps, 1.0),
            "l1-only": run_model("l1-only", out / "chips", held_out.input_path,
                                 held_out.target_path, out, args.steps, 0.0),
        }
    print(f"sat-map, tiny U-Net {TILE}², {args.steps} steps each on the CPU "
          f"({torch.get_num_threads()} threads, {results['pix2pix']['precision']}); trained on "
          f"{TRAIN_SCENE[0]}² seed {TRAIN_SCENE[1]}, scored on the held-out "
          f"{HELD_OUT_SCENE[0]}² seed {HELD_OUT_SCENE[1]}")
    reports: dict[str, EvaluationReport] = {k: v["report"] for k, v in results.items()}
    classes = reports["pix2pix"].palette.classes
    print(f"\n{'':24}{'pix2pix':>10}{'l1-only':>10}{'ratio':>8}")

    def row(label: str, a: float | None, b: float | None, fmt: str = ".3f") -> None:
        def cell(v: float | None) -> str:
            return f"{'-':>10}" if v is None else f"{v:>10{fmt}}"
        ratio = f"{a / b:>8.2f}" if a is not None and b else f"{'':>8}"
        print(f"{label:24}{cell(a)}{cell(b)}{ratio}")

    for name in classes:
        row(f"accuracy {name}", reports["pix2pix"].palette.accuracy[name],
            reports["l1-only"].palette.accuracy[name])
    row("pixel accuracy", reports["pix2pix"].palette.pixel_accuracy,
        reports["l1-only"].palette.pixel_accuracy)
    row("mean IoU", reports["pix2pix"].palette.mean_iou, reports["l1-only"].palette.mean_iou)
    row("SSIM", reports["pix2pix"].mean.ssim, reports["l1-only"].mean.ssim)
    row("PSNR (dB)", reports["pix2pix"].mean.psnr, reports["l1-only"].mean.psnr, ".2f")
    row("L1 (grey levels)", reports["pix2pix"].mean.l1, reports["l1-only"].mean.l1, ".2f")
    row("edge sharpness", results["pix2pix"]["sharpness"], results["l1-only"]["sharpness"])
    seams = [r.seams.prediction if r.seams else None for r in reports.values()]
    row("seam score", seams[0], seams[1])
    row("train seconds", results["pix2pix"]["train_seconds"],
        results["l1-only"]["train_seconds"], ".0f")
    row("seconds in all", results["pix2pix"]["seconds"], results["l1-only"]["seconds"], ".0f")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(
            {name: {"evaluation": value["report"].to_dict(), "edge_sharpness": value["sharpness"],
                    "train_seconds": value["train_seconds"], "seconds": value["seconds"],
                    "steps": value["steps"]} for name, value in results.items()}, indent=1))


if __name__ == "__main__":
    main()
