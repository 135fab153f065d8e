"""Export time as a ratio to the I/O floor, measured in the same run.

The floor is what any exporter must do: read both rasters once, window by window on
the same chip grid, and write the same bytes once, one file per chip. The export does
that plus validity masks, statistics, registration and GeoTIFF headers. Target: the
ratio stays at or below 2 for an 8192 × 8192 pair.

It also cuts each raster into ``--tiles`` × ``--tiles`` files (100 by default) and exports
the two folders as mosaics: the multi-file overhead is that time over the export of the
pre-mosaicked pair, measured in the same run (and the peak memory of each).

``--halves`` also times two processes that export one half of the grid each (an AOI), at
once: the most a process pool could gain over export's threads on this machine.

    python benchmarks/export_chips.py              # 8192 × 8192 sat-map pair
    python benchmarks/export_chips.py --size 2048  # quicker
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from geogan import ExportOptions, export_chips


def make_pair(folder: Path, size: int, seed: int) -> tuple[Path, Path]:
    """A co-registered RGB uint8 pair, written block by block (bounded memory)."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in ("input.tif", "target.tif"):
        path = folder / name
        profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(1, 0, 500_000, 0, -1, 5_000_000),
                       tiled=True, blockxsize=256, blockysize=256)
        with rasterio.open(path, "w", **profile) as dst:
            for row in range(0, size, 512):
                rows = min(512, size - row)
                # Smooth-ish texture: block noise upsampled by 8, plus fine noise.
                coarse = rng.integers(0, 200, (3, rows // 8 + 1, size // 8 + 1), dtype=np.uint8)
                block = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :rows, :size]
                block = block + rng.integers(0, 50, block.shape, dtype=np.uint8)
                dst.write(block, window=Window(0, row, size, rows))
        paths.append(path)
    return paths[0], paths[1]


def io_floor(a: Path, b: Path, out: Path, tile: int) -> float:
    """Seconds to read every chip window of both rasters and write each chip's bytes once."""
    out.mkdir()
    started = time.perf_counter()
    with rasterio.open(a) as src_a, rasterio.open(b) as src_b:
        index = 0
        for row in range(0, src_a.height - tile + 1, tile):
            for col in range(0, src_a.width - tile + 1, tile):
                window = Window(col, row, tile, tile)
                for src, suffix in ((src_a, "a"), (src_b, "b")):
                    src.read(window=window).tofile(out / f"{index:09d}{suffix}.bin")
                index += 1
    return time.perf_counter() - started


def cut_into_tiles(path: Path, folder: Path, parts: int) -> Path:
    """``path`` cut into ``parts`` × ``parts`` GeoTIFFs in ``folder``, one tile in memory
    at a time."""
    folder.mkdir()
    with rasterio.open(path) as src:
        edges = np.linspace(0, src.width, parts + 1).astype(int)
        for i in range(parts):
            for j in range(parts):
                window = Window(edges[j], edges[i], edges[j + 1] - edges[j],
                                edges[i + 1] - edges[i])
                profile = dict(src.profile, width=int(window.width), height=int(window.height),
                               transform=src.window_transform(window))
                with rasterio.open(folder / f"tile_{i:02d}_{j:02d}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=window))
    return folder


def timed_export(a: Path, b: Path, out: Path, tile: int) -> tuple[float, int, float]:
    """Run one export in this (fresh) process: seconds, chips written, peak RSS in MB."""
    report = export_chips(a, b, out, ExportOptions(tile_size=tile))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report.seconds, report.exported, peak_mb


def half_aois(folder: Path, size: int) -> list[Path]:
    """GeoJSON files of the top and bottom halves of :func:`make_pair`'s rasters."""
    paths = []
    for k, (top, bottom) in enumerate(((0, size // 2), (size // 2, size))):
        y0, y1 = 5_000_000 - bottom, 5_000_000 - top
        ring = [[500_000, y0], [500_000 + size, y0], [500_000 + size, y1], [500_000, y1],
                [500_000, y0]]
        path = folder / f"half{k}.geojson"
        path.write_text(json.dumps({
            "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}}))
        paths.append(path)
    return paths


def exported_in(a: Path, b: Path, out: Path, tile: int, aoi: Path) -> int:
    """Export the part of the pair in ``aoi`` with one worker thread: chips written."""
    return export_chips(a, b, out, ExportOptions(tile_size=tile, aoi=aoi, workers=1)).exported


def two_processes(a: Path, b: Path, out: Path, tile: int, aois: list[Path],
                  pool: Any) -> tuple[float, int]:
    """Wall time of the halves exported at once by the two (warm) processes of ``pool``,
    and the chips written in all."""
    started = time.perf_counter()
    pending = [pool.apply_async(exported_in, (a, b, out / f"half{k}", tile, aoi))
               for k, aoi in enumerate(aois)]
    written = sum(result.get() for result in pending)
    return time.perf_counter() - started, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="raster side in pixels")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    parser.add_argument("--tiles", type=int, default=10,
                        help="cut each raster into this many × this many files for the "
                             "multi-file run (0: no multi-file run)")
    parser.add_argument("--halves", action="store_true",
                        help="also time two processes exporting half the grid each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geogan-bench-") as tmp:
        folder = Path(tmp)
        a, b = make_pair(folder, args.size, seed=0)
        if args.tiles:
            tiles_a = cut_into_tiles(a, folder / "tiles_a", args.tiles)
            tiles_b = cut_into_tiles(b, folder / "tiles_b", args.tiles)
        floors: list[float] = []
        exports: list[float] = []
        peaks: list[float] = []
        tiled: list[float] = []
        tiled_peaks: list[float] = []
        halves: list[float] = []
        aois = half_aois(folder, args.size)
        context = multiprocessing.get_context("spawn")
        pair_pool = context.Pool(2) if args.halves else None
        for attempt in range(args.repeat):
            # Rotate the order so page-cache warmth favours none.
            order = ["floor", "export", *(["tiled"] if args.tiles else []),
                     *(["halves"] if args.halves else [])]
            order = order[attempt % len(order):] + order[:attempt % len(order)]
            for what in order:
                out = folder / f"{what}{attempt}"
                if what == "floor":
                    floors.append(io_floor(a, b, out, args.tile_size))
                elif what == "halves":
                    out.mkdir()
                    seconds, halves_written = two_processes(a, b, out, args.tile_size, aois,
                                                            pair_pool)
                    halves.append(seconds)
                else:
                    sources = (a, b) if what == "export" else (tiles_a, tiles_b)
                    # A child process of its own, so that its peak memory is the export's.
                    with context.Pool(1) as pool:
                        seconds, written, peak_mb = pool.apply(
                            timed_export, (*sources, out, args.tile_size))
                    (exports if what == "export" else tiled).append(seconds)
                    (peaks if what == "export" else tiled_peaks).append(peak_mb)
                shutil.rmtree(out)
        floor, export = min(floors), min(exports)
        chips = (args.size // args.tile_size) ** 2
        print(f"pair: 2 × {args.size}×{args.size}×3 uint8, {chips} chip pairs of "
              f"{args.tile_size}² ({written} written)")
        print(f"I/O floor (read both once, write the bytes once): {floor:.2f} s "
              f"({floor / chips * 1000:.1f} ms per chip pair)")
        print(f"export-chips:                                     {export:.2f} s "
              f"({export / chips * 1000:.1f} ms per chip pair)")
        print(f"ratio export / floor: {export / floor:.2f}  (target <= 2)")
        each = ", ".join(f"{e / f:.2f}" for e, f in zip(exports, floors, strict=True))
        print(f"all runs (s): floor {', '.join(f'{t:.2f}' for t in floors)}; "
              f"export {', '.join(f'{t:.2f}' for t in exports)}; ratio of each run to its "
              f"own floor {each}")
        print(f"export peak RSS: {max(peaks):.0f} MB "
              f"(the two rasters hold {2 * 3 * args.size**2 / 2**20:.0f} MB)")
        if pair_pool is not None:
            pair_pool.close()
            print(f"two processes, half the grid each ({halves_written} chips in all), at "
                  f"once: {min(halves):.2f} s; "
                  f"export / that {export / min(halves):.2f}, that / floor "
                  f"{min(halves) / floor:.2f} (runs: {', '.join(f'{t:.2f}' for t in halves)})")
        if not args.tiles:
            return
        print(f"multi-file: each side as {args.tiles}×{args.tiles} = {args.tiles**2} files "
              f"(two mosaics): {min(tiled):.2f} s, peak RSS {max(tiled_peaks):.0f} MB")
        print(f"ratio multi-file / pre-mosaicked export: {min(tiled) / export:.2f}  "
              f"(runs: {', '.join(f'{t:.2f}' for t in tiled)})")


if __name__ == "__main__":
    main()
