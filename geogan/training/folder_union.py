"""Several chip folders trained on as one: :func:`open_chip_folders`.

A training set is rarely one export: scenes from several places, several deliveries,
ours and ArcGIS's. The union keeps what each folder says of itself (its chips and its
train/validation split) and checks that they can be trained on together: the same
layout (paired or unpaired), the same band count and data type in each domain, and the
same tile size. The value mapping comes from statistics pooled over the training chips
of every folder, read once in folder order, exactly as for one folder without metadata
that held them all; so two folders trained together give the same model as one folder
holding both (same chips, same seed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from geogan.errors import ChipFolderError, ConfigError
from geogan.progress import ProgressCallback
from geogan.training.chip_folder import (
    DOMAINS,
    ChipFolder,
    FolderPart,
    compute_statistics,
    open_chip_folder,
)

#: One chip folder, or several.
ChipFolders = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def folder_paths(chips: ChipFolders) -> list[Path]:
    """The folders ``chips`` names, as a list (one folder is a list of one)."""
    if isinstance(chips, str | os.PathLike):
        return [Path(chips)]
    return [Path(p) for p in chips]


def open_chip_folders(chips: ChipFolders, *, val_fraction: float = 0.1, seed: int = 0,
                      progress: ProgressCallback | None = None) -> ChipFolder:
    """Open one chip folder, or the union of several, for training.

    Args:
        chips: A chip folder or a sequence of them (see
            :func:`~geogan.training.chip_folder.open_chip_folder` for what each may be).
        val_fraction: For folders without geogan's metadata: the share of their chips
            drawn at random for validation (each folder keeps its own split).
        seed: Seed of those draws and of the statistics' subsample.
        progress: Called with (chips done, chips in all) while chips are read.

    Returns:
        One folder: every folder's training chips, then every folder's validation chips,
        in the order given; ``root`` is the first folder and ``parts`` lists them all.

    Raises:
        ConfigError: No folder is given, or ``val_fraction`` is out of range.
        ChipFolderError: A folder cannot be used (see ``open_chip_folder``), the same
            folder is given twice, or the folders differ in layout, band count, data
            type or tile size (the message names the folder).
    """
    paths = folder_paths(chips)
    if not paths:
        raise ConfigError("give at least one chip folder")
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise ChipFolderError(f"the chip folder {path} is given twice (as "
                                  f"{seen[path.resolve()]} too); give each folder once.")
        seen[path.resolve()] = path
    if len(paths) == 1:
        folder = open_chip_folder(paths[0], val_fraction=val_fraction, seed=seed,
                                  progress=progress)
        return replace(folder, parts=(_part(folder),))
    folders = [open_chip_folder(p, val_fraction=val_fraction, seed=seed) for p in paths]
    first = folders[0]
    for other in folders[1:]:
        if _kind(other) != _kind(first):
            raise ChipFolderError(
                f"the chip folder {other.root} holds {_kind(other)}, but {first.root} holds "
                f"{_kind(first)}; folders trained together must have the same layout, band "
                "counts, data types and tile size (export them with the same settings).")
    train = {d: tuple(c for f in folders for c in f.train[d]) for d in DOMAINS}
    val = {d: tuple(c for f in folders for c in f.val[d]) for d in DOMAINS}
    domains = {}
    for domain in DOMAINS:
        info = first.domains[domain]
        statistics = compute_statistics(train[domain], info.bands, info.dtype, seed, progress)
        domains[domain] = replace(info, statistics=statistics)
    sources = {f.source for f in folders}
    source = sources.pop() if len(sources) == 1 else "mixed"
    return ChipFolder(first.root, first.mode, first.tile_size, domains, source, train, val,
                      tuple(_part(f) for f in folders))


def _part(folder: ChipFolder) -> FolderPart:
    return FolderPart(folder.root, folder.source, len(folder.train["a"]), len(folder.val["a"]))


def _kind(folder: ChipFolder) -> str:
    """What must agree between folders, in words."""
    a, b = folder.domains["a"], folder.domains["b"]
    return (f"{folder.mode} {a.bands}-band {a.dtype} → {b.bands}-band {b.dtype} chips of "
            f"{folder.tile_size} × {folder.tile_size} pixels")
