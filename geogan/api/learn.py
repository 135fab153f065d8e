"""The arcgis.learn-style Python API: ``prepare_data``, ``Pix2Pix``, ``CycleGAN``.

For notebook users who know the workflow of ``arcgis.learn``::

    data = geogan.prepare_data("chips/")           # Pix2Pix or CycleGAN, from the layout
    data.show_batch(rows=4)                        # a matplotlib figure: input | target
    model = geogan.Pix2Pix(data)                   # preset "tiny"; any setting by keyword
    model.fit(10)                                  # 10 epochs, a progress bar
    model.plot_losses()                            # losses and validation metrics by step
    model.show_results(rows=4)                     # input | output | target
    model.compute_metrics()                        # PSNR, SSIM (and class scores for maps)
    model.save("m.pt")                             # the model file `geogan train` writes
    model.translate("scene.tif", "map.tif")        # a whole scene, as `geogan translate`

It is a thin layer: ``fit`` calls :func:`geogan.training.loop.train` (the trainer of ``geogan
train``), every prediction goes through :class:`geogan.inference.translator.Translator` loaded from
the model file that training wrote (the generator in eval mode, as ``geogan translate``
runs it), and ``translate`` and ``predict`` on a raster use
:func:`geogan.inference.scene.translate_raster`. The same chips, settings and seed give the same
model file through either door (``tests/test_learn.py`` checks it).

Where geogan departs from arcgis.learn, and why:

* ``chip_size`` defaults to ``None``, the chips' own size: geogan never resizes chips (a
  resampled chip is no longer on its raster's grid). A ``chip_size`` that differs from
  the chips' is an error.
* ``batch_size`` defaults to the preset's (4 for ``faithful``, 1 as in both papers for
  ``paper`` and ``tiny``), not 64.
* The models default to the ``tiny`` preset, which trains in minutes on a laptop CPU;
  pass ``preset="paper"`` for the published networks (the CLI's default).
* Training writes to ``work_dir`` (a new temporary folder by default), not into the chip
  folder, which may be read-only or shared; ``save`` copies the model file out of it.

Like the rest of the library this module raises :mod:`geogan.errors` and never prints:
with ``verbose=True`` it shows ``tqdm.auto`` progress bars (widgets in notebooks, text in
terminals), with ``verbose=False`` nothing at all. matplotlib is needed for the figures
only (``pip install 'geogan[plot]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray

from geogan.api.chip_metrics import chip_metrics
from geogan.api.figures import RGB, losses_figure, results_figure
from geogan.api.prepare import DATASET_TYPES, ChipData, prepare_data
from geogan.errors import ConfigError, GeoganWarning, InputError, ModelFileError
from geogan.inference.scene import TranslateReport, translate_raster
from geogan.inference.translator import Translator
from geogan.inference.translator import load_model as load_translator
from geogan.nn.config import Architecture, TrainConfig, build_configs, check_kind_fits_chips
from geogan.nn.model_file import check_model_output, read_model_file
from geogan.nn.normalization import BandNormalization
from geogan.outputs import atomic_file
from geogan.progress import Bar
from geogan.raster.io import open_raster
from geogan.training.batches import steps_per_epoch
from geogan.training.chip_folder import ChipFolder
from geogan.training.folder_union import open_chip_folders
from geogan.training.loop import (
    LOG_NAME,
    TrainOptions,
    TrainProgress,
    TrainReport,
    train,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ChipData", "CycleGAN", "GANModel", "Pix2Pix", "prepare_data"]


DEFAULT_PRESET = "tiny"
"""The models' default preset: trains in minutes on a CPU (``geogan train``: ``paper``)."""

PREDICT_MAX_TILES = 16
"""``predict`` on a raster translates at most this many tiles' worth of pixels in memory;
larger rasters go through ``translate`` into a file."""

# --------------------------------------------------------------------------- data


# --------------------------------------------------------------------------- models


