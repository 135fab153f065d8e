"""A train/validation split made of spatially disjoint blocks of chips.

Random chips make a dishonest validation set: with overlapping chips (stride smaller
than the tile) the same pixels sit on both sides, and even without overlap,
neighbouring chips are nearly the same sample. Here the chip grid is cut into square
blocks, whole blocks are drawn for validation (seeded) until the requested fraction
is reached, and any chip that reaches into a block of the other split is dropped,
so no validation chip shares a pixel with a training chip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geogan.grids.chip_grid import ChipGrid

#: Aim for at least this many blocks, so that the fraction can be met closely.
TARGET_BLOCKS = 20

TRAIN = "train"
VAL = "val"
DROPPED = "dropped"


@dataclass(frozen=True)
class BlockSplit:
    """The split of a chip grid's chips, by chip position."""

    block_chips: int  # side of a block, in chips
    labels: dict[tuple[int, int], str]  # (chip row, chip column) -> TRAIN | VAL | DROPPED


def block_size(grid: ChipGrid) -> int:
    """Side of a block, in chips: at least one tile wide, and small enough for
    :data:`TARGET_BLOCKS` blocks when the grid allows."""
    min_chips = math.ceil(grid.tile_size / grid.stride)
    fit = math.floor(math.sqrt(max(1, len(grid)) / TARGET_BLOCKS))
    return max(min_chips, fit, 1)


def split_chips(
    grid: ChipGrid,
    kept: Sequence[tuple[int, int]],
    val_fraction: float,
    seed: int,
) -> BlockSplit:
    """Label the kept chips of ``grid`` as train, val or dropped.

    Args:
        grid: The chip grid the chips come from.
        kept: (chip row, chip column) of the chips that passed the filters.
        val_fraction: Share of the kept chips wanted in validation, in [0, 1).
        seed: Seed of the draw of validation blocks.

    Returns:
        The labels. At least one chip is in validation whenever ``val_fraction > 0``
        and there are at least two blocks holding chips.
    """
    side = block_size(grid)
    span = math.ceil(grid.tile_size / grid.stride)  # chips a chip's pixels reach, per axis

    def block_of(i: int, j: int) -> tuple[int, int]:
        return i // side, j // side

    counts: dict[tuple[int, int], int] = {}
    for i, j in kept:
        counts[block_of(i, j)] = counts.get(block_of(i, j), 0) + 1
    blocks = sorted(counts)
    val_blocks: set[tuple[int, int]] = set()
    target = round(val_fraction * len(kept))
    if val_fraction > 0 and len(blocks) >= 2:
        target = max(1, target)
        order = np.random.default_rng(seed).permutation(len(blocks))
        taken = 0
        for index in order:
            if taken >= target or len(val_blocks) == len(blocks) - 1:
                break
            val_blocks.add(blocks[int(index)])
            taken += counts[blocks[int(index)]]

    labels: dict[tuple[int, int], str] = {}
    for i, j in kept:
        split = VAL if block_of(i, j) in val_blocks else TRAIN
        # The chip covers chip cells i..i+span-1, j..j+span-1 (in stride units).
        reached = {
            block_of(i + di, j + dj) in val_blocks
            for di in range(span)
            for dj in range(span)
        }
        labels[(i, j)] = DROPPED if len(reached) > 1 else split
    return BlockSplit(side, labels)
