"""A trained generator ready to translate arrays: the Python API behind ``translate``.

:func:`load_model` reads a model file and returns a :class:`Translator`, which owns the
generator of one direction (in eval mode, so a tile's output never depends on the other
tiles of a batch), the value mapping of both domains and the tile size.
``Translator.translate_array`` turns one tile (or less) of raster values into target
values; the windowed engine of ``geogan translate`` feeds ``translate_tiles`` with
batches of normalised tiles, blends what it returns and hands the blend to ``finish``.

Models with a class head (a flat-colour target, see :mod:`geogan.training.class_palette`) can write
four things (:data:`OUTPUTS`): the image head (``image``), the colour of the most likely
class shaded where the model is unsure and smoothed among its neighbours there (``shaded``,
the default; see :mod:`geogan.inference.class_colours` and
:mod:`geogan.inference.unsure_blur`), that colour crisp (``palette``) or the class index
itself (``classes``, one band for a colour table). Class probabilities, not colours, are what
gets blended across windows and averaged by test-time augmentation.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn.modules.batchnorm import _BatchNorm

from geogan.errors import ConfigError, InputError, ModelFileError
from geogan.inference.batching import CPU_BATCH, MAX_AUTO_BATCH
from geogan.inference.class_colours import shade
from geogan.inference.unsure_blur import DEFAULT_SIGMA, UnsureBlur, blur_radius, blur_unsure
from geogan.nn.config import OUTPUTS, Architecture, check_unsure_below
from geogan.nn.devices import autocast, resolve_device, resolve_precision
from geogan.nn.model_file import ModelFile, read_model_file
from geogan.nn.networks import build_generator, has_dropout, set_dropout
from geogan.nn.resize_conv import fold_resize_convolutions
from geogan.raster.io import missing

CLASS_NODATA = 255
"""Nodata of a class raster (``output="classes"``)."""


class Translator:
    """One direction of a trained model, in eval mode, with its value mappings.

    The generator is for translation only: its resize convolutions hold their folded
    kernels, not the 3 x 3 weights (see :func:`geogan.nn.resize_conv.fold_resize_convolutions`).

    Args:
        model: A checked model file (see :func:`geogan.nn.model_file.read_model_file`).
        direction: ``a2b`` (input → target), or ``b2a`` for CycleGAN models.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` arithmetic of the generator.
        weights: The direction's state dict to use instead of ``model``'s, consumed (its
            tensors are replaced in place), so that :func:`load_model` never holds two
            copies of large weights.
        tta: Test-time augmentation: each tile is translated in its 8 flips and
            rotations and the outputs, turned back, are averaged (8 times the work);
            None: as the model file says (``Architecture.tta``: on for ``faithful``
            models, off in files written before it was recorded).
        output: One of :data:`OUTPUTS`.
        unsure_blur: Standard deviation, in pixels, of the blur of the unsure pixels of a
            ``shaded`` map (:mod:`geogan.inference.unsure_blur`); 0 draws each pixel on
            its own, as before.
        unsure_below: Odds of the most likely class under which a pixel shaded past its
            class colour's exact radius is unsure (blurred); None: as the model file says
            (``Architecture.unsure_below``: 0.45 for ``faithful`` models, 0.5 in files
            written before it was recorded).

    Raises:
        ModelFileError: If the weights do not fit the stored architecture.
        InputError: For a direction the model does not have.
        ConfigError: For an unknown output, ``palette``/``classes`` from a model
            without a class head, a negative blur, or odds outside [0, 1].
    """

    def __init__(self, model: ModelFile, *, direction: str = "a2b", device: str = "cpu",
                 precision: str = "fp32",
                 weights: MutableMapping[str, torch.Tensor] | None = None,
                 tta: bool | None = None, output: str = "auto",
                 unsure_blur: float = DEFAULT_SIGMA, unsure_below: float | None = None) -> None:
        architecture = model.architecture
        classes = architecture.classes if direction == "a2b" else 0
        output = drawn_output(architecture, direction, output)
        if output not in OUTPUTS:
            raise ConfigError(f"unknown output {output!r}; use one of {', '.join(OUTPUTS)}")
        if output in ("shaded", "palette", "classes") and not classes:
            raise ConfigError(f"--output {output} needs a model with a class head (trained "
                              "on a flat-colour map target); this one writes images only")
        self.classes = classes
        self.output = output
        self.tta = architecture.tta if tta is None else tta
        if not unsure_blur >= 0:
            raise ConfigError(f"the blur of unsure pixels must be 0 (off) or more pixels, "
                              f"not {unsure_blur}")
        self.unsure_blur = float(unsure_blur)
        self.unsure_below = architecture.unsure_below if unsure_below is None else unsure_below
        check_unsure_below(self.unsure_below)
        # (K, C) colours, and (C, K) in the target's dtype, indexed by class in :meth:`finish`.
        self._palette = (np.asarray(architecture.palette, dtype=np.float64) if classes
                         else np.empty((0, 0)))
        self._palette_values = self._palette.T.astype(model.normalization["b"].dtype)
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
        # Translation never changes the weights: the resize convolutions keep their
        # folded kernels alone (the same outputs, less memory).
        fold_resize_convolutions(self.generator)
        # Dividing the class probabilities by the training weights (subtracting their
        # logarithms from the logits) undoes the favour training gave rare classes.
        self._log_weights = (torch.tensor(architecture.class_weights, device=self.device
                                          ).log().view(1, -1, 1, 1)
                             if classes and architecture.class_weights else None)
        self._smoothing = architecture.label_smoothing if classes else 0.0
        # The metadata only: the weights live in the generator.
        self.model = replace(model, generators={})
        self._auto_batch: int | None = None

    def auto_batch_size(self) -> int:
        """Windows per generator call when none is asked for: :data:`CPU_BATCH` on a CPU,
        where larger batches gain nothing; on a GPU as many as a quarter of its free
        memory holds (measured on two windows, once), between :data:`CPU_BATCH` and
        :data:`MAX_AUTO_BATCH` (the engine keeps a few batches of results in host memory)."""
        if self.device.type != "cuda":
            return CPU_BATCH
        if self._auto_batch is None:
            torch.cuda.synchronize(self.device)
            free, _ = torch.cuda.mem_get_info(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            side = self.tile_size
            self.translate_tiles(torch.zeros(2, self.in_bands, side, side))
            per_window = max(1, (torch.cuda.max_memory_allocated(self.device) - base) // 2)
            self._auto_batch = int(min(MAX_AUTO_BATCH, max(CPU_BATCH, free // 4 // per_window)))
        return self._auto_batch

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
        """Bands of the translated raster (1 for a class raster)."""
        return 1 if self.output == "classes" else self.output_normalization.bands

    @property
    def image_bands(self) -> int:
        """Bands of the target domain (what the image head draws)."""
        return self.output_normalization.bands

    @property
    def blend_bands(self) -> int:
        """Channels :meth:`translate_tiles` returns: the image bands, then one probability
        per class."""
        return self.image_bands + self.classes

    @property
    def drawn(self) -> slice:
        """The channels of :meth:`translate_tiles` that :attr:`output` is drawn from, the
        only ones the engine blends: the image bands for an image, the class
        probabilities for the other outputs."""
        if self.output == "image":
            return slice(0, self.image_bands)
        return slice(self.image_bands, self.blend_bands)

    @property
    def drawn_bands(self) -> int:
        """How many channels :attr:`drawn` holds."""
        return int(self.drawn.stop - self.drawn.start)

    def _drawn_of(self, blended: NDArray[np.float32]) -> NDArray[np.float32]:
        """The :attr:`drawn` channels of ``blended``: all of :meth:`translate_tiles`'
        channels, or those alone (what the engine blends)."""
        return blended[self.drawn] if blended.shape[0] == self.blend_bands else blended

    @property
    def output_dtype(self) -> str:
        """Data type of the translated values (the target domain's own; a class raster's
        is uint8)."""
        return "uint8" if self.output == "classes" else self.output_normalization.dtype

    @property
    def output_nodata(self) -> float | None:
        """Nodata value of the output, if it has one."""
        return CLASS_NODATA if self.output == "classes" else self.output_normalization.nodata

    @property
    def output_descriptions(self) -> list[str | None]:
        """Band names of the target domain, as its training chips had them."""
        if self.output == "classes":
            return ["class"]
        return self.model.band_descriptions("b" if self.direction == "a2b" else "a")

    @property
    def palette(self) -> dict[str, tuple[float, ...]]:
        """Class name → colour of the class head (empty without one)."""
        arch = self.architecture
        return dict(zip(arch.class_names, arch.palette, strict=True)) if self.classes else {}

    def finish(self, blended: NDArray[np.float32]) -> NDArray[Any]:
        """Output values from blended :meth:`translate_tiles` channels (C, ...), all of
        them or the :attr:`drawn` ones alone: the image head denormalised, the shaded or
        crisp palette colour of the most likely class, or that class's index, as
        :attr:`output` says. An image is clipped in place (the writer's buffer: no copy
        per block row)."""
        blended = self._drawn_of(blended)
        if self.output == "image":
            return self.output_normalization.denormalize(np.clip(blended, -1.0, 1.0,
                                                                 out=blended))
        if self.output == "shaded":
            return self.cast(self.shade(blended)[0])
        best = blended.argmax(axis=0)  # (...): the most likely class
        if self.output == "classes":
            classes: NDArray[np.uint8] = best.astype(np.uint8)[None]
            return classes
        values: NDArray[Any] = self._palette_values[:, best]  # (C, ...) in the output dtype
        return values

    def shade(self, blended: NDArray[np.float32]
              ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Shaded colours (C, ...) from blended :meth:`translate_tiles` channels, all of
        them or the class probabilities (:attr:`drawn`) alone, unrounded, and the unsure
        pixels (...) that :meth:`blur` smooths (see
        :func:`geogan.inference.class_colours.shade`)."""
        return shade(self._drawn_of(blended), self._palette, self.unsure_below)

    def cast(self, colours: NDArray[np.float32]) -> NDArray[Any]:
        """Shaded colours rounded (in place) into the output's dtype."""
        dtype = np.dtype(self.output_normalization.dtype)
        np.rint(colours, out=colours)
        if dtype.kind in "iu":
            np.clip(colours, np.iinfo(dtype).min, np.iinfo(dtype).max, out=colours)
        return colours.astype(dtype)

    @property
    def blur_radius(self) -> int:
        """Rows and columns of context the blur of unsure pixels needs (0: no blur)."""
        return blur_radius(self.unsure_blur) if self.output == "shaded" else 0

    def blur(self, height: int) -> UnsureBlur | None:
        """A stream blurring the unsure pixels of ``height`` rows of shaded colours, or
        None where there is nothing to blur (see :mod:`geogan.inference.unsure_blur`)."""
        return UnsureBlur(self.unsure_blur, height) if self.blur_radius else None

    @property
    def has_dropout(self) -> bool:
        """Whether the generator has dropout layers (needed to draw samples)."""
        return has_dropout(self.generator)

    @property
    def has_batch_norm(self) -> bool:
        """Whether the generator normalises with BatchNorm (a Pix2Pix U-Net), whose
        averages ``--adapt-norm`` can take from a scene
        (:mod:`geogan.inference.scene_norms`)."""
        return bool(self.batch_norms())

    def batch_norms(self) -> list[_BatchNorm]:
        """The generator's BatchNorm layers (none in a CycleGAN's ResNet)."""
        return [m for m in self.generator.modules() if isinstance(m, _BatchNorm)]

    @torch.inference_mode()
    def translate_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """Run the generator on normalised tiles.

        Args:
            tiles: (N, in_bands, tile, tile) float32 in [-1, 1], on any device.

        Returns:
            (N, blend_bands, tile, tile) float32, on this translator's device: the image
            bands in [-1, 1], then the class probabilities (models with a class head).
            With :attr:`tta`, the mean over the 8 flips and rotations.
        """
        tiles = tiles.to(self.device, torch.float32, non_blocking=True)
        if not self.tta:
            return self._forward(tiles)
        total = torch.zeros(())
        for k in range(4):
            for flip in (False, True):
                turned = torch.rot90(tiles, k, (2, 3))
                turned = turned.flip(3) if flip else turned
                out = self._forward(turned.contiguous())
                out = out.flip(3) if flip else out
                total = total + torch.rot90(out, -k, (2, 3))
        result: torch.Tensor = (total / 8).contiguous()
        return result

    def _forward(self, tiles: torch.Tensor) -> torch.Tensor:
        tiles = tiles.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.precision):
            out = self.generator(tiles)  # (N, out_bands [+ classes], tile, tile)
        out = out.float()
        if self.classes:
            logits = out[:, self.image_bands:]
            if self._log_weights is not None:
                logits = logits - self._log_weights
            probabilities = torch.softmax(logits, dim=1)
            if self._smoothing:
                probabilities = _unsmoothed(probabilities, self._smoothing)
            out = torch.cat([out[:, :self.image_bands], probabilities], dim=1)
        result: torch.Tensor = out.contiguous()
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
        mask = np.asarray(~absent.all(axis=0), dtype=bool)
        if valid is not None:
            mask &= np.asarray(valid, dtype=bool)
        normalized = self.input_normalization.normalize(values)
        normalized[absent] = 0.0
        normalized[:, ~mask] = 0.0
        padded = pad_to_tile(normalized, self.tile_size)  # (C, tile, tile)
        out = self.translate_tiles(torch.from_numpy(padded)[None])[0]
        blended = out[:, :height, :width].cpu().numpy()
        if self.blur_radius:
            colours, unsure = self.shade(blended)
            result = self.cast(blur_unsure(colours, unsure, mask, self.unsure_blur))
        else:
            result = self.finish(blended)
        nodata = self.output_nodata
        if nodata is not None and not mask.all():
            result[:, ~mask] = nodata
        return result


def _unsmoothed(probabilities: torch.Tensor, eps: float) -> torch.Tensor:
    """Class probabilities (N, K, H, W) of a head trained with label smoothing ``eps``,
    its training weights already divided out, as a head trained without it would give
    them: such a head learns ``(1 - eps) p + eps / K``, so the ``eps / K`` is taken off
    (at least 0) and what is left scaled back to a sum of 1."""
    p = (probabilities - eps / probabilities.shape[1]).clamp_min_(0.0)
    return p / p.sum(dim=1, keepdim=True)


def drawn_output(architecture: Architecture, direction: str, output: str) -> str:
    """What a translator of ``direction`` writes when asked for ``output``: ``auto`` is
    ``shaded`` for a class head (``a2b`` only), else ``image``."""
    classes = architecture.classes if direction == "a2b" else 0
    return ("shaded" if classes else "image") if output == "auto" else output


def load_model(path: str | os.PathLike[str], *, direction: str = "a2b", device: str = "cpu",
               precision: str = "fp32", tta: bool | None = None, output: str = "auto",
               unsure_blur: float = DEFAULT_SIGMA, unsure_below: float | None = None
               ) -> Translator:
    """Load a model file as a :class:`Translator`.

    Args:
        path: A model file written by ``geogan train``.
        direction: ``a2b``, or ``b2a`` for CycleGAN models.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: Arithmetic of the generator: ``fp32`` (default, exact), ``bf16``,
            ``fp16`` or ``auto``.
        tta: Average the 8 flips and rotations of every tile; None: as the model file
            says (on for ``faithful`` models).
        output: ``auto``, ``image``, ``shaded``, ``palette`` or ``classes`` (see
            :data:`OUTPUTS`).
        unsure_blur: Standard deviation, in pixels, of the blur of a shaded map's unsure
            pixels; 0 draws each pixel on its own.
        unsure_below: Odds of the most likely class under which a shaded pixel is unsure
            (blurred); None: as the model file says (0.45 for ``faithful`` models).

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
                      device=device, precision=precision, weights=weights, tta=tta,
                      output=output, unsure_blur=unsure_blur, unsure_below=unsure_below)


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
