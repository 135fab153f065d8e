"""An exponential moving average of a network's weights.

A GAN's generator wanders from step to step as it chases its discriminator; the average
of its recent weights (Yazıcı et al. 2019; the standard in StyleGAN and its successors)
draws the same things without the step-to-step jitter, and it is what the model file
keeps when ``TrainConfig.ema`` is set. Buffers (BatchNorm's running statistics) are
copied, not averaged: they are recomputed exactly before the model file is written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """``average ← d · average + (1 − d) · weights`` after every step, with
    ``d = min(decay, (1 + n) / (10 + n))`` at the ``n``-th update: the usual warm-up
    (as in TensorFlow's and timm's averages), so that a short run's average is not
    dominated by its first, untrained weights.

    Args:
        network: The trained network; the average starts as a copy of it.
        decay: In [0, 1); 0.999 averages over about the last thousand steps.
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the decay must be in [0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.network = network
        self.average = copy.deepcopy(network).requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the network's current weights; copy its buffers."""
        averaged: list[torch.Tensor] = list(self.average.parameters())
        current: list[torch.Tensor] = list(self.network.parameters())
        torch._foreach_lerp_(averaged, current, 1.0 - self.current_decay())
        self.updates += 1
        for mine, theirs in zip(self.average.buffers(), self.network.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the update count, for checkpoints."""
        return {"weights": self.average.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.average.load_state_dict(state["weights"])
        self.updates = int(state["updates"])


__all__ = ["WeightAverage"]
