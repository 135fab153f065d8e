"""The resize convolution of the ``faithful`` U-Net's decoder, computed as the equal
transposed convolution.

A nearest-neighbour resize to twice the size followed by a 3 x 3 convolution avoids the
checkerboard texture of the paper's transposed convolution (Odena et al. 2016), but
convolves an image four times the size. The pair is itself a transposed convolution with
a folded kernel, which costs 16 multiply-adds per input pixel and channel pair instead of
36: this module runs that, keeping the 3 x 3 parameters. For translation,
:func:`fold_resize_convolutions` keeps the folded kernel alone.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ResizeConv2d(nn.Conv2d):
    """A nearest-neighbour resize to twice the size, then this 3 x 3 convolution (padding 1).

    Each output pixel of the pair sees a 2 x 2 neighbourhood of input pixels, with weights
    that are sums of the 3 x 3 kernel's: the pair is exactly a 4 x 4 transposed
    convolution of stride 2 whose kernel is the 3 x 3 one folded (convolved with a 2 x 2
    box). That is what runs: 16 multiply-adds per input pixel and channel pair instead of
    the 36 of convolving the resized image, and no resized image in memory (forward and
    backward 1.4–4 times as fast per layer on a CPU; ``benchmarks/upsampling.py``). The
    parameters are the 3 x 3 kernel's, so training, model files and results are those
    of the pair, up to rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 padding: int = 1, bias: bool = True) -> None:
        if kernel_size != 3 or padding != 1:
            raise ValueError("a resize convolution is 3 x 3 with padding 1")
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._folded: tuple[tuple[object, ...], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, 2 H, 2 W)."""
        return F.conv_transpose2d(x, self._kernel(), self.bias, stride=2, padding=1)

    def _kernel(self) -> Tensor:
        """The folded kernel. Without gradients (translation) it is folded once per
        version of the weights, not for every batch: folding every level took 140 ms
        at the recipe's widths (ngf 64) and 8 ms at the demo's, a batch's forward a few
        tenths of a second. A weight changed in place (an optimiser step, a loaded state)
        has a new version; one moved or cast has new storage. With gradients on it is
        folded anew, frozen weights too: a kernel kept from an inference-mode pass cannot
        be saved for a backward pass.

        The kept kernel is laid out as the weights are (channels-last or not): the
        layout the convolution asks of it, which would otherwise copy it on every call
        (about 70 MB at ngf 64, and two fifths of a one-window forward's time on a
        CPU)."""
        weight = self.weight
        if torch.is_grad_enabled():
            return folded_resize_kernel(weight)
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.device)
        if self._folded is None or self._folded[0] != key:
            layout = (torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last)
                      else torch.contiguous_format)
            kernel = folded_resize_kernel(weight.detach()).contiguous(memory_format=layout)
            self._folded = (key, kernel)
        return self._folded[1]


class FoldedResizeConv2d(nn.Module):
    """A :class:`ResizeConv2d` frozen for translation: its folded kernel and bias alone.

    The 3 x 3 weights a resize convolution keeps are read only to fold them again after
    a change, which never comes at translation; without them the ``faithful`` U-Net
    holds 39 MB less (of 81 MB of parameters, beside 69 MB of folded kernels). The
    forward pass is the layer's own with its kept kernel: the same bits.
    """

    kernel: Tensor

    def __init__(self, layer: ResizeConv2d) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        with torch.no_grad():
            kernel = layer._kernel()  # the kernel the layer itself keeps
        self.register_buffer("kernel", kernel)
        self.bias = layer.bias

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, 2 H, 2 W), as :meth:`ResizeConv2d.forward`."""
        return F.conv_transpose2d(x, self.kernel, self.bias, stride=2, padding=1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, folded"


def fold_resize_convolutions(module: nn.Module) -> int:
    """Replace every :class:`ResizeConv2d` within ``module`` by its
    :class:`FoldedResizeConv2d`, in place, for translation only (the module can no
    longer be trained or give the 3 x 3 weights in its state dict). Fold after the
    module is on its device, in its memory format. Returns the number of layers
    folded."""
    folded = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ResizeConv2d):
                setattr(parent, name, FoldedResizeConv2d(child))
                folded += 1
    return folded


def direct_resize(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose resize convolutions are computed the direct way again,
    a resize then a 3 x 3 convolution with the same weights, in the layers' places before
    :class:`ResizeConv2d` (the identity before each): the reference that checks and
    benchmarks compare with."""
    direct = copy.deepcopy(module)
    for block in direct.modules():
        if not isinstance(block, nn.Sequential):
            continue
        for i, layer in enumerate(block):
            if isinstance(layer, ResizeConv2d) and i > 0 and isinstance(block[i - 1], nn.Identity):
                conv = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1,
                                 bias=layer.bias is not None)
                conv.to(device=layer.weight.device, dtype=layer.weight.dtype)
                conv.load_state_dict(layer.state_dict())
                block[i - 1], block[i] = nn.Upsample(scale_factor=2, mode="nearest"), conv
    return direct


def folded_resize_kernel(weight: Tensor) -> Tensor:
    """The transposed-convolution kernel (C_in, C_out, 4, 4) equal to a nearest x 2 resize
    followed by the 3 x 3 convolution ``weight`` (C_out, C_in, 3, 3) with padding 1.

    Along each axis, output pixel 2i takes input i - 1 with w[0] and input i with
    w[1] + w[2]; pixel 2i + 1 takes input i with w[0] + w[1] and input i + 1 with w[2].
    A transposed convolution of stride 2 and padding 1 gives those taps when its kernel
    is (w[2], w[1] + w[2], w[0] + w[1], w[0]): the kernel convolved with (1, 1), reversed.
    The axes are swapped on the small 3 x 3 kernel, first, so that the folded one comes
    out contiguous, as the convolution takes it, instead of being copied by every call.
    """
    swapped = weight.transpose(0, 1)  # (C_in, C_out, 3, 3)
    rows = F.pad(swapped, (0, 0, 1, 0)) + F.pad(swapped, (0, 0, 0, 1))  # (C_in, C_out, 4, 3)
    box = F.pad(rows, (1, 0)) + F.pad(rows, (0, 1))  # (C_in, C_out, 4, 4)
    return box.flip(2, 3)
