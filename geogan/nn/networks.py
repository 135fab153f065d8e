"""The networks of Pix2Pix and CycleGAN: U-Net and ResNet generators, PatchGAN discriminator.

The structures, layer for layer and parameter for parameter, are those of the reference
implementation (``networks.py`` of junyanz/pytorch-CycleGAN-and-pix2pix), so that a model
trained here has the capacity the papers describe:

* :class:`UNetGenerator` (Pix2Pix, Isola et al. 2017): ``depth`` stride-2 down-sampling
  levels with skip connections by channel concatenation; ``depth = log2(tile_size)`` so
  the bottleneck is 1 x 1 (8 levels at 256 px). 54,414,979 parameters for 3 -> 3 bands.
* :class:`ResnetGenerator` (CycleGAN, Zhu et al. 2017): two down-samplings, residual
  blocks, two up-samplings. 11,378,179 parameters for 3 -> 3 bands and 9 blocks.
* :class:`PatchDiscriminator`: the reference ``NLayerDiscriminator``; with 3 layers each
  output logit sees a 70 x 70 patch, and a 256 px input gives 30 x 30 logits.

The U-Net is written as an encoder and a decoder walked by a loop instead of the
reference's nested blocks: the same layers, easier to read, and its parameter names do
not grow with the depth.

Networks are built by name through the registries :data:`GENERATORS` and
:data:`DISCRIMINATORS` from an :class:`~geogan.nn.config.Architecture`. They see tensors
only, never files. This module is the only one that knows the layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from geogan.errors import ConfigError
from geogan.nn.config import Architecture
from geogan.nn.resize_conv import ResizeConv2d

NormFactory = Callable[[int], nn.Module]
"""Makes a normalisation layer for a number of channels."""


def _batch_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)


def _instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


NORM_LAYERS: dict[str, NormFactory] = {
    "batch": _batch_norm,
    "instance": _instance_norm,
}
"""Normalisation layers by name, as the reference builds them."""


def norm_layer(name: str) -> NormFactory:
    """The factory of the normalisation layer called ``name``.

    Args:
        name: ``batch`` (BatchNorm with a learned scale and shift and running
            statistics; Pix2Pix) or ``instance`` (InstanceNorm without either; CycleGAN).

    Returns:
        A callable that takes a number of channels and returns a new layer.

    Raises:
        ConfigError: For an unknown name.
    """
    try:
        return NORM_LAYERS[name]
    except KeyError:
        raise ConfigError(f"unknown norm {name!r}; use one of {', '.join(NORM_LAYERS)}") from None


def _conv_bias(norm: str) -> bool:
    """Whether a convolution followed by ``norm`` gets a bias.

    The reference gives one only before instance norm: BatchNorm's learned shift makes a
    bias redundant. (Instance norm's mean subtraction cancels it too, but the reference
    keeps it, and so do we, to match its parameter count.)
    """
    return norm == "instance"


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialise weights in place as the reference's ``normal`` init does.

    Convolution, transposed convolution and linear weights are drawn from N(0, std)
    and their biases set to 0; BatchNorm scales are drawn from N(1, std) and shifts set
    to 0. Other layers (instance norm without parameters) are left alone. The draws use
    torch's global generator: seed it first for reproducible weights.

    Args:
        module: The network, changed in place.
        std: Standard deviation of the draws (0.02 in both papers).
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, _WEIGHTED_LAYERS):
                nn.init.normal_(layer.weight, 0.0, std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.BatchNorm2d):
                if layer.weight is not None:
                    nn.init.normal_(layer.weight, 1.0, std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)


_WEIGHTED_LAYERS = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d,
    nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear,
)

_DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def set_dropout(module: nn.Module, enabled: bool) -> None:
    """Switch every dropout layer of ``module`` on (train mode) or off (eval mode).

    Nothing else changes mode, so BatchNorm can be recalibrated in train mode with
    dropout off, or a generator run in eval mode with dropout on (as Pix2Pix does at
    test time).
    """
    for layer in module.modules():
        if isinstance(layer, _DROPOUT_LAYERS):
            layer.train(enabled)


def has_dropout(module: nn.Module) -> bool:
    """Whether ``module`` has a dropout layer that drops anything (``p > 0``)."""
    return any(isinstance(m, _DROPOUT_LAYERS) and m.p > 0 for m in module.modules())


def _check_input(x: Tensor, channels: int, multiple: int, network: str) -> None:
    """Raise ValueError unless ``x`` is (N, channels, H, W) with H and W multiples."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"the {network} expects a batch of shape (N, {channels}, H, W), "
            f"not {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"the {network} needs tiles whose sides are multiples of {multiple}, "
            f"not {height} x {width}")


