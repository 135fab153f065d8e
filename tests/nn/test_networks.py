"""The networks: shapes, the reference's parameter counts, init, dropout, precision."""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from geogan.errors import ConfigError
from geogan.inference.translator import Translator
from geogan.nn.config import Architecture
from geogan.nn.networks import (
    DISCRIMINATORS,
    GENERATORS,
    PatchDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    init_weights,
    norm_layer,
    set_dropout,
)
from geogan.nn.resize_conv import (
    FoldedResizeConv2d,
    ResizeConv2d,
    direct_resize,
    fold_resize_convolutions,
    folded_resize_kernel,
)
from tests.helpers import MAP_PALETTE, make_model

BAND_PAIRS = [(1, 3), (2, 4), (4, 3), (3, 3)]


def tiny(kind: str = "pix2pix", in_bands: int = 3, out_bands: int = 3, tile_size: int = 64,
         **overrides: Any) -> Architecture:
    """A narrow architecture of the kind's paper settings."""
    paper: dict[str, Any] = (
        {"generator": "unet", "norm": "batch", "dropout": 0.5} if kind == "pix2pix"
        else {"generator": "resnet", "norm": "instance", "dropout": 0.0, "resnet_blocks": 2})
    values = {**paper, "ngf": 4, "ndf": 4, **overrides}
    return Architecture(kind=kind, in_bands=in_bands, out_bands=out_bands, tile_size=tile_size,
                        **values)


def dropouts(module: nn.Module) -> list[nn.Dropout]:
    return [m for m in module.modules() if isinstance(m, nn.Dropout)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize(("in_bands", "out_bands"), BAND_PAIRS)
@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_generator_and_discriminator_shapes(kind: str, in_bands: int, out_bands: int,
                                            size: int) -> None:
    arch = tiny(kind, in_bands, out_bands, size)
    x = torch.randn(2, in_bands, size, size)
    with torch.no_grad():
        fake = build_generator(arch)(x)
        assert fake.shape == (2, out_bands, size, size)
        d_in = in_bands + out_bands if kind == "pix2pix" else out_bands
        d_input = torch.cat([x, fake], 1) if kind == "pix2pix" else fake
        logits = build_discriminator(arch, d_in)(d_input)
    # Three stride-2 4x4 convs, then two stride-1 4x4 convs with padding 1: S / 8 - 2.
    assert logits.shape == (2, 1, size // 8 - 2, size // 8 - 2)
    if kind == "cyclegan":
        back = build_generator(arch, "b2a")
        assert back(fake).shape == (2, in_bands, size, size)


def test_discriminator_of_256_px_gives_30_x_30() -> None:
    with torch.no_grad():
        assert PatchDiscriminator(6, ndf=4)(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize(("size", "depth"), [(64, 6), (128, 7), (256, 8), (512, 9), (1024, 10)])
def test_unet_depth_is_log2_tile_size_with_1x1_bottleneck(size: int, depth: int) -> None:
    arch = tiny(tile_size=size, ngf=2)
    net = build_generator(arch)
    assert isinstance(net, UNetGenerator) and net.depth == depth == arch.unet_depth
    bottleneck: list[tuple[int, ...]] = []
    net.encoder[-1].register_forward_hook(lambda m, i, o: bottleneck.append(tuple(o.shape)))
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 3, size, size))
    assert bottleneck == [(1, 16, 1, 1)]  # 8 ngf channels, 1 x 1
    assert out.shape == (1, 3, size, size)


def test_paper_size_unet_runs_at_64_px() -> None:
    net = build_generator(Architecture(kind="pix2pix", in_bands=3, out_bands=3, tile_size=64))
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_unet_holds_no_encoder_output_once_the_outermost_level_decodes() -> None:
    """Each skip is let go as soon as it is joined: translation's memory at wide scenes."""
    net = UNetGenerator(3, 3, 5, ngf=4).eval()
    encoded: list[weakref.ref[Tensor]] = []
    alive: list[list[bool]] = []
    for level in net.encoder:
        level.register_forward_hook(lambda _m, _i, out: encoded.append(weakref.ref(out)))
    net.decoder[0].register_forward_pre_hook(
        lambda _m, _i: alive.append([ref() is not None for ref in encoded]))
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64)
    assert alive == [[False] * 5]


# --- parameter counts -----------------------------------------------------------------

