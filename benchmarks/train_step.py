"""Seconds per training step of the paper networks, against a reference-style step.

For Pix2Pix at batch 1 and 4 and CycleGAN at batch 1 (256 x 256, RGB → RGB, the paper
configuration), it times in the same run:

* ``reference``: the update of the reference PyTorch implementation
  (junyanz/pytorch-CycleGAN-and-pix2pix ``optimize_parameters``) written out here with
  the same networks: float32, NCHW, Adam with its default (foreach) kernels;
* ``geogan fp32`` and ``geogan bf16``: :mod:`geogan.training.steps` (channels-last, fused Adam,
  no host sync per step, CycleGAN's instance-norm networks run once on their inputs
  stacked), in float32 and under bfloat16 autocast when the device has it.

It prints seconds per step, images per second and the ratio to the reference. Then it
runs the real training loop (``geogan.training.loop.train``: DataLoader, worker process,
checkpoints) on chips exported from the sample scene and prints the share of the step
time spent waiting for data. Everything runs again on CUDA when a GPU is present
(``--device`` picks one; ``benchmarks/gpu.sh`` runs it there).

    python benchmarks/train_step.py                  # ~5 minutes on 2 CPU cores
    python benchmarks/train_step.py --steps 3 --quick
    python benchmarks/train_step.py --device cuda --cases pix2pix:16,cyclegan:16
    python benchmarks/train_step.py --lighter        # the default step against heavier ones
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from geogan import ExportOptions, TrainOptions, export_chips, train, write_sample_pair
from geogan.nn.config import DEFAULT_PRESET, build_configs
from geogan.nn.devices import cpu_has_native_bf16
from geogan.nn.losses import gan_loss
from geogan.nn.networks import build_discriminator, build_generator
from geogan.training.steps import TRAINERS

# Per-step times of the reference implementation on the development CPU (2 cores,
# torch 2.13, 2 threads), quoted in issue 3, for comparison with the figures measured here.
QUOTED_REFERENCE = {("pix2pix", 1): 0.87, ("pix2pix", 4): 2.37, ("cyclegan", 1): 12.0}


def reference_pix2pix_step(device: torch.device, batch: int, width: int = 64,
                            size: int = 256) -> Callable[[], None]:
    """The reference Pix2PixModel.optimize_parameters, float32 NCHW (``width``: ngf, ndf)."""
    arch, _ = build_configs("pix2pix", 3, 3, size, overrides={"ngf": width, "ndf": width})
    net_g = build_generator(arch).to(device).train()
    net_d = build_discriminator(arch, 6).to(device).train()
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion, l1 = gan_loss("vanilla"), nn.L1Loss()
    real_a = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    real_b = torch.rand(batch, 3, size, size, device=device) * 2 - 1

    def step() -> None:
        fake_b = net_g(real_a)
        net_d.requires_grad_(True)
        opt_d.zero_grad()
        loss_d_fake = criterion(net_d(torch.cat((real_a, fake_b), 1).detach()), False)
        loss_d_real = criterion(net_d(torch.cat((real_a, real_b), 1)), True)
        ((loss_d_fake + loss_d_real) * 0.5).backward()
        opt_d.step()
        net_d.requires_grad_(False)
        opt_g.zero_grad()
        loss_g = criterion(net_d(torch.cat((real_a, fake_b), 1)), True) + l1(fake_b, real_b) * 100
        loss_g.backward()
        opt_g.step()

    return step


def reference_cyclegan_step(device: torch.device, batch: int, width: int = 64,
                             size: int = 256) -> Callable[[], None]:
    """The reference CycleGANModel.optimize_parameters, float32 NCHW (pool of 50)."""
    arch, _ = build_configs("cyclegan", 3, 3, size, overrides={"ngf": width, "ndf": width})
    g_a, g_b = (build_generator(arch, d).to(device).train() for d in ("a2b", "b2a"))
    d_a, d_b = (build_discriminator(arch, 3).to(device).train() for _ in range(2))
    opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    criterion, l1 = gan_loss("lsgan"), nn.L1Loss()
    real_a = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    real_b = torch.rand(batch, 3, size, size, device=device) * 2 - 1

    def step() -> None:
        fake_b, fake_a = g_a(real_a), g_b(real_b)
        rec_a, rec_b = g_b(fake_b), g_a(fake_a)
        for net in (d_a, d_b):
            net.requires_grad_(False)
        opt_g.zero_grad()
        loss = (criterion(d_a(fake_b), True) + criterion(d_b(fake_a), True)
                + 10 * (l1(rec_a, real_a) + l1(rec_b, real_b))
                + 5 * (l1(g_a(real_b), real_b) + l1(g_b(real_a), real_a)))
        loss.backward()
        opt_g.step()
        for net in (d_a, d_b):
            net.requires_grad_(True)
        opt_d.zero_grad()
        for net, real, fake in ((d_a, real_b, fake_b), (d_b, real_a, fake_a)):
            ((criterion(net(real), True) + criterion(net(fake.detach()), False)) * 0.5).backward()
        opt_d.step()

    return step


def geogan_step(kind: str, device: torch.device, batch: int, precision: str,
                width: int = 64, size: int = 256, preset: str = "paper",
                compiled: bool = False) -> Callable[[], None]:
    """One step of :mod:`geogan.training.steps` on a fixed random batch, with the
    ``paper`` preset's maths (the reference's) unless another preset is named; with
    ``compiled``, every network goes through ``torch.compile`` first."""
    arch, config = build_configs(kind, 3, 3, size, preset=preset, overrides={
        "batch_size": batch, "ngf": width, "ndf": width})
    trainer = TRAINERS[kind](arch, config, device, precision)
    if compiled:
        for network in trainer.networks().values():
            network.compile()
    shape = (batch, 3, size, size)
    sample = {"a": torch.rand(shape) * 2 - 1, "b": torch.rand(shape) * 2 - 1,
              "mask_a": torch.ones(batch, 1, size, size),
              "mask_b": torch.ones(batch, 1, size, size)}
    data = trainer.to_device(sample)

    def step() -> None:
        trainer.train_step(data)

    return step


def _timed(step: Callable[[], None], device: torch.device) -> float:
    """Wall time of one step (waiting for the device on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def seconds_per_step(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Median wall time of ``steps`` steps after two warm-up steps."""
    for _ in range(2):
        _timed(step, device)
    return statistics.median(_timed(step, device) for _ in range(steps))


def precisions_for(device: torch.device) -> list[str]:
    """fp32, and bf16 where the device computes it natively (the default there)."""
    bf16 = (device.type == "cuda" and torch.cuda.is_bf16_supported()) or (
        device.type == "cpu" and cpu_has_native_bf16())
    return ["fp32", "bf16"] if bf16 else ["fp32"]


def measure(kind: str, device: torch.device, batch: int, steps: int,
            precisions: list[str], width: int = 64,
            size: int = 256) -> dict[str, tuple[float, int]]:
    """Variant (``reference``, ``geogan fp32``, ...) → (median seconds per step, peak
    device memory in bytes, 0 on a CPU); ``width`` (ngf and ndf) and ``size`` (the
    chips' side) shrink the paper networks for quick checks.

    Every variant is built and warmed up (two steps) first; then the timed steps take
    turns, one step of each variant per round. A shared machine's speed drifts over
    minutes (the same CPU step has measured 6 s and 13 s on different days), and timing
    the variants one after the other would put that drift into their ratios.
    """
    factory = reference_pix2pix_step if kind == "pix2pix" else reference_cyclegan_step
    makers: dict[str, Callable[[], Callable[[], None]]] = {
        "reference": lambda: factory(device, batch, width, size)}
    for precision in precisions:
        makers[f"geogan {precision}"] = (
            lambda p=precision: geogan_step(kind, device, batch, p, width, size))
    built, peaks = {}, {}
    for name, make in makers.items():
        gc.collect()
        before = 0
        if device.type == "cuda":
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(0)
        built[name] = make()
        for _ in range(2):
            _timed(built[name], device)
        # What this variant adds to what the ones built before it hold.
        peaks[name] = (torch.cuda.max_memory_allocated(device) - before
                       if device.type == "cuda" else 0)
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(steps):
        for name, step in built.items():
            times[name].append(_timed(step, device))
    return {name: (statistics.median(times[name]), peaks[name]) for name in built}


def compare(device: torch.device, steps: int, cases: list[tuple[str, int]]) -> None:
    print(f"\n== {device} ({torch.get_num_threads()} threads), paper networks at 256², "
          f"median of {steps} steps ==")
    print(f"{'model':9} {'batch':>5} {'variant':14} {'s/step':>8} {'img/s':>7} {'vs ref':>7}")
    for kind, batch in cases:
        rows = measure(kind, device, batch, steps, precisions_for(device))
        reference = rows["reference"][0]
        for name, (seconds, _) in rows.items():
            print(f"{kind:9} {batch:5d} {name:14} {seconds:8.3f} {batch / seconds:7.2f} "
                  f"{reference / seconds:6.2f}×")
        quoted = QUOTED_REFERENCE.get((kind, batch))
        if quoted and device.type == "cpu":
            print(f"{'':31}(reference code as quoted in issue 3: {quoted:.2f} s/step)")


HEAVIER_RECIPES = {"with dropout": {"dropout": 0.5},
                   "with discriminator": {"map_discriminator": True}, "ndf 32": {"ndf": 32}}
"""What the default recipe's step left out, each on its own: the paper's dropout
(``quality_real.py``'s ``faithful/dropout-0.5``; the default has none since stop 65, for
its scores: the step takes the same time within the host's drift), and
the discriminator at full and half width (``faithful/with-gan`` and ``faithful/ndf-32``;
none for a map target since stop 60, which halves a step in float32 on a CPU without
native bf16 and saves about a quarter in bf16). ``--lighter`` keeps its name from when
the default was the heavier step."""


def sample_chips(workdir: Path) -> Path:
    """Chips exported from the sample scene (a map target: the recipe's class head is on),
    made once per folder."""
    chips = workdir / "chips"
    if not chips.exists():
        scene = workdir / "scene"
        write_sample_pair(scene, "sat-map", size=768, seed=1)
        export_chips(scene / "sat.tif", scene / "map.tif", chips, ExportOptions(tile_size=256))
    return chips


def heavier_steps(device: str, steps: int, workdir: Path, rounds: int = 3) -> None:
    """The real loop's seconds per step for the default recipe and those of
    :data:`HEAVIER_RECIPES`, each a whole training of ``steps`` steps, in turns over
    ``rounds`` (median). Each round starts one recipe later: on the AMX host the second
    of two trainings in a row ran 6 % faster, whichever it was (stop 65)."""
    recipes = {DEFAULT_PRESET: {}, **HEAVIER_RECIPES}
    names = list(recipes)
    times: dict[str, list[float]] = {name: [] for name in recipes}
    for turn in range(rounds):
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            overrides = recipes[name]
            report = train(sample_chips(workdir), workdir / "lighter.pt", TrainOptions(
                overrides={"steps": steps, "val_every": 10_000, **overrides},
                device=device, overwrite=True, checkpoint_dir=workdir / "lighter-run"))
            times[name].append(report.seconds / report.steps)
    base = statistics.median(times[DEFAULT_PRESET])
    print(f"\ntraining loop, {DEFAULT_PRESET} against heavier steps on {report.device} "
          f"({report.precision}), {steps} steps a training, median of {rounds}:")
    for name, seconds in times.items():
        middle = statistics.median(seconds)
        runs = ", ".join(f"{t:.2f}" for t in seconds)
        print(f"  {name:18} {middle:6.2f} s/step ({runs}), {base / middle:.2f} × as fast")


def data_wait(device: str, steps: int, workdir: Path) -> None:
    """The real loop on exported sample chips, with the default recipe: share of time
    spent waiting for data."""
    chips = sample_chips(workdir)
    for workers in (0, 1):  # the default on a CPU, and one worker process
        report = train(chips, workdir / f"m{workers}.pt", TrainOptions(
            overrides={"steps": steps, "workers": workers, "val_every": 10_000},
            device=device, overwrite=True, checkpoint_dir=workdir / f"run{workers}"))
        print(f"training loop, {report.architecture.kind} {DEFAULT_PRESET} (the default) "
              f"b{report.config.batch_size} on {report.device} ({report.precision}), "
              f"{workers} worker(s): {report.seconds / report.steps:.3f} s/step, "
              f"{100 * report.data_wait_fraction:.1f} % of it waiting for data")


def parse_cases(text: str) -> list[tuple[str, int]]:
    """``pix2pix:1,cyclegan:16`` → [("pix2pix", 1), ("cyclegan", 16)]."""
    cases = []
    for item in text.split(","):
        kind, _, batch = item.strip().partition(":")
        if kind not in TRAINERS or not batch.isdigit():
            raise SystemExit(f"bad case {item!r}: write MODEL:BATCH, MODEL one of "
                             f"{', '.join(TRAINERS)}")
        cases.append((kind, int(batch)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--quick", action="store_true", help="Pix2Pix batch 1 only")
    parser.add_argument("--cases", default="pix2pix:1,pix2pix:4,cyclegan:1",
                        help="MODEL:BATCH,... to time (default: %(default)s)")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all",
                        help="all: the CPU, then CUDA when PyTorch sees a GPU")
    parser.add_argument("--no-loop", action="store_true",
                        help="skip the training loop on exported chips")
    parser.add_argument("--lighter", action="store_true",
                        help="only the loop's step of the default recipe (no dropout, no "
                             "discriminator for a map) against the recipe with dropout, and "
                             "with a discriminator (ndf 64 and 32)")
    args = parser.parse_args()
    cases = [("pix2pix", 1)] if args.quick else parse_cases(args.cases)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no CUDA GPU here")
    devices = [torch.device(name) for name in (
        [args.device] if args.device != "all" else
        ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])]
    if args.lighter:
        with tempfile.TemporaryDirectory() as tmp:
            for device in devices:
                heavier_steps(device.type, max(args.steps * 2, 6), Path(tmp))
        return
    for device in devices:
        compare(device, args.steps, cases)
    if args.no_loop:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            data_wait(device.type, max(args.steps * 6, 30), Path(tmp))


if __name__ == "__main__":
    main()
