"""End-to-end ``translate`` time against the bare generator, and peak memory.

Speed: for the paper U-Net (Pix2Pix, 256 x 256, RGB → RGB; random weights, the
arithmetic is the same as a trained model's) it translates a scene built from the
sample data and times, in the same run and for each precision the CPU does well:

* ``forward``: the generator alone (``Translator.translate_tiles``) on as many batches of
  random tiles as the scene has windows, at the same batch size: the floor;
* ``translate``: ``geogan.translate_raster`` end to end (read, normalise, generate, blend,
  de-normalise, compress and write a tiled GeoTIFF).

* ``I/O floor``: what any translation of the scene must do besides the generator, in one
  thread: read the scene strip by strip and write the same pixels, with a mask, into a
  GeoTIFF of translate's output profile (tiling, DEFLATE level 1, predictor).

With ``--sharpen PX`` it also times translate with every window sharpened by PX pixels
(as a scene softer than the training chips is), as a ratio to the same translate, and the
sharpening filter alone on a batch, as a share of the forward's time a window.

It prints them and the ratio translate / forward; the budget (DESIGN.md) is a ratio of at
most 1.15 (1.3 for the ``tiny`` U-Net). ``floor / forward`` says how much of a ratio the
I/O alone costs when the generator already keeps every core busy.

Memory: in fresh processes it translates scenes of the same width and 1 and 8 times the
height and prints the peak resident memory (``VmHWM``, Linux) of each, torch and the model
included, and with ``--memory-size N`` also an N x N scene and its peak as a ratio to the
budget (16384 x 16384 under 1 GB on CPU with the paper U-Net in bf16).

    python benchmarks/translate.py                       # ~2 minutes on 2 CPU cores
    python benchmarks/translate.py --memory-size 16384   # adds ~7 minutes (bf16)
    python benchmarks/translate.py --preset tiny         # the demo's narrow U-Net
    python benchmarks/translate.py --preset faithful     # the default recipe's, a map of 9 colours
    python benchmarks/translate.py --device cuda         # on a GPU (benchmarks/gpu.sh)
    python benchmarks/translate.py --preset tiny --sharpen 1   # and every window sharpened
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geogan import TranslateOptions, load_model, translate_raster, write_sample_pair
from geogan.grids.windows import WindowGrid, default_overlap
from geogan.inference.deblur import Deblur
from geogan.inference.output_file import output_bands, output_profile
from geogan.nn.config import build_configs
from geogan.nn.devices import cpu_has_native_bf16
from geogan.nn.model_file import ModelFile, save_model_file
from geogan.nn.networks import build_generator
from geogan.nn.normalization import BandNormalization
from geogan.raster.io import grid_origin

#: Nine map colours: as many as the ``faithful`` recipe's class head finds on the 29
#: training maps of benchmarks/quality_real.py, so that the generator gives 9 class
#: probabilities beside the 3 image bands. The count sets the arithmetic and the memory
#: measured; the colours themselves only shade the map.
MAP_COLOURS = ((232, 229, 222), (255, 255, 255), (170, 218, 255), (202, 223, 174),
               (248, 216, 156), (242, 240, 233), (255, 161, 68), (225, 225, 225),
               (190, 190, 190))


def paper_model(path: Path, preset: str = "paper") -> Path:
    """A Pix2Pix model file with the preset's U-Net (paper, tiny, or faithful with a class
    head of the 9 map colours) and random weights."""
    arch, _ = build_configs("pix2pix", 3, 3, 256, preset=preset)
    if preset == "faithful":
        arch = dataclasses.replace(arch, palette=MAP_COLOURS,
                                   class_names=tuple(f"colour {i}" for i in range(9)),
                                   class_weights=(1.0,) * 9)
    torch.manual_seed(0)
    generator = build_generator(arch, "a2b")
    uint8 = BandNormalization((0.0,) * 3, (255.0,) * 3, "uint8", None)
    model = ModelFile(architecture=arch, generators={"a2b": generator.state_dict()},
                      normalization={"a": uint8, "b": uint8})
    return save_model_file(path, model, overwrite=True)


def tiled_scene(path: Path, width: int, height: int, sample: Path) -> Path:
    """A width x height RGB uint8 GeoTIFF tiled from the sample image, written strip by
    strip (so that building a 16384² scene needs little memory)."""
    with rasterio.open(sample) as src:
        tile = src.read()  # (3, 1024, 1024)
        profile = dict(src.profile)
    size = tile.shape[1]
    profile.update(width=width, height=height, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", bigtiff="if_safer")
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, height, size):
            rows = min(size, height - row)
            strip = np.tile(tile[:, :rows], (1, 1, -(-width // size)))[:, :, :width]
            dst.write(strip, window=Window(0, row, width, rows))
    return path


def time_forward(model: Path, windows: int, batch_size: int, precision: str,
                 device: str = "cpu", streams: int = 1) -> float:
    """Seconds for the generator alone over ``windows`` random tiles: batch after batch,
    or with ``streams`` 2 as the engine runs it on a CPU (the halves of each batch on two
    threads with half of torch's threads each, two batches at a time)."""
    translator = load_model(model, device=device, precision=precision)
    tiles = torch.rand(batch_size, 3, 256, 256) * 2 - 1
    translator.translate_tiles(tiles)  # warm-up
    threads = max(1, torch.get_num_threads() // streams)
    with ThreadPoolExecutor(streams, initializer=torch.set_num_threads,
                            initargs=(threads,)) as pool:
        start = time.perf_counter()
        pending: list[Any] = []
        for first in range(0, windows, batch_size):
            batch = tiles[:min(batch_size, windows - first)]
            if streams == 1:
                translator.translate_tiles(batch)
                continue
            half = -(-len(batch) // 2)
            pending += [pool.submit(translator.translate_tiles, part)
                        for part in (batch[:half], batch[half:]) if len(part)]
            while len(pending) > 2 * streams:
                pending.pop(0).result()
        for future in pending:
            future.result()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_translate(model: Path, scene: Path, out: Path, batch_size: int,
                   precision: str, device: str = "cpu", sharpen: float | None = None
                   ) -> tuple[float, int]:
    """Seconds for translate_raster end to end, and the windows it ran (every window
    sharpened by ``sharpen`` px first, as a scene softer than the chips is)."""
    translator = load_model(model, device=device, precision=precision)
    translator.translate_tiles(torch.zeros(1, 3, 256, 256))  # warm-up, as for forward
    start = time.perf_counter()
    report = translate_raster(scene, out, translator, batch_size=batch_size, overwrite=True,
                              sharpen=sharpen)
    return time.perf_counter() - start, report.windows_run


def time_deblur(sigma: float, batch_size: int, device: str, repeats: int = 5) -> float:
    """Seconds a window for the sharpening filter alone on a batch of random tiles on
    ``device`` (median of ``repeats``)."""
    deblur = Deblur(sigma)
    tiles = (torch.rand(batch_size, 3, 256, 256) * 2 - 1).to(device)
    deblur(tiles)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        deblur(tiles)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / batch_size)
    return statistics.median(times)


def time_io_floor(model: Path, scene: Path, out: Path, strip: int = 256) -> float:
    """Seconds to read ``scene`` strip by strip and write its pixels, with an all-valid
    mask, into a GeoTIFF of translate's output profile for ``model``: the I/O a
    translation cannot avoid."""
    translator = load_model(model)
    start = time.perf_counter()
    with rasterio.open(scene) as src:
        settings = TranslateOptions()
        profile = output_profile(src, translator, settings,
                                 output_bands(src, translator, settings))
        with rasterio.open(out, "w", **profile) as dst:
            for row in range(0, src.height, strip):
                window = Window(0, row, src.width, min(strip, src.height - row))
                pixels = src.read(window=window)
                dst.write(pixels, window=window)
                dst.write_mask(np.full(pixels.shape[1:], 255, np.uint8), window=window)
    return time.perf_counter() - start


_MEMORY_CHILD = """
import json, sys, time
from geogan import load_model, translate_raster

def status(key):  # this process's own figures: ru_maxrss would count the parent's too
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

model, scene, out, precision, device = sys.argv[1:6]
translator = load_model(model, device=device, precision=precision)
before = status("VmHWM")
start = time.perf_counter()
report = translate_raster(scene, out, translator, overwrite=True)
seconds = time.perf_counter() - start
print(json.dumps({"before_mb": before, "peak_mb": status("VmHWM"), "seconds": seconds,
                  "windows": report.windows_run}))
"""


def peak_memory(model: Path, scene: Path, out: Path, precision: str,
                device: str = "cpu") -> dict[str, float]:
    """Peak RSS of a fresh process that loads the model and translates ``scene``."""
    result = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(model), str(scene),
                             str(out), precision, device], capture_output=True, text=True,
                            check=True)
    values: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="side of the timed scene")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", choices=["paper", "tiny", "faithful"], default="paper",
                        help="the generator (tiny: ngf 16; faithful: the default recipe's)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (median)")
    parser.add_argument("--memory-width", type=int, default=4096)
    parser.add_argument("--memory-height", type=int, default=512)
    parser.add_argument("--memory-size", type=int, default=0,
                        help="also measure an N x N scene (e.g. 16384)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sharpen", type=float, default=0.0, metavar="PX",
                        help="also time translate with every window sharpened by PX pixels "
                             "(--sharpen PX, as a scene softer than the chips is), as a "
                             "ratio to the same translate unsharpened")
    args = parser.parse_args()
    bf16 = (torch.cuda.is_bf16_supported() if args.device == "cuda"
            else cpu_has_native_bf16())
    precisions = ["fp32"] + (["bf16"] if bf16 else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.preset} "
          f"U-Net 256²; batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = write_sample_pair(root / "sample", "sat-map", size=1024, seed=1).input_path
        model = paper_model(root / "m.pt", args.preset)
        scene = tiled_scene(root / "scene.tif", args.size, args.size, sample)
        with rasterio.open(scene) as src:  # the windows translate lays: on the grid lattice
            anchor = grid_origin(src)
        grid = WindowGrid(args.size, args.size, 256, default_overlap(256), "cosine", anchor)
        print(f"\nscene {args.size} x {args.size}: {len(grid)} windows "
              f"(overlap {grid.overlap} px)")
        floor = statistics.median(time_io_floor(model, scene, root / "floor.tif")
                                  for _ in range(args.repeats))
        print(f"I/O floor (read, write the same pixels, one thread): {floor:.2f} s")
        # On a CPU the engine runs the generator as two streams of half batches; the
        # forward is timed both ways, and translate compared with the faster.
        ways = 2 if args.device == "cpu" and torch.get_num_threads() >= 2 else 1
        print(f"{'precision':<10}{'forward s':>11}{'2 streams s':>13}{'translate s':>13}"
              f"{'ratio':>8}{'Mpx/s':>8}{'floor / forward':>17}")
        for precision in precisions:
            forward, streamed, whole, sharpened = [], [], [], []
            for _ in range(args.repeats):  # in turns: this host's speed drifts
                forward.append(time_forward(model, len(grid), args.batch_size, precision,
                                            args.device))
                if ways == 2:
                    streamed.append(time_forward(model, len(grid), args.batch_size,
                                                 precision, args.device, streams=2))
                seconds, _ = time_translate(model, scene, root / "out.tif", args.batch_size,
                                            precision, args.device)
                whole.append(seconds)
                if args.sharpen:
                    seconds, _ = time_translate(model, scene, root / "out.tif",
                                                args.batch_size, precision, args.device,
                                                sharpen=args.sharpen)
                    sharpened.append(seconds)
            f, t = statistics.median(forward), statistics.median(whole)
            two = statistics.median(streamed) if streamed else f
            shown = f"{two:.2f}" if streamed else "-"
            best = min(f, two)
            print(f"{precision:<10}{f:>11.2f}{shown:>13}{t:>13.2f}{t / best:>8.3f}"
                  f"{args.size ** 2 / t / 1e6:>8.2f}{floor / best:>17.2f}")
            if sharpened:
                s = statistics.median(sharpened)
                print(f"{'':<10}sharpened by {args.sharpen:g} px: {s:.2f} s, "
                      f"{s / t:.3f} x translate, {s / best:.3f} x the forward")
                window = time_deblur(args.sharpen, args.batch_size, args.device)
                print(f"{'':<10}the filter alone: {window * 1e3:.2f} ms a window, "
                      f"{window * len(grid) / best:.3f} x the forward's time a window")
        print("ratio: translate / the faster forward")
        precision = precisions[-1]
        print(f"\npeak memory ({precision}), fresh process each:")
        width, height = args.memory_width, args.memory_height
        sizes = [(width, height), (width, 8 * height)]
        if args.memory_size:
            sizes.append((args.memory_size, args.memory_size))
        results = []
        for w, h in sizes:
            scene = tiled_scene(root / f"scene-{w}x{h}.tif", w, h, sample)
            values = peak_memory(model, scene, root / "out.tif", precision, args.device)
            scene.unlink()
            results.append(values)
            print(f"  {w} x {h}: peak {values['peak_mb']:.0f} MB (model loaded: "
                  f"{values['before_mb']:.0f} MB), {values['windows']:.0f} windows in "
                  f"{values['seconds']:.0f} s")
        print(f"  8 x taller: peak x {results[1]['peak_mb'] / results[0]['peak_mb']:.3f}")
        if args.memory_size:
            print(f"  {args.memory_size}²: peak / budget (1024 MB): "
                  f"{results[2]['peak_mb'] / 1024:.3f}  (target < 1)")


if __name__ == "__main__":
    main()
