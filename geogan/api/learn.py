"""The arcgis.learn-style Python API: ``prepare_data``, ``Pix2Pix``, ``CycleGAN``.

For notebook users who know the workflow of ``arcgis.learn``::

    data = geogan.prepare_data("chips/")           # Pix2Pix or CycleGAN, from the layout
    data.show_batch(rows=4)                        # a matplotlib figure: input | target
    model = geogan.Pix2Pix(data)                   # preset "tiny"; any setting by keyword
    model.fit(10)                                  # 10 epochs, a progress bar
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
* ``batch_size`` defaults to the trainer's (1, as in both papers), not 64.
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

from geogan.chips.layout import source_raster
from geogan.errors import ConfigError, GeoganWarning, InputError, ModelFileError
from geogan.evaluation.image_metrics import MetricMean, image_metrics
from geogan.evaluation.class_metrics import palette_confusion, scores_from_confusion
from geogan.inference.scene import TranslateReport, translate_raster
from geogan.inference.translator import Translator
from geogan.inference.translator import load_model as load_translator
from geogan.nn.config import Architecture, TrainConfig, build_configs
from geogan.nn.model_file import check_model_output, read_model_file
from geogan.nn.normalization import BandNormalization
from geogan.outputs import atomic_file
from geogan.progress import Bar
from geogan.raster.band_stats import BandStatistics
from geogan.raster.io import open_raster
from geogan.raster.palette import detect_palette, given_palette, palette_in_tags
from geogan.raster.preview import normalized_to_display
from geogan.training.chip_folder import ChipFolder, DomainInfo, open_chip_folder, read_chip
from geogan.training.loop import (
    LOG_NAME,
    TrainOptions,
    TrainProgress,
    TrainReport,
    steps_per_epoch,
    train,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ChipData", "CycleGAN", "GANModel", "Pix2Pix", "load_model", "prepare_data"]

DATASET_TYPES = {"pix2pix": "Pix2Pix", "cyclegan": "CycleGAN"}
"""arcgis.learn's dataset type names, by geogan's model kind."""

DEFAULT_PRESET = "tiny"
"""The models' default preset: trains in minutes on a CPU (``geogan train``: ``paper``)."""

PREDICT_MAX_TILES = 16
"""``predict`` on a raster translates at most this many tiles' worth of pixels in memory;
larger rasters go through ``translate`` into a file."""

RGB = Sequence[int] | Mapping[str, Sequence[int]] | None
"""Bands to show (0-based): one or three per domain; a sequence is for the input domain
(``a``), a mapping gives ``{"a": [...], "b": [...]}``; ``None`` is the preview's rule."""


# --------------------------------------------------------------------------- data


