"""Fit Pix2Pix or CycleGAN on a chip folder and write the model file: ``geogan train``.

The run is a pure function of the chip folder, the configuration and the seed: data
order and augmentation come from :func:`geogan.training.dataset.epoch_keys`, which depend on
(seed, epoch) only; dropout draws from torch's seeded generator; the CycleGAN pools have
generators of their own. A checkpoint stores all of that state, so a run that is
stopped and resumed (``--resume``) ends with the same weights as one that was not.

What the checkpoint folder holds (``<model>-train/`` beside the model by default):

``checkpoint.pt``
    Networks, optimisers, step, RNG states; written atomically at every validation, at
    the end, and when Ctrl-C stops the run.
``log.jsonl``
    One JSON object per validation: step, epoch, learning rate, mean losses since the
    last line, validation metrics, seconds, and the share of time spent waiting for data.
``previews/step-NNNNNNN.png``
    Input | output | target of a few validation chips.

Eval-mode quality: translate runs the generator in eval mode, where BatchNorm uses its
running averages. Those averages drift during training (especially at batch 1), so the
run ends with a recalibration pass (:mod:`geogan.training.recalibration`): exact averages
of the batch statistics over the training chips, no weight update, dropout off.
The record keeps validation metrics in eval mode before and after it and in train mode
(batch statistics) for comparison.

Several processes: under ``torchrun`` the run is data-parallel with PyTorch
DistributedDataParallel (see :mod:`geogan.training.distributed`); rank 0 alone writes the
checkpoint folder and the model file, and a checkpoint written by N processes resumes
with any number of them, a single one included.

Warm start (``init_from``): a new run, with its own schedule from step 0, that starts
from the networks and optimisers of another run's checkpoint, or from the generators of
a model file (fine-tuning on new chips, or the Python API's repeated ``fit``).
The checkpoint format, the resume check and the warm start are
:mod:`geogan.training.checkpoints`; the record stored in the model file is
:mod:`geogan.nn.training_record`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from geogan.errors import (
    CheckpointError,
    ConfigError,
    DistributedError,
    OutputError,
    OutputExistsError,
    TrainingInterrupted,
)
from geogan.evaluation.image_metrics import MetricMean, image_metrics
from geogan.nn.config import (
    DEFAULT_PRESET,
    Architecture,
    TrainConfig,
    build_configs,
    check_kind_fits_chips,
)
from geogan.nn.devices import resolve_device, resolve_precision
from geogan.nn.model_file import ModelFile, check_model_output, save_model_file
from geogan.nn.networks import set_dropout
from geogan.nn.training_record import training_record
from geogan.raster.preview import grid, normalized_to_display, write_png
from geogan.training.batches import EpochBatches, steps_per_epoch
from geogan.training.checkpoints import (
    CHECKPOINT_HEADER,
    CHECKPOINT_NAME,
    check_resumable,
    read_checkpoint,
    save_checkpoint,
    truncate_log,
    warm_start,
)
from geogan.training.chip_folder import ChipFolder
from geogan.training.class_palette import (
    normalized_colours,
    with_class_head,
    without_map_discriminator,
)
from geogan.training.dataset import ChipDataset, Key, epoch_keys, val_keys
from geogan.training.distributed import (
    ProcessGroup,
    parameter_digest,
    process_group,
    rank_device,
    restarted_by_torchrun,
)
from geogan.training.folder_union import ChipFolders, open_chip_folders
from geogan.training.rare_repeats import chip_repeats
from geogan.training.recalibration import recalibrate_batchnorm
from geogan.training.steps import TRAINERS, GANTrainer
from geogan.training.stop_flag import StopFlag
from geogan.training.tensorboard_log import TensorBoardLog, require_tensorboard, tensorboard_log
from geogan.training.trained_on import band_descriptions, data_profile

LOG_NAME = "log.jsonl"
PREVIEW_FOLDER = "previews"
LOSS_SYNC_STEPS = 10
"""Losses are copied to the host (a synchronisation) once per this many steps."""
CHIP_CACHE_BYTES = 512 * 2**20
"""Chips a training keeps in memory after their first read, shared among the loader's
worker processes (each keeps its part): 1024 pairs of 256² RGB uint8 chips with their
validity masks."""



@dataclass(frozen=True)
class TrainOptions:
    """What to train and where; the model settings are in ``overrides``.

    Attributes:
        kind: ``pix2pix`` or ``cyclegan``; ``None`` picks from the chip layout
            (paired → Pix2Pix, unpaired → CycleGAN).
        preset: ``faithful`` (the default), ``paper`` or ``tiny``.
        overrides: Values of :class:`~geogan.nn.config.Architecture` or
            :class:`~geogan.nn.config.TrainConfig` that replace the preset's; ``None``
            values are ignored.
        device: ``auto``, ``cpu`` or ``cuda``.
        checkpoint_dir: Checkpoints, log and previews; default ``<model>-train/``.
        resume: Continue from the checkpoint in ``checkpoint_dir``.
        overwrite: Replace an existing model file and start over an existing
            checkpoint folder. ``resume`` also replaces the model file.
        preview_chips: Validation chips shown in each preview grid.
        init_from: Start from this checkpoint (networks and optimisers) or model file
            (generators); the architecture must match. Not with ``resume``.
        val_fraction: For chip folders without geogan's metadata: the share of chips
            drawn (with the seed) for validation. geogan folders carry their split.
        tensorboard: Also write TensorBoard event files here at each validation (losses,
            metrics, learning rate, preview; :mod:`geogan.training.tensorboard_log`).
    """

    kind: str | None = None
    preset: str = DEFAULT_PRESET
    overrides: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    checkpoint_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    preview_chips: int = 4
    init_from: Path | None = None
    val_fraction: float = 0.1
    tensorboard: str | os.PathLike[str] | None = None


@dataclass(frozen=True)
class TrainProgress:
    """What the progress callback is told, every few steps."""

    step: int
    total: int
    epoch: int
    losses: Mapping[str, float]
    start: int = 0
    """Step the run started (or resumed) from."""


@dataclass(frozen=True)
class TrainReport:
    """The outcome of :func:`train`."""

    model_path: Path
    checkpoint_dir: Path
    architecture: Architecture
    config: TrainConfig
    device: str
    precision: str
    steps: int
    resumed_from: int
    seconds: float
    data_wait_fraction: float
    history: Sequence[Mapping[str, Any]]
    final: Mapping[str, Any]
    rank: int = 0
    """This process's rank; only rank 0 wrote the files."""
    world_size: int = 1


