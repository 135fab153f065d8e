"""The GPU table: training steps and translate throughput on CUDA, in one table.

``benchmarks/gpu.sh`` runs it on a lent GPU machine. In the same run it measures:

* training: one update of the paper networks (256², RGB → RGB) for Pix2Pix and CycleGAN
  at batch 1 and 16, for the reference update (``train_step.py``'s, float32) and for
  geogan's in fp32 and in bf16 (the default where the GPU has it): seconds per step,
  images per second, the ratio to the reference, the peak GPU memory;
* translate: ``geogan.translate_raster`` end to end on a scene tiled from the sample data
  with the paper U-Net (random weights) at batch 8 and 64, against the bare generator
  over as many windows (``translate_tiles``): megapixels per second, the ratio, the
  peak GPU memory; and once more at the default batch, which a GPU's free memory chooses;
  with ``--co NAME=VALUE`` (a GDAL creation option, as translate's ``--co``) those
  translate rows run once more with it. ``--translate-only --batches 8,16,32,64`` sweeps
  the batch alone.

Every case is timed on its own; a case that fails prints its error in the table (and its
traceback on stderr) and the script exits 1 after printing the rest. Cases left when
``--budget`` seconds have passed are listed as skipped.

    python benchmarks/gpu_table.py --out /tmp/gpu-table.md      # on a GPU, ~2 minutes
    python benchmarks/gpu_table.py --device cpu --tiny          # the logic, on a CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import geogan_step, measure, precisions_for, seconds_per_step
from translate import paper_model, tiled_scene

from geogan import load_model, translate_raster, write_sample_pair

STEP_NAMES = {"pix2pix": "Pix2Pix step", "cyclegan": "CycleGAN step"}


@dataclass
class Row:
    """One line of the table; ``note`` holds an error or why the case was skipped."""

    what: str
    batch: int
    variant: str
    seconds: float | None = None
    throughput: str = ""
    ratio: str = ""
    peak_gib: float | None = None
    note: str = ""


def gib(count: int) -> float | None:
    return count / 2**30 if count else None


def training_rows(device: torch.device, kind: str, batch: int, steps: int,
                  tiny: bool) -> list[Row]:
    results = measure(kind, device, batch, steps, precisions_for(device),
                      *((8, 64) if tiny else (64, 256)))
    reference = results["reference"][0]
    return [Row(STEP_NAMES[kind], batch, variant, seconds, f"{batch / seconds:.1f} img/s",
                f"{reference / seconds:.2f} ×", gib(peak))
            for variant, (seconds, peak) in results.items()]


def faithful_rows(device: torch.device, batch: int, steps: int, tiny: bool) -> list[Row]:
    """One update of the default ``faithful`` recipe (augmentation, DiffAugment, weight
    average; no class head on random data) in the device's precision."""
    precision = precisions_for(device)[-1]
    width, size = (8, 64) if tiny else (64, 256)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    seconds = seconds_per_step(geogan_step("pix2pix", device, batch, precision, width, size,
                                           preset="faithful"), steps, device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return [Row("Pix2Pix step, faithful", batch, f"geogan {precision}", seconds,
                f"{batch / seconds:.1f} img/s", "", gib(peak))]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def translate_rows(device: torch.device, model: Path, scene: Path, side: int,
                   asked: int | None, work: Path,
                   creation_options: dict[str, str]) -> list[Row]:
    """translate_raster end to end and the bare forward over as many windows, at batch
    ``asked`` (None: the default, chosen from free GPU memory), with GDAL
    ``creation_options`` (``--co``) for the output."""
    translator = load_model(model, device=device.type, precision="auto")
    precision = translator.precision
    batch = translator.auto_batch_size() if asked is None else asked
    tiles = torch.rand(batch, 3, 256, 256) * 2 - 1
    translator.translate_tiles(tiles)  # warm-up: kernels chosen, memory pooled
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    report = translate_raster(scene, work / "out.tif", translator, batch_size=asked,
                              overwrite=True, creation_options=creation_options)
    whole = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    windows = report.windows_run
    start = time.perf_counter()
    for first in range(0, windows, batch):
        translator.translate_tiles(tiles[:min(batch, windows - first)])
    synchronize(device)
    forward = time.perf_counter() - start
    forward_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    megapixels = side * side / 1e6
    what = (f"translate {side}²" + (" (default batch)" if asked is None else "")
            + "".join(f", {k}={v}" for k, v in creation_options.items()))
    return [Row(what, batch, f"forward {precision}", forward,
                f"{megapixels / forward:.1f} Mpx/s", "1.00 ×", gib(forward_peak)),
            Row(what, batch, f"translate {precision}", whole,
                f"{megapixels / whole:.1f} Mpx/s", f"{whole / forward:.2f} × forward",
                gib(peak))]


def creation_option(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` as (NAME, VALUE), for ``--co``."""
    name, equals, value = text.partition("=")
    if not (name and equals):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def markdown_table(header: str, columns: str, cells: list[list[object]]) -> str:
    """``header``, then a Markdown table: ``columns`` as ``"name|name:|..."`` (a trailing
    colon right-aligns the column), one row per list of cells."""
    names = columns.split("|")
    lines = [header, "", "| " + " | ".join(n.rstrip(":") for n in names) + " |",
             "| " + " | ".join("---:" if n.endswith(":") else "---" for n in names) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def markdown(rows: list[Row], header: str) -> str:
    return markdown_table(
        header, "what|batch:|variant|seconds:|throughput:|ratio:|peak GPU memory:|note",
        [[r.what, r.batch, r.variant, "" if r.seconds is None else f"{r.seconds:.4f}",
          r.throughput, r.ratio, "" if r.peak_gib is None else f"{r.peak_gib:.2f} GiB",
          r.note] for r in rows])


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA "
                 f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    else:
        where = f"CPU ({platform.machine()}), {torch.get_num_threads()} threads"
    return (f"geogan GPU table: {where}; torch {torch.__version__}, Python "
            f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true",
                        help="narrow networks (ngf 8) on 64² chips, batches 1 and 2, a "
                             "512² scene with the tiny U-Net: "
                             "checks the script's logic on a CPU in about a minute")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--size", type=int, default=4096, help="side of the translated scene")
    parser.add_argument("--budget", type=float, default=240.0,
                        help="seconds after which the remaining cases are skipped")
    parser.add_argument("--out", type=Path, help="also write the table here (and .json)")
    parser.add_argument("--translate-only", action="store_true",
                        help="skip the training rows")
    parser.add_argument("--batches", type=lambda text: tuple(int(b) for b in text.split(",")),
                        help="translate batches, comma-separated (default 8,64; and the "
                             "default batch, chosen from free GPU memory, after them)")
    parser.add_argument("--cudnn-benchmark", choices=["on", "off"], default="on",
                        help="cuDNN's kernel search (translate itself leaves it off)")
    parser.add_argument("--co", action="append", default=[], metavar="NAME=VALUE",
                        type=creation_option,
                        help="a GDAL creation option for the translated scene, as "
                             "translate's --co; the batches run once without and once with")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_table.py: PyTorch sees no CUDA GPU here (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu "
              "--tiny to check the script on a CPU", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    batches, train_batches = ((1, 2), (1, 2)) if args.tiny else ((8, 64), (1, 16))
    batches = args.batches or batches
    if args.translate_only:
        train_batches = ()
    size, steps = (512, 1) if args.tiny else (args.size, args.steps)
    if device.type == "cuda":
        # Fixed shapes: let cuDNN pick its kernels (a batch of a new size searches again).
        torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    started = time.monotonic()
    rows: list[Row] = []
    failed = False

    def run(what: str, batch: int, case: Callable[[], list[Row]]) -> None:
        nonlocal failed
        if time.monotonic() - started > args.budget:
            rows.append(Row(what, batch, "", note=f"skipped: past the {args.budget:.0f} s budget"))
            return
        try:
            rows.extend(case())
        except Exception as error:  # one case's failure must not hide the others' figures
            failed = True
            traceback.print_exc()
            rows.append(Row(what, batch, "", note=f"FAILED: {type(error).__name__}: {error}"))
        finally:
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(markdown(rows[-1:], "").strip().splitlines()[-1], flush=True)

    for kind in ("pix2pix", "cyclegan"):
        for batch in train_batches:
            run(STEP_NAMES[kind], batch,
                lambda k=kind, b=batch: training_rows(device, k, b, steps, args.tiny))
    if not args.translate_only:
        run("Pix2Pix step, faithful", 4,
            lambda: faithful_rows(device, 1 if args.tiny else 4, steps, args.tiny))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            sample = write_sample_pair(work / "sample", "sat-map", size=1024, seed=1).input_path
            model = paper_model(work / "m.pt", "tiny" if args.tiny else "paper")
            scene = tiled_scene(work / "scene.tif", size, size, sample)
        except Exception as error:
            failed = True
            traceback.print_exc()
            rows.append(Row("translate", 0, "", note=f"FAILED to prepare: {error}"))
        else:
            options = dict(args.co)
            for creation in ({}, options) if options else ({},):
                for batch in (*batches, None):
                    run(f"translate {size}²", batch or 0,
                        lambda b=batch, c=creation: translate_rows(device, model, scene,
                                                                   size, b, work, c))
    table = markdown(rows, describe(device))
    print("\n" + table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(
            json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