@pytest.mark.parametrize(("make", "expected"), [
    # The reference prints 54.414 M (G of pix2pix), 11.378 M (G of CycleGAN),
    # 2.769 M (D of pix2pix) and 2.765 M (D of CycleGAN).
    (lambda: UNetGenerator(3, 3, 8, ngf=64, norm="batch"), 54_413_955),
    (lambda: ResnetGenerator(3, 3, ngf=64, norm="instance", n_blocks=9), 11_378_179),
    (lambda: PatchDiscriminator(6, ndf=64, n_layers=3, norm="batch"), 2_768_705),
    (lambda: PatchDiscriminator(3, ndf=64, n_layers=3, norm="instance"), 2_764_737),
])
def test_paper_networks_have_the_reference_parameter_counts(make: Any, expected: int) -> None:
    with torch.device("meta"):  # no memory, no initialisation
        assert count_parameters(make()) == expected


def test_unet_parameter_count_by_hand_at_depth_6() -> None:
    # Encoder convs (no bias with batch norm) + norms, decoder transposed convs + norms.
    ngf, c = 8, [3, 8, 16, 32, 64, 64, 64]
    encoder = sum(c[k] * c[k + 1] * 16 for k in range(6)) + 2 * sum(c[2:6])
    decoder = (c[6] * c[5] * 16 + 2 * c[5]  # innermost
               + sum(2 * c[k + 1] * c[k] * 16 + 2 * c[k] for k in range(1, 5))
               + 2 * ngf * 3 * 16 + 3)  # outermost, with bias
    assert count_parameters(UNetGenerator(3, 3, 6, ngf=ngf)) == encoder + decoder


def test_instance_norm_has_conv_bias_and_no_affine() -> None:
    net = PatchDiscriminator(3, ndf=4, norm="instance")
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine and not m.track_running_stats for m in norms)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is not None for m in convs)
    batch = PatchDiscriminator(3, ndf=4, norm="batch")
    # Only the first and last conv (no norm after them) keep a bias before batch norm.
    assert [m.bias is not None for m in batch.modules() if isinstance(m, nn.Conv2d)] == [
        True, False, False, False, True]


# --- output range and initialisation --------------------------------------------------

@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_generator_output_lies_in_tanh_range(kind: str) -> None:
    net = build_generator(tiny(kind))
    with torch.no_grad():
        out = net(100 * torch.randn(2, 3, 64, 64))
    assert out.abs().max() <= 1.0


def test_init_weights_draws_normal_weights_and_zero_biases() -> None:
    net = build_generator(tiny(ngf=16))
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.numel() > 500_000
    assert abs(weights.std().item() - 0.02) < 0.0005
    assert abs(weights.mean().item()) < 0.0005
    assert all(m.bias is None or not m.bias.any() for m in convs)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in norms])
    assert abs(scales.mean().item() - 1.0) < 0.01 and 0.01 < scales.std().item() < 0.03
    assert not torch.cat([m.bias for m in norms]).any()


def test_init_weights_std_and_linear_layers() -> None:
    net = nn.Sequential(nn.Linear(200, 300), nn.Conv2d(3, 3, 3))
    init_weights(net, std=0.5)
    assert abs(net[0].weight.std().item() - 0.5) < 0.02
    assert not net[0].bias.any() and not net[1].bias.any()


# --- dropout --------------------------------------------------------------------------

def test_unet_has_three_dropouts_in_the_innermost_decoder_blocks() -> None:
    net = build_generator(tiny(tile_size=256))
    assert isinstance(net, UNetGenerator) and net.depth == 8
    assert len(dropouts(net)) == 3
    with_dropout = [k for k, block in enumerate(net.decoder) if dropouts(block)]
    assert with_dropout == [4, 5, 6]  # the reference's three 8ngf middle blocks
    assert all(d.p == 0.5 for d in dropouts(net))
    for k in with_dropout:  # after the norm, at the end of the decoder block
        assert isinstance(net.decoder[k][-1], nn.Dropout)
        assert isinstance(net.decoder[k][-2], nn.BatchNorm2d)


@pytest.mark.parametrize(("depth", "levels"), [(6, [2, 3, 4]), (10, [6, 7, 8])])
def test_unet_dropout_is_always_in_three_levels_next_to_the_innermost(
        depth: int, levels: list[int]) -> None:
    with torch.device("meta"):
        net = UNetGenerator(1, 1, depth, ngf=2, dropout=0.3)
    assert [k for k, block in enumerate(net.decoder) if dropouts(block)] == levels
    assert all(d.p == 0.3 for d in dropouts(net))


