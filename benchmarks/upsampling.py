"""The resize-convolution decoder, folded into a transposed convolution, against the
direct resize then 3 x 3 convolution, measured in the same run.

The ``faithful`` U-Net doubles its size in every decoder level with a nearest-neighbour
resize then a 3 x 3 convolution. :class:`geogan.nn.resize_conv.ResizeConv2d` computes the
pair as the equal 4 x 4 transposed convolution of stride 2. For the ``faithful``
generator at the demo's width (ngf 16, batch 1) and at the recipe's (ngf 64, batch 4),
channels-last as training runs it, this times a training pass (forward and backward)
and a translation pass (forward in eval mode, no gradients) both ways, alternating, and
prints the medians, their ratio and the largest difference of the outputs.

    python benchmarks/upsampling.py               # ~3 minutes on 2 CPU cores
    python benchmarks/upsampling.py --repeats 3 --widths 16:1
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from geogan.nn.config import Architecture
from geogan.nn.devices import cpu_has_native_bf16
from geogan.nn.networks import build_generator
from geogan.nn.resize_conv import direct_resize

PALETTE = tuple((i, i, i) for i in range(7))  # a class head of 7 classes, as on the maps


def generators(ngf: int) -> tuple[nn.Module, nn.Module]:
    """The faithful U-Net (folded), and a copy with each resize convolution as the pair."""
    arch = Architecture(kind="pix2pix", in_bands=3, out_bands=3, tile_size=256,
                        generator="unet", ngf=ngf, ndf=ngf, unet_levels=6,
                        upsample="resize", palette=PALETTE)
    folded = build_generator(arch)
    direct = direct_resize(folded)
    layout = torch.channels_last
    return folded.to(memory_format=layout), direct.to(memory_format=layout)


def autocast(precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training(net: nn.Module, x: torch.Tensor, precision: str) -> Callable[[], None]:
    """A training pass: forward in train mode, backward."""
    def run() -> None:
        net.train()
        with autocast(precision):
            loss = net(x).float().square().mean()
        loss.backward()
    return run


def translation(net: nn.Module, x: torch.Tensor, precision: str) -> Callable[[], None]:
    """A translation pass: forward in eval mode, no gradients."""
    def run() -> None:
        net.eval()
        with torch.no_grad(), autocast(precision):
            net(x)
    return run


def median_seconds(passes: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each pass, run alternately after one warm-up each."""
    for run in passes.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, run in passes.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="16:1,64:4",
                        help="ngf:batch pairs (the demo's and the recipe's)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    precisions = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; faithful U-Net "
          f"(6 levels, class head), 256², channels-last; precisions: {', '.join(precisions)}")
    print(f"{'ngf':>4} {'batch':>5} {'precision':>9} {'pass':>9} {'direct s':>9} "
          f"{'folded s':>9} {'direct / folded':>16} {'max |diff|':>11}")
    for pair in args.widths.split(","):
        ngf, batch = (int(v) for v in pair.split(":"))
        torch.manual_seed(0)
        folded, direct = generators(ngf)
        x = torch.rand(batch, 3, 256, 256).mul(2).sub(1).contiguous(
            memory_format=torch.channels_last)
        for precision in precisions:
            with torch.no_grad(), autocast(precision):
                diff = (folded.eval()(x).float() - direct.eval()(x).float()).abs().max().item()
            for name, make in (("training", training), ("translate", translation)):
                seconds = median_seconds({"direct": make(direct, x, precision),
                                          "folded": make(folded, x, precision)}, args.repeats)
                print(f"{ngf:>4} {batch:>5} {precision:>9} {name:>9} {seconds['direct']:>9.3f} "
                      f"{seconds['folded']:>9.3f} {seconds['direct'] / seconds['folded']:>16.2f} "
                      f"{diff:>11.2e}")


if __name__ == "__main__":
    main()
