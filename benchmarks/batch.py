"""Scenes per minute of a batch: one machine, then Dask clusters of 1 and 2 local workers.

It builds ``--scenes`` RGB uint8 scenes from the sample data and translates the same batch,
in the same run, three ways:

* ``batch``: ``translate_batch`` here, one scene after another (the baseline);
* ``local:1``: a Dask LocalCluster of one worker process with all the cores;
* ``local:2``: two worker processes, each with half of the cores.

It prints scenes per minute and each ratio to the baseline. Cluster times include
starting the cluster and each worker loading the model once: what a user waits for.

Then ``--mosaic-tiles`` (4): one scene cut into 4 × 4 tiles on its pixel grid, translated
tile by tile (the baseline), with ``--mosaic`` (each tile reads a tile of context from its
neighbours), and uncut: the ratio of ``--mosaic`` to tile by tile is its overhead.
On a machine with few cores, two workers can only win what one worker's generator
leaves idle (reading, writing and compressing between generator calls); the gain grows
with cores and machines.

    python benchmarks/batch.py                          # ~3 minutes on 2 CPU cores
    python benchmarks/batch.py --preset paper --scenes 4 --size 1024
    python benchmarks/batch.py --scenes 0 --workers --size 512     # the mosaic figure only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import rasterio
from rasterio.windows import Window
from translate import paper_model, tiled_scene  # type: ignore[import-not-found]

from geogan import translate_batch, translate_raster, write_sample_pair


def run(scenes: list[Path], out: Path, model: Path, cluster: str | None,
        precision: str, mosaic: bool = False) -> float:
    """Seconds to translate ``scenes`` into the empty folder ``out``."""
    start = time.perf_counter()
    report = translate_batch(scenes, out, model, cluster=cluster, device="cpu",
                             precision=precision, mosaic=mosaic)
    seconds = time.perf_counter() - start
    if report.count("done") != len(scenes):
        raise SystemExit(f"{cluster or 'batch'}: {[o.message for o in report.failures]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--size", type=int, default=1024, help="Side of each scene (px).")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--mosaic-tiles", type=int, default=4,
                        help="cut a scene into N x N tiles for the --mosaic figure (0: skip)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        sample = write_sample_pair(tmp / "sample", "sat-map", size=1024, seed=1).input_path
        model = paper_model(tmp / "m.pt", args.preset)
        scene = tiled_scene(tmp / "scene.tif", args.size, args.size, sample)
        scenes = []
        for i in range(args.scenes):
            copy = tmp / f"scene-{i:02d}.tif"
            os.link(scene, copy)
            scenes.append(copy)
        print(f"{args.scenes} scenes of {args.size}², {args.preset} U-Net, {args.precision}, "
              f"{os.cpu_count()} cores")
        baseline = run(scenes, tmp / "batch", model, None, args.precision) if scenes else 0.0
        if scenes:
            print(f"{'batch (here)':>14}: {60 * args.scenes / baseline:6.1f} scenes/min "
                  f"({baseline:.1f} s)")
        for workers in args.workers:
            seconds = run(scenes, tmp / f"local-{workers}", model, f"local:{workers}",
                          args.precision)
            print(f"{f'local:{workers}':>14}: {60 * args.scenes / seconds:6.1f} scenes/min "
                  f"({seconds:.1f} s, {baseline / seconds:.2f}x the batch)")
        if args.mosaic_tiles:
            mosaic_figure(scene, tmp, model, args.mosaic_tiles, args.precision)


def mosaic_figure(scene: Path, tmp: Path, model: Path, n: int, precision: str) -> None:
    """Tile by tile, --mosaic, and the uncut scene, in the same run."""
    tiles = cut(scene, tmp / "tiles", n)
    start = time.perf_counter()
    translate_raster(scene, tmp / "uncut.tif", model, device="cpu", precision=precision)
    uncut = time.perf_counter() - start
    separate = run(tiles, tmp / "tile-by-tile", model, None, precision)
    together = run(tiles, tmp / "mosaic", model, None, precision, mosaic=True)
    print(f"\n{n} x {n} tiles of one scene: tile by tile {separate:.2f} s, --mosaic "
          f"{together:.2f} s (x {together / separate:.2f} tile by tile), uncut scene "
          f"{uncut:.2f} s (--mosaic x {together / uncut:.2f})")


def cut(scene: Path, folder: Path, n: int) -> list[Path]:
    """``scene`` cut into n x n GeoTIFF tiles on its pixel grid."""
    folder.mkdir()
    tiles = []
    with rasterio.open(scene) as src:
        for i in range(n):
            for j in range(n):
                window = Window.from_slices(
                    (i * src.height // n, (i + 1) * src.height // n),
                    (j * src.width // n, (j + 1) * src.width // n))
                profile = {**src.profile, "width": window.width, "height": window.height,
                           "transform": src.window_transform(window)}
                with rasterio.open(folder / f"t{i}{j}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=window))
                tiles.append(folder / f"t{i}{j}.tif")
    return tiles


if __name__ == "__main__":
    main()