def test_no_dropout_modules_when_dropout_is_zero() -> None:
    assert not dropouts(build_generator(tiny(dropout=0.0)))
    assert not dropouts(build_generator(tiny("cyclegan")))
    assert len(dropouts(build_generator(tiny("cyclegan", dropout=0.5)))) == 2  # one per block


def test_set_dropout_switches_only_dropout() -> None:
    net = build_generator(tiny()).eval()
    set_dropout(net, True)
    assert all(d.training for d in dropouts(net))
    assert not any(m.training for m in net.modules() if not isinstance(m, nn.Dropout))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))  # dropout on, running BN statistics
        set_dropout(net, False)
        assert torch.equal(net(x), net(x))
    net.train()
    set_dropout(net, False)
    assert not any(d.training for d in dropouts(net))
    assert all(m.training for m in net.modules() if not isinstance(m, nn.Dropout))


# --- registries and errors ------------------------------------------------------------

def test_registries() -> None:
    assert set(GENERATORS) == {"unet", "resnet"}
    assert set(DISCRIMINATORS) == {"patch"}
    assert isinstance(build_generator(tiny()), UNetGenerator)
    assert isinstance(build_generator(tiny("cyclegan")), ResnetGenerator)
    assert isinstance(build_discriminator(tiny(), 6), PatchDiscriminator)


def test_build_generator_directions_swap_bands() -> None:
    arch = tiny("cyclegan", in_bands=2, out_bands=5)
    a2b, b2a = build_generator(arch, "a2b"), build_generator(arch, "b2a")
    assert isinstance(a2b, ResnetGenerator) and isinstance(b2a, ResnetGenerator)
    assert (a2b.in_channels, a2b.out_channels) == (2, 5)
    assert (b2a.in_channels, b2a.out_channels) == (5, 2)


def test_unknown_names_raise_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unet, resnet"):
        build_generator(tiny(generator="vit"))
    with pytest.raises(ConfigError, match="patch"):
        build_discriminator(tiny(), 6, name="pixel")
    with pytest.raises(ConfigError, match="batch, instance"):
        norm_layer("group")
    with pytest.raises(ConfigError, match="a2b"):
        build_generator(tiny(), "b2a")  # Pix2Pix has one direction


def test_bad_input_shapes_raise_value_error() -> None:
    unet = UNetGenerator(3, 3, 6, ngf=2)
    with pytest.raises(ValueError, match="multiples of 64"):
        unet(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        unet(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        unet(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 4"):
        ResnetGenerator(3, 3, ngf=2, n_blocks=1)(torch.randn(1, 3, 66, 66))
    with pytest.raises(ValueError, match="at least 5"):
        UNetGenerator(3, 3, 4)


# --- memory format and precision ------------------------------------------------------

def _outputs(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    net.eval()
    with torch.no_grad():
        reference = net(x)
        last = net.to(memory_format=torch.channels_last)(x.contiguous(
            memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x.contiguous(memory_format=torch.channels_last))
    return reference, last, low


@pytest.mark.parametrize("make", [
    lambda: build_generator(tiny(ngf=8)),
    lambda: build_generator(tiny("cyclegan", ngf=8)),
    lambda: build_discriminator(tiny(ndf=8), 3),
])
def test_channels_last_and_bf16_autocast_match_fp32(make: Any) -> None:
    net = make()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    reference, last, low = _outputs(net, x)
    torch.testing.assert_close(last, reference, atol=1e-5, rtol=1e-4)
    assert low.dtype == torch.bfloat16 and low.shape == reference.shape
    scale = reference.abs().max().item()
    assert scale > 0
    # bf16 keeps 8 bits of mantissa: a few per cent of the output's range.
    assert (low.float() - reference).abs().max().item() < 0.05 * scale


def test_unet_backward_under_bf16_autocast() -> None:
    net = build_generator(tiny()).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(x).float().square().mean()
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("channels_last", [False, True])
def test_class_head_unet_squashes_the_image_bands_only_keeping_the_layout(
        channels_last: bool) -> None:
    torch.manual_seed(0)
    net = UNetGenerator(3, 3, depth=5, ngf=4, classes=5).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net, x = net.to(memory_format=layout), x.contiguous(memory_format=layout)
    with torch.no_grad():
        out = net(x)
        h = _unsquashed(net, x)
    assert out.shape == (2, 8, 64, 64)
    assert torch.equal(out[:, :3], torch.tanh(h[:, :3])) and torch.equal(out[:, 3:], h[:, 3:])
    assert out.is_contiguous(memory_format=layout)


def _unsquashed(net: UNetGenerator, x: Tensor) -> Tensor:
    """The U-Net's output before its tanh."""
    classes, net.classes = net.classes, 0
    try:
        return net(x)
    finally:
        net.classes = classes


# --- resize convolution ---------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_resize_convolution_is_a_resize_then_the_3x3_convolution(bias: bool,
                                                                 channels_last: bool) -> None:
    """The folded transposed convolution gives the pair's outputs and gradients, to
    float64 rounding, on sides that are odd and unequal (every border case)."""
    layer = ResizeConv2d(5, 4, 3, padding=1, bias=bias).double()
    if bias:
        nn.init.normal_(layer.bias)
    pair = direct_resize(nn.Sequential(nn.Identity(), layer))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 5, 7, 11, dtype=torch.float64).contiguous(memory_format=layout)
    grad_out = torch.randn(2, 4, 14, 22, dtype=torch.float64)
    results = []
    for net in (layer, pair):
        given = x.clone().requires_grad_()
        out = net(given)
        out.backward(grad_out)
        params = [p.grad for p in net.parameters()]
        results.append((out, given.grad, params))
    (out, grad_x, grads), (ref_out, ref_grad_x, ref_grads) = results
    assert out.shape == (2, 4, 14, 22)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_x, ref_grad_x, rtol=0, atol=1e-12)
    assert len(grads) == len(ref_grads) == (2 if bias else 1)
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-10)


def test_resize_unet_keeps_the_parameter_names_and_outputs_of_the_direct_pair() -> None:
    """Model files of resize U-Nets written when the resize was its own layer load
    as they are, and translate the same up to float rounding."""
    net = build_generator(tiny(upsample="resize", unet_levels=5, ngf=8)).eval()
    direct = direct_resize(net)  # the layout before: (Upsample, Conv2d)
    # The names those files hold: the convolution at 2, its norm at 3.
    assert not any(isinstance(m, ResizeConv2d) for m in direct.modules())
    shapes = {name: tuple(v.shape) for name, v in direct.state_dict().items()}
    assert shapes == {name: tuple(v.shape) for name, v in net.state_dict().items()}
    assert shapes["decoder.1.2.weight"] == (8, 32, 3, 3)
    net.load_state_dict(direct.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), direct(x), rtol=0, atol=1e-5)


