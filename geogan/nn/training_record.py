"""The training record: what a model file says about the run that made it.

:mod:`geogan.training.loop` fills it; ``geogan info`` and the Python API read it from
:attr:`geogan.nn.model_file.ModelFile.training`. Plain values only (JSON-ready).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geogan.nn.config import TrainConfig
from geogan.version import __version__


def created_now() -> str:
    """The record's ``created`` time: now, UTC, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """The record's ``versions``: geogan, torch, numpy and rasterio."""
    import rasterio  # its version only; the network layer reads no rasters

    return {"geogan": __version__, "torch": str(torch.__version__),
            "numpy": np.__version__, "rasterio": rasterio.__version__}


def training_record(*, steps: int, steps_per_epoch: int, config: TrainConfig, preset: str,
                    chips: Path, chips_source: str,
                    chip_folders: Sequence[Mapping[str, Any]],
                    band_descriptions: Mapping[str, Sequence[str | None]],
                    train_chips: int, val_chips: int, device: str, precision: str,
                    world_size: int, backend: str | None, digests: Sequence[str],
                    init_from: str | os.PathLike[str] | None, seconds: float,
                    final: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
                    ) -> dict[str, Any]:
    """The record a finished run stores in its model file (plain values only).

    Args:
        steps: Optimiser steps taken.
        steps_per_epoch: Steps in one pass over the training chips.
        config: The training configuration.
        preset: The preset the configuration started from.
        chips: The chip folder (the first, when there are several).
        chips_source: ``geogan`` or ``arcgis`` (who wrote the chip folder), ``mixed``
            for several folders of both.
        chip_folders: Every chip folder trained on: path, source and chip counts.
        band_descriptions: Band names of each domain, from its chips.
        train_chips: Training chips (domain a).
        val_chips: Validation chips (domain a).
        device: Where it trained.
        precision: The training arithmetic.
        world_size: Number of processes.
        backend: The distributed backend, or None.
        digests: SHA-256 of the generators in each process.
        init_from: The checkpoint or model file it started from, if any.
        seconds: Training time.
        final: Final validation metrics.
        history: Validation metrics at each validation.

    Returns:
        The record (JSON-ready values).
    """
    return {
        "steps": steps,
        "epochs": round(steps / steps_per_epoch, 3),
        "seed": config.seed,
        "preset": preset,
        "config": config.to_dict(),
        "chips": str(chips.absolute()),
        "chips_source": chips_source,
        "chip_folders": [dict(part) for part in chip_folders],
        "band_descriptions": {k: list(v) for k, v in band_descriptions.items()},
        "train_chips": train_chips,
        "val_chips": val_chips,
        "device": device,
        "precision": precision,
        "distributed": {"world_size": world_size, "backend": backend,
                        "generator_sha256": list(digests)},
        "init_from": None if init_from is None else str(Path(init_from).absolute()),
        "seconds": round(seconds, 2),
        "final": dict(final),
        "history": list(history),
        "created": created_now(),
        "versions": library_versions(),
    }