class ChipData:
    """A chip folder opened for the models: what :func:`prepare_data` returns.

    Attributes:
        path: The chip folder.
        dataset_type: ``Pix2Pix`` (paired chips) or ``CycleGAN``.
        chip_size: Side of the square chips, pixels.
        batch_size: Chips per training step, or ``None`` for the trainer's default (1).
        val_split_pct: Validation share drawn from folders without geogan metadata.
        seed: Seed of that draw, and the models' training seed unless they set one.
        folder: The underlying :class:`~geogan.training.dataset.ChipFolder` (split, domains).
    """

    def __init__(self, folder: ChipFolder, dataset_type: str, batch_size: int | None,
                 val_split_pct: float, seed: int) -> None:
        self.folder = folder
        self.path = folder.root
        self.dataset_type = dataset_type
        self.chip_size = folder.tile_size
        self.batch_size = batch_size
        self.val_split_pct = val_split_pct
        self.seed = seed

    @property
    def kind(self) -> str:
        """geogan's model kind: ``pix2pix`` or ``cyclegan``."""
        return "pix2pix" if self.dataset_type == "Pix2Pix" else "cyclegan"

    @property
    def paired(self) -> bool:
        """Whether chips come in input/target pairs (``images/`` + ``images2/``)."""
        return self.folder.paired

    @property
    def domains(self) -> dict[str, DomainInfo]:
        """``a`` (input) and ``b`` (target): folder, bands, dtype, nodata, statistics."""
        return self.folder.domains

    @property
    def bands(self) -> dict[str, int]:
        """Band count of each domain."""
        return {d: info.bands for d, info in self.domains.items()}

    @property
    def n_channels(self) -> int:
        """Bands of the input domain (arcgis.learn's ``n_channel``)."""
        return self.domains["a"].bands

    @property
    def dtypes(self) -> dict[str, str]:
        """Data type of each domain's chips."""
        return {d: info.dtype for d, info in self.domains.items()}

    @property
    def statistics(self) -> dict[str, tuple[BandStatistics, ...]]:
        """Per-band statistics of each domain's training chips (min, max, mean, std,
        2nd and 98th percentiles): what the models' value mapping is made from."""
        return {d: info.statistics for d, info in self.domains.items()}

    @property
    def train_count(self) -> int:
        """Training chips of the input domain (pairs, when paired)."""
        return len(self.folder.train["a"])

    @property
    def val_count(self) -> int:
        """Validation chips of the input domain (pairs, when paired)."""
        return len(self.folder.val["a"])

    def __repr__(self) -> str:
        lines = [f"ChipData({self.dataset_type}, {self.path})",
                 f"  chips     {self.chip_size} × {self.chip_size}, {self.folder.source} "
                 f"folder, {self.train_count} train / {self.val_count} val"
                 + (" pairs" if self.paired else " (domain a)")]
        for domain, info in self.domains.items():
            ranges = ", ".join(f"{s.p2:.4g}…{s.p98:.4g}" for s in info.statistics)
            lines.append(f"  {domain} ({info.folder + '/':9}) {info.bands} band(s) {info.dtype}, "
                         f"nodata {info.nodata}, 2–98 %: {ranges}")
        return "\n".join(lines)

    def show_batch(self, rows: int = 4, rgb_bands: RGB = None, split: str = "train") -> Figure:
        """A figure of ``rows`` chips: input | target when paired, a sample of each
        domain side by side when unpaired. Values are shown as the training previews
        show them (the models' value mapping; invalid pixels black).

        Args:
            rows: Chips to show (fewer when the split holds fewer).
            rgb_bands: Bands to show (0-based), see :data:`RGB`.
            split: ``train`` or ``val``.

        Raises:
            ConfigError: Without matplotlib, for a bad band or an empty split.
        """
        chips = _split(self.folder, split)
        rng = np.random.default_rng(self.seed)
        picks = {d: rng.permutation(len(chips[d]))[:rows] for d in ("a", "b")}
        if self.paired:
            picks["b"] = picks["a"]
        count = min(len(picks["a"]), len(picks["b"]))
        panels = [[_chip_panel(chips[d][int(picks[d][i])], self.domains[d].normalization(),
                               _bands_for(rgb_bands, d, self.domains[d].bands)) for d in "ab"]
                  for i in range(count)]
        titles = (["input (a)", "target (b)"] if self.paired
                  else [f"{self.domains['a'].folder}/", f"{self.domains['b'].folder}/"])
        return _figure(panels, titles)


