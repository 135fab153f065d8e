"""BatchNorm recalibration: exact running averages before a model is written.

Translate runs generators in eval mode, where BatchNorm uses running averages; those
drift during training at batch 1. One pass over the training chips, weights untouched,
replaces them with the exact averages (``momentum=None``: every batch counts the same).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from geogan.nn.devices import autocast
from geogan.nn.networks import set_dropout


def recalibrate_batchnorm(generators: Mapping[str, nn.Module],
                          batches: Iterable[Mapping[str, Tensor]],
                          to_device: Callable[[Any], Mapping[str, Tensor]],
                          device: torch.device, precision: str) -> int:
    """Set each generator's BatchNorm running averages to the exact averages of the batch
    statistics over ``batches``: weights untouched, dropout off, eval mode afterwards.

    Args:
        generators: Generator of each direction (``a2b`` reads ``a``, ``b2a`` reads ``b``).
        batches: The training chips in canonical order, no augmentation, at the training
            batch size (re-iterable: one pass per generator).
        to_device: Moves a batch to ``device``.
        device: Where the generators run.
        precision: The training arithmetic (autocast).

    Returns:
        Number of BatchNorm layers recalibrated (0 for InstanceNorm generators).
    """
    layers = 0
    for direction, generator in generators.items():
        norms = [m for m in generator.modules() if isinstance(m, _BatchNorm)]
        if not norms:
            continue
        layers += len(norms)
        momenta = [m.momentum for m in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: every batch counts the same
        generator.train()
        set_dropout(generator, False)
        with torch.no_grad():
            for batch in batches:
                batch = to_device(batch)
                with autocast(device, precision):
                    generator(batch["a" if direction == "a2b" else "b"])
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        generator.eval()
    return layers