class UNetGenerator(nn.Module):
    """The Pix2Pix U-Net: ``depth`` stride-2 levels with concatenated skip connections.

    Level ``k`` (0 outermost) halves the size and goes from ``c[k]`` to ``c[k+1]``
    channels with ``c = in, ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...``; its decoder doubles the
    size and goes from ``2 c[k+1]`` channels (skip and decoded, concatenated) back to
    ``c[k]`` (to ``out_channels`` at level 0). The encoder is LeakyReLU(0.2), conv 4x4
    stride 2, norm, with no activation before the first conv and no norm at the
    innermost level; the decoder is ReLU, transposed conv 4x4 stride 2, norm, dropout
    in the three levels just outside the innermost, and Tanh at the outermost level.

    Args:
        in_channels: Input bands.
        out_channels: Output bands; the output lies in (-1, 1).
        depth: Down-sampling levels, at least 5; ``log2(tile_size)`` makes the
            bottleneck 1 x 1. Inputs must have sides that are multiples of
            ``2**depth``.
        ngf: Filters of the first level (64 in the paper).
        norm: ``batch`` or ``instance``.
        dropout: Dropout probability of the three innermost decoder levels (0.5 in
            the paper); 0 leaves the dropout layers out.
        upsample: ``transpose`` (the paper) or ``resize`` (nearest resize + 3 x 3 conv).
        classes: Class logits the last layer adds after the image bands (0: none, the
            paper); the image bands alone go through Tanh.
        input_skip: Channels of a full-resolution path from the input to the output (0:
            none, the paper): a 3 x 3 convolution of the input itself and a 3 x 3
            convolution of that to the output bands and logits, added to what the
            decoder draws. The paper's U-Net sees the input only through its stride-2
            first level, so its output's edges are decoded from a half-resolution grid;
            this path lets them follow the input pixel by pixel.
        decoder_blocks: Inner decoder levels, from level 1, ending in a :class:`ResnetBlock`.

    Raises:
        ValueError: For a depth below 5, or decoder blocks outside 0 to depth - 1.
        ConfigError: For an unknown norm.
    """

    MIN_DEPTH = 5
    DROPOUT_LEVELS = 3

    def __init__(self, in_channels: int, out_channels: int, depth: int, ngf: int = 64,
                 norm: str = "batch", dropout: float = 0.5, upsample: str = "transpose",
                 classes: int = 0, input_skip: int = 0, decoder_blocks: int = 0) -> None:
        super().__init__()
        if upsample not in ("transpose", "resize"):
            raise ConfigError(f"unknown upsampling {upsample!r}; use transpose or resize")
        if depth < self.MIN_DEPTH or not 0 <= decoder_blocks < depth:
            raise ValueError(f"the U-Net needs a depth of at least {self.MIN_DEPTH} and 0 to "
                             f"depth - 1 decoder blocks, not depth {depth} with {decoder_blocks}")
        make_norm = norm_layer(norm)
        bias = _conv_bias(norm)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.classes = classes
        self.depth = depth
        c = [in_channels] + [ngf * min(2**k, 8) for k in range(depth)]
        self.channels = tuple(c)  # c[k]: encoder level k's input, decoder level k's output
        innermost = depth - 1
        with_dropout = range(max(1, innermost - self.DROPOUT_LEVELS), innermost)

        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        for k in range(depth):
            down: list[nn.Module] = [] if k == 0 else [nn.LeakyReLU(0.2)]
            down.append(nn.Conv2d(c[k], c[k + 1], 4, stride=2, padding=1, bias=bias))
            if 0 < k < innermost:
                down.append(make_norm(c[k + 1]))
            encoder.append(nn.Sequential(*down))

            up_in = c[k + 1] if k == innermost else 2 * c[k + 1]
            if k == 0:
                up: list[nn.Module] = [
                    nn.ReLU(inplace=True),
                    *_upsampling(upsample, up_in, out_channels + classes, bias=True),
                ]
                if not classes and not input_skip:  # else Tanh in forward, after the sum
                    up.append(nn.Tanh())
            else:
                up = [
                    nn.ReLU(inplace=True),
                    *_upsampling(upsample, up_in, c[k], bias=bias),
                    make_norm(c[k]),
                ]
                if dropout > 0 and k in with_dropout:
                    up.append(nn.Dropout(dropout))
                up += [ResnetBlock(c[k], norm)] if k <= decoder_blocks else []
            decoder.append(nn.Sequential(*up))
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)
        # Registered last, so that the paper's layers keep their names and weight draws.
        self.input_skip: nn.Module | None = None
        if input_skip:
            self.input_skip = nn.Sequential(
                nn.Conv2d(in_channels, input_skip, 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(input_skip, out_channels + classes, 3, padding=1),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Translate a batch (N, in_channels, S, S) to (N, out_channels, S, S) in (-1, 1).

        Raises:
            ValueError: If the shape does not fit (sides not multiples of 2**depth).
        """
        _check_input(x, self.in_channels, 2**self.depth, f"U-Net of depth {self.depth}")
        skips: list[Tensor] = []
        h = x
        for down in self.encoder:
            h = down(h)  # (N, c[k+1], S / 2**(k+1), S / 2**(k+1))
            skips.append(h)
        h = self.decoder[-1](skips.pop())  # (N, 8ngf, 2 S / 2**depth, 2 S / 2**depth)
        for k in reversed(range(self.depth - 1)):
            # Skips and decoded levels let go once joined (autograd keeps what it needs).
            h = torch.cat([skips.pop(), h], dim=1)
            h = self.decoder[k](h)  # (N, c[k], S / 2**k, S / 2**k)
        if self.input_skip is not None:
            h += self.input_skip(x)  # the decoder's own output: nothing else holds it
        if self.classes or self.input_skip is not None:
            # Image bands through tanh, class logits as they are. The slice is made dense
            # first, in the layout it has: tanh of a strided channels-last slice takes 9
            # times as long (2.1 ms against 0.24 at 256², bf16), for the same values.
            layout = (torch.channels_last if h.is_contiguous(memory_format=torch.channels_last)
                      and not h.is_contiguous() else torch.contiguous_format)
            image = torch.tanh(h[:, :self.out_channels].contiguous(memory_format=layout))
            h = torch.cat([image, h[:, self.out_channels:]], 1)
        out: Tensor = h  # (N, out_channels [+ classes], S, S)
        return out


def _upsampling(mode: str, in_channels: int, out_channels: int, bias: bool) -> list[nn.Module]:
    """Layers that double the size: the paper's 4 x 4 transposed convolution, or a
    nearest-neighbour resize and a 3 x 3 convolution (Odena et al. 2016: every output
    pixel gets the same number of contributions, so no checkerboard)."""
    if mode == "resize":
        # The identity holds the place the resize layer had before ResizeConv2d took it
        # in: the parameter names, and so the model files, stay as they were.
        return [nn.Identity(), ResizeConv2d(in_channels, out_channels, 3, padding=1, bias=bias)]
    return [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)]


class ResnetBlock(nn.Module):
    """A residual block of two reflect-padded 3 x 3 convolutions, as in the reference.

    ``x + (pad, conv, norm, ReLU, [dropout], pad, conv, norm)(x)``.
    """

    def __init__(self, channels: int, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            make_norm(channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            make_norm(channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        out: Tensor = x + self.block(x)
        return out


class ResnetGenerator(nn.Module):
    """The CycleGAN generator: two down-samplings, residual blocks, two up-samplings.

    Reflection pad 3, conv 7x7 to ``ngf``, norm, ReLU; two stride-2 3x3 convs to
    ``2ngf`` and ``4ngf``, each with norm and ReLU; ``n_blocks`` :class:`ResnetBlock`;
    two stride-2 3x3 transposed convs back to ``ngf``, each with norm and ReLU;
    reflection pad 3, conv 7x7 to ``out_channels``, Tanh.

    Args:
        in_channels: Input bands.
        out_channels: Output bands; the output lies in (-1, 1).
        ngf: Filters of the first layer (64 in the paper).
        norm: ``instance`` (the paper) or ``batch``.
        n_blocks: Residual blocks (9 at 256 px in the paper).
        dropout: Dropout probability inside each residual block (0 in the paper).

    Raises:
        ConfigError: For an unknown norm.
    """

    DOWNSAMPLINGS = 2

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64,
                 norm: str = "instance", n_blocks: int = 9, dropout: float = 0.0) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _conv_bias(norm)
        self.in_channels = in_channels
        self.out_channels = out_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            make_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for i in range(self.DOWNSAMPLINGS):
            c = ngf * 2**i
            layers += [
                nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias),
                make_norm(2 * c),
                nn.ReLU(inplace=True),
            ]
        width = ngf * 2**self.DOWNSAMPLINGS
        layers += [ResnetBlock(width, norm, dropout) for _ in range(n_blocks)]
        for i in range(self.DOWNSAMPLINGS, 0, -1):
            c = ngf * 2**i
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1,
                                   bias=bias),
                make_norm(c // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, 7),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Translate a batch (N, in_channels, H, W) to (N, out_channels, H, W) in (-1, 1).

        Raises:
            ValueError: If the shape does not fit (sides not multiples of 4).
        """
        _check_input(x, self.in_channels, 2**self.DOWNSAMPLINGS, "ResNet generator")
        out: Tensor = self.model(x)  # (N, out_channels, H, W)
        return out


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator (the reference ``NLayerDiscriminator``).

    4 x 4 convolutions with padding 1: one stride-2 conv to ``ndf`` with LeakyReLU(0.2)
    and no norm; ``n_layers - 1`` stride-2 convs to ``ndf * min(2**n, 8)`` with norm and
    LeakyReLU; one stride-1 conv to ``ndf * min(2**n_layers, 8)`` with norm and
    LeakyReLU; a stride-1 conv to one channel of raw logits (no sigmoid: the losses
    take logits). With 3 layers each logit sees a 70 x 70 patch; a 256 px input gives
    30 x 30 logits.

    Args:
        in_channels: Input bands (input and output bands concatenated for Pix2Pix).
        ndf: Filters of the first layer (64 in the papers).
        n_layers: Stride-2 layers.
        norm: ``batch`` or ``instance``.

    Raises:
        ConfigError: For an unknown norm.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3,
                 norm: str = "batch") -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _conv_bias(norm)
        self.in_channels = in_channels
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        c = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            c_next = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(c, c_next, 4, stride=stride, padding=1, bias=bias),
                make_norm(c_next),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, 1, h, w) that each patch of a batch (N, in_channels, H, W) is real."""
        _check_input(x, self.in_channels, 1, "discriminator")
        out: Tensor = self.model(x)  # (N, 1, h, w): 30 x 30 for 256 x 256 and 3 layers
        return out

    def features(self, x: Tensor) -> list[Tensor]:
        """The activation after each LeakyReLU, then the logits (the last item): what
        pix2pixHD's feature-matching loss compares between real and generated pairs."""
        _check_input(x, self.in_channels, 1, "discriminator")
        out: list[Tensor] = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        out.append(x)
        return out


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's discriminator (Wang et al. 2018): one PatchGAN per scale, the second
    seeing the pair at half the resolution, the third at a quarter, so that the coarse
    ones judge layout over a wider area with the same network.

    Args:
        scales: PatchGANs, 2 or more.
        in_channels, ndf, n_layers, norm: As for :class:`PatchDiscriminator`.
    """

    def __init__(self, scales: int, in_channels: int, ndf: int = 64, n_layers: int = 3,
                 norm: str = "batch") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers, norm) for _ in range(scales))

    @staticmethod
    def _halve(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Logits of each scale, finest first."""
        return [scale[-1] for scale in self.features(x)]

    def features(self, x: Tensor) -> list[list[Tensor]]:
        """:meth:`PatchDiscriminator.features` of each scale, finest first."""
        out = []
        for index, network in enumerate(self.scales):
            if index:
                x = self._halve(x)
            assert isinstance(network, PatchDiscriminator)
            out.append(network.features(x))
        return out