def train(chips: ChipFolders, output: str | os.PathLike[str],
          options: TrainOptions = TrainOptions(),
          progress: Callable[[TrainProgress], None] | None = None) -> TrainReport:
    """Fit a model on ``chips`` (a chip folder, or several trained on as one) and write
    the model file ``output``.

    Raises:
        ChipFolderError: If a chip folder is missing, empty or inconsistent, or the
            folders differ in layout, bands, data types or tile size.
        ConfigError: For unknown or out-of-range settings, Pix2Pix on unpaired chips, or
            ``tensorboard`` without the tensorboard package.
        DeviceError: If the device or precision is not available.
        OutputExistsError: If the model or a checkpoint exists and neither
            ``overwrite`` nor ``resume`` says what to do with it.
        CheckpointError: If ``resume`` finds no usable checkpoint, or ``init_from``
            names one that does not fit.
        DistributedError: If the processes torchrun started cannot join or disagree.
        TrainingInterrupted: After Ctrl-C, once a checkpoint is written.
    """
    output = Path(output)
    if options.resume and options.init_from is not None:
        raise ConfigError("--resume continues a run and --init-from starts a new one; "
                          "give one of them")
    if options.tensorboard is not None:
        require_tensorboard()  # before any work, on every process
    run_dir = (Path(options.checkpoint_dir) if options.checkpoint_dir is not None
               else output.with_name(f"{output.stem}-train"))
    if restarted_by_torchrun() and (run_dir / CHECKPOINT_NAME).exists():
        # torchrun --max-restarts starts the same command again after a failure.
        options = replace(options, resume=True, init_from=None)
    # A resumed run writes the model file its first part would have written.
    check_model_output(output, options.overwrite or options.resume)
    seed = int(options.overrides.get("seed") or 0)
    folder = open_chip_folders(chips, val_fraction=options.val_fraction, seed=seed)
    kind = options.kind or ("pix2pix" if folder.paired else "cyclegan")
    check_kind_fits_chips(kind, folder.paired, folder.root, "train it with --model cyclegan")
    architecture, config = build_configs(
        kind, folder.domains["a"].bands, folder.domains["b"].bands, folder.tile_size,
        preset=options.preset, overrides=options.overrides)
    architecture = with_class_head(architecture, config, folder)
    config = without_map_discriminator(architecture, config)
    device = resolve_device(options.device)
    precision = resolve_precision(config.precision, device)
    with process_group(device) as group:
        device = rank_device(group, device)
        run = _Run(folder, architecture, config, device, precision, run_dir, options, group)
        run.start(resume=options.resume, overwrite=options.overwrite)
        with tensorboard_log(options.tensorboard if group.is_main else None, run.step,
                             options.resume) as run.board:
            run.fit(progress if group.is_main else None)
        return run.finish(output, options.overwrite)


