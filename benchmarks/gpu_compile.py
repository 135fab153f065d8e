"""Is ``torch.compile`` or fp16 faster on this GPU? The eager default against both.

Issue 18 asks for ``torch.compile`` in the defaults *if it is measured faster*, and for
fp16 (with GradScaler) figures beside bf16. In one run:

* the translate forward (``Translator.translate_tiles``, the generator and the class
  head's softmax) of the ``faithful`` U-Net with a class head of 9 colours and of the
  ``paper`` U-Net, at translate's default GPU batch (16): eager in the device's default
  precision, the same with the generator compiled (``nn.Module.compile``), eager fp16 and
  eager fp32; with the largest difference from the eager default's output, since a
  compiled graph fuses and reorders arithmetic and translate promises the same bytes
  for the same settings;
* one ``faithful`` Pix2Pix training update (augmentation, DiffAugment, weight average)
  at batch 4 (the preset's) and 16: eager, every network compiled, eager fp16 with
  GradScaler and eager fp32.

The cases of a row group take turns (see :func:`timed_in_turns`).

Compilation time is reported apart from the step time: a training of 1500 steps or a
translate of a few hundred windows pays it once per run.

    python benchmarks/gpu_compile.py                                # on a GPU, ~2 minutes
    python benchmarks/gpu_compile.py --device cpu --tiny --steps 2  # the logic, on a CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_table import markdown_table
from train_step import _timed, geogan_step
from translate import paper_model

from geogan import Translator, load_model


@dataclasses.dataclass
class Row:
    what: str
    batch: int
    variant: str
    seconds: float | None = None
    ratio: str = ""
    compile_s: float | None = None
    note: str = ""


def timed_in_turns(makers: dict[str, Callable[[], Callable[[], object]]], steps: int,
                   device: torch.device) -> dict[str, tuple[float, float] | str]:
    """Case → (median seconds per call, seconds of its first three calls), or the error.

    Every case is built and warmed up (three calls: compilation, when there is one, and
    cuDNN's choice of kernels) before any is timed; then the timed calls take turns, one
    of each case per round, so that a GPU's clocks and a shared host's drift fall on all
    cases alike (timed one after the other, the first case of a run came out up to 1.8 ×
    slower than the same case later).
    """
    built: dict[str, Callable[[], object]] = {}
    results: dict[str, tuple[float, float] | str] = {}
    first: dict[str, float] = {}
    for name, make in makers.items():
        try:
            torch.manual_seed(0)
            step = make()
            start = time.perf_counter()
            for _ in range(3):
                _timed(step, device)
            first[name] = time.perf_counter() - start
            built[name] = step
        except Exception as error:  # a failed case is a row; the others still run
            traceback.print_exc()
            results[name] = f"{type(error).__name__}: {error}"
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(steps):
        for name, step in built.items():
            times[name].append(_timed(step, device))
    results.update({name: (statistics.median(times[name]), first[name]) for name in built})
    return {name: results[name] for name in makers}


def rows_of(what: str, batch: int, results: dict[str, tuple[float, float] | str],
            notes: dict[str, str]) -> list[Row]:
    """Table rows, each case's speed against the first (the eager default)."""
    base = next(iter(results.values()))
    rows = []
    for name, result in results.items():
        if isinstance(result, str):
            rows.append(Row(what, batch, name, note=result))
            continue
        seconds, first = result
        ratio = f"{base[0] / seconds:.2f} ×" if not isinstance(base, str) else ""
        rows.append(Row(what, batch, name, seconds, ratio,
                        first if "compiled" in name else None, notes.get(name, "")))
    return rows


def cases(device: torch.device, default_precision: str) -> list[tuple[str, bool]]:
    """(precision, compiled) of each case; the eager default first."""
    listed = [(default_precision, False), (default_precision, True)]
    if device.type == "cuda":
        listed += [(p, False) for p in ("fp16", "fp32") if p != default_precision]
    return listed


def translate_rows(device: torch.device, preset: str, batch: int, steps: int,
                   default_precision: str, work: Path) -> list[Row]:
    model = paper_model(work / f"{preset}.pt", preset=preset)
    torch.manual_seed(0)
    tiles = torch.rand(batch, 3, 256, 256) * 2 - 1  # the U-Nets' own tile
    translators: dict[str, Translator] = {}

    def maker(precision: str, compiled: bool) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            translator = load_model(model, device=device.type, precision=precision)
            if compiled:
                translator.generator.compile()
            translators[name_of(precision, compiled)] = translator
            return lambda: translator.translate_tiles(tiles)
        return make

    makers = {name_of(p, c): maker(p, c) for p, c in cases(device, default_precision)}
    results = timed_in_turns(makers, steps, device)
    outputs = {name: t.translate_tiles(tiles).float().cpu() for name, t in translators.items()}
    reference = outputs.get(name_of(default_precision, False))
    notes = {name: f"max abs Δ {float((out - reference).abs().max()):.2e}"
             for name, out in outputs.items() if reference is not None}
    return rows_of(f"translate forward, {preset}", batch, results, notes)


def training_rows(device: torch.device, batch: int, steps: int, tiny: bool,
                  default_precision: str) -> list[Row]:
    width, size = (8, 64) if tiny else (64, 256)
    makers: dict[str, Callable[[], Callable[[], object]]] = {
        name_of(p, c): (lambda p=p, c=c: geogan_step("pix2pix", device, batch, p, width, size,
                                                     preset="faithful", compiled=c))
        for p, c in cases(device, default_precision)}
    return rows_of("Pix2Pix step, faithful", batch, timed_in_turns(makers, steps, device), {})


def name_of(precision: str, compiled: bool) -> str:
    return f"{precision}{' compiled' if compiled else ''}"


def markdown(rows: list[Row], header: str) -> str:
    return markdown_table(
        header, "what|batch:|variant|seconds:|speed vs eager default:|first 3 calls (s):|note",
        [[r.what, r.batch, r.variant, "" if r.seconds is None else f"{r.seconds:.4f}",
          r.ratio, "" if r.compile_s is None else f"{r.compile_s:.1f}", r.note]
         for r in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true",
                        help="translate 2 windows, train 8-wide networks on 64² chips")
    parser.add_argument("--steps", type=int, default=20, help="timed calls per case")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("PyTorch sees no CUDA GPU")
    cuda = device.type == "cuda"
    default_precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    where = (torch.cuda.get_device_name(device) if cuda else "CPU")
    header = (f"torch.compile and fp16 against eager {default_precision}: {where}, torch "
              f"{torch.__version__}; median of {args.steps} calls; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as work:
        for preset in ("faithful", "paper"):
            rows += translate_rows(device, preset, 2 if args.tiny else 16, args.steps,
                                   default_precision, Path(work))
            print(markdown(rows, header), flush=True)
    for batch in (4, 16):
        rows += training_rows(device, batch, args.steps, args.tiny, default_precision)
        print(markdown(rows, header), flush=True)
    if args.out:
        args.out.write_text(markdown(rows, header))
    return 1 if any(r.seconds is None for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