GeneratorBuilder = Callable[[Architecture, int, int], nn.Module]
DiscriminatorBuilder = Callable[[Architecture, int], nn.Module]


def _unet(arch: Architecture, in_channels: int, out_channels: int) -> nn.Module:
    # The class head predicts the target domain's palette: only where B is the output.
    classes = arch.classes if out_channels == arch.out_bands and arch.kind == "pix2pix" else 0
    return UNetGenerator(in_channels, out_channels, arch.unet_depth, ngf=arch.ngf,
                         norm=arch.norm, dropout=arch.dropout, upsample=arch.upsample,
                         classes=classes, input_skip=arch.input_skip,
                         decoder_blocks=arch.decoder_blocks)


def _resnet(arch: Architecture, in_channels: int, out_channels: int) -> nn.Module:
    return ResnetGenerator(in_channels, out_channels, ngf=arch.ngf, norm=arch.norm,
                           n_blocks=arch.resnet_blocks, dropout=arch.dropout)


def _patch(arch: Architecture, in_channels: int) -> nn.Module:
    if arch.d_scales > 1:
        return MultiScaleDiscriminator(arch.d_scales, in_channels, ndf=arch.ndf,
                                       n_layers=arch.n_layers, norm=arch.norm)
    return PatchDiscriminator(in_channels, ndf=arch.ndf, n_layers=arch.n_layers,
                              norm=arch.norm)


