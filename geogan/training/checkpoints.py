"""Training checkpoints: the format, the resume check and the warm start.

A checkpoint (``checkpoint.pt`` in the run's folder) is a ``torch.save``d dict of tensors
and plain values (loaded with ``weights_only``): :data:`CHECKPOINT_HEADER`, the
architecture and training config, the step, the trainer's networks and optimisers, RNG
states and the validation history (built by :mod:`geogan.training.loop`).

* :func:`check_resumable`: ``--resume`` continues only a run with the same settings
  (apart from :data:`RESUMABLE_CHANGES`).
* :func:`warm_start`: ``init_from`` starts a new run from another run's checkpoint or
  from a model file's generators.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geogan.errors import CheckpointError, ModelFileError, OutputError
from geogan.nn.config import Architecture, TrainConfig
from geogan.nn.model_file import read_model_file
from geogan.outputs import atomic_file
from geogan.training.steps import GANTrainer

CHECKPOINT_FORMAT = "geogan-checkpoint"
CHECKPOINT_VERSION = 1  # version 1 without "world_size" was written by one process
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_HEADER = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}

#: Settings that may change between a run and its resumption without changing results
#: (``tta`` and ``unsure_below`` only say how ``translate`` runs the model and draws its
#: map: a ``faithful`` run started before they were recorded resumes, and ends as a model
#: that translates as today's ``faithful`` does).
RESUMABLE_CHANGES = frozenset({"workers", "val_every", "tta", "unsure_below"})

#: Network settings that hold no weights: a new run started from another's weights
#: (``init_from``) may choose them afresh, e.g. fine-tune a model trained with the paper's
#: dropout under a recipe without it, or one written before ``tta`` or ``unsure_below``
#: was recorded.
WEIGHTLESS_SETTINGS = frozenset({"dropout", "tta", "unsure_below"})


def read_checkpoint(path: Path, device: torch.device, hint: str) -> dict[str, Any]:
    """A checkpoint's payload, loaded without running code (``weights_only``).

    Raises:
        CheckpointError: If it cannot be read or is not a geogan checkpoint; ``hint``
            says what to do.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # any failure to read means: not usable
        raise CheckpointError(f"cannot read the checkpoint {path} ({type(error).__name__}); "
                              f"{hint}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a geogan checkpoint")
    return state


def check_resumable(state: Mapping[str, Any], architecture: Architecture, config: TrainConfig,
                    run_dir: Path) -> None:
    """Refuse to resume a checkpoint made with other networks or settings.

    Raises:
        CheckpointError: Naming the settings that differ.
    """
    # A setting added since the checkpoint was written counts as its default.
    saved = (_differences(Architecture.from_dict(state["architecture"]).to_dict(),
                          architecture.to_dict())
             + _differences(TrainConfig.from_dict(state["config"]).to_dict(), config.to_dict()))
    differences = [d for d in saved if d[0] not in RESUMABLE_CHANGES]
    if differences:
        # With the saved values, so that a run started before a preset's default changed
        # can be resumed by giving them (e.g. --decay-start 0.5).
        raise CheckpointError(
            f"the checkpoint in {run_dir} was made with other settings "
            f"({_named(differences)}); resume with the same settings")


def warm_start(path: Path, trainer: GANTrainer, architecture: Architecture,
               device: torch.device) -> None:
    """Load into ``trainer`` the networks and optimisers of a checkpoint, or the generators
    of a model file (a new run that starts from them).

    Raises:
        CheckpointError: If ``path`` is missing, unreadable or holds other networks.
    """
    if not path.is_file():
        raise CheckpointError(f"--init-from {path}: no such file")
    try:
        model = read_model_file(path)
    except ModelFileError:
        state = read_checkpoint(path, device, "give a geogan checkpoint or model file")
        _check_same_networks(path, state["architecture"], architecture)
        trainer.load_state_dict(state["trainer"])
        return
    _check_same_networks(path, model.architecture.to_dict(), architecture)
    for direction, generator in trainer.generators.items():
        generator.load_state_dict(model.generators[direction])
        if direction in trainer.averages:
            trainer.averages[direction].average.load_state_dict(model.generators[direction])

def _check_same_networks(path: Path, saved: Mapping[str, Any],
                         architecture: Architecture) -> None:
    differences = [d for d in _differences(Architecture.from_dict(saved).to_dict(),
                                           architecture.to_dict())
                   if d[0] not in WEIGHTLESS_SETTINGS]
    if differences:
        raise CheckpointError(
            f"{path} holds other networks than this run builds ({_named(differences)}); "
            "give the same --model, --preset, --ngf/--ndf and chips with the same bands and "
            "tile size")


def save_checkpoint(payload: Mapping[str, Any], path: Path) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    with atomic_file(path, "checkpoint") as temporary:
        try:
            torch.save(dict(payload), temporary)
        except RuntimeError as error:  # torch reports a failed write (disk full) so
            raise OutputError(f"cannot write the checkpoint {path} ({error}); free some "
                              "space or choose another --checkpoint-dir") from None


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from."""
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _differences(saved: Mapping[str, Any],
                 current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The settings that differ: name, saved value, current value."""
    return [(k, saved.get(k), v) for k, v in current.items() if saved.get(k) != v]


def _named(differences: list[tuple[str, Any, Any]]) -> str:
    """``"decay_start 0.5 there, 0.75 now, ..."``, by name."""
    return ", ".join(f"{key} {saved!r} there, {now!r} now"
                     for key, saved, now in sorted(differences, key=lambda d: d[0]))
