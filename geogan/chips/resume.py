"""Resuming an interrupted export: the record of what it was started with, and the check
that a ``--resume`` run has the same inputs (paths, sizes, modification times) and options.

The record is written into the stage folder (:mod:`geogan.staging`) when the export starts
and removed when it is published.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geogan import staging
from geogan.chips.manifest import PlannedPair
from geogan.chips.options import ExportOptions
from geogan.errors import (
    InputError,
)
from geogan.version import __version__

#: The record, in an unfinished export's stage folder, of the settings it was started with.
SETTINGS_NAME = ".geogan-export.json"
SETTINGS_FORMAT = "geogan-export-stage"


def _file_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies an input file's version: absolute path, size and modification time."""
    text = os.fspath(path)
    if "://" in text or text.startswith("/vsi"):
        return {"path": text}
    try:
        status = os.stat(text)
    except OSError:
        return {"path": str(Path(text).absolute())}
    return {"path": str(Path(text).absolute()), "size": status.st_size,
            "mtime_ns": status.st_mtime_ns}


def _side_record(files: tuple[str, ...]) -> Any:
    """One side's identity: its file's record, or every tile's for a mosaic."""
    return _file_record(files[0]) if len(files) == 1 else [_file_record(f) for f in files]


def export_settings(pairs: Sequence[PlannedPair], pairs_file: Path | None,
                    skipped: Sequence[Mapping[str, Any]],
                    options: ExportOptions) -> dict[str, Any]:
    """Everything that changes an export's output: its inputs' identities (every file of
    every pair, and the pairs file) and the options (not ``overwrite``, ``workers`` or
    ``resume``, which don't)."""
    sides = [{layer.role: _side_record(layer.files) for plan in pair.plans
              for layer in plan.layers} for pair in pairs]
    inputs: dict[str, Any]
    if pairs_file is None:
        inputs = {"input": sides[0]["a"], "additional": sides[0]["b"]}
    else:
        inputs = {"pairs": _file_record(pairs_file), "pair_rasters": sides,
                  "skipped_pairs": [dict(s) for s in skipped]}
    inputs["aoi"] = None if options.aoi is None else _file_record(options.aoi)
    return {
        "format": SETTINGS_FORMAT,
        "created_by": f"geogan {__version__}",
        "inputs": inputs,
        "options": {
            "tile_size": options.tile_size,
            "stride": options.step,
            "min_valid": options.min_valid,
            "val_fraction": options.val_fraction,
            "seed": options.seed,
            "unpaired": options.unpaired,
            "resampling": options.resampling,
            "max_shift": options.max_shift,
            "val_pairs": options.val_pairs,
            "skip_bad_pairs": options.skip_bad_pairs,
            "creation_options": {str(k).upper(): str(v)
                                 for k, v in sorted(options.creation_options.items())},
        },
    }


def check_resumable(stage: Path, settings: dict[str, Any]) -> None:
    """Raise :class:`InputError` unless ``stage`` is an interrupted export of ``settings``."""
    out = staging.published_path(stage)
    if not (stage / SETTINGS_NAME).is_file():
        what = "holds no record of its settings" if stage.is_dir() else "does not exist"
        raise InputError(
            f"there is no interrupted export of {out} to resume ({stage} {what}); "
            "run without --resume to start it"
        )
    try:
        recorded = json.loads((stage / SETTINGS_NAME).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot resume: {stage / SETTINGS_NAME} cannot be read ({error}); "
                         "run without --resume to start over") from None
    differences = []
    for group in ("inputs", "options"):
        old, new = recorded.get(group, {}), settings[group]
        differences += [_setting_label(group, name) for name in new
                        if old.get(name) != new[name]]
    if recorded.get("created_by") != settings["created_by"]:
        differences.append(f"geogan version ({recorded.get('created_by')})")
    if differences:
        raise InputError(
            f"cannot resume the export in {stage}: it was started with other "
            f"{', '.join(differences)}; rerun with the same inputs and settings, or without "
            "--resume to start over"
        )


def _setting_label(group: str, name: str) -> str:
    """How a user knows a setting: the command line's option, or which input file."""
    if group == "inputs":
        return {"input": "INPUT raster", "additional": "ADDITIONAL raster",
                "aoi": "--aoi file", "pairs": "--pairs file",
                "pair_rasters": "rasters of the --pairs file",
                "skipped_pairs": "pairs skipped by --skip-bad-pairs"}[name]
    return "--co" if name == "creation_options" else "--" + name.replace("_", "-")