GENERATORS: dict[str, GeneratorBuilder] = {
    "unet": _unet,
    "resnet": _resnet,
}
"""Generator builders by name: (architecture, in channels, out channels) -> network."""

DISCRIMINATORS: dict[str, DiscriminatorBuilder] = {
    "patch": _patch,
}
"""Discriminator builders by name: (architecture, in channels) -> network."""


def build_generator(arch: Architecture, direction: str = "a2b") -> nn.Module:
    """The initialised generator ``arch.generator`` for one direction of a model.

    Args:
        arch: Architecture of the model.
        direction: ``a2b`` (domain A to B), or ``b2a`` for CycleGAN's second generator;
            it sets which bands go in and which come out.

    Returns:
        The network, weights drawn as by :func:`init_weights`, in train mode.

    Raises:
        ConfigError: For an unknown generator name or a direction the model lacks.
    """
    if direction not in arch.directions:
        raise ConfigError(
            f"a {arch.kind} model has no {direction!r} generator; "
            f"use one of {', '.join(arch.directions)}")
    try:
        builder = GENERATORS[arch.generator]
    except KeyError:
        raise ConfigError(f"unknown generator {arch.generator!r}; "
                          f"use one of {', '.join(GENERATORS)}") from None
    in_channels, out_channels = arch.bands(direction)
    network = builder(arch, in_channels, out_channels)
    init_weights(network)
    return network