class _Run:
    """One training run: state, loop, validation, checkpoints."""

    def __init__(self, folder: ChipFolder, architecture: Architecture, config: TrainConfig,
                 device: torch.device, precision: str, run_dir: Path,
                 options: TrainOptions, group: ProcessGroup) -> None:
        self.folder, self.architecture, self.config = folder, architecture, config
        self.device, self.precision, self.run_dir = device, precision, run_dir
        self.options, self.group = options, group
        self.normalization = {role: folder.domains[role].normalization() for role in ("a", "b")}
        self.workers = config.workers if config.workers is not None else (
            0 if device.type == "cpu" else min(4, (os.cpu_count() or 2) // 2))
        self.steps_per_epoch = steps_per_epoch(folder, config, group)
        self.repeats = chip_repeats(folder, architecture, config, self.normalization["b"])
        self.total = config.steps or config.epochs * self.steps_per_epoch
        self.step = 0
        self.resumed_from = 0
        self.history: list[dict[str, Any]] = []
        self.wait_seconds = 0.0
        self.run_seconds = 0.0
        self.board: TensorBoardLog | None = None
        self.preview: np.ndarray | None = None
        """The latest validation's preview grid, (3, H, W) uint8."""
        torch.manual_seed(config.seed)
        colours = (normalized_colours(architecture.palette, self.normalization["b"])
                   if architecture.palette else None)
        self.trainer: GANTrainer = TRAINERS[architecture.kind](
            architecture, config, device, precision, group, class_colours=colours,
            class_weights=torch.tensor(architecture.class_weights)
            if architecture.class_weights else None)

    # -- checkpoints ---------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def start(self, *, resume: bool, overwrite: bool) -> None:
        """Check the checkpoint folder and, with ``resume``, load its checkpoint."""
        if resume:
            if not self.checkpoint_path.exists():
                raise CheckpointError(f"no checkpoint to resume in {self.run_dir}; run "
                                      "without --resume to start, or give --checkpoint-dir")
            self._load_checkpoint()
            self.group.barrier()
            return
        if self.checkpoint_path.exists() and not overwrite:
            raise OutputExistsError(
                f"{self.run_dir} holds a checkpoint of an earlier run; pass --resume to "
                "continue it or --overwrite to start over")
        if self.options.init_from is not None:
            warm_start(Path(self.options.init_from), self.trainer, self.architecture,
                       self.device)
        if self.group.is_main:
            try:
                (self.run_dir / PREVIEW_FOLDER).mkdir(parents=True, exist_ok=True)
                (self.run_dir / LOG_NAME).write_text("")
            except OSError as error:
                raise OutputError(f"cannot write to the checkpoint folder {self.run_dir}: "
                                  f"{error.strerror or error}") from None
        self.group.barrier()

    def _checkpoint(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            **CHECKPOINT_HEADER,
            "architecture": self.architecture.to_dict(),
            "config": self.config.to_dict(),
            "chips": str(self.folder.root),
            "step": self.step,
            "total": self.total,
            "world_size": self.group.world_size,
            "steps_per_epoch": self.steps_per_epoch,
            "trainer": self.trainer.state_dict(),
            "rng": rng,
            "history": self.history,
            "seconds": self.run_seconds,
            "wait_seconds": self.wait_seconds,
        }

    def save_checkpoint(self) -> None:
        save_checkpoint(self._checkpoint(), self.checkpoint_path)

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        state = read_checkpoint(path, self.device, "run without --resume to start over")
        check_resumable(state, self.architecture, self.config, self.run_dir)
        self.trainer.load_state_dict(state["trainer"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        saved_step = int(state["step"])
        # Written by another number of processes: the same share of the run, counted in
        # this run's steps (explicit --steps are kept as they are).
        saved_per_epoch = int(state.get("steps_per_epoch") or steps_per_epoch(
            self.folder, self.config))
        if self.config.steps is None and saved_per_epoch != self.steps_per_epoch:
            self.step = round(saved_step * self.steps_per_epoch / saved_per_epoch)
        else:
            self.step = saved_step
        self.resumed_from = self.step
        self.history = list(state["history"])
        self.run_seconds = float(state.get("seconds", 0.0))
        self.wait_seconds = float(state.get("wait_seconds", 0.0))
        if self.group.is_main:
            truncate_log(self.run_dir / LOG_NAME, saved_step)
            (self.run_dir / PREVIEW_FOLDER).mkdir(parents=True, exist_ok=True)

    # -- the loop ------------------------------------------------------------------

    def _loader(self, batch_sampler: Iterable[list[Key]], split: str,
                workers: int | None = None) -> DataLoader[Any]:
        workers = self.workers if workers is None else workers
        dataset = ChipDataset(self.folder, split, self.normalization["a"], self.normalization["b"],
                              cache_bytes=CHIP_CACHE_BYTES // max(1, workers))
        return DataLoader(
            dataset, batch_sampler=batch_sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if workers else None,
            # Its own generator: creating a loader must not draw from torch's global
            # generator, which dropout uses (a resumed run would diverge otherwise).
            generator=torch.Generator(),
        )

    def fit(self, progress: Callable[[TrainProgress], None] | None) -> None:
        """Train from the current step to the last, validating and checkpointing."""
        if self.step >= self.total:
            return
        val_every = self.config.val_every or self.steps_per_epoch
        sums: dict[str, Tensor] = {}
        since_log = 0
        batches = self._loader(
            EpochBatches(self.folder, self.config, self.step, self.total, self.group,
                     self.repeats), "train")
        iterator = iter(batches)
        started = time.perf_counter()
        stopping = False
        with StopFlag(second_interrupts=not self.group.distributed) as stop:
            while self.step < self.total:
                self.trainer.set_learning_rate(self._learning_rate(self.step))
                self.trainer.augmenting = augmenting(self.step, self.total,
                                                     self.config.augment_until)
                waited = time.perf_counter()
                batch = self.trainer.to_device(next(iterator))
                self.wait_seconds += time.perf_counter() - waited
                losses = self.trainer.train_step(batch)
                for name, value in losses.items():
                    sums[name] = sums[name] + value if name in sums else value.clone()
                self.step += 1
                since_log += 1
                epoch = (self.step - 1) // self.steps_per_epoch
                if progress is not None and (self.step % LOSS_SYNC_STEPS == 0
                                             or self.step == self.total):
                    progress(TrainProgress(self.step, self.total, epoch,
                                           _means(sums, since_log), self.resumed_from))
                stopping = self.group.any(stop.requested)  # every rank stops at one step
                if self.step % val_every == 0 or self.step == self.total or stopping:
                    self.run_seconds += time.perf_counter() - started
                    mean_losses = self.group.mean(_means(sums, since_log))
                    if self.group.is_main:
                        self._log(epoch, mean_losses, self.validate())
                        self.save_checkpoint()
                    self.group.barrier()
                    sums, since_log = {}, 0
                    started = time.perf_counter()
                if stopping:
                    break
        del iterator
        if stopping and self.step < self.total:
            raise TrainingInterrupted(
                f"stopped at step {self.step} of {self.total}; the checkpoint is in "
                f"{self.run_dir}: run the same command with --resume to continue")

    def _learning_rate(self, step: int) -> float:
        return learning_rate(step, self.total, self.config.lr, self.config.decay_start)

    def _log(self, epoch: int, losses: Mapping[str, float], metrics: Mapping[str, float]) -> None:
        lr = self._learning_rate(self.step - 1)
        record = {
            "step": self.step,
            "epoch": epoch,
            "lr": lr,
            "losses": {k: round(v, 6) for k, v in losses.items()},
            "val": {k: round(v, 6) for k, v in metrics.items()},
            "seconds": round(self.run_seconds, 3),
            "data_wait": round(self.wait_seconds / max(self.run_seconds, 1e-9), 4),
        }
        self.history.append({"step": self.step, **metrics})
        try:
            with open(self.run_dir / LOG_NAME, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
        except OSError as error:
            raise OutputError(f"cannot write the training log in {self.run_dir}: "
                              f"{error.strerror or error}") from None
        if self.board is not None:
            self.board.write(self.step, lr, losses, metrics, self.preview)

    # -- validation ----------------------------------------------------------------

    def validate(self, mode: str = "batch-stats", preview: bool = True) -> dict[str, float]:
        """Mean L1, PSNR and SSIM over the validation chips (and a preview grid).

        ``mode`` is ``batch-stats`` (BatchNorm normalises by each batch's statistics, as
        in training, dropout off; buffers untouched) or ``eval`` (running averages, as
        translate runs). The two are the same for InstanceNorm generators.
        """
        keys = val_keys(self.folder)
        if not keys:
            return {}
        # In this process: a short pass is not worth forking workers for.
        loader = self._loader(_in_batches(keys, self.config.batch_size), "val", 0)
        mean = MetricMean()
        panels: list[list[np.ndarray]] = []
        with _generator_mode(self.trainer.output_generators.values(), mode), torch.no_grad():
            for batch in loader:
                batch = self.trainer.to_device(batch)
                output, reference, mask = self.trainer.validation_outputs(
                    batch, self.folder.paired)
                mean.update(image_metrics(output.float(), reference.float(), mask.float()))
                if preview and len(panels) < self.options.preview_chips:
                    panels += _panels(batch, output, reference, mask,
                                      self.options.preview_chips - len(panels))
        if panels:
            self.preview = grid(panels)
            write_png(self.run_dir / PREVIEW_FOLDER / f"step-{self.step:07d}.png", self.preview)
        return mean.result()

    # -- the end -------------------------------------------------------------------

    def finish(self, output: Path, overwrite: bool) -> TrainReport:
        """Check that every process holds the same weights; then, on rank 0, recalibrate
        BatchNorm, validate in both modes and write the model file."""
        digests = self.group.gather(parameter_digest(self.trainer.generators.values()))
        if len(set(digests)) > 1:
            raise DistributedError(
                f"the generators differ between the {self.group.world_size} training "
                "processes; the model file was not written (were they started from "
                "different code or settings?)")
        final: dict[str, Any] = {}
        if self.group.is_main:
            before = self.validate("eval", preview=False)
            keys = epoch_keys(self.folder, 0, self.config.seed, augment=False)
            loader = self._loader(_in_batches(keys, self.config.batch_size), "train", 0)
            recalibrated = recalibrate_batchnorm(self.trainer.output_generators, loader,
                                                 self.trainer.to_device, self.device,
                                                 self.precision)
            if recalibrated:
                final["eval_before_recalibration"] = before
            final["eval"] = self.validate("eval", preview=True)
            final["batch_stats"] = self.validate("batch-stats", preview=False)
            final["recalibrated_layers"] = recalibrated
            model = ModelFile(
                architecture=self.architecture,
                generators={d: g.state_dict()
                            for d, g in self.trainer.output_generators.items()},
                normalization=self.normalization,
                training=self._record(final, digests),
                trained_on=data_profile(self.folder, self.normalization),
            )
            save_model_file(output, model, overwrite=overwrite or self.options.resume)
        self.group.barrier()
        return TrainReport(
            model_path=output, checkpoint_dir=self.run_dir, architecture=self.architecture,
            config=self.config, device=str(self.device), precision=self.precision,
            steps=self.step, resumed_from=self.resumed_from, seconds=self.run_seconds,
            data_wait_fraction=self.wait_seconds / max(self.run_seconds, 1e-9),
            history=self.history, final=final, rank=self.group.rank,
            world_size=self.group.world_size,
        )

    def _record(self, final: Mapping[str, Any], digests: Sequence[str]) -> dict[str, Any]:
        folder = self.folder
        return training_record(
            steps=self.step, steps_per_epoch=self.steps_per_epoch, config=self.config,
            preset=self.options.preset, chips=folder.root, chips_source=folder.source,
            chip_folders=[part.to_dict() for part in folder.parts],
            band_descriptions=band_descriptions(folder), train_chips=len(folder.train["a"]),
            val_chips=len(folder.val["a"]), device=str(self.device), precision=self.precision,
            world_size=self.group.world_size, backend=self.group.backend, digests=digests,
            init_from=self.options.init_from, seconds=self.run_seconds, final=final,
            history=self.history)


def learning_rate(step: int, total: int, lr: float, decay_start: float = 0.5) -> float:
    """The papers' schedule, per step: ``lr`` for the first ``decay_start`` of the
    ``total`` steps (half, in the papers), then linearly down to zero (reached after the
    last step)."""
    start = int(total * decay_start)
    if step < start:
        return lr
    return lr * (total - step) / (total - start)


def augmenting(step: int, total: int, until: float) -> bool:
    """Whether step ``step`` (from 0) of ``total`` is one of the first ``until`` of them,
    which the random warps and jitter apply to (``TrainConfig.augment_until``)."""
    return until >= 1.0 or step < math.ceil(until * total)


@contextlib.contextmanager
def _generator_mode(generators: Iterable[nn.Module], mode: str) -> Iterator[None]:
    """Put generators in eval mode, or in train mode with dropout off and BatchNorm
    buffers restored afterwards; then back to training."""
    generators = list(generators)
    saved = [{k: v.clone() for k, v in g.state_dict().items() if "running" in k
              or "num_batches" in k} for g in generators]
    for generator in generators:
        if mode == "eval":
            generator.eval()
        else:
            generator.train()
            set_dropout(generator, False)
    try:
        yield
    finally:
        for generator, buffers in zip(generators, saved, strict=True):
            generator.load_state_dict(buffers, strict=False)
            generator.train()


def _panels(batch: Mapping[str, Tensor], output: Tensor, reference: Tensor, mask: Tensor,
            count: int) -> list[list[np.ndarray]]:
    rows = []
    for i in range(min(count, output.shape[0])):
        valid = mask[i, 0].cpu().numpy() > 0.5
        rows.append([normalized_to_display(t[i].float().cpu().numpy(), valid)
                     for t in (batch["a"], output, reference)])
    return rows


def _in_batches(keys: Sequence[Key], size: int) -> list[list[Key]]:
    return [list(keys[i:i + size]) for i in range(0, len(keys), size)]


def _means(sums: Mapping[str, Tensor], count: int) -> dict[str, float]:
    if not sums or count == 0:
        return {}
    stacked = torch.stack([v.float() for v in sums.values()]).cpu() / count  # one sync
    return dict(zip(sums, stacked.tolist(), strict=True))


__all__ = ["TrainOptions", "TrainProgress", "TrainReport", "train"]
