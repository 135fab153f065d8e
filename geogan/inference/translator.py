"""A trained generator ready to translate arrays: the Python API behind ``translate``.

:func:`load_model` reads a model file and returns a :class:`Translator`, which owns the
generator of one direction (in eval mode, so a tile's output never depends on the other
tiles of a batch), the value mapping of both domains and the tile size.
``Translator.translate_array`` turns one tile (or less) of raster values into target
values; the windowed engine of ``geogan translate`` feeds ``translate_tiles`` with
batches of normalised tiles.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from geogan.errors import InputError, ModelFileError
from geogan.nn.devices import autocast, resolve_device, resolve_precision
from geogan.nn.model_file import ModelFile, read_model_file
from geogan.nn.networks import build_generator, has_dropout, set_dropout
from geogan.raster.io import missing


class Translator:
    """One direction of a trained model, in eval mode, with its value mappings.

    Args:
        model: A checked model file (see :func:`geogan.nn.model_file.read_model_file`).
        direction: ``a2b`` (input → target), or ``b2a`` for CycleGAN models.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` arithmetic of the generator.
        weights: The direction's state dict to use instead of ``model``'s, consumed (its
            tensors are replaced in place), so that :func:`load_model` never holds two
            copies of large weights.

    Raises:
        ModelFileError: If the weights do not fit the stored architecture.
        InputError: For a direction the model does not have.
    """

    def __init__(self, model: ModelFile, *, direction: str = "a2b", device: str = "cpu",
                 precision: str = "fp32",
                 weights: MutableMapping[str, torch.Tensor] | None = None) -> None:
        architecture = model.architecture
        if direction not in architecture.directions:
            raise InputError(f"a {architecture.kind} model translates "
                             f"{' and '.join(architecture.directions)} only, not {direction}")
        self.architecture = architecture
        self.direction = direction
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        source, target = ("a", "b") if direction == "a2b" else ("b", "a")
        self.input_normalization = model.normalization[source]
        self.output_normalization = model.normalization[target]
        # Channels-last helps BatchNorm U-Nets; InstanceNorm/reflection ResNets run
        # faster in the default layout.
        self.memory_format = (torch.channels_last if architecture.norm == "batch"
                              else torch.contiguous_format)
        state = dict(model.generators[direction]) if weights is None else weights
        if not state:
            raise ModelFileError(f"the model holds no {direction} weights")
        for name, tensor in state.items():  # in place: one copy of the weights at a time
            if tensor.dim() == 4:
                state[name] = tensor.contiguous(memory_format=self.memory_format)
        with torch.device("meta"):  # no memory and no random initialisation to discard
            generator = build_generator(architecture, direction)
        try:
            generator.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as error:
            raise ModelFileError(f"the {direction} weights do not fit the stored architecture "
                                 f"(damaged model file): {str(error).splitlines()[0]}") from None
        self.generator = generator.to(self.device).eval()
        # The metadata only: the weights live in the generator.
        self.model = replace(model, generators={})

    @property
    def tile_size(self) -> int:
        """Side of the square tiles the generator was trained on."""
        return self.architecture.tile_size

    @property
    def in_bands(self) -> int:
        """Bands the generator reads."""
        return self.input_normalization.bands

    @property
    def out_bands(self) -> int:
        """Bands the generator writes."""
        return self.output_normalization.bands

    @property
    def output_dtype(self) -> str:
        """Data type of the translated values (the target domain's own)."""
        return self.output_normalization.dtype

    @property
    def output_nodata(self) -> float | None:
        """Nodata value of the target domain, if it had one."""
        return self.output_normalization.nodata

    @property
    def output_descriptions(self) -> list[str | None]:
        """Band names of the target domain, as its training chips had them."""
        return self.model.band_descriptions("b" if self.direction == "a2b" else "a")

    @property
    def has_dropout(self) -> bool:
        """Whether the generator has dropout layers (needed to draw samples)."""
        return has_dropout(self.generator)

    @torch.inference_mode()
    def translate_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """Run the generator on normalised tiles.

        Args:
            tiles: (N, in_bands, tile, tile) float32 in [-1, 1], on any device.

        Returns:
            (N, out_bands, tile, tile) float32 in [-1, 1], on this translator's device.
        """
        tiles = tiles.to(self.device, torch.float32, non_blocking=True)
        tiles = tiles.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.precision):
            out = self.generator(tiles)  # (N, out_bands, tile, tile)
        result: torch.Tensor = out.float().contiguous()
        return result

    @torch.inference_mode()
    def sample_tiles(self, tiles: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the generator ``samples`` times with dropout on (normalisation stays in
        eval mode): the per-pixel mean and standard deviation of the outputs.

        Args:
            tiles: (N, in_bands, tile, tile) float32 in [-1, 1].
            samples: Number of passes, at least 2.

        Returns:
            Mean and population standard deviation, each (N, out_bands, tile, tile)
            float32 in normalised units, on this translator's device.
        """
        set_dropout(self.generator, True)
        try:
            draws = torch.stack([self.translate_tiles(tiles) for _ in range(samples)])
        finally:
            set_dropout(self.generator, False)
        std, mean = torch.std_mean(draws, dim=0, correction=0)  # (N, C, tile, tile) each
        return mean, std

    def translate_array(self, array: NDArray[Any],
                        valid: NDArray[np.bool_] | None = None) -> NDArray[Any]:
        """Translate one tile, or less, of raster values.

        Arrays smaller than a tile are padded by reflection to the tile size and the
        result is cropped back. Pixels that are invalid (``valid`` false, or every band
        the input's nodata or non-finite) are fed as the mid value, as in training, and
        come out as the output nodata where the model has one; a single missing band of
        an otherwise valid pixel is fed as the mid value (as ``translate_raster`` does).

        Args:
            array: (in_bands, H, W), or (H, W) for one band, in the input's units;
                H and W at most the tile size.
            valid: Optional (H, W) mask of valid pixels.

        Returns:
            (out_bands, H, W) in the model's output dtype and units.

        Raises:
            InputError: If the band count or size does not fit the model.
        """
        values = np.asarray(array)
        if values.ndim == 2:
            values = values[None]
        if values.ndim != 3 or values.shape[0] != self.in_bands:
            raise InputError(f"the model reads {self.in_bands} band(s); the array has shape "
                             f"{values.shape} (expected ({self.in_bands}, H, W))")
        _, height, width = values.shape
        if height > self.tile_size or width > self.tile_size:
            raise InputError(f"translate_array takes at most one tile "
                             f"({self.tile_size} x {self.tile_size}); got {height} x {width}. "
                             "Use geogan.translate_raster for larger rasters.")
        absent = missing(values, self.input_normalization.nodata)  # (C, H, W)
        mask = ~absent.all(axis=0)
        if valid is not None:
            mask &= np.asarray(valid, dtype=bool)
        normalized = self.input_normalization.normalize(values)
        normalized[absent] = 0.0
        normalized[:, ~mask] = 0.0
        padded = pad_to_tile(normalized, self.tile_size)  # (C, tile, tile)
        out = self.translate_tiles(torch.from_numpy(padded)[None])[0]
        result = self.output_normalization.denormalize(out[:, :height, :width].cpu().numpy())
        nodata = self.output_nodata
        if nodata is not None and not mask.all():
            result[:, ~mask] = nodata
        return result


def load_model(path: str | os.PathLike[str], *, direction: str = "a2b", device: str = "cpu",
               precision: str = "fp32") -> Translator:
    """Load a model file as a :class:`Translator`.

    Args:
        path: A model file written by ``geogan train``.
        direction: ``a2b``, or ``b2a`` for CycleGAN models.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: Arithmetic of the generator: ``fp32`` (default, exact), ``bf16``,
            ``fp16`` or ``auto``.

    Raises:
        ModelFileError: If the file is missing, damaged or not a geogan model file.
    """
    model = read_model_file(path)
    # The file's own dict of tensors (nothing else refers to it once the model's metadata
    # is handed on), converted in place by the translator.
    weights = model.generators.get(direction)
    if not isinstance(weights, dict):
        weights = None
    return Translator(replace(model, generators={}), direction=direction,
                      device=device, precision=precision, weights=weights)


def pad_to_tile(array: NDArray[np.float32], tile: int) -> NDArray[np.float32]:
    """Pad (C, H, W) at the bottom and right to at least ``tile`` each way, by reflection
    (numpy reflects repeatedly where the pad is wider than the array), repeating the edge
    where the array is one pixel thin; returned as it is when nothing is missing."""
    _, height, width = array.shape
    pad = ((0, 0), (0, max(0, tile - height)), (0, max(0, tile - width)))
    if not pad[1][1] and not pad[2][1]:
        return array
    mode = "reflect" if min(height, width) > 1 else "edge"
    return np.pad(array, pad, mode=mode)  # type: ignore[call-overload,no-any-return]