class GANModel:
    """What :class:`Pix2Pix` and :class:`CycleGAN` share: fitting, predicting, saving.

    Args:
        data: From :func:`prepare_data`; ``None`` for a model loaded to translate only.
        preset: ``tiny`` (default: minutes on a CPU) or ``paper`` (the published networks).
        device: ``auto``, ``cpu`` or ``cuda``, for training and translating.
        work_dir: Folder for the runs of :meth:`fit` (``run-1/``, ``run-2/``, ... each with
            ``model.pt``, ``checkpoint.pt``, ``log.jsonl`` and ``previews/``); default a
            new temporary folder ``geogan-*``, made on the first fit.
        verbose: Show progress bars; ``False`` shows nothing at all.
        **config: Any field of :class:`~geogan.nn.config.Architecture` or
            :class:`~geogan.nn.config.TrainConfig` (``ngf``, ``ndf``, ``lambda_l1``,
            ``gan_loss``, ``dropout``, ``seed``, ``precision``, ...), as ``geogan train``'s
            options.

    Raises:
        ConfigError: For an unknown setting or preset, a value out of range, or data the
            model cannot learn from (Pix2Pix on unpaired chips).
    """

    kind: ClassVar[str] = ""

    def __init__(self, data: ChipData | None = None, *, preset: str = DEFAULT_PRESET,
                 device: str = "auto", work_dir: str | os.PathLike[str] | None = None,
                 verbose: bool = True, **config: Any) -> None:
        self.data = data
        self.preset = preset
        self.device = device
        self.verbose = verbose
        self.config = dict(config)
        self.work_dir = None if work_dir is None else Path(work_dir)
        self.runs: list[dict[str, Any]] = []
        self._model_path: Path | None = None
        self._init_from: Path | None = None
        self._run_dir: Path | None = None
        self._translators: dict[tuple[str, str, str], Translator] = {}
        self.architecture: Architecture | None = None
        """The networks of the latest model file (``None`` before the first fit)."""
        if data is not None:
            self._check_data(data)
            self._configs(data)  # unknown settings and bad values fail now, not in fit

    # -- construction from a model file ------------------------------------------

    @classmethod
    def from_model(cls, path: str | os.PathLike[str], data: ChipData | None = None,
                   **kwargs: Any) -> GANModel:
        """A model from a model file (``geogan train``'s or :meth:`save`'s), to predict and
        translate, or to :meth:`fit` further on ``data`` (a new run that starts from the
        file's generators).

        Args:
            path: The model file.
            data: Chips to fit on (same bands and chip size as the model's).
            **kwargs: As for the class (``device``, ``verbose``, ``work_dir``, settings).

        Raises:
            ModelFileError: The file is missing, damaged or not a model of this class.
            ConfigError: ``data`` does not fit the model.
        """
        model_file = read_model_file(path)
        kind = model_file.architecture.kind
        target = cls if cls.kind else _CLASSES[kind]
        if target.kind != kind:
            raise ModelFileError(f"{path} holds a {DATASET_TYPES[kind]} model; load it with "
                                 f"geogan.GANModel.from_model or "
                                 f"geogan.{DATASET_TYPES[kind]}.from_model")
        record = model_file.training
        config = {k: v for k, v in (record.get("config") or {}).items()
                  if k not in ("epochs", "steps", "val_every")}
        architecture = model_file.architecture.to_dict()
        config.update({k: architecture[k] for k in _ARCH_SETTINGS})
        config.update({k: v for k, v in kwargs.items()
                       if k not in ("preset", "device", "work_dir", "verbose")})
        model = target(None, preset=str(kwargs.get("preset", record.get("preset") or
                                                   DEFAULT_PRESET)),
                       device=kwargs.get("device", "auto"), work_dir=kwargs.get("work_dir"),
                       verbose=kwargs.get("verbose", True), **config)
        model._model_path = Path(path).absolute()
        model._init_from = model._model_path
        model.architecture = model_file.architecture
        if data is not None:
            model.data = data
            model._check_data(data)
            model._configs(data)
        return model

    # -- fitting -----------------------------------------------------------------

    def fit(self, epochs: int | None = None, lr: float | None = None, checkpoint: bool = True,
            *, steps: int | None = None, progress: Callable[[TrainProgress], None] | None = None
            ) -> TrainReport:
        """Train for ``epochs`` passes over the training chips (or ``steps`` steps).

        The first call starts from fresh networks (or from the model file of
        :meth:`from_model`); each later call is a new run with its own learning-rate
        schedule that starts from the previous run's networks and optimisers. Each run
        is ``work_dir/run-N/`` and its log is appended to :attr:`history`.

        Args:
            epochs: Passes over the training chips; ``None`` for the preset's (20 tiny).
            lr: Adam learning rate; ``None`` for the setting's (2e-4).
            checkpoint: Validate, preview and checkpoint every epoch; ``False``: at the
                end only (faster with many small epochs).
            steps: Optimiser steps instead of epochs.
            progress: Called as ``geogan train``'s bar is, instead of the tqdm bar.

        Returns:
            The trainer's report (steps, seconds, validation metrics, paths).

        Raises:
            ConfigError: Without data, or for settings out of range.
            GeoganError: Whatever the trainer raises (device not available, ...).
        """
        data = self._require_data("fit")
        overrides = self._overrides(data)
        overrides.update(epochs=epochs, steps=steps, lr=lr)
        if not checkpoint:
            _, config = self._configs(data, overrides)
            overrides["val_every"] = config.steps or config.epochs * steps_per_epoch(
                data.folder, config)
        work_dir = self._work_dir()
        run_dir = work_dir / f"run-{len(self.runs) + 1}"
        previous = self.runs[-1]["checkpoint"] if self.runs else self._init_from
        self._run_dir = run_dir  # plot_losses shows an interrupted fit too
        train_options = TrainOptions(
            kind=self.kind, preset=self.preset, overrides=overrides, device=self.device,
            checkpoint_dir=run_dir, init_from=previous, overwrite=True,
            val_fraction=data.val_split_pct)
        with Bar(f"fit {len(self.runs) + 1}", "step",
                 enabled=self.verbose and progress is None) as bar:
            report = train(data.paths, run_dir / "model.pt", train_options,
                           progress or bar.steps)
        self._model_path = report.model_path.absolute()
        self.architecture = report.architecture
        self._translators.clear()
        self.runs.append({"run": len(self.runs) + 1, "dir": run_dir,
                          "model": self._model_path, "checkpoint": run_dir / "checkpoint.pt",
                          "report": report, "log": _read_log(run_dir / LOG_NAME)})
        return report

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every validation of every fit, in order: ``fit``, ``step`` (within its fit),
        ``epoch``, ``lr``, mean ``losses`` since the previous line and ``val`` metrics
        (what each run's ``log.jsonl`` holds)."""
        return [{"fit": run["run"], **line} for run in self.runs for line in run["log"]]

    @property
    def model_path(self) -> Path | None:
        """The latest model file (the last fit's, or the one loaded), ``None`` before."""
        return self._model_path

    # -- predicting --------------------------------------------------------------

    def translator(self, direction: str = "a2b", device: str | None = None,
                   precision: str | None = None) -> Translator:
        """The generator of ``direction`` as ``geogan translate`` runs it (eval mode), loaded
        from the model file once and kept.

        Args:
            direction: ``a2b``, or ``b2a`` for CycleGAN.
            device: Default: the model's ``device``.
            precision: Default: the ``precision`` setting (``auto``: bf16 where native).

        Raises:
            ConfigError: Before the model was fitted or loaded.
        """
        path = self._require_model()
        key = (direction, device or self.device, precision or self._precision)
        if key not in self._translators:
            self._translators[key] = load_translator(path, direction=key[0], device=key[1],
                                                     precision=key[2])
        return self._translators[key]

    def predict(self, array_or_path: NDArray[Any] | str | os.PathLike[str],
                convert_to: str | None = None, *, valid: NDArray[Any] | None = None
                ) -> NDArray[Any]:
        """Translate a chip-sized array, or a small raster, in memory.

        Args:
            array_or_path: (bands, H, W) or (H, W) values in the source domain's units,
                H and W at most the tile size; or the path of a raster of at most
                :data:`PREDICT_MAX_TILES` tiles of pixels (larger: use :meth:`translate`).
            convert_to: ``b`` (default) or, for CycleGAN, ``a`` (the target back to the
                input domain).
            valid: For an array, an optional (H, W) mask of valid pixels.

        Returns:
            (bands, H, W) in the output domain's data type and units (nodata where the
            input was nodata, when the output domain has a nodata value).

        Raises:
            InputError: Bands or size that do not fit the model, or a raster too large.
            ConfigError: Before the model was fitted or loaded, or a bad ``convert_to``.
        """
        translator = self.translator(self._direction(convert_to))
        if not isinstance(array_or_path, str | os.PathLike):
            return translator.translate_array(np.asarray(array_or_path), valid)
        with open_raster(array_or_path, georeferenced=False) as dataset:
            pixels = dataset.width * dataset.height
        if pixels > PREDICT_MAX_TILES * translator.tile_size ** 2:
            raise InputError(f"{os.fspath(array_or_path)} has {pixels} pixels, more than "
                             f"predict translates in memory ({PREDICT_MAX_TILES} tiles of "
                             f"{translator.tile_size}²); use model.translate(src, dst)")
        with tempfile.TemporaryDirectory(prefix="geogan-predict-") as folder:
            out = Path(folder) / "predicted.tif"
            with warnings.catch_warnings():  # the array has no CRS to lose
                warnings.filterwarnings("ignore", ".*has no CRS", GeoganWarning)
                translate_raster(array_or_path, out, translator)
            with rasterio.open(out) as dataset:
                result: NDArray[Any] = dataset.read()
        return result

    def translate(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                  convert_to: str | None = None, **options: Any) -> TranslateReport:
        """Translate a whole scene of any size into a GeoTIFF, as ``geogan translate``.

        Args:
            src: The scene.
            dst: The GeoTIFF to write (same CRS, transform and size as ``src``).
            convert_to: ``b`` (default) or, for CycleGAN, ``a``.
            **options: Fields of :class:`~geogan.inference.scene.TranslateOptions` (``overlap``,
                ``blend``, ``batch_size``, ``device``, ``precision``, ``cog``,
                ``overwrite``, ...) and ``progress``.

        Raises:
            GeoganError: What :func:`~geogan.inference.scene.translate_raster` raises.
        """
        direction = self._direction(convert_to)
        translator = self.translator(direction, options.pop("device", None),
                                     options.pop("precision", None))
        progress = options.pop("progress", None)
        with Bar("translate", "window", enabled=self.verbose and progress is None) as bar:
            return translate_raster(src, dst, translator, progress=progress or bar,
                                    **options)

    # -- looking at results ------------------------------------------------------

    def show_results(self, rows: int = 4, rgb_bands: RGB = None) -> Figure:
        """A figure of ``rows`` validation chips (training chips when there are none):
        input | output | target for Pix2Pix; a | a→b | b | b→a for CycleGAN on unpaired
        chips. Outputs come from the model file's generators in eval mode, as translated.

        Raises:
            ConfigError: Without data or a model, or without matplotlib.
        """
        data = self._require_data("show_results")
        return results_figure(self._eval_folder(data), data.domains, self._model_normalization(),
                              self.predict, rows, rgb_bands)

    def plot_losses(self) -> Figure:
        """A figure of the last fit (an interrupted one included) against the step, from its
        ``log.jsonl``: above, the training losses (``d_real``, ``d_fake``, ``g_gan``,
        ``g_l1``, ... for Pix2Pix; ``g_a2b``, ``cycle_a``, ``d_a``, ... for CycleGAN), each
        the mean since the previous validation; below, the validation metrics (L1, SSIM;
        PSNR in dB on the right-hand axis). As arcgis.learn's ``plot_losses``.

        Raises:
            ConfigError: Before the first fit (a model from :meth:`from_model` has no log),
                before the fit's first validation, or without matplotlib.
        """
        if self._run_dir is None:
            raise ConfigError("no training log yet: plot_losses shows the losses of fit(); "
                              "call fit() first")
        log = _read_log(self._run_dir / LOG_NAME)
        if not log:
            raise ConfigError(f"no training log yet in {self._run_dir / LOG_NAME}: the fit "
                              "has not reached its first validation")
        return losses_figure(log, f"{type(self).__name__}, {self._run_dir.name}")

    def compute_metrics(self, palette: Mapping[str, Sequence[float]] | str | None = "auto"
                        ) -> dict[str, Any]:
        """L1, PSNR and SSIM over the validation chips, in eval mode as translated.

        The output is translated from each validation chip as ``translate`` would (the
        output's data type included), mapped with the target domain's value mapping to
        [-1, 1], and scored against the target chip (PSNR with a data range of 2, SSIM
        with :func:`geogan.evaluation.image_metrics.ssim`) on the pixels valid in both.
        For CycleGAN on unpaired chips the score is of the cycle a → b → a against a. When
        the target is a flat-colour map, per-class accuracy, pixel accuracy and mean IoU
        are added (:mod:`geogan.api.chip_metrics`).

        Args:
            palette: ``auto`` (the ``GEOGAN_PALETTE`` tag of the target raster the chips
                were cut from, or of the chips; else their flat colours when they have
                few), a mapping of class names to colours, or ``None`` for no class scores.

        Returns:
            ``{"l1", "psnr", "ssim", "chips", "cycle"}`` plus, with a palette,
            ``{"pixel_accuracy", "mean_iou", "accuracy": {class: share}, "iou": {...}}``.

        Raises:
            ConfigError: Without data or a model, or no validation chip.
        """
        data = self._require_data("compute_metrics")
        return chip_metrics(self._eval_folder(data), data.path, self._model_normalization(),
                            self.predict, palette)

    # -- saving ------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the model file: a byte-for-byte copy of the one training wrote (what
        ``geogan train -o`` writes), atomically.

        Raises:
            ConfigError: Before the model was fitted or loaded.
            OutputExistsError: If ``path`` exists and ``overwrite`` is false.
            OutputError: If it cannot be written.
        """
        source, target = self._require_model(), Path(path)
        check_model_output(target, overwrite)
        if target.exists() and target.samefile(source):
            return target
        with atomic_file(target, "model file") as temporary:
            shutil.copyfile(source, temporary)
        return target

    # -- what the Translator offers, for code written against it ----------------

    @property
    def tile_size(self) -> int:
        """Side of the tiles the model translates."""
        return self.translator().tile_size

    @property
    def in_bands(self) -> int:
        """Bands of the input domain."""
        return self.translator().in_bands

    @property
    def out_bands(self) -> int:
        """Bands of the target domain."""
        return self.translator().out_bands

    @property
    def generator(self) -> torch.nn.Module:
        """The a → b generator as translation runs it (eval mode; a resize U-Net's
        decoder folded, see :class:`geogan.inference.translator.Translator`)."""
        return self.translator().generator

    def translate_array(self, array: NDArray[Any], valid: NDArray[Any] | None = None
                        ) -> NDArray[Any]:
        """:meth:`Translator.translate_array` of the a → b generator."""
        return self.translator().translate_array(array, valid)

    def __fspath__(self) -> str:
        """The model file, so that the model can be given wherever a path is taken
        (``geogan.translate_raster(src, dst, model)``)."""
        return os.fspath(self._require_model())

    def __repr__(self) -> str:
        state = (f"model {self._model_path}" if self._model_path else "not fitted")
        data = f"{self.data.path}" if self.data is not None else "no data"
        return (f"{type(self).__name__}(preset={self.preset!r}, {data}, {state}, "
                f"{len(self.runs)} fit(s))")

    # -- helpers -----------------------------------------------------------------

    @property
    def _precision(self) -> str:
        return str(self.config.get("precision") or "auto")

    def _overrides(self, data: ChipData) -> dict[str, Any]:
        overrides = {"seed": data.seed, "batch_size": data.batch_size}
        overrides.update({k: v for k, v in self.config.items() if v is not None})
        return overrides

    def _configs(self, data: ChipData, overrides: Mapping[str, Any] | None = None
                 ) -> tuple[Architecture, TrainConfig]:
        return build_configs(self.kind, data.bands["a"], data.bands["b"], data.chip_size,
                             preset=self.preset,
                             overrides=self._overrides(data) if overrides is None else overrides)

    def _check_data(self, data: ChipData) -> None:
        check_kind_fits_chips(self.kind, data.paired, data.path, "use geogan.CycleGAN(data)")
        if self.architecture is not None:
            arch = self.architecture
            if (data.bands["a"], data.bands["b"], data.chip_size) != (
                    arch.in_bands, arch.out_bands, arch.tile_size):
                raise ConfigError(
                    f"the model reads {arch.in_bands} → {arch.out_bands} band(s) in tiles of "
                    f"{arch.tile_size}, but {data.path} holds {data.bands['a']} → "
                    f"{data.bands['b']} band(s) in chips of {data.chip_size}")

    def _require_data(self, what: str) -> ChipData:
        if self.data is None:
            raise ConfigError(f"{what} needs chips: {type(self).__name__}.from_model(path, "
                              "data=geogan.prepare_data(...))")
        return self.data

    def _require_model(self) -> Path:
        if self._model_path is None:
            raise ConfigError("the model is not trained yet: call fit() first, or load a "
                              "model file with geogan.GANModel.from_model(path)")
        return self._model_path

    def _direction(self, convert_to: str | None) -> str:
        if convert_to in (None, "b"):
            return "a2b"
        if convert_to == "a" and self.kind == "cyclegan":
            return "b2a"
        if convert_to == "a":
            raise ConfigError("a Pix2Pix model translates a → b only; convert_to='a' needs "
                              "a CycleGAN")
        raise ConfigError(f"convert_to must be 'a' or 'b', not {convert_to!r}")

    def _work_dir(self) -> Path:
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="geogan-"))
        return self.work_dir

    def _model_normalization(self) -> dict[str, BandNormalization]:
        translator = self.translator()
        return {"a": translator.input_normalization, "b": translator.output_normalization}

    def _eval_folder(self, data: ChipData) -> ChipFolder:
        """The split the trainer used: a folder without geogan metadata is split with
        the training seed, which a model setting may have changed."""
        seed = int(self._overrides(data).get("seed") or 0)
        if data.folder.source == "geogan" or seed == data.seed:
            return data.folder
        return open_chip_folders(data.paths, val_fraction=data.val_split_pct, seed=seed)


class Pix2Pix(GANModel):
    """Pix2Pix (Isola et al. 2017) on paired chips: a U-Net generator and a PatchGAN.
    See :class:`GANModel` for the arguments and methods."""

    kind: ClassVar[str] = "pix2pix"


class CycleGAN(GANModel):
    """CycleGAN (Zhu et al. 2017) on unpaired (or paired) chips: two ResNet generators,
    a → b and b → a. ``predict(..., convert_to='a')`` translates back. See
    :class:`GANModel` for the arguments and methods."""

    kind: ClassVar[str] = "cyclegan"


_CLASSES: dict[str, type[GANModel]] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN}
_ARCH_SETTINGS = ("generator", "ngf", "ndf", "n_layers", "norm", "dropout", "resnet_blocks")


# --------------------------------------------------------------------------- helpers


def _read_log(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, ValueError):
        return []