def build_discriminator(arch: Architecture, in_channels: int, name: str = "patch") -> nn.Module:
    """The initialised discriminator ``name`` with ``arch.ndf``, ``n_layers`` and ``norm``.

    Args:
        arch: Architecture of the model.
        in_channels: Bands the discriminator sees: input plus output bands for Pix2Pix
            (it judges pairs), the bands of one domain for CycleGAN.
        name: Registry name in :data:`DISCRIMINATORS`.

    Returns:
        The network, weights drawn as by :func:`init_weights`, in train mode.

    Raises:
        ConfigError: For an unknown discriminator name.
    """
    try:
        builder = DISCRIMINATORS[name]
    except KeyError:
        raise ConfigError(f"unknown discriminator {name!r}; "
                          f"use one of {', '.join(DISCRIMINATORS)}") from None
    network = builder(arch, in_channels)
    init_weights(network)
    if arch.spectral_norm:
        with_spectral_norm(network)
    return network


def with_spectral_norm(module: nn.Module) -> nn.Module:
    """Constrain every convolution of ``module`` (in place) to a spectral norm of 1
    (Miyato et al. 2018), which bounds how sharply a discriminator can separate real from
    generated pairs; applied after :func:`init_weights`, which draws the raw weights."""
    for layer in list(module.modules()):
        if isinstance(layer, nn.Conv2d):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "NORM_LAYERS",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UNetGenerator",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "has_dropout",
    "init_weights",
    "norm_layer",
    "set_dropout",
    "with_spectral_norm",
]


def channels_last(module: nn.Module) -> nn.Module:
    """``module`` with its 4-D parameters in channels-last layout (faster convolutions on
    CPUs with oneDNN and on tensor-core GPUs; the arithmetic is unchanged)."""
    result: nn.Module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return result
