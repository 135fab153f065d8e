"""The batches of a training run: which chips each optimiser step takes, epoch by epoch.

Each epoch's order and augmentation come from :func:`geogan.training.dataset.epoch_keys`
(the seed and the epoch alone), so a run resumed at any step, or split over several
processes, takes the same batches as one run from the start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch.utils.data import Sampler

from geogan.nn.config import TrainConfig
from geogan.training.chip_folder import ChipFolder
from geogan.training.dataset import Key, epoch_keys
from geogan.training.distributed import ProcessGroup, shard, shard_size


class EpochBatches(Sampler[list[Key]]):
    """This process's batches of every remaining step, epoch after epoch, from ``start``."""

    def __init__(self, folder: ChipFolder, config: TrainConfig, start: int, total: int,
                 group: ProcessGroup, repeats: tuple[int, ...] | None = None) -> None:
        self.folder, self.config, self.start, self.total = folder, config, start, total
        self.group, self.repeats = group, repeats
        self.steps_per_epoch = steps_per_epoch(folder, config, group)

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[Key]]:
        size, keys, keys_epoch = self.config.batch_size, list[Key](), -1
        for step in range(self.start, self.total):
            epoch, position = divmod(step, self.steps_per_epoch)
            if epoch != keys_epoch:
                keys = shard(epoch_keys(self.folder, epoch, self.config.seed,
                                        self.config.augment, self.repeats), self.group)
                keys_epoch = epoch
            yield keys[position * size:(position + 1) * size]


def steps_per_epoch(folder: ChipFolder, config: TrainConfig,
                    group: ProcessGroup | None = None) -> int:
    """Optimiser steps in one pass over the training chips (the last batch may be short);
    with several processes each step takes a batch on every one of them."""
    keys = len(epoch_keys(folder, 0, config.seed, config.augment))
    if group is not None:
        keys = shard_size(keys, group)
    return math.ceil(keys / config.batch_size)


__all__ = ["EpochBatches", "steps_per_epoch"]
