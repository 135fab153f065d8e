"""Deep supervision: class heads on the U-Net decoder's coarser levels, for training only.

The generator's class head reads the decoder's last, full-resolution level. Whether a dark
area is a lake or woods, a lawn a park or a garden, is decided at the coarse levels, which
see a wide context; the class loss reaches them only back through every finer level.
Deep supervision (Lee et al. 2015; the auxiliary loss of PSPNet, Zhao et al. 2017, and of
nnU-Net) gives some coarse levels a 1 x 1 class head of their own and adds their
cross-entropy to the generator's loss, so that those levels learn the classes directly.

The heads are trained beside the generator and kept in checkpoints, never in the model
file: they read the decoder through forward hooks, so the generator, what it computes and
what translate draws are the paper's U-Net unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geogan.nn.losses import hardest_cross_entropy
from geogan.nn.networks import UNetGenerator, init_weights

SUPERVISED_LEVELS = (2, 3, 4)
"""Decoder levels given a head: their outputs have 1/4, 1/8 and 1/16 of the tile's side,
fine enough to hold a street and coarse enough to see a block around it."""


class DecoderHeads(nn.Module):
    """1 x 1 class heads on decoder levels of a U-Net, fed by hooks on those levels.

    Inside :meth:`capture`, every forward pass of the generator keeps the outputs of the
    supervised levels; calling the heads on them gives each level's class logits.

    Args:
        generator: The U-Net; it must have a class head (``classes`` > 0).
        levels: Decoder levels to supervise (level ``k`` has ``1 / 2**k`` of the tile's
            side); levels the U-Net lacks, and level 0 (the class head itself), are left
            out.

    Raises:
        ValueError: If the generator has no class head or no level is left to supervise.
    """

    def __init__(self, generator: UNetGenerator, levels: tuple[int, ...] = SUPERVISED_LEVELS
                 ) -> None:
        super().__init__()
        if not generator.classes:
            raise ValueError("deep supervision needs a U-Net with a class head")
        self.levels = tuple(k for k in levels if 0 < k < generator.depth)
        if not self.levels:
            raise ValueError(f"none of the levels {levels} is inside a U-Net of depth "
                             f"{generator.depth}")
        self.heads = nn.ModuleDict({
            str(k): nn.Sequential(nn.ReLU(), nn.Conv2d(generator.channels[k], generator.classes, 1))
            for k in self.levels})
        init_weights(self.heads)
        self._kept: dict[int, Tensor] | None = None
        for k in self.levels:
            generator.decoder[k].register_forward_hook(partial(self._keep, k))

    @contextmanager
    def capture(self) -> Iterator[dict[int, Tensor]]:
        """Keep the supervised levels' outputs of the generator's passes in this block, by
        level (a later pass replaces an earlier one's)."""
        kept: dict[int, Tensor] = {}
        self._kept = kept
        try:
            yield kept
        finally:
            self._kept = None

    def _keep(self, level: int, _module: nn.Module, _inputs: object, output: Tensor) -> None:
        if self._kept is not None:
            self._kept[level] = output

    def forward(self, features: Mapping[int, Tensor]) -> dict[int, Tensor]:
        """Class logits (N, K, S / 2**k, S / 2**k) of each level ``k`` in ``features``."""
        return {k: self.heads[str(k)](features[k]) for k in self.levels}


def deep_supervision_loss(logits: Mapping[int, Tensor], classes: Tensor, share: float = 1.0,
                          weight: Tensor | None = None, label_smoothing: float = 0.0) -> Tensor:
    """The class head's cross-entropy (:func:`~geogan.nn.losses.hardest_cross_entropy`,
    with the same settings) of each level's logits, resized bilinearly to the target's
    size, averaged over the levels with weight ``2**-k``: each finer level counts twice
    as much as the next coarser one, as in nnU-Net.

    Args:
        logits: Level → logits (N, K, h, w), as :class:`DecoderHeads` gives them.
        classes: The target class map (N, H, W), -100 where a pixel has no class.
    """
    size = classes.shape[-2:]
    terms = [2.0**-k * hardest_cross_entropy(
                 F.interpolate(level_logits.float(), size=size, mode="bilinear",
                               align_corners=False),
                 classes, share, weight, label_smoothing)
             for k, level_logits in logits.items()]
    return torch.stack(terms).sum() / sum(2.0**-k for k in logits)
