"""Export time as a ratio to the I/O floor, measured in the same run.

The floor is what any exporter must do: read both rasters once, window by window on
the same chip grid, and write the same bytes once, one file per chip. The export does
that plus validity masks, statistics, registration and GeoTIFF headers. Target: the
ratio stays at or below 2 for an 8192 × 8192 pair.

It also cuts each raster into ``--tiles`` × ``--tiles`` files (100 by default) and exports
the two folders as mosaics: the multi-file overhead is that time over the export of the
pre-mosaicked pair, measured in the same run (and the peak memory of each).

It also times the export in one process (``workers=1``, as before worker processes):
the gain of the pool, in the same run.

    python benchmarks/export_chips.py              # 8192 × 8192 sat-map pair
    python benchmarks/export_chips.py --size 2048  # quicker
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from geogan import ExportOptions, export_chips


def make_pair(folder: Path, size: int, seed: int,
              descriptions: bool = False) -> tuple[Path, Path]:
    """A co-registered RGB uint8 pair, written block by block (bounded memory); with
    ``descriptions``, bands named as most real rasters' are (which makes GDAL rewrite
    each chip's directory after its pixels)."""
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
            if descriptions:
                dst.descriptions = ("red", "green", "blue")
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


def timed_export(a: Path, b: Path, out: Path, tile: int, workers: int
                 ) -> tuple[float, int, float, float]:
    """Run one export in this (fresh) process: seconds, chips written, and the peak RSS in
    MB of this process and of its largest worker process."""
    watcher = DescendantPeaks()
    watcher.start()
    report = export_chips(a, b, out, ExportOptions(tile_size=tile, workers=workers))
    watcher.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report.seconds, report.exported, peak_mb, watcher.peak_mb


class DescendantPeaks(threading.Thread):
    """The largest peak RSS (VmHWM) of this process's descendants (the export's workers
    are children of a fork server, which getrusage does not see), polled every 50 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.05):
            for pid in _descendants(os.getpid()):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:  # gone meanwhile
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _descendants(root: int) -> list[int]:
    """Process ids under ``root`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="raster side in pixels")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--descriptions", action="store_true",
                        help="name the bands (red, green, blue), as most real rasters do")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    parser.add_argument("--tiles", type=int, default=10,
                        help="cut each raster into this many × this many files for the "
                             "multi-file run (0: no multi-file run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geogan-bench-") as tmp:
        folder = Path(tmp)
        a, b = make_pair(folder, args.size, seed=0, descriptions=args.descriptions)
        if args.tiles:
            tiles_a = cut_into_tiles(a, folder / "tiles_a", args.tiles)
            tiles_b = cut_into_tiles(b, folder / "tiles_b", args.tiles)
        times: dict[str, list[float]] = {"floor": [], "export": [], "one process": [],
                                          "tiled": []}
        peaks: dict[str, list[tuple[float, float]]] = {k: [] for k in times}
        context = multiprocessing.get_context("spawn")
        for attempt in range(args.repeat):
            # Rotate the order so page-cache warmth favours none.
            order = ["floor", "export", "one process", *(["tiled"] if args.tiles else [])]
            order = order[attempt % len(order):] + order[:attempt % len(order)]
            for what in order:
                out = folder / f"{what.replace(' ', '_')}{attempt}"
                if what == "floor":
                    times[what].append(io_floor(a, b, out, args.tile_size))
                else:
                    sources = (tiles_a, tiles_b) if what == "tiled" else (a, b)
                    # A process of its own (whose workers are its children), so that its
                    # peak memory is the export's.
                    with ProcessPoolExecutor(1, mp_context=context) as pool:
                        seconds, written, peak_mb, worker_mb = pool.submit(
                            timed_export, *sources, out, args.tile_size,
                            1 if what == "one process" else 0).result()
                    times[what].append(seconds)
                    peaks[what].append((peak_mb, worker_mb))
                shutil.rmtree(out)
        floor, export, alone = (min(times[k]) for k in ("floor", "export", "one process"))
        chips = (args.size // args.tile_size) ** 2
        print(f"pair: 2 × {args.size}×{args.size}×3 uint8, {chips} chip pairs of "
              f"{args.tile_size}² ({written} written)")
        print(f"I/O floor (read both once, write the bytes once): {floor:.2f} s "
              f"({floor / chips * 1000:.1f} ms per chip pair)")
        workers = min(8, os.cpu_count() or 1)
        print(f"export-chips ({workers} worker processes):             {export:.2f} s "
              f"({export / chips * 1000:.1f} ms per chip pair)")
        print(f"export-chips in one process (workers=1):          {alone:.2f} s "
              f"({alone / chips * 1000:.1f} ms per chip pair)")
        print(f"ratio export / floor: {export / floor:.2f}  (target <= 2); in one process "
              f"{alone / floor:.2f}; one process / export {alone / export:.2f}")

        def runs(what: str) -> str:
            return ", ".join(f"{t:.2f}" for t in times[what])

        each = ", ".join(f"{e / f:.2f}" for e, f in zip(times["export"], times["floor"],
                                                          strict=True))
        print(f"all runs (s): floor {runs('floor')}; export {runs('export')}; one process "
              f"{runs('one process')}; ratio of each export to its own floor {each}")
        main_mb, worker_mb = (max(p[k] for p in peaks["export"]) for k in (0, 1))
        print(f"export peak RSS: {main_mb:.0f} MB, and {worker_mb:.0f} MB in each worker "
              f"process at most; in one process {max(p[0] for p in peaks['one process']):.0f}"
              f" MB (the two rasters hold {2 * 3 * args.size**2 / 2**20:.0f} MB)")
        if not args.tiles:
            return
        print(f"multi-file: each side as {args.tiles}×{args.tiles} = {args.tiles**2} files "
              f"(two mosaics): {min(times['tiled']):.2f} s, peak RSS "
              f"{max(p[0] for p in peaks['tiled']):.0f} MB")
        print(f"ratio multi-file / pre-mosaicked export: {min(times['tiled']) / export:.2f}  "
              f"(runs: {runs('tiled')})")


if __name__ == "__main__":
    main()