def test_resize_convolution_refuses_other_kernels() -> None:
    with pytest.raises(ValueError, match="3 x 3"):
        ResizeConv2d(4, 4, 5, padding=2)


def test_resize_convolution_folds_once_per_weight_version_without_gradients() -> None:
    """Translation reuses the folded kernel until the weights change (in place, as an
    optimiser step or a loaded state does) and then folds them again."""
    layer = ResizeConv2d(3, 2, 3, padding=1).double()
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64)
    reference = direct_resize(nn.Sequential(nn.Identity(), layer))
    with torch.no_grad():
        first = layer(x)
        kernel = layer._kernel()
        assert layer._kernel() is kernel
        torch.testing.assert_close(first, reference(x), rtol=0, atol=1e-12)
        layer.weight.mul_(2)
        assert layer._kernel() is not kernel
        torch.testing.assert_close(layer(x) - layer.bias.view(1, -1, 1, 1),
                                   2 * (first - layer.bias.view(1, -1, 1, 1)),
                                   rtol=0, atol=1e-12)
    assert layer(x).requires_grad  # with gradients the kernel is folded in the graph


@pytest.mark.parametrize("channels_last", [False, True])
def test_kept_resize_kernel_is_laid_out_as_the_weights_and_gives_the_same_bits(
        channels_last: bool) -> None:
    """The kernel kept for translation is stored in the layout the convolution asks for
    (the weights'), so that no call copies it, and gives bit for bit what the kernel
    folded anew gives."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    layer = ResizeConv2d(16, 8, 3, padding=1).to(memory_format=layout)
    x = torch.randn(2, 16, 9, 10).contiguous(memory_format=layout)
    fresh = layer(x).detach()  # with gradients: folded in this call
    with torch.no_grad():
        kept = layer(x)
        kernel = layer._kernel()
    assert kernel.is_contiguous(memory_format=layout)
    assert torch.equal(kept, fresh)
    if not channels_last:  # as training folds it: contiguous, so no call copies it
        assert folded_resize_kernel(layer.weight).is_contiguous()


def test_frozen_resize_convolution_backpropagates_after_an_inference_pass() -> None:
    """A frozen layer (an averaged generator, say) run with gradients after translating
    under inference mode folds its kernel anew: a kernel kept from inference mode cannot
    be saved for the backward pass."""
    layer = ResizeConv2d(3, 2, 3, padding=1).requires_grad_(False)
    x = torch.randn(1, 3, 5, 6)
    with torch.inference_mode():
        layer(x)
    x.requires_grad_(True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_folding_for_translation_drops_the_3x3_weights_and_keeps_the_bits(
        channels_last: bool) -> None:
    """What translation runs: every resize convolution replaced by its folded kernel and
    bias alone, the 3 x 3 weights gone (no second copy of the decoder in memory), and
    outputs equal bit for bit to the unfolded network's in inference mode."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    arch = tiny(upsample="resize", unet_levels=5, ngf=8, palette=((0, 0, 0), (255, 255, 255)))
    net = build_generator(arch).to(memory_format=layout).eval()
    for module in net.modules():  # the norms' running averages as trained, not 0 and 1
        if isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.running_mean)
            nn.init.uniform_(module.running_var, 0.5, 2.0)
    x = (torch.rand(3, 3, 64, 64) * 2 - 1).contiguous(memory_format=layout)
    with torch.inference_mode():
        expected = net(x)
    layers = [m for m in net.modules() if isinstance(m, ResizeConv2d)]
    weights = {id(m.weight) for m in layers}
    assert fold_resize_convolutions(net) == len(layers) == 5
    assert not any(isinstance(m, ResizeConv2d) for m in net.modules())
    assert not weights & {id(p) for p in net.parameters()}
    folded = [m for m in net.modules() if isinstance(m, FoldedResizeConv2d)]
    assert [m.kernel.shape[2:] for m in folded] == [(4, 4)] * 5
    assert all(m.kernel.is_contiguous(memory_format=layout) for m in folded)
    assert {name for name, _ in net.named_buffers()} >= {"decoder.1.2.kernel"}
    with torch.inference_mode():
        assert torch.equal(net(x), expected)
    assert fold_resize_convolutions(net) == 0  # nothing left to fold