def prepare_data(path: str | os.PathLike[str], dataset_type: str | None = None, *,
                 batch_size: int | None = None, chip_size: int | None = None,
                 val_split_pct: float = 0.1, seed: int = 42) -> ChipData:
    """Open a chip folder for :class:`Pix2Pix` or :class:`CycleGAN` (``arcgis.learn``'s
    ``prepare_data``).

    Args:
        path: A folder from ``geogan export-chips``, or from ArcGIS Pro's *Export
            Training Data For Deep Learning* (*Export Tiles*): ``images/`` + ``images2/``
            (paired) or ``train_a/`` + ``train_b/`` (unpaired).
        dataset_type: ``Pix2Pix`` or ``CycleGAN`` (any case); ``None`` infers it from the
            layout (paired → Pix2Pix, unpaired → CycleGAN).
        batch_size: Chips per training step; ``None`` for the trainer's default (1).
        chip_size: ``None`` for the chips' own size; a number must equal it (geogan
            does not resize chips).
        val_split_pct: Share of the chips drawn at random for validation, for folders
            without geogan metadata only: geogan's folders carry their own spatial split
            (``geogan export-chips --val-fraction``).
        seed: Seed of that draw, and the models' training seed unless they set one.

    Returns:
        The opened data.

    Raises:
        ChipFolderError: The folder is missing, empty or inconsistent.
        ConfigError: An unknown dataset type, Pix2Pix on unpaired chips, a chip size other
            than the chips', or a value out of range.
    """
    kind = None if dataset_type is None else _kind(dataset_type)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    if seed < 0:
        raise ConfigError(f"seed must not be negative, not {seed}")
    folder = open_chip_folder(path, val_fraction=val_split_pct, seed=seed)
    if kind == "pix2pix" and not folder.paired:
        raise ConfigError(f"Pix2Pix needs paired chips (images/ and images2/), but {path} holds "
                          "unpaired chips; use dataset_type='CycleGAN'")
    if chip_size is not None and chip_size != folder.tile_size:
        raise ConfigError(f"the chips in {path} are {folder.tile_size} × {folder.tile_size} "
                          f"pixels, not {chip_size}; geogan does not resize chips: export them "
                          f"with --tile-size {chip_size}, or leave chip_size=None")
    kind = kind or ("pix2pix" if folder.paired else "cyclegan")
    return ChipData(folder, DATASET_TYPES[kind], batch_size, val_split_pct, seed)


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
                                 f"geogan.load_model or {DATASET_TYPES[kind]}.from_model")
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
        train_options = TrainOptions(
            kind=self.kind, preset=self.preset, overrides=overrides, device=self.device,
            checkpoint_dir=run_dir, init_from=previous, overwrite=True,
            val_fraction=data.val_split_pct)
        with Bar(f"fit {len(self.runs) + 1}", "step",
                 enabled=self.verbose and progress is None) as bar:
            report = train(data.path, run_dir / "model.pt", train_options,
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
        folder = self._eval_folder(data)
        chips = folder.val if folder.val["a"] else folder.train
        norms = {d: data.domains[d].normalization() for d in "ab"}
        model_norms = self._model_normalization()
        bands = {d: _bands_for(rgb_bands, d, data.domains[d].bands) for d in "ab"}
        panels: list[list[NDArray[np.uint8]]] = []
        for i in range(min(rows, len(chips["a"]), len(chips["b"]))):
            row = []
            for source, target in (("a", "b"),) if folder.paired else (("a", "b"), ("b", "a")):
                path = chips[source][i]
                row.append(_chip_panel(path, norms[source], bands[source]))
                pixels, valid = read_chip(path)
                output = self.predict(pixels, "b" if target == "b" else "a", valid=valid)
                row.append(_panel(model_norms[target].normalize(output), valid, bands[target]))
            if folder.paired:
                row.append(_chip_panel(chips["b"][i], norms["b"], bands["b"]))
            panels.append(row)
        titles = (["input", "output", "target"] if folder.paired
                  else ["a", "a → b", "b", "b → a"])
        return _figure(panels, titles)

    def compute_metrics(self, palette: Mapping[str, Sequence[float]] | str | None = "auto"
                        ) -> dict[str, Any]:
        """L1, PSNR and SSIM over the validation chips, in eval mode as translated.

        The output is translated from each validation chip as ``translate`` would (the
        output's data type included), mapped with the target domain's value mapping to
        [-1, 1], and scored against the target chip (PSNR with a data range of 2, SSIM
        with :func:`geogan.evaluation.image_metrics.ssim`) on the pixels valid in both. For CycleGAN on
        unpaired chips the score is of the cycle a → b → a against a. When the target is
        a flat-colour map, per-class accuracy, pixel accuracy and mean IoU are added.

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
        folder = self._eval_folder(data)
        if not folder.val["a"] or not folder.val["b"]:
            raise ConfigError(f"{data.path} has no validation chips; export the chips with "
                              "--val-fraction above 0 (or prepare_data(val_split_pct=...))")
        cycle = not folder.paired
        norms = self._model_normalization()
        mean = MetricMean()
        colours = None if cycle else _resolve_palette(palette, folder)
        palette_array = None if colours is None else np.asarray(list(colours.values()), float)
        confusion: NDArray[np.int64] | None = None
        for i, path in enumerate(folder.val["a"]):
            pixels, valid = read_chip(path)
            output = self.predict(pixels, valid=valid)
            if cycle:
                reference, reference_valid, role = pixels, valid, "a"
                output = self.predict(output, "a", valid=valid)
            else:
                reference, reference_valid = read_chip(folder.val["b"][i])
                role = "b"
            scored = valid & reference_valid  # (H, W)
            x, y = (torch.from_numpy(norms[role].normalize(v))[None] for v in (output, reference))
            mean.update(image_metrics(x, y, torch.from_numpy(scored)[None, None].float()))
            if palette_array is not None:
                matrix = palette_confusion(output, reference, palette_array, scored)
                confusion = matrix if confusion is None else confusion + matrix
        result: dict[str, Any] = {**mean.result(), "chips": len(folder.val["a"]),
                                  "cycle": cycle}
        if colours is not None and confusion is not None:
            scores = scores_from_confusion(confusion, list(colours))
            result.update(pixel_accuracy=scores.pixel_accuracy, mean_iou=scores.mean_iou,
                          accuracy=scores.accuracy, iou=scores.iou)
        return result

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
        """The a → b generator (eval mode)."""
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
        if self.kind == "pix2pix" and not data.paired:
            raise ConfigError(f"Pix2Pix needs paired chips, but {data.path} holds unpaired "
                              "chips; use geogan.CycleGAN(data)")
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
                              "model file with geogan.load_model(path)")
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
        return open_chip_folder(data.path, val_fraction=data.val_split_pct, seed=seed)


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


def load_model(path: str | os.PathLike[str], data: ChipData | None = None,
               **kwargs: Any) -> GANModel:
    """A :class:`Pix2Pix` or :class:`CycleGAN`, as the model file says, to predict, translate
    or fit further (see :meth:`GANModel.from_model`).

    ``geogan.inference.translator.load_model`` gives the bare :class:`~geogan.inference.translator.Translator`.

    Raises:
        ModelFileError: The file is missing, damaged or not a geogan model file.
    """
    return GANModel.from_model(path, data, **kwargs)


# --------------------------------------------------------------------------- helpers


def _kind(dataset_type: str) -> str:
    kind = dataset_type.lower()
    if kind not in DATASET_TYPES:
        raise ConfigError(f"unknown dataset_type {dataset_type!r}; use Pix2Pix or CycleGAN")
    return kind


def _split(folder: ChipFolder, split: str) -> dict[str, tuple[Path, ...]]:
    if split not in ("train", "val"):
        raise ConfigError(f"split must be 'train' or 'val', not {split!r}")
    chips: dict[str, tuple[Path, ...]] = getattr(folder, split)
    if not chips["a"] or not chips["b"]:
        raise ConfigError(f"{folder.root} has no {split} chips to show")
    return chips


def _bands_for(rgb_bands: RGB, domain: str, count: int) -> list[int] | None:
    """The 0-based bands of ``domain`` to show, checked; ``None`` for the preview rule."""
    if rgb_bands is None:
        return None
    chosen = (rgb_bands.get(domain) if isinstance(rgb_bands, Mapping)
              else rgb_bands if domain == "a" else None)
    if chosen is None:
        return None
    bands = [int(b) for b in chosen]
    if len(bands) not in (1, 3) or not all(0 <= b < count for b in bands):
        raise ConfigError(f"rgb_bands for domain {domain} must be 1 or 3 band indices from 0 "
                          f"to {count - 1}, not {list(chosen)}")
    return bands


def _panel(normalized: NDArray[Any], valid: NDArray[np.bool_],
           bands: list[int] | None) -> NDArray[np.uint8]:
    """(3, H, W) uint8 of a chip in the models' [-1, 1] space, as training previews."""
    shown = normalized if bands is None else normalized[bands]
    return normalized_to_display(shown, valid)


def _chip_panel(path: Path, norm: BandNormalization, bands: list[int] | None
                ) -> NDArray[np.uint8]:
    pixels, valid = read_chip(path)
    return _panel(norm.normalize(pixels), valid, bands)


def _figure(rows: Sequence[Sequence[NDArray[np.uint8]]], titles: Sequence[str]) -> Figure:
    """A matplotlib figure of panels, one row per chip, titled columns."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'geogan[plot]'") from None
    figure = Figure(figsize=(2.6 * len(titles), 2.6 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), len(titles), squeeze=False)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            axes[i][j].imshow(np.moveaxis(panel, 0, -1), interpolation="nearest")
            axes[i][j].set_axis_off()
            if i == 0:
                axes[i][j].set_title(titles[j], fontsize=10)
    return figure


def _resolve_palette(palette: Mapping[str, Sequence[float]] | str | None,
                     folder: ChipFolder) -> dict[str, Sequence[float]] | None:
    """The target's classes: given, from a palette tag, or its flat colours."""
    if palette is None:
        return None
    if isinstance(palette, Mapping) or palette != "auto":
        return dict(given_palette(palette))
    target = folder.domains["b"]
    if np.dtype(target.dtype).kind not in "ui" or target.bands > 4:
        return None
    sources = [_source_raster(folder), *folder.val["b"][:1]]
    for source in sources:
        if source is not None and source.exists():
            with rasterio.open(source) as dataset:
                tags = dataset.tags()
            tagged = palette_in_tags(tags)
            if tagged is not None:
                return dict(tagged)
    source = _source_raster(folder)
    if source is None or not source.exists():
        return None
    with rasterio.open(source) as dataset:
        detected = detect_palette(dataset)
    return None if detected is None else dict(detected)


def _source_raster(folder: ChipFolder) -> Path | None:
    """The target raster a geogan chip folder was cut from, as its metadata records."""
    if folder.source != "geogan":
        return None
    return source_raster(folder.root, "b")


def _read_log(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, ValueError):
        return []
