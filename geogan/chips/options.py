"""What ``export-chips`` takes and returns: :class:`ExportOptions` and :class:`ExportReport`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rasterio.enums import Resampling

from geogan.errors import (
    InputError,
)


@dataclass(frozen=True)
class ExportOptions:
    """How to cut chips. Defaults follow ArcGIS's *Export Training Data For Deep Learning*."""

    tile_size: int = 256  # chip side, pixels
    stride: int | None = None  # step between chips, pixels; None = tile_size (no overlap)
    min_valid: float = 0.9  # chips with a smaller share of valid pixels are skipped
    val_fraction: float = 0.1  # share of chips in the validation split (spatial blocks)
    seed: int = 0  # seed of the split
    aoi: str | os.PathLike[str] | None = None  # GeoJSON polygon(s) to clip to
    unpaired: bool = False  # chip each raster on its own (CycleGAN)
    resampling: str | None = None  # additional raster's resampling; None = by its content
    max_shift: float | None = None  # drop chip pairs misregistered by more pixels than this
    overwrite: bool = False  # replace an existing non-empty output folder
    # Processes cutting chips: 1 = this one; 0 = one per CPU core (at most 8), or this
    # one when there are too few windows to repay starting them.
    workers: int = 0
    creation_options: Mapping[str, Any] = field(default_factory=dict)  # GeoTIFF options
    resume: bool = False  # continue an interrupted export of the same inputs and settings
    val_pairs: int | None = None  # --pairs: hold out this many whole pairs for validation
    skip_bad_pairs: bool = False  # --pairs: skip (and count) pairs that fail, not stop

    @property
    def step(self) -> int:
        """The stride actually used."""
        return self.stride if self.stride is not None else self.tile_size

    def check(self) -> None:
        """Raise :class:`InputError` for values that cannot work."""
        if self.tile_size < 16:
            raise InputError(f"tile size must be at least 16 pixels, not {self.tile_size}.")
        if self.step < 1:
            raise InputError(f"stride must be at least 1 pixel, not {self.step}.")
        if not 0.0 <= self.min_valid <= 1.0:
            raise InputError(f"min-valid must be between 0 and 1, not {self.min_valid}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"val-fraction must be in [0, 1), not {self.val_fraction}.")
        if self.max_shift is not None and self.max_shift < 0:
            raise InputError(f"max-shift must not be negative, not {self.max_shift}.")
        if self.val_pairs is not None and self.val_pairs < 1:
            raise InputError(f"val-pairs must be at least 1, not {self.val_pairs}.")
        if self.resampling is not None and self.resampling not in Resampling.__members__:
            names = ", ".join(r.name for r in Resampling)
            raise InputError(f"unknown resampling {self.resampling!r}; use one of {names}.")


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and what it skipped, and why."""

    out_dir: Path
    mode: str  # "paired" or "unpaired"
    candidates: int  # chip windows examined
    train: int
    val: int
    skipped_invalid: int  # below min_valid
    skipped_shift: int  # above max_shift
    dropped_split: int  # would have overlapped the other split
    resampling: str
    seconds: float
    pairs: int = 1  # pairs exported (rows of --pairs that were used)
    skipped_pairs: tuple[str, ...] = ()  # with --skip-bad-pairs: why each row was skipped
    whole_pairs_train: int = 0  # pairs too small for a validation block: all training
    whole_pairs_val: int = 0  # likewise, drawn whole for validation
    held_out_pairs: int = 0  # --val-pairs: whole pairs held out for validation

    @property
    def exported(self) -> int:
        """Chips (or chip pairs) written."""
        return self.train + self.val