def test_a_translator_holds_no_3x3_resize_weights() -> None:
    """The translator folds its generator: its resize layers hold the folded kernels alone,
    and it translates as the unfolded generator of the same weights does, bit for bit."""
    model = make_model(palette=MAP_PALETTE)
    arch = replace(model.architecture, upsample="resize", unet_levels=5)
    unfolded = build_generator(arch).eval()
    for module in unfolded.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.running_mean)
    model = replace(model, architecture=arch, generators={"a2b": unfolded.state_dict()})
    translator = Translator(model, device="cpu", precision="fp32")
    assert not any(isinstance(m, ResizeConv2d) for m in translator.generator.modules())
    assert sum(isinstance(m, FoldedResizeConv2d) for m in translator.generator.modules()) == 5
    layout = translator.memory_format
    unfolded = unfolded.to(memory_format=layout)
    tiles = (torch.rand(2, 3, 64, 64) * 2 - 1).contiguous(memory_format=layout)
    with torch.inference_mode():
        assert torch.equal(translator.generator(tiles), unfolded(tiles))


# --- the full-resolution input path ------------------------------------------------------

def test_input_skip_adds_a_full_resolution_path_before_the_tanh() -> None:
    """The path's output is added to the decoder's before the image bands' tanh (logits
    as they are); the paper's layers keep their names, so its weights load unchanged."""
    plain = UNetGenerator(3, 3, depth=5, ngf=4, classes=2, upsample="resize").eval()
    net = UNetGenerator(3, 3, depth=5, ngf=4, classes=2, upsample="resize",
                        input_skip=8).eval()
    added = set(net.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) < set(net.state_dict())
    assert added == {"input_skip.0.weight", "input_skip.0.bias", "input_skip.2.weight",
                     "input_skip.2.bias"}
    assert net.input_skip is not None
    net.load_state_dict({**net.state_dict(), **plain.state_dict()})
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        summed = _unsquashed(plain, x) + net.input_skip(x)
        out = net(x)
    assert out.shape == (2, 5, 64, 64)
    assert torch.allclose(out[:, :3], torch.tanh(summed[:, :3]), atol=1e-6)
    assert torch.allclose(out[:, 3:], summed[:, 3:], atol=1e-6)


