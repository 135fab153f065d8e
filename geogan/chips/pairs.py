"""Many independent scene pairs in one export: ``export-chips --pairs pairs.csv``.

The file holds one ``input,additional`` pair a row, paths relative to the file; either
may be a mosaic (a folder, a glob, a VRT or ``@list.txt``, see
:mod:`geogan.raster.mosaic`). A first row that names no existing file (``input,additional``
or ``sar,optical``) is a header. Blank rows and rows starting with ``#`` are skipped.

Each pair is chipped on its own grid (:mod:`geogan.chips.export`); this module reads the
file and makes the part of the split that concerns whole pairs:

* ``val_pairs``: that many whole pairs, drawn with the seed, are the validation split and
  the others the training split (the honest split when scenes are few);
* otherwise each pair is split in spatial blocks of its own, and a pair too small for two
  blocks goes whole to one side: among those pairs, whole ones are drawn for validation
  until their share of those pairs' chips reaches the validation fraction (at least one
  when there are two such pairs or more, never all).
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geogan.errors import InputError, RasterNotFoundError


@dataclass(frozen=True)
class PairSpec:
    """One pair of an export.

    Attributes:
        number: The pair's number, 1 for the first row of ``pairs.csv``; 0 for the lone
            pair of an export without ``--pairs`` (its chips keep their plain names).
        row: The line of ``pairs.csv`` it was read from; None without ``--pairs``.
        input: The input side as written (a raster, folder, glob, VRT or ``@list``).
        additional: The additional side, likewise.
        base: The folder relative paths are taken from (the file's); None for the
            working folder.
    """

    number: int
    row: int | None
    input: str
    additional: str
    base: Path | None = None

    @property
    def chip_prefix(self) -> str:
        """What the pair's chip names start with: ``p0001-`` (nothing for a lone pair)."""
        return f"p{self.number:04d}-" if self.number else ""


def read_pairs(path: str | os.PathLike[str]) -> list[PairSpec]:
    """The pairs a ``pairs.csv`` lists, in order.

    Raises:
        RasterNotFoundError: The file does not exist.
        InputError: It cannot be read, lists no pair, or a row does not have two fields.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        what = "is a folder" if csv_path.is_dir() else "does not exist"
        raise RasterNotFoundError(f"the pairs file {csv_path} {what}; give a CSV file with "
                                  "one input,additional pair a row.")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as file:
            rows = [(number, [field.strip() for field in row])
                    for number, row in enumerate(csv.reader(file), 1)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read the pairs file {csv_path} ({error}).") from None
    rows = [(n, r) for n, r in rows if any(r) and not r[0].startswith("#")]
    base = csv_path.absolute().parent
    if rows and not any(_names_something(base, field) for field in rows[0][1][:2]):
        rows = rows[1:]  # a header
    pairs: list[PairSpec] = []
    for number, row in rows:
        if len(row) != 2 or not all(row):
            raise InputError(f"{csv_path} row {number} has {len(row)} field(s) "
                             f"({','.join(row)}); each row is input,additional.")
        pairs.append(PairSpec(len(pairs) + 1, number, row[0], row[1], base))
    if not pairs:
        raise InputError(f"the pairs file {csv_path} lists no pair; write one "
                         "input,additional pair a row.")
    return pairs


def _names_something(base: Path, field: str) -> bool:
    """Whether a field could be a path (then the row is data, not a header)."""
    if field.startswith("@"):
        field = field[1:]
    if "://" in field or field.startswith("/vsi"):
        return True
    path = Path(field).expanduser()
    path = path if path.is_absolute() else base / path
    return path.exists() or (glob.has_magic(field) and bool(glob.glob(str(path))))


def held_out_pairs(count: int, val_pairs: int, seed: int) -> set[int]:
    """Which of ``count`` pairs (by position) ``--val-pairs`` holds out.

    Raises:
        InputError: If that would leave no pair for training.
    """
    if val_pairs >= count:
        raise InputError(f"--val-pairs {val_pairs} would hold out every pair of {count}; "
                         "hold out fewer, so that some are left to train on.")
    order = np.random.default_rng([seed, 2]).permutation(count)
    return {int(i) for i in order[:val_pairs]}


def whole_pairs_for_val(chips: Sequence[int], val_fraction: float, seed: int) -> set[int]:
    """Which of the pairs too small for a block of their own go whole to validation.

    Args:
        chips: The chips of each such pair (by position).
        val_fraction: The share of their chips wanted in validation.
        seed: The export's seed.

    Returns:
        Positions in ``chips`` of the pairs drawn for validation.
    """
    with_chips = [i for i, n in enumerate(chips) if n > 0]
    if val_fraction <= 0 or len(with_chips) < 2:
        return set()
    target = max(1, round(val_fraction * sum(chips)))
    chosen: set[int] = set()
    taken = 0
    for index in np.random.default_rng([seed, 1]).permutation(len(with_chips)):
        if taken >= target or len(chosen) == len(with_chips) - 1:
            break
        chosen.add(with_chips[int(index)])
        taken += chips[with_chips[int(index)]]
    return chosen