def test_input_skip_without_a_class_head_still_squashes_the_output() -> None:
    net = UNetGenerator(3, 2, depth=5, ngf=4, input_skip=4).eval()
    assert net.input_skip is not None
    with torch.no_grad():
        net.input_skip[2].bias.fill_(50.0)  # far past the tanh's range before it
        out = net(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert out.shape == (1, 2, 64, 64)
    assert out.min() > 0.999 and out.max() <= 1.0


def test_input_skip_path_sees_each_pixel_at_full_resolution() -> None:
    """Through the path alone, an output pixel depends on the input pixels within two of
    it (two 3 x 3 convolutions), not on a half-resolution cell."""
    net = UNetGenerator(3, 3, depth=5, ngf=4, input_skip=4).eval()
    assert net.input_skip is not None
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    net.input_skip(x)[0, :, 31, 31].sum().backward()
    assert x.grad is not None
    reached = x.grad[0].abs().sum(0) > 0
    rows, cols = torch.nonzero(reached, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (29, 33, 29, 33)


def test_input_skip_is_built_from_the_architecture_and_checked() -> None:
    net = build_generator(tiny(input_skip=6))
    assert isinstance(net, UNetGenerator) and net.input_skip is not None
    assert isinstance(build_generator(tiny()), UNetGenerator)
    assert build_generator(tiny()).input_skip is None  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="at least 0"):
        tiny(input_skip=-1)
    with pytest.raises(ConfigError, match="resnet generator has none"):
        tiny("cyclegan", input_skip=4)


# --- residual blocks in the decoder -------------------------------------------------------

def test_decoder_blocks_end_the_finest_inner_levels_and_start_as_they_were() -> None:
    """N blocks end decoder levels 1 to N (the outermost, level 0, draws the output),
    under new names (the paper's weights load unchanged); with their last norm's scale
    and shift at zero each block passes its input through: the plain U-Net again."""
    torch.manual_seed(0)
    plain = UNetGenerator(3, 3, depth=5, ngf=4, classes=2, upsample="resize").eval()
    net = UNetGenerator(3, 3, depth=5, ngf=4, classes=2, upsample="resize",
                        decoder_blocks=3).eval()
    added = set(net.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) < set(net.state_dict())
    assert {name.split(".")[1] for name in added} == {"1", "2", "3"}
    blocks = [m for m in net.modules() if isinstance(m, ResnetBlock)]
    assert [b.block[1].in_channels for b in blocks] == [4, 8, 16]
    assert all(isinstance(net.decoder[k][-1], ResnetBlock) for k in (1, 2, 3))
    net.load_state_dict({**net.state_dict(), **plain.state_dict()})
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        changed = net(x)
        for block in blocks:
            block.block[-1].weight.zero_()
            block.block[-1].bias.zero_()
        assert not torch.allclose(changed, plain(x), atol=1e-4)
        assert torch.allclose(net(x), plain(x), atol=1e-6)


def test_decoder_blocks_are_built_from_the_architecture_and_checked() -> None:
    net = build_generator(tiny(decoder_blocks=5))  # every inner level of 6 at 64 px
    assert sum(isinstance(m, ResnetBlock) for m in net.modules()) == 5
    assert not any(isinstance(m, ResnetBlock) for m in build_generator(tiny()).modules())
    with pytest.raises(ConfigError, match="at least 0"):
        tiny(decoder_blocks=-1)
    with pytest.raises(ConfigError, match="5 decoder levels for blocks, not 6"):
        tiny(decoder_blocks=6)
    with pytest.raises(ConfigError, match="resnet generator has none"):
        tiny("cyclegan", decoder_blocks=1)
    with pytest.raises(ValueError, match="not depth 5 with 5"):
        UNetGenerator(3, 3, depth=5, decoder_blocks=5)
    with pytest.raises(ValueError, match="not depth 5 with -1"):
        UNetGenerator(3, 3, depth=5, decoder_blocks=-1)


@pytest.mark.parametrize("added", [{"input_skip": 4}, {"decoder_blocks": 2}])
def test_a_translator_of_an_input_skip_or_decoder_blocks_model_translates_as_its_generator(
        added: dict[str, int]) -> None:
    model = make_model(palette=MAP_PALETTE)
    arch = replace(model.architecture, upsample="resize", unet_levels=5, **added)
    network = build_generator(arch).eval()
    model = replace(model, architecture=arch, generators={"a2b": network.state_dict()})
    translator = Translator(model, device="cpu", precision="fp32")
    layout = translator.memory_format
    network = network.to(memory_format=layout)
    tiles = (torch.rand(2, 3, 64, 64) * 2 - 1).contiguous(memory_format=layout)
    with torch.inference_mode():
        assert torch.equal(translator.generator(tiles), network(tiles))
